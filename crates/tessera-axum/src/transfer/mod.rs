//! Token transfer: reading tokens from a request (`read`, one pass) and writing them into
//! the response ([`write`]: HttpOnly cookies or `st-*` headers, with the `front-token` the
//! browser SDK keeps as its record of the session).

pub mod names;
pub(crate) mod read;
mod wire;
pub(crate) mod write;

pub use wire::{percent_decode, percent_encode, TokenLocation};
