//! bf16 products with fp32 accumulation for a linear layer: weights
//! converted once, each row of activations converted at run time.
//!
//! With AVX-512 BF16 the weights are packed for `vdpbf16ps` (output
//! channels in blocks of 16, inputs in pairs: block `b`, pair `p`, channel
//! `j`, input `t` is element `(b * pairs + p) * 32 + j * 2 + t`). Elsewhere
//! the bf16 values are widened to f32 once and the product runs on the fp32
//! kernels: a product of two bf16 values is exact in f32, so both paths
//! compute the same products (only the order of the sums differs).

use rayon::prelude::*;

use crate::simd;

const BLOCK: usize = 16;
const ROWS_PER_TASK: usize = 64;
const BLOCKS_PER_TASK: usize = 4;

/// f32 to bf16, rounding to nearest even (NaN stays NaN).
pub fn to_bf16(v: f32) -> u16 {
    let bits = v.to_bits();
    if v.is_nan() {
        return ((bits >> 16) | 0x40) as u16;
    }
    let rounding = 0x7fff + ((bits >> 16) & 1);
    (bits.wrapping_add(rounding) >> 16) as u16
}

/// bf16 to f32 (exact).
pub fn from_bf16(v: u16) -> f32 {
    f32::from_bits((v as u32) << 16)
}

/// A weight matrix `[out, in]` in bf16.
#[derive(Debug, Clone, PartialEq)]
pub struct Bf16Matrix {
    out_dim: usize,
    in_dim: usize,
    /// Row-major bf16 values (what is saved).
    values: Vec<u16>,
    layout: Layout,
}

#[derive(Debug, Clone, PartialEq)]
enum Layout {
    /// Packed for `vdpbf16ps`.
    Packed(Vec<u16>),
    /// Widened to f32, row-major, for the fp32 kernels.
    Widened(Vec<f32>),
}

impl Bf16Matrix {
    /// Converts `w` (`[out_dim, in_dim]`, row-major) to bf16.
    pub fn convert(w: &[f32], out_dim: usize, in_dim: usize) -> Self {
        Self::from_bf16(w.iter().map(|&v| to_bf16(v)).collect(), out_dim, in_dim)
    }

    /// A matrix of bf16 `values` (`[out_dim, in_dim]`, row-major).
    pub fn from_bf16(values: Vec<u16>, out_dim: usize, in_dim: usize) -> Self {
        assert_eq!(values.len(), out_dim * in_dim);
        let layout = if simd::has_avx512_bf16() {
            let (blocks, pairs) = (out_dim.div_ceil(BLOCK), in_dim.div_ceil(2));
            let mut packed = vec![0u16; blocks * pairs * BLOCK * 2];
            for (c, row) in values.chunks(in_dim.max(1)).enumerate().take(out_dim) {
                let (b, j) = (c / BLOCK, c % BLOCK);
                for (k, &v) in row.iter().enumerate() {
                    packed[(b * pairs + k / 2) * BLOCK * 2 + j * 2 + k % 2] = v;
                }
            }
            Layout::Packed(packed)
        } else {
            Layout::Widened(values.iter().map(|&v| from_bf16(v)).collect())
        };
        Self { out_dim, in_dim, values, layout }
    }

    /// The bf16 values, `[out_dim, in_dim]` row-major.
    pub fn values(&self) -> &[u16] {
        &self.values
    }

    /// `out[r, col + c] = b[c] + Σₖ bf16(x[r, k]) · w[c, k]` for `x` `[rows, in]`,
    /// into rows of `out_width` values.
    pub fn linear(&self, x: &[f32], b: &[f32], out: &mut [f32], out_width: usize, col: usize) {
        let in_dim = self.in_dim;
        let rows = x.len() / in_dim;
        assert!(x.len() == rows * in_dim && b.len() == self.out_dim && out.len() == rows * out_width);
        assert!(col + self.out_dim <= out_width);
        match &self.layout {
            Layout::Widened(w) => {
                let rounded: Vec<f32> = x.par_iter().with_min_len(4096).map(|&v| from_bf16(to_bf16(v))).collect();
                crate::fused_layer::fp32_linear(&rounded, in_dim, w, b, out, out_width, col);
            }
            #[cfg(target_arch = "x86_64")]
            Layout::Packed(packed) => {
                let pairs = in_dim.div_ceil(2);
                let mut xb = vec![0u16; rows * pairs * 2];
                xb.par_chunks_mut(pairs * 2).zip(x.par_chunks(in_dim)).for_each(|(q, x)| {
                    q.iter_mut().zip(x).for_each(|(q, &v)| *q = to_bf16(v));
                });
                let blocks = self.out_dim.div_ceil(BLOCK);
                let per_rows = blocks.div_ceil(BLOCKS_PER_TASK);
                let out_ptr = OutPtr(out.as_mut_ptr());
                (0..rows.div_ceil(ROWS_PER_TASK) * per_rows).into_par_iter().for_each(|task| {
                    let (rt, bt) = (task / per_rows, task % per_rows);
                    let rows = rt * ROWS_PER_TASK..((rt + 1) * ROWS_PER_TASK).min(rows);
                    let blocks = bt * BLOCKS_PER_TASK..((bt + 1) * BLOCKS_PER_TASK).min(blocks);
                    let args =
                        Args { packed, xb: &xb, pairs, out_dim: self.out_dim, bias: b, out: out_ptr, out_width, col };
                    // SAFETY: AVX-512 BF16 is present (the packed layout is
                    // made only then); the tile is inside the matrices and
                    // this task writes its own rows and columns only.
                    unsafe { x86::tile(&args, rows, blocks) };
                });
            }
            #[cfg(not(target_arch = "x86_64"))]
            Layout::Packed(_) => unreachable!("packed only with AVX-512 BF16"),
        }
    }
}

/// A destination pointer that tasks write disjoint parts of.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: tasks write disjoint (row, column) cells.
unsafe impl Send for OutPtr {}
// SAFETY: as for Send.
unsafe impl Sync for OutPtr {}

struct Args<'a> {
    packed: &'a [u16],
    xb: &'a [u16],
    pairs: usize,
    out_dim: usize,
    bias: &'a [f32],
    out: OutPtr,
    out_width: usize,
    col: usize,
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;
    use std::ops::Range;

    use super::{Args, BLOCK};

    /// 4 rows x up to 4 blocks of 16 channels in registers, one `vdpbf16ps`
    /// per (row, block) and input pair.
    ///
    /// # Safety
    /// AVX-512F and BF16 are present; rows and blocks are inside the matrices.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub(super) unsafe fn tile(a: &Args, rows: Range<usize>, blocks: Range<usize>) {
        let mut r = rows.start;
        while r < rows.end {
            let n = (rows.end - r).min(4);
            let mut b = blocks.start;
            while b < blocks.end {
                let nb = (blocks.end - b).min(4);
                // SAFETY: the caller's contract.
                unsafe { crate::quant::dispatch_tile!(n, nb, rows_n(a, r, b)) }
                b += nb;
            }
            r += n;
        }
    }

    /// Rows `r0..r0 + N` by blocks `b..b + NB`, all in registers.
    #[target_feature(enable = "avx512f,avx512bf16")]
    #[inline]
    unsafe fn rows_n<const N: usize, const NB: usize>(a: &Args, r0: usize, b: usize) {
        let pairs = a.pairs;
        let x_rows: [*const u16; N] = std::array::from_fn(|i| a.xb[(r0 + i) * pairs * 2..].as_ptr());
        {
            let mut acc = [[_mm512_setzero_ps(); NB]; N];
            for p in 0..pairs {
                // SAFETY: blocks `b..b + NB`, pair `p` are inside `packed`.
                let w: [__m512i; NB] = std::array::from_fn(|k| unsafe {
                    _mm512_loadu_si512(a.packed.as_ptr().add(((b + k) * pairs + p) * BLOCK * 2).cast())
                });
                for (i, x_row) in x_rows.iter().enumerate() {
                    // SAFETY: pair `p` of row `r0 + i` is inside `xb`.
                    let xv = _mm512_set1_epi32(unsafe { x_row.add(p * 2).cast::<i32>().read_unaligned() });
                    for k in 0..NB {
                        // SAFETY: same-size bit casts of 512-bit vectors.
                        acc[i][k] = unsafe {
                            _mm512_dpbf16_ps(
                                acc[i][k],
                                std::mem::transmute::<__m512i, __m512bh>(xv),
                                std::mem::transmute::<__m512i, __m512bh>(w[k]),
                            )
                        };
                    }
                }
            }
            for k in 0..NB {
                let c0 = (b + k) * BLOCK;
                let valid = a.out_dim.saturating_sub(c0).min(BLOCK);
                let mask: __mmask16 = if valid == BLOCK { !0 } else { (1u16 << valid) - 1 };
                // SAFETY: the bias is read and the output written in the
                // valid lanes only; these rows and columns are this task's.
                unsafe {
                    let bias = _mm512_maskz_loadu_ps(mask, a.bias.as_ptr().add(c0));
                    for (i, acc) in acc.iter().enumerate() {
                        let out = a.out.0.add((r0 + i) * a.out_width + a.col + c0);
                        _mm512_mask_storeu_ps(out, mask, _mm512_add_ps(acc[k], bias));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};

    use super::*;

    #[test]
    fn rounding_is_to_nearest_even() {
        assert_eq!(to_bf16(1.0), 0x3f80);
        assert_eq!(from_bf16(to_bf16(1.0 + 1.0 / 256.0)), 1.0, "a tie rounds to even");
        assert_eq!(from_bf16(to_bf16(1.0 + 3.0 / 256.0)), 1.0 + 4.0 / 256.0);
        assert!(from_bf16(to_bf16(f32::NAN)).is_nan());
    }

    /// The product on this machine's path equals the fp32 product of the
    /// bf16-rounded operands (up to summation order).
    #[test]
    fn product_of_rounded_operands() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for (rows, out_dim, in_dim) in [(1, 1, 1), (3, 17, 5), (70, 80, 384), (9, 100, 67)] {
            let x: Vec<f32> = (0..rows * in_dim).map(|_| rng.random::<f32>() * 2.0 - 1.0).collect();
            let w: Vec<f32> = (0..out_dim * in_dim).map(|_| rng.random::<f32>() * 2.0 - 1.0).collect();
            let b: Vec<f32> = (0..out_dim).map(|_| rng.random::<f32>()).collect();
            let m = Bf16Matrix::convert(&w, out_dim, in_dim);
            let mut out = vec![f32::NAN; rows * (out_dim + 1)];
            m.linear(&x, &b, &mut out, out_dim + 1, 1);
            for r in 0..rows {
                assert!(out[r * (out_dim + 1)].is_nan());
                for c in 0..out_dim {
                    let want: f64 = (0..in_dim)
                        .map(|k| {
                            from_bf16(to_bf16(x[r * in_dim + k])) as f64 * from_bf16(m.values()[c * in_dim + k]) as f64
                        })
                        .sum::<f64>()
                        + b[c] as f64;
                    let got = out[r * (out_dim + 1) + 1 + c] as f64;
                    assert!((got - want).abs() < 1e-4 * in_dim as f64, "{rows}x{out_dim}x{in_dim}: {got} vs {want}");
                }
            }
        }
    }
}
