//! The fused layer's element-wise kernels: activations and their
//! derivatives in plain arithmetic (so that loops over them vectorise),
//! dropout masks and their application, and column sums.

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::config::Activation;
use crate::simd::multiversion;

/// GELU's tanh approximation (`gelu_new`).
#[inline(always)]
fn gelu_tanh(x: f32) -> f32 {
    0.5 * x * (1.0 + tanh_inner(x).tanh())
}

#[inline(always)]
fn gelu_tanh_grad(x: f32) -> f32 {
    let t = tanh_inner(x).tanh();
    0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * SQRT_2_OVER_PI * (1.0 + 3.0 * 0.044715 * x * x)
}

const SQRT_2_OVER_PI: f32 = 0.797_884_6;

/// `e^x` in plain arithmetic, so that loops over it vectorise (`f32::exp`
/// is a library call per element): `2^n · e^r` with `n` the nearest integer
/// to `x log2 e`, `r = x - n ln 2` in two parts (Cody and Waite) and `e^r`
/// (|r| ≤ ln 2 / 2) from its Taylor series to degree 7 (Estrin's scheme);
/// within 2 ulp of
/// `f32::exp`, and exactly 0 below -87 (masked attention scores).
#[inline(always)]
pub(super) fn exp(x: f32) -> f32 {
    // Adding and subtracting 1.5 · 2^23 rounds to the nearest integer.
    const ROUND: f32 = 12_582_912.0;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    let x_clamped = x.clamp(-87.0, 88.0);
    let shifted = x_clamped * std::f32::consts::LOG2_E + ROUND;
    let n = shifted - ROUND;
    let r = x_clamped - n * LN2_HI - n * LN2_LO;
    // The series in Estrin's order (pairs, then pairs of pairs): a third
    // of Horner's chain of dependent operations, so that a vector loop
    // over it is not bound by their latency.
    let (r2, r4) = (r * r, r * r * (r * r));
    let low = (1.0 + r) + r2 * (0.5 + r * (1.0 / 6.0));
    let high = (1.0 / 24.0 + r * (1.0 / 120.0)) + r2 * (1.0 / 720.0 + r * (1.0 / 5040.0));
    let p = low + r4 * high;
    // `n` as an integer, read from the low mantissa bits of `shifted`
    // (integer arithmetic vectorises; a float-to-int `as` does not).
    let n_int = shifted.to_bits() as i32 - ROUND.to_bits() as i32;
    let scale = f32::from_bits(((n_int + 127) as u32) << 23);
    if x < -87.0 {
        0.0
    } else {
        p * scale
    }
}

const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;
const FRAC_1_SQRT_2PI: f32 = 0.398_942_3;

/// erf by a rational approximation on [-4, 4] (beyond which erf is ±1 in
/// f32), accurate to a few ulp and branch-free, so loops over it vectorise
/// (plain multiply-adds: `mul_add` would call a software fma without
/// target features). Both polynomials in `x²` are evaluated in Estrin's
/// order (pairs, then pairs of pairs), whose chain of dependent operations
/// is half Horner's: a vector loop over GELU was bound by that latency.
#[inline(always)]
fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let y = x * x;
    let (y2, y4) = (y * y, y * y * (y * y));
    let p = ((-1.609_603_3e-2 + y * -2.954_6e-3) + y2 * (-7.349_906_3e-4 + y * -5.692_506_4e-5))
        + y4 * ((-2.101_024e-6 + y * 2.770_681_4e-8) + y2 * -2.726_142_3e-10);
    let q = ((-1.426_474e-2 + y * -7.373_329e-3) + y2 * (-1.682_827e-3 + y * -2.133_740_6e-4)) + y4 * -1.456_607_2e-5;
    x * p / q
}

#[inline(always)]
fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * FRAC_1_SQRT_2))
}

#[inline(always)]
fn gelu_grad(x: f32) -> f32 {
    0.5 * (1.0 + erf(x * FRAC_1_SQRT_2)) + x * FRAC_1_SQRT_2PI * exp(-0.5 * x * x)
}

#[inline(always)]
fn tanh_inner(x: f32) -> f32 {
    SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)
}

/// The activation of every element, in a new buffer (from the scratch
/// pool, see [`crate::scratch`]).
pub(super) fn activate(x: &[f32], activation: Activation) -> Vec<f32> {
    let mut out = crate::scratch::take(x.len());
    let chunks = out.par_chunks_mut(1 << 14).zip(x.par_chunks(1 << 14));
    // One loop per activation, so that each vectorises.
    match activation {
        Activation::GeluErf => chunks.for_each(|(y, x)| gelu_into(y, x)),
        Activation::GeluTanh => chunks.for_each(|(y, x)| gelu_tanh_into(y, x)),
        Activation::Relu => chunks.for_each(|(y, x)| y.iter_mut().zip(x).for_each(|(y, &x)| *y = x.max(0.0))),
    }
    out
}

/// `x = activation(x)`, element-wise, in place.
pub(super) fn activate_in_place(x: &mut [f32], activation: Activation) {
    let chunks = x.par_chunks_mut(1 << 14);
    match activation {
        Activation::GeluErf => chunks.for_each(gelu_in_place),
        Activation::GeluTanh => chunks.for_each(gelu_tanh_in_place),
        Activation::Relu => chunks.for_each(|x| x.iter_mut().for_each(|x| *x = x.max(0.0))),
    }
}

/// The largest value of `row`, from sixteen partial maxima so that the
/// loop vectorises (one running value must be updated in order).
#[inline(always)]
pub(super) fn row_max(row: &[f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; 16];
    let chunks = row.chunks_exact(16);
    let tail = chunks.remainder().iter().fold(f32::NEG_INFINITY, |m, &s| m.max(s));
    for chunk in chunks {
        lanes.iter_mut().zip(chunk).for_each(|(l, &s)| *l = l.max(s));
    }
    lanes.iter().fold(tail, |m, &l| m.max(l))
}

/// The sum of `row`, from sixteen partial sums (as [`row_max`]).
#[inline(always)]
pub(super) fn row_sum(row: &[f32]) -> f32 {
    let mut lanes = [0f32; 16];
    let chunks = row.chunks_exact(16);
    let tail: f32 = chunks.remainder().iter().sum();
    for chunk in chunks {
        lanes.iter_mut().zip(chunk).for_each(|(l, &s)| *l += s);
    }
    lanes.iter().sum::<f32>() + tail
}

multiversion! {
    /// `x = gelu(x)`, element-wise.
    fn gelu_in_place(x: &mut [f32]) {
        x.iter_mut().for_each(|x| *x = gelu(*x))
    }
}

multiversion! {
    /// `x = gelu_tanh(x)`, element-wise.
    fn gelu_tanh_in_place(x: &mut [f32]) {
        x.iter_mut().for_each(|x| *x = gelu_tanh(*x))
    }
}

multiversion! {
    /// `y = gelu(x)`, element-wise.
    fn gelu_into(y: &mut [f32], x: &[f32]) {
        y.iter_mut().zip(x).for_each(|(y, &x)| *y = gelu(x))
    }
}

multiversion! {
    /// `y = gelu_tanh(x)`, element-wise.
    fn gelu_tanh_into(y: &mut [f32], x: &[f32]) {
        y.iter_mut().zip(x).for_each(|(y, &x)| *y = gelu_tanh(x))
    }
}

multiversion! {
    /// One attention row: `s = softmax(s · scale + mask)`, in place.
    pub(super) fn softmax_row(row: &mut [f32], mask: &[f32], scale: f32) {
        row.iter_mut().zip(mask).for_each(|(s, m)| *s = *s * scale + m);
        let max = row_max(row);
        row.iter_mut().for_each(|s| *s = exp(*s - max));
        let inv = 1.0 / row_sum(row);
        row.iter_mut().for_each(|s| *s *= inv);
    }
}

multiversion! {
    /// `x = x ⊙ mask · keep + residual` (no mask: `x += residual`).
    fn dropout_add_into(x: &mut [f32], mask: Option<&[u8]>, keep: f32, residual: &[f32]) {
        match mask {
            Some(m) => x.iter_mut().zip(m).zip(residual).for_each(|((x, &m), r)| *x = *x * (m as f32 * keep) + r),
            None => x.iter_mut().zip(residual).for_each(|(x, r)| *x += r),
        }
    }
}

/// `d *= activation'(x)`, element-wise.
pub(super) fn activation_backward(d: &mut [f32], x: &[f32], activation: Activation) {
    let chunks = d.par_chunks_mut(1 << 14).zip(x.par_chunks(1 << 14));
    match activation {
        Activation::GeluErf => chunks.for_each(|(d, x)| d.iter_mut().zip(x).for_each(|(d, &x)| *d *= gelu_grad(x))),
        Activation::GeluTanh => {
            chunks.for_each(|(d, x)| d.iter_mut().zip(x).for_each(|(d, &x)| *d *= gelu_tanh_grad(x)))
        }
        Activation::Relu => {
            chunks.for_each(|(d, x)| d.iter_mut().zip(x).for_each(|(d, &x)| *d = if x > 0.0 { *d } else { 0.0 }))
        }
    }
}

/// Sums of the columns of `d` `[rows, width]`, in fixed blocks of rows
/// added in order (the result does not depend on thread scheduling).
pub(super) fn column_sums(d: &[f32], width: usize) -> Vec<f32> {
    let rows_per_block = 256;
    let partials: Vec<Vec<f32>> = d
        .par_chunks(width * rows_per_block)
        .map(|block| {
            let mut sum = vec![0f32; width];
            for row in block.chunks(width) {
                sum.iter_mut().zip(row).for_each(|(s, v)| *s += v);
            }
            sum
        })
        .collect();
    let mut sum = vec![0f32; width];
    for p in partials {
        sum.iter_mut().zip(p).for_each(|(s, v)| *s += v);
    }
    sum
}

/// Keep (1) / drop (0) bytes for `n` elements with drop probability `p`,
/// from the generator `seed` and `stream`; blocks of the stream are drawn in
/// parallel at fixed word positions, so the mask does not depend on threads.
pub(super) fn dropout_mask(n: usize, p: f32, seed: u64, stream: u64) -> Vec<u8> {
    let mut mask = vec![0u8; n];
    if p >= 1.0 {
        return mask;
    }
    let threshold = (p as f64 * u32::MAX as f64) as u32;
    const BLOCK: usize = 1 << 16;
    mask.par_chunks_mut(BLOCK).enumerate().for_each(|(i, block)| {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(stream);
        rng.set_word_pos((i * BLOCK) as u128);
        block.iter_mut().for_each(|m| *m = (rng.next_u32() >= threshold) as u8);
    });
    mask
}

/// `x ⊙ mask / (1 - p) + residual`, in place in `x`.
pub(super) fn dropout_add(x: &mut [f32], mask: Option<&[u8]>, p: f32, residual: &[f32]) {
    let keep = 1.0 / (1.0 - p);
    match mask {
        Some(mask) => x
            .par_chunks_mut(1 << 14)
            .zip(mask.par_chunks(1 << 14))
            .zip(residual.par_chunks(1 << 14))
            .for_each(|((x, m), r)| dropout_add_into(x, Some(m), keep, r)),
        None => x.par_chunks_mut(1 << 14).zip(residual.par_chunks(1 << 14)).for_each(|(x, r)| {
            dropout_add_into(x, None, keep, r);
        }),
    }
}

/// `d ⊙ mask / (1 - p)`, in place.
pub(super) fn dropout_backward(d: &mut [f32], mask: Option<&[u8]>, p: f32) {
    if let Some(mask) = mask {
        let keep = 1.0 / (1.0 - p);
        d.par_chunks_mut(1 << 14)
            .zip(mask.par_chunks(1 << 14))
            .for_each(|(d, m)| d.iter_mut().zip(m).for_each(|(d, &m)| *d *= m as f32 * keep));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_within_two_ulp_and_zero_far_below() {
        let mut x = -87.0f32;
        while x < 88.0 {
            let (ours, std) = (exp(x), x.exp());
            assert!((ours - std).abs() <= 2.5 * f32::EPSILON * std, "exp({x}): {ours} vs {std}");
            x += 0.0137;
        }
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(-88.0), 0.0);
        assert_eq!(exp(f32::MIN), 0.0);
    }

    #[test]
    fn erf_is_within_a_few_ulp_of_the_f64_series() {
        // erf in f64 by its Maclaurin series (|x| < 3, many terms) and by
        // the continued fraction of erfc beyond.
        fn erf64(x: f64) -> f64 {
            if x.abs() >= 3.0 {
                let mut f = 0.0;
                for k in (1..200).rev() {
                    f = (k as f64 / 2.0) / (x.abs() + f);
                }
                let erfc = (-x * x).exp() / std::f64::consts::PI.sqrt() / (x.abs() + f);
                return (1.0 - erfc).copysign(x);
            }
            let (mut term, mut sum) = (x, x);
            for n in 1..200 {
                term *= -x * x / n as f64;
                sum += term / (2 * n + 1) as f64;
            }
            sum * 2.0 / std::f64::consts::PI.sqrt()
        }
        let mut x = -5.0f32;
        while x < 5.0 {
            let (ours, exact) = (erf(x) as f64, erf64(x as f64));
            assert!(
                (ours - exact).abs() <= 4.0 * f32::EPSILON as f64 * exact.abs().max(1e-3),
                "erf({x}): {ours} vs {exact}"
            );
            x += 0.00731;
        }
        assert_eq!(erf(0.0), 0.0);
    }
}
