//! Opaque, signed page tokens.
//!
//! A token is `base64url(payload) "." base64url(HMAC-SHA256(secret, payload))`.
//! The payload names the resource, carries a hash of the query shape (filter,
//! order, soft-delete visibility, tenant) and the sort-key values of the last
//! row served. A token whose signature does not verify, or that was issued
//! for another resource or query, is rejected.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use sha2::{Digest, Sha256};

use crate::Error;

type HmacSha256 = Hmac<Sha256>;

/// Signs and verifies page tokens with a secret key.
#[derive(Clone)]
pub(crate) struct TokenSigner {
    key: Arc<[u8]>,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSigner(..)")
    }
}

#[derive(Serialize, Deserialize)]
struct Payload {
    /// Format version.
    v: u8,
    /// Resource name.
    r: String,
    /// Hash of the query shape.
    h: String,
    /// Sort-key values of the last row served.
    k: Vec<Json>,
}

const FORMAT: u8 = 1;

impl TokenSigner {
    pub(crate) fn new(key: &[u8]) -> Self {
        TokenSigner {
            key: Arc::from(key),
        }
    }

    fn mac(&self, data: &[u8]) -> HmacSha256 {
        let mut mac =
            HmacSha256::new_from_slice(&self.key).expect("HMAC takes a key of any length");
        mac.update(data);
        mac
    }

    pub(crate) fn issue(&self, resource: &str, shape: &str, last: Vec<Json>) -> String {
        let payload = Payload {
            v: FORMAT,
            r: resource.to_owned(),
            h: shape_hash(shape),
            k: last,
        };
        let json = serde_json::to_vec(&payload).expect("a payload of JSON values serialises");
        let body = B64.encode(json);
        let tag = self.mac(body.as_bytes()).finalize().into_bytes();
        format!("{body}.{}", B64.encode(tag))
    }

    /// The sort-key values in `token`, after checking its signature, resource and query shape.
    pub(crate) fn open(
        &self,
        token: &str,
        resource: &str,
        shape: &str,
    ) -> Result<Vec<Json>, Error> {
        let invalid =
            || Error::invalid_argument("page_token", "page_token is invalid or was tampered with");
        let (body, tag) = token.split_once('.').ok_or_else(invalid)?;
        let tag = B64.decode(tag).map_err(|_| invalid())?;
        self.mac(body.as_bytes())
            .verify_slice(&tag)
            .map_err(|_| invalid())?;
        let json = B64.decode(body).map_err(|_| invalid())?;
        let payload: Payload = serde_json::from_slice(&json).map_err(|_| invalid())?;
        if payload.v != FORMAT {
            return Err(invalid());
        }
        if payload.r != resource {
            return Err(Error::invalid_argument(
                "page_token",
                format!(
                    "page_token was issued for `{}`, not `{resource}`",
                    payload.r
                ),
            ));
        }
        if payload.h != shape_hash(shape) {
            return Err(Error::invalid_argument(
                "page_token",
                "page_token was issued for a different filter, order_by or visibility; start again without a token",
            ));
        }
        Ok(payload.k)
    }
}

fn shape_hash(shape: &str) -> String {
    let digest = Sha256::digest(shape.as_bytes());
    B64.encode(&digest[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let s = TokenSigner::new(b"secret");
        let t = s.issue("product", "shape", vec![Json::from(3), Json::Null]);
        assert_eq!(
            s.open(&t, "product", "shape").unwrap(),
            vec![Json::from(3), Json::Null]
        );
    }

    #[test]
    fn tampering_foreign_resources_and_other_queries_are_rejected() {
        let s = TokenSigner::new(b"secret");
        let t = s.issue("product", "shape", vec![Json::from(3)]);
        let (body, tag) = t.split_once('.').unwrap();
        let forged = B64.encode(br#"{"v":1,"r":"product","h":"x","k":[99]}"#);
        for bad in [
            format!("{forged}.{tag}"),
            format!("{body}x.{tag}"),
            "garbage".to_owned(),
            String::new(),
        ] {
            let e = s.open(&bad, "product", "shape").unwrap_err();
            assert_eq!(e.code(), "INVALID_ARGUMENT");
        }
        assert!(
            s.open(&t, "order", "shape")
                .unwrap_err()
                .to_string()
                .contains("issued for `product`")
        );
        assert!(
            s.open(&t, "product", "other")
                .unwrap_err()
                .to_string()
                .contains("different filter")
        );
        assert!(
            TokenSigner::new(b"other key")
                .open(&t, "product", "shape")
                .is_err()
        );
    }
}
