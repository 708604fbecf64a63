//! The service-account signing key: an ECDSA P-256 key generated at the
//! first start of `bosun control` in `<data-dir>/pki/sa.key` (0600 in a
//! 0700 directory, like the CA's) and reused on every restart, so tokens
//! outlive a restart. It signs (ES256) and verifies the tokens.

use std::path::Path;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rcgen::KeyPair;

use super::Claims;
use crate::auth::files::write_private;

/// The key file's name in the pki directory.
pub const KEY_FILE: &str = "sa.key";

/// Loading, signing or verifying failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("service-account key: {0}")]
    Key(#[from] rcgen::Error),
    #[error("service-account token: {0}")]
    Jwt(#[from] jsonwebtoken::errors::Error),
}

/// The cluster's token signing key.
pub struct SigningKey {
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// `kid` of the tokens' header: names the key (its public half's hash).
    key_id: String,
    /// The public key as an uncompressed P-256 point (`04 || x || y`).
    public_point: Vec<u8>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("key_id", &self.key_id).finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A new key, in memory only.
    pub fn generate() -> Result<SigningKey, Error> {
        SigningKey::from_key_pair(&KeyPair::generate()?)
    }

    /// Loads the key from `dir/sa.key`, or generates and saves one there
    /// (0600, `dir` 0700) when there is none yet.
    pub fn load_or_create(dir: &Path) -> Result<SigningKey, Error> {
        let path = dir.join(KEY_FILE);
        let io = |source| Error::Io { path: path.display().to_string(), source };
        if path.exists() {
            let pem = std::fs::read_to_string(&path).map_err(io)?;
            crate::auth::files::private_dir(dir)
                .map_err(|source| Error::Io { path: dir.display().to_string(), source })?;
            return SigningKey::from_key_pair(&KeyPair::from_pem(&pem)?);
        }
        let pair = KeyPair::generate()?;
        write_private(&path, pair.serialize_pem().as_bytes()).map_err(io)?;
        SigningKey::from_key_pair(&pair)
    }

    fn from_key_pair(pair: &KeyPair) -> Result<SigningKey, Error> {
        let encoding = EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes())?;
        let decoding = DecodingKey::from_ec_pem(pair.public_key_pem().as_bytes())?;
        let key_id = key_id(pair.public_key_raw());
        Ok(SigningKey { encoding, decoding, key_id, public_point: pair.public_key_raw().to_vec() })
    }

    /// The signed token of `claims`.
    pub fn sign(&self, claims: &Claims) -> Result<String, Error> {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.key_id.clone());
        Ok(jsonwebtoken::encode(&header, claims, &self.encoding)?)
    }

    /// The public half as a JSON Web Key (RFC 7517/7518: `kty` EC, curve
    /// P-256, ES256), for the issuer's JWKS document.
    pub fn public_jwk(&self) -> serde_json::Value {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine;
        // An uncompressed point: 0x04, then x and y, 32 bytes each.
        let (x, y) = match self.public_point.as_slice() {
            [4, rest @ ..] if rest.len() == 64 => rest.split_at(32),
            _ => (&[][..], &[][..]),
        };
        serde_json::json!({
            "use": "sig",
            "kty": "EC",
            "kid": self.key_id,
            "crv": "P-256",
            "alg": "ES256",
            "x": URL_SAFE_NO_PAD.encode(x),
            "y": URL_SAFE_NO_PAD.encode(y),
        })
    }

    /// The claims of `token` if this key signed it. Only the signature and
    /// the claims' shape are checked here; time, audience, issuer and the
    /// objects are [`super::decide`]'s (pure, with the clock injected).
    pub fn verify(&self, token: &str) -> Result<Claims, Error> {
        let mut validation = Validation::new(Algorithm::ES256);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        Ok(jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)?.claims)
    }
}

/// A short stable name of a public key: the first 16 bytes of a FNV-1a-128
/// style fold of its DER, hex. Only to tell keys apart, not a security
/// property (the signature is).
fn key_id(der: &[u8]) -> String {
    let mut a: u64 = 0xcbf2_9ce4_8422_2325;
    let mut b: u64 = 0x8422_2325_cbf2_9ce4;
    for &byte in der {
        a = (a ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
        b = (b ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3).rotate_left(5);
    }
    format!("{a:016x}{b:016x}")
}
