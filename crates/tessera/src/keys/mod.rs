//! Signing keys: RSA key pairs, dynamic-key rotation timing, the in-memory key ring and JWKS.

pub mod jwks;
pub mod ring;
pub mod rotation;
pub mod rsa_key;
