//! Erasure certificates: a JSON document of what an erasure removed,
//! signed by the deployment with Ed25519 as a JWS in its flattened JSON
//! serialization (RFC 7515 §7.2.2, `alg` EdDSA per RFC 8037), so any JOSE
//! library can check one against the key the deployment publishes at
//! `/.well-known/attache-erasure-key` (a JWKS).
//!
//! The signing key is derived from the platform key: every replica of a
//! deployment signs with the same key, and a rotation of the master key
//! does not change it. A certificate carries no personal data: a
//! participant is named by a salted hash, object keys by their hashes.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde_json::{Value, json};
use sha2::Digest;

/// The purpose the signing key is derived for.
pub(crate) const PURPOSE: &str = "attache/erasure-signing";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("not an erasure certificate: {0}")]
    Malformed(String),
    #[error("signed by key {0}, which is not this deployment's")]
    UnknownKey(String),
    #[error("the signature does not verify: the certificate was altered or not signed by this key")]
    BadSignature,
}

/// The deployment's signing key.
#[derive(Clone)]
pub struct CertificateSigner {
    key: SigningKey,
    kid: String,
}

fn key_id(public: &VerifyingKey) -> String {
    hex::encode(&sha2::Sha256::digest(public.as_bytes())[..8])
}

impl CertificateSigner {
    /// From 32 bytes of key material (derived from the platform key).
    pub(crate) fn from_seed(seed: &[u8]) -> CertificateSigner {
        let mut bytes = [0u8; 32];
        let n = seed.len().min(32);
        bytes[..n].copy_from_slice(&seed[..n]);
        let key = SigningKey::from_bytes(&bytes);
        let kid = key_id(&key.verifying_key());
        CertificateSigner { key, kid }
    }

    pub fn key_id(&self) -> &str {
        &self.kid
    }

    /// The public key as a JWKS of one key.
    pub fn jwks(&self) -> Value {
        json!({ "keys": [jwk(&self.key.verifying_key())] })
    }

    /// `payload` signed: the certificate as stored and served.
    pub(crate) fn sign(&self, payload: &Value) -> String {
        let protected = B64.encode(
            serde_json::to_vec(
                &json!({ "alg": "EdDSA", "kid": self.kid, "typ": "attache-erasure+json" }),
            )
            .expect("JSON"),
        );
        let body = B64.encode(serde_json::to_vec(payload).expect("JSON"));
        let signature = self.key.sign(format!("{protected}.{body}").as_bytes());
        serde_json::to_string_pretty(&json!({
            "protected": protected,
            "payload": body,
            "signature": B64.encode(signature.to_bytes()),
        }))
        .expect("JSON")
    }
}

fn jwk(public: &VerifyingKey) -> Value {
    json!({
        "kty": "OKP",
        "crv": "Ed25519",
        "x": B64.encode(public.as_bytes()),
        "kid": key_id(public),
        "alg": "EdDSA",
        "use": "sig",
    })
}

fn field<'a>(v: &'a Value, name: &str) -> Result<&'a str, VerifyError> {
    v[name]
        .as_str()
        .ok_or_else(|| VerifyError::Malformed(format!("no {name:?}")))
}

fn decode(s: &str, what: &str) -> Result<Vec<u8>, VerifyError> {
    B64.decode(s)
        .map_err(|_| VerifyError::Malformed(format!("{what} is not base64url")))
}

/// Checks `certificate` against the keys of `jwks` and returns its payload.
pub fn verify(certificate: &str, jwks: &Value) -> Result<Value, VerifyError> {
    let doc: Value = serde_json::from_str(certificate)
        .map_err(|e| VerifyError::Malformed(format!("not JSON: {e}")))?;
    let (protected, payload, signature) = (
        field(&doc, "protected")?,
        field(&doc, "payload")?,
        field(&doc, "signature")?,
    );
    let header: Value = serde_json::from_slice(&decode(protected, "the header")?)
        .map_err(|_| VerifyError::Malformed("the header is not JSON".into()))?;
    if header["alg"] != "EdDSA" {
        return Err(VerifyError::Malformed(format!(
            "alg {} (only EdDSA)",
            header["alg"]
        )));
    }
    let kid = field(&header, "kid")?;
    let key = jwks["keys"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|k| k["kid"] == kid && k["kty"] == "OKP" && k["crv"] == "Ed25519")
        .ok_or_else(|| VerifyError::UnknownKey(kid.to_string()))?;
    let x: [u8; 32] = decode(field(key, "x")?, "the key")?
        .try_into()
        .map_err(|_| VerifyError::Malformed("the key is not 32 bytes".into()))?;
    let public =
        VerifyingKey::from_bytes(&x).map_err(|_| VerifyError::Malformed("the key".into()))?;
    let sig: [u8; 64] = decode(signature, "the signature")?
        .try_into()
        .map_err(|_| VerifyError::Malformed("the signature is not 64 bytes".into()))?;
    public
        .verify_strict(
            format!("{protected}.{payload}").as_bytes(),
            &Signature::from_bytes(&sig),
        )
        .map_err(|_| VerifyError::BadSignature)?;
    serde_json::from_slice(&decode(payload, "the payload")?)
        .map_err(|_| VerifyError::Malformed("the payload is not JSON".into()))
}

/// A participant as a certificate names them: a fresh salt, and the
/// SHA-256 of the salt (hex) followed by their name as matched (trimmed,
/// lowercase).
pub(crate) fn salted_name(name: &str) -> (String, String) {
    let salt = hex::encode(uuid::Uuid::new_v4().as_bytes());
    let hash = name_hash(&salt, name);
    (salt, hash)
}

pub(crate) fn name_hash(salt: &str, name: &str) -> String {
    let mut h = sha2::Sha256::new();
    h.update(salt.as_bytes());
    h.update(normalize(name).as_bytes());
    hex::encode(h.finalize())
}

/// A name as erasure matches it.
pub(crate) fn normalize(name: &str) -> String {
    name.trim().to_lowercase()
}

/// An object key as a certificate lists it.
pub(crate) fn object_hash(key: &str) -> String {
    hex::encode(sha2::Sha256::digest(key.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(seed: u8) -> CertificateSigner {
        CertificateSigner::from_seed(&[seed; 32])
    }

    #[test]
    fn a_signed_certificate_verifies_and_any_change_does_not() {
        let s = signer(7);
        let payload = json!({ "version": 1, "tenant": "t1", "removed": { "transcripts": 3 } });
        let cert = s.sign(&payload);
        assert_eq!(verify(&cert, &s.jwks()).unwrap(), payload);

        // Another payload under the same signature.
        let mut doc: Value = serde_json::from_str(&cert).unwrap();
        let forged = json!({ "version": 1, "tenant": "t1", "removed": { "transcripts": 0 } });
        doc["payload"] = B64.encode(serde_json::to_vec(&forged).unwrap()).into();
        assert_eq!(
            verify(&doc.to_string(), &s.jwks()),
            Err(VerifyError::BadSignature)
        );
        // Another deployment's key.
        assert!(matches!(
            verify(&cert, &signer(8).jwks()),
            Err(VerifyError::UnknownKey(_))
        ));
        // The other key published under this one's id.
        let mut jwks = signer(8).jwks();
        jwks["keys"][0]["kid"] = s.key_id().into();
        assert_eq!(verify(&cert, &jwks), Err(VerifyError::BadSignature));
        assert!(matches!(
            verify("{}", &s.jwks()),
            Err(VerifyError::Malformed(_))
        ));
        assert!(matches!(
            verify("not json", &s.jwks()),
            Err(VerifyError::Malformed(_))
        ));
    }

    #[test]
    fn the_key_is_the_same_for_the_same_seed_and_published_as_a_jwk() {
        assert_eq!(signer(1).key_id(), signer(1).key_id());
        assert_ne!(signer(1).key_id(), signer(2).key_id());
        let jwks = signer(1).jwks();
        assert_eq!(jwks["keys"][0]["kty"], "OKP");
        assert_eq!(jwks["keys"][0]["crv"], "Ed25519");
        assert_eq!(
            B64.decode(jwks["keys"][0]["x"].as_str().unwrap())
                .unwrap()
                .len(),
            32
        );
    }

    #[test]
    fn a_participant_is_named_by_a_salted_hash_of_the_name_as_matched() {
        let (salt, hash) = salted_name("  Zelda Q ");
        assert_eq!(hash, name_hash(&salt, "zelda q"));
        assert_ne!(hash, name_hash(&salt, "zelda"));
        let (salt2, hash2) = salted_name("Zelda Q");
        assert_ne!(salt, salt2);
        assert_ne!(hash, hash2, "a fresh salt each time");
        assert!(!hash.contains("zelda"));
    }
}
