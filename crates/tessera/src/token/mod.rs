//! Token formats: access tokens (v5 JWT), anonymous tokens, refresh tokens (`V2`), strict JSON.

pub mod access;
pub mod anonymous;
pub mod cache;
pub mod json;
pub mod mint;
pub mod refresh;
pub mod verify;
