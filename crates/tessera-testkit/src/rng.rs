//! A small xorshift64* generator, seeded explicitly so a failing run can be replayed.

/// xorshift64*: fast, tiny, and good enough to pick test actions.
#[derive(Debug, Clone)]
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    /// A seed from `TESSERA_TEST_SEED` if set, else from the clock.
    pub fn seed_from_env_or_time() -> u64 {
        if let Some(seed) = std::env::var("TESSERA_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
        {
            return seed;
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("time")
            .as_nanos() as u64;
        nanos ^ (u64::from(std::process::id()) << 32)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform-ish in `lo..hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo)
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }
}
