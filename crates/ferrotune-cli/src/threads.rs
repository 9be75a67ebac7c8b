//! One thread pool for everything: candle's matrix products and our kernels
//! both run on rayon's global pool, sized here once.

use anyhow::Context;

/// Sizes the global pool to `threads` (default: all cores).
pub fn init(threads: Option<usize>) -> anyhow::Result<()> {
    let n = match threads {
        Some(0) => anyhow::bail!("--threads must be at least 1"),
        Some(n) => n,
        None => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
    };
    // candle sizes its matmul parallelism from this variable.
    std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    rayon::ThreadPoolBuilder::new().num_threads(n).build_global().context("starting the thread pool")
}
