//! Writes on etcd: each is one txn whose guard is the store's
//! precondition; when the guard fails, a get in the same txn tells
//! `NotFound` from `Conflict`.

use etcd_client::{Compare, CompareOp, DeleteOptions, GetOptions, Txn, TxnOp, TxnOpResponse};

use super::{Etcd, TXN_OVERHEAD};
use crate::store::{Error, KeyValue, Result, Revision};

impl Etcd {
    fn check_size(&self, key: &str, value: &[u8]) -> Result<()> {
        let framing = key.len().saturating_add(self.inner.options.key_prefix.len()).saturating_mul(2);
        let max = self.inner.options.max_request_bytes.saturating_sub(framing.saturating_add(TXN_OVERHEAD));
        if value.len() > max {
            return Err(Error::ValueTooLarge { key: key.to_owned(), size: value.len(), max });
        }
        Ok(())
    }

    pub(in crate::store) async fn create(&self, key: &str, value: Vec<u8>) -> Result<Revision> {
        self.check_size(key, &value)?;
        let k = self.key(key);
        let txn = Txn::new()
            .when([Compare::create_revision(k.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(k, value, None)]);
        let response = self.txn("create", key, txn).await?;
        if !response.succeeded() {
            return Err(Error::AlreadyExists { key: key.to_owned() });
        }
        Ok(self.observe(response.header()))
    }

    /// The guard of an update or delete: the key exists, and has mod
    /// revision `expected` if one is given.
    fn guard(k: &[u8], expected: Option<Revision>) -> Vec<Compare> {
        let mut compares = vec![Compare::create_revision(k.to_vec(), CompareOp::Greater, 0)];
        if let Some(expected) = expected {
            compares.push(Compare::mod_revision(k.to_vec(), CompareOp::Equal, expected));
        }
        compares
    }

    /// Why a guarded txn failed: its `or_else` get tells `NotFound` from `Conflict`.
    fn refused(&self, key: &str, expected: Option<Revision>, response: &etcd_client::TxnResponse) -> Error {
        let actual = response.op_responses().into_iter().find_map(|op| match op {
            TxnOpResponse::Get(get) => get.kvs().first().map(etcd_client::KeyValue::mod_revision),
            _ => None,
        });
        match (actual, expected) {
            (Some(actual), Some(expected)) => Error::Conflict { key: key.to_owned(), expected, actual },
            _ => Error::NotFound { key: key.to_owned() },
        }
    }

    pub(in crate::store) async fn update(
        &self,
        key: &str,
        value: Vec<u8>,
        expected: Option<Revision>,
    ) -> Result<Revision> {
        self.check_size(key, &value)?;
        let k = self.key(key);
        let txn = Txn::new()
            .when(Etcd::guard(&k, expected))
            .and_then([TxnOp::put(k.clone(), value, None)])
            .or_else([TxnOp::get(k, Some(GetOptions::new().with_keys_only()))]);
        let response = self.txn("update", key, txn).await?;
        if !response.succeeded() {
            return Err(self.refused(key, expected, &response));
        }
        Ok(self.observe(response.header()))
    }

    pub(in crate::store) async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<(Revision, KeyValue)> {
        let k = self.key(key);
        let txn = Txn::new()
            .when(Etcd::guard(&k, expected))
            .and_then([TxnOp::delete(k.clone(), Some(DeleteOptions::new().with_prev_key()))])
            .or_else([TxnOp::get(k, Some(GetOptions::new().with_keys_only()))]);
        let response = self.txn("delete", key, txn).await?;
        if !response.succeeded() {
            return Err(self.refused(key, expected, &response));
        }
        let prev = response.op_responses().into_iter().find_map(|op| match op {
            TxnOpResponse::Delete(delete) => delete.prev_kvs().first().and_then(|kv| self.store_kv(kv)),
            _ => None,
        });
        // The guard held, so the key existed: etcd returns its prev kv.
        let prev = prev.ok_or_else(|| Error::NotFound { key: key.to_owned() })?;
        Ok((self.observe(response.header()), prev))
    }
}
