//! Random bits without a dependency: the standard library's randomly seeded hasher.
//! Good for jitter, unique ids and the offline LaraCopilot's demo token; not for
//! secrets.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};

/// 64 random bits.
pub(crate) fn u64() -> u64 {
    // Each `RandomState` has its own keys; hashing a counter keeps two calls made
    // with the same keys apart too.
    static CALLS: AtomicU64 = AtomicU64::new(0);
    RandomState::new().hash_one(CALLS.fetch_add(1, Ordering::Relaxed))
}

/// A number in `[0, 1)`, uniformly distributed.
pub(crate) fn fraction() -> f64 {
    let bits = u64() >> 11;
    bits as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    #[test]
    fn draws_differ_and_fractions_stay_in_range() {
        let draws: std::collections::HashSet<u64> = (0..100).map(|_| super::u64()).collect();
        assert_eq!(draws.len(), 100);
        assert!((0..1000)
            .map(|_| super::fraction())
            .all(|f| (0.0..1.0).contains(&f)));
    }
}
