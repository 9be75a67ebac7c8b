//! This machine's fp32 peak, measured: every thread runs independent chains
//! of fused multiply-adds in the widest vectors the CPU has, so nothing but
//! the FMA units limits the rate.

use std::time::Instant;

/// Multiply-adds per thread per measurement (per vector lane).
const ROUNDS: u64 = 20_000_000;

/// Measured fp32 GFLOP/s over all threads of the global pool, or `None`
/// when the CPU has no vector FMA this probe knows.
pub fn fp32_peak_gflops() -> Option<f64> {
    fma_chains(1_000)?; // warm-up; `None` when unsupported
    let start = Instant::now();
    let flops: f64 = rayon::broadcast(|_| fma_chains(ROUNDS).unwrap_or(0.0)).iter().sum();
    Some(flops / start.elapsed().as_secs_f64() / 1e9)
}

/// Runs `rounds` rounds of 12 independent vector FMA chains; returns the
/// floating-point operations done.
fn fma_chains(rounds: u64) -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F, checked just above.
            let sink = unsafe { x86::chains_avx512(rounds) };
            std::hint::black_box(sink);
            return Some(rounds as f64 * 12.0 * 16.0 * 2.0);
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has AVX2 and FMA, checked just above.
            let sink = unsafe { x86::chains_avx2(rounds) };
            std::hint::black_box(sink);
            return Some(rounds as f64 * 12.0 * 8.0 * 2.0);
        }
    }
    let _ = rounds;
    None
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx512f")]
    pub unsafe fn chains_avx512(rounds: u64) -> f32 {
        let a = _mm512_set1_ps(0.999_999);
        let b = _mm512_set1_ps(1e-7);
        let mut acc = [_mm512_set1_ps(1.0); 12];
        for _ in 0..rounds {
            for x in acc.iter_mut() {
                *x = _mm512_fmadd_ps(*x, a, b);
            }
        }
        let mut sum = _mm512_setzero_ps();
        for x in acc {
            sum = _mm512_add_ps(sum, x);
        }
        _mm512_reduce_add_ps(sum)
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn chains_avx2(rounds: u64) -> f32 {
        let a = _mm256_set1_ps(0.999_999);
        let b = _mm256_set1_ps(1e-7);
        let mut acc = [_mm256_set1_ps(1.0); 12];
        for _ in 0..rounds {
            for x in acc.iter_mut() {
                *x = _mm256_fmadd_ps(*x, a, b);
            }
        }
        let mut sum = _mm256_setzero_ps();
        for x in acc {
            sum = _mm256_add_ps(sum, x);
        }
        let mut lanes = [0f32; 8];
        _mm256_storeu_ps(lanes.as_mut_ptr(), sum);
        lanes.iter().sum()
    }
}
