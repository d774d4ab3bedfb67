//! Randomness, always from the operating system's CSPRNG (`getrandom`). If the OS RNG fails,
//! the caller gets an error and no token is issued (fail closed).

use crate::error::EngineError;

/// Fills `buf` from the OS RNG.
pub fn fill(buf: &mut [u8]) -> Result<(), EngineError> {
    getrandom::fill(buf).map_err(|_| EngineError::Crypto("OS random number generator failed"))
}

/// `N` random bytes from the OS RNG.
pub fn bytes<const N: usize>() -> Result<[u8; N], EngineError> {
    let mut out = [0u8; N];
    fill(&mut out)?;
    Ok(out)
}

/// A random UUID v4 in its canonical lowercase hyphenated form (122 random bits).
pub fn uuid_v4() -> Result<String, EngineError> {
    let b = bytes::<16>()?;
    Ok(uuid::Builder::from_random_bytes(b)
        .into_uuid()
        .hyphenated()
        .to_string())
}
