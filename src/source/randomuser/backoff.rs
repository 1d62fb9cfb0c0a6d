//! Exponential backoff with "full jitter" (AWS Architecture Blog, "Exponential Backoff And
//! Jitter"): the delay is uniform in `[0, min(max, base * 2^(attempt-1))]`, so many clients that
//! failed together do not retry together.

use rand::Rng;
use std::time::Duration;

/// The delay before retry number `attempt` (1-based).
pub fn full_jitter(base: Duration, max: Duration, attempt: u32) -> Duration {
    let ceiling = base
        .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
        .min(max);
    ceiling.mul_f64(rand::rng().random::<f64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_exponentially_up_to_the_cap() {
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(1);
        for _ in 0..200 {
            assert!(full_jitter(base, max, 1) <= base);
            assert!(full_jitter(base, max, 3) <= base * 4);
            assert!(full_jitter(base, max, 30) <= max);
        }
    }
}
