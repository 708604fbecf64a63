//! ServiceAccount issuer discovery (OpenID Connect discovery, as upstream's
//! `ServiceAccountIssuerDiscovery`): `/.well-known/openid-configuration`
//! names the issuer and where its keys are, and `/openid/v1/jwks` publishes
//! the public half of the token signing key, so a relying party outside
//! the cluster (a cloud's workload identity, a service of its own) can
//! verify ServiceAccount tokens without calling TokenReview.
//!
//! Both documents are rendered once at start (the key does not change
//! while the process runs). Who may read them is RBAC's: the default
//! `system:service-account-issuer-discovery` ClusterRole is bound to
//! `system:serviceaccounts`, as upstream. Anonymous requests stay 401 here
//! (only health and version are open), so a relying party without a
//! credential gets the documents from wherever the administrator publishes
//! them (`kubectl get --raw /openid/v1/jwks`), the usual practice upstream.

use axum::body::Bytes;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::auth::sa_token::{key::SigningKey, ISSUER};

/// The discovery document's path.
pub const CONFIGURATION_PATH: &str = "/.well-known/openid-configuration";
/// The key set's path.
pub const JWKS_PATH: &str = "/openid/v1/jwks";

/// The rendered documents.
#[derive(Debug, Clone)]
pub struct Discovery {
    configuration: Bytes,
    jwks: Bytes,
}

impl Discovery {
    /// The documents for tokens signed by `key`, whose key set is fetched
    /// from `jwks_uri` (upstream's `--service-account-jwks-uri`).
    pub fn new(key: &SigningKey, jwks_uri: &str) -> Discovery {
        let configuration = json!({
            "issuer": ISSUER,
            "jwks_uri": jwks_uri,
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
        });
        let jwks = json!({"keys": [key.public_jwk()]});
        Discovery { configuration: Bytes::from(configuration.to_string()), jwks: Bytes::from(jwks.to_string()) }
    }

    /// `GET /.well-known/openid-configuration`.
    pub fn configuration_response(&self) -> Response {
        respond(self.configuration.clone(), "application/json")
    }

    /// `GET /openid/v1/jwks`.
    pub fn jwks_response(&self) -> Response {
        respond(self.jwks.clone(), "application/jwk-set+json")
    }
}

/// The default `jwks_uri`: the key set on this apiserver at `address`
/// (`host:port`, the advertised one when there is one).
pub fn default_jwks_uri(address: &str) -> String {
    format!("https://{address}{JWKS_PATH}")
}

fn respond(body: Bytes, content_type: &'static str) -> Response {
    let mut resp = (StatusCode::OK, body).into_response();
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Relying parties may cache the keys for a while, as upstream allows.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::sa_token::Claims;

    fn body(resp: Response) -> serde_json::Value {
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        let bytes = rt.block_on(axum::body::to_bytes(resp.into_body(), 1 << 20)).expect("body");
        serde_json::from_slice(&bytes).expect("json")
    }

    #[test]
    fn the_configuration_names_the_issuer_and_the_key_set() {
        let key = SigningKey::generate().expect("key");
        let doc = Discovery::new(&key, &default_jwks_uri("192.0.2.7:6443"));
        let resp = doc.configuration_response();
        assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/json");
        let config = body(resp);
        assert_eq!(config["issuer"], ISSUER);
        assert_eq!(config["jwks_uri"], "https://192.0.2.7:6443/openid/v1/jwks");
        assert_eq!(config["id_token_signing_alg_values_supported"], json!(["ES256"]));
    }

    #[test]
    fn a_token_verifies_with_the_published_key_alone() {
        let key = SigningKey::generate().expect("key");
        let claims = Claims {
            iss: ISSUER.into(),
            sub: "system:serviceaccount:default:builder".into(),
            aud: vec!["vault".into()],
            exp: 4_000_000_000,
            iat: 1_000,
            nbf: 1_000,
            jti: "id".into(),
            kubernetes: Default::default(),
        };
        let token = key.sign(&claims).expect("sign");
        let resp = Discovery::new(&key, "https://example/jwks").jwks_response();
        assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/jwk-set+json");
        let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_value(body(resp)).expect("a JWK set");
        let kid = jsonwebtoken::decode_header(&token).expect("header").kid.expect("kid");
        let jwk = jwks.find(&kid).expect("the token's key is published");
        let decoding = jsonwebtoken::DecodingKey::from_jwk(jwk).expect("decoding key");
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
        validation.set_audience(&["vault"]);
        validation.set_issuer(&[ISSUER]);
        let verified = jsonwebtoken::decode::<serde_json::Value>(&token, &decoding, &validation).expect("verifies");
        assert_eq!(verified.claims["sub"], "system:serviceaccount:default:builder");
        // Another key's token does not verify against it.
        let other = SigningKey::generate().expect("key").sign(&claims).expect("sign");
        assert!(jsonwebtoken::decode::<serde_json::Value>(&other, &decoding, &validation).is_err());
    }
}
