//! The process runtime, set once at start: one thread pool for everything
//! (candle's matrix products and our kernels both run on rayon's global
//! pool) and the allocator's settings.

use anyhow::Context;

/// The `mi_option_purge_delay` entry of mimalloc v3's `mi_option_e` (the
/// `libmimalloc-sys` crate has no constant for it; a test checks it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// What the allocator does with freed memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreedMemory {
    /// Keep it for the next allocation (training and benchmarks: they
    /// free and reallocate tensors of the same sizes every step, and
    /// returning those pages makes the kernel zero them again each time).
    Keep,
    /// Return it to the system 1 s after a page is freed, and map no
    /// transparent huge pages (batch inference: what loading the model
    /// freed is not kept beside the activations, which sets peak memory;
    /// a batch's buffers are reused before the delay runs out, so nothing
    /// is faulted in again per batch: at 10 ms they were, and int8 tagging
    /// took a fifth longer).
    ReturnSoon,
    /// Return it to the system as soon as a page is free, and map no
    /// transparent huge pages (the server: a burst of large requests must
    /// not pin its peak memory forever; a 2 MiB huge page stays resident
    /// while any of its 4 KiB pages is in use, so purged pages inside one
    /// would not be returned).
    Return,
}

/// Sizes the global pool to `threads` (default: all cores) and sets what
/// the allocator does with freed memory (unless `MIMALLOC_PURGE_DELAY` is
/// set, which wins).
pub fn init(threads: Option<usize>, freed: FreedMemory) -> anyhow::Result<()> {
    let n = match threads {
        Some(0) => return Err(crate::UsageError::invalid_option("threads", "threads must be at least 1").into()),
        Some(n) => n,
        None => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
    };
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // -1: never purge; 0: purge freed pages at once (an idle server
        // allocates nothing that would trigger a delayed purge later).
        let delay = match freed {
            FreedMemory::Keep => -1,
            FreedMemory::ReturnSoon => 1000,
            FreedMemory::Return => 0,
        };
        // SAFETY: sets a plain integer option; mimalloc reads it on each purge.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, delay) };
        if freed != FreedMemory::Keep {
            // What was freed before now (argument parsing) was scheduled
            // with the default delay (1 s), and later frees would wait for
            // it too: purge it now so the new delay holds from here on.
            return_freed_memory();
        }
    }
    #[cfg(target_os = "linux")]
    if freed != FreedMemory::Keep {
        rustix::thread::disable_transparent_huge_pages(true).context("turning transparent huge pages off")?;
    }
    // candle sizes its matmul parallelism from this variable.
    std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    // candle runs element-wise ops on a second pool of spinning threads;
    // beside rayon's they fight for the same cores (measured: 5-15% slower
    // steps on 2 cores). One pool: element-wise ops stay on the calling
    // thread, unless the user asks otherwise.
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
    rayon::ThreadPoolBuilder::new().num_threads(n).build_global().context("starting the thread pool")
}

/// Returns what the allocator holds freed to the system now (after loading
/// a model: the file's bytes and the tokenizer's JSON, which would
/// otherwise stay resident beside the first batches' activations for the
/// purge delay).
pub fn return_freed_memory() {
    // SAFETY: asks the allocator to return freed pages; no pointer is passed.
    unsafe { libmimalloc_sys::mi_collect(true) };
}

/// Runs `work` on a thread of the pool, so the pool's threads are the only
/// busy ones (the calling thread waits asleep instead of competing).
pub fn run_in_pool<T: Send>(work: impl FnOnce() -> T + Send) -> T {
    rayon::scope(|_| work())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purge_delay_option_is_the_one_we_set() {
        // The pinned mimalloc's default purge delay (src/options.c) is 1000 ms;
        // another option at this number would have another default.
        let expected = std::env::var("MIMALLOC_PURGE_DELAY").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
        // SAFETY: reads a plain integer option.
        let value = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        assert_eq!(value, expected);
    }
}
