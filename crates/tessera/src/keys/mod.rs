//! Signing keys: RSA key pairs, the anonymous-token key, dynamic-key rotation timing, the in-memory key ring and JWKS.

pub mod anonymous_key;
pub mod jwks;
pub mod ring;
pub mod rotation;
pub mod rsa_key;
