//! What benchmarks share: their size and the runtime that drives their
//! clients.

/// A benchmark's size: the environment variable `var` when it holds a
/// number, else `default`.
pub fn bench_size(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The small runtime a benchmark drives its clients with, leaving the other
/// cores to the processes measured.
pub fn bench_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// A small deterministic generator for test and benchmark data: the same
/// sequence from the same seed on every run and machine.
pub struct Lcg(pub u64);

impl Lcg {
    /// The next number below `n` (`n` > 0).
    pub fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}
