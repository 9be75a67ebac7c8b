//! bf16 products with fp32 accumulation: weight matrices converted once
//! for inference ([`Bf16Matrix`]), and a general product of two fp32
//! operands rounded to bf16 for mixed-precision training.
//!
//! With AVX-512 BF16 the operands are packed for `vdpbf16ps` ([`pack`]) and
//! multiplied in register tiles ([`x86`]), or with AMX (`tdpbf16ps` on
//! tile registers, [`amx`]) where the processor has it and the left
//! operand is stored row by row. Elsewhere the bf16 values are
//! widened to f32 and the product runs on the fp32 kernels: a product of two
//! bf16 values is exact in f32, so both paths compute the same products
//! (only the order of the sums differs).

#[cfg(target_arch = "x86_64")]
mod amx;
mod pack;
#[cfg(target_arch = "x86_64")]
mod x86;

use rayon::prelude::*;

use crate::simd;
use crate::strided::{matmul_f32, Mat, Out};
use pack::{PackedColumns, PackedRows, BLOCK};

/// Rows and 16-column blocks of the output per parallel task.
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
    /// `Wᵀ` packed for `vdpbf16ps`.
    Packed(PackedColumns),
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
            Layout::Packed(PackedColumns::transposed_bf16(&values, out_dim, in_dim))
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
        Self::linear_shared(&[(self, b, col)], x, out, out_width)
    }

    /// [`Self::linear`] of several matrices of the same input width over
    /// the same `x`, each `(matrix, bias, first column)`, with `x`
    /// converted to bf16 once (as for the query, key and value projections).
    pub fn linear_shared(parts: &[(&Bf16Matrix, &[f32], usize)], x: &[f32], out: &mut [f32], out_width: usize) {
        let Some(&(first, _, _)) = parts.first() else { return };
        let in_dim = first.in_dim;
        let rows = x.len() / in_dim;
        assert!(x.len() == rows * in_dim && out.len() == rows * out_width);
        let (mut packed_x, mut rounded_x) = (None, None);
        for &(m, b, col) in parts {
            assert!(m.in_dim == in_dim && b.len() == m.out_dim && col + m.out_dim <= out_width);
            match &m.layout {
                Layout::Widened(w) => {
                    let rounded: &Vec<f32> = rounded_x.get_or_insert_with(|| {
                        x.par_iter().with_min_len(4096).map(|&v| from_bf16(to_bf16(v))).collect()
                    });
                    crate::fused_layer::fp32_linear(rounded, in_dim, w, b, out, out_width, col);
                }
                Layout::Packed(packed) => {
                    let a = packed_x.get_or_insert_with(|| PackedRows::new(Mat::rows(x, 0, in_dim), rows, in_dim));
                    let dst = Out(out[col..].as_mut_ptr());
                    // SAFETY: `out` holds `rows` rows of `out_width` values and
                    // the columns `col..col + out_dim` fit (checked above).
                    unsafe { product(a, packed, rows, dst, out_width, false, Some(b)) };
                }
            }
        }
    }
}

/// `dst (m x n, row stride dst_rs) [+]= bf16(a) (m x k) · bf16(b) (k x n)`,
/// fp32 accumulation: the mixed-precision training product. `threads`
/// bounds the fallback's fp32 product (the packed kernel always splits its
/// work over the pool).
///
/// # Safety
/// Every element that the shapes and strides reach must be inside the
/// allocations behind `dst`, `a` and `b`, and no other thread may write the
/// part of `dst` reached.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn matmul_bf16(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    dst_rs: usize,
    accumulate: bool,
    a: Mat,
    b: Mat,
    threads: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    if simd::has_avx512_bf16() {
        let (a, b) = (PackedRows::new(a, m, k), PackedColumns::new(b, k, n));
        // SAFETY: forwarded to the caller.
        return unsafe { product(&a, &b, m, Out(dst), dst_rs, accumulate, None) };
    }
    let (a, b) = (pack::rounded(a, m, k), pack::rounded(b, k, n));
    // SAFETY: the rounded copies are contiguous `[m, k]` and `[k, n]`; `dst`
    // is forwarded from the caller.
    unsafe { matmul_f32(m, n, k, dst, dst_rs, accumulate, Mat::rows(&a, 0, k), Mat::rows(&b, 0, n), threads) }
}

/// What one product computes: `dst = [dst +] [bias +] a · b`.
struct Product<'a> {
    a: &'a PackedRows,
    b: &'a PackedColumns,
    dst: Out,
    dst_rs: usize,
    accumulate: bool,
    bias: Option<&'a [f32]>,
}

/// Runs `a · b` (`m` rows) on the AVX-512 BF16 kernel, tasks of
/// [`ROWS_PER_TASK`] rows by [`BLOCKS_PER_TASK`] blocks in parallel.
///
/// # Safety
/// AVX-512 BF16 is present; `dst` holds `m` rows `dst_rs` apart of at least
/// `b.n` values that no other thread writes.
unsafe fn product(
    a: &PackedRows,
    b: &PackedColumns,
    m: usize,
    dst: Out,
    dst_rs: usize,
    accumulate: bool,
    bias: Option<&[f32]>,
) {
    let product = Product { a, b, dst, dst_rs, accumulate, bias };
    // AMX when the left operand is in its layout (the right one then is).
    let tiles = a.tiles;
    let (rows_per_task, blocks_per_task) =
        if tiles { crate::quant::AMX_TASK } else { (ROWS_PER_TASK, BLOCKS_PER_TASK) };
    let blocks = b.n.div_ceil(BLOCK);
    let per_rows = blocks.div_ceil(blocks_per_task);
    (0..m.div_ceil(rows_per_task) * per_rows).into_par_iter().for_each(|task| {
        let (rt, bt) = (task / per_rows, task % per_rows);
        let rows = rt * rows_per_task..((rt + 1) * rows_per_task).min(m);
        let blocks = bt * blocks_per_task..((bt + 1) * blocks_per_task).min(blocks);
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the caller's contract; this task writes its own rows and
        // columns only; `tiles` says the operands are in AMX's layout, which
        // only a process with AMX-BF16 usable packs.
        unsafe {
            if tiles {
                amx::task(&product, rows, blocks)
            } else {
                x86::task(&product, rows, blocks)
            }
        };
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!("packed operands only with AVX-512 BF16 ({:?}, {:?}, {})", rows, blocks, product.dst_rs);
    });
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

    /// `data` (`[rows, cols]` row-major) stored row-major (`layout` 0),
    /// transposed (1), or with every element two apart (2: neither stride
    /// is 1), as a view of a leaked copy.
    fn view(data: &[f32], rows: usize, cols: usize, layout: usize) -> Mat {
        let mut stored = vec![0f32; 2 * rows * cols + 1];
        for i in 0..rows {
            for j in 0..cols {
                let at = match layout {
                    0 => i * cols + j,
                    1 => j * rows + i,
                    _ => 2 * (i * cols + j),
                };
                stored[at] = data[i * cols + j];
            }
        }
        let stored: &'static [f32] = Box::leak(stored.into_boxed_slice());
        match layout {
            0 => Mat::rows(stored, 0, cols),
            1 => Mat::rows(stored, 0, rows).t(),
            _ => Mat::strided(stored, 2 * cols, 2),
        }
    }

    /// Several matrices over one input, converted once, give each one's
    /// own product bit for bit.
    #[test]
    fn shared_input_products_match_separate_ones() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let (rows, in_dim, dims) = (37, 96, [48, 17, 64]);
        let mut random = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.random::<f32>() * 2.0 - 1.0).collect() };
        let x = random(rows * in_dim);
        let matrices: Vec<_> =
            dims.iter().map(|&d| (Bf16Matrix::convert(&random(d * in_dim), d, in_dim), random(d))).collect();
        let out_width: usize = dims.iter().sum::<usize>() + 1;
        let cols: Vec<usize> = dims.iter().scan(1, |c, &d| Some(std::mem::replace(c, *c + d))).collect();
        let parts: Vec<_> = matrices.iter().zip(&cols).map(|((m, b), &c)| (m, &b[..], c)).collect();
        let mut shared = vec![f32::NAN; rows * out_width];
        Bf16Matrix::linear_shared(&parts, &x, &mut shared, out_width);
        let mut separate = vec![f32::NAN; rows * out_width];
        for &(m, b, c) in &parts {
            m.linear(&x, b, &mut separate, out_width, c);
        }
        for (i, (a, b)) in shared.iter().zip(&separate).enumerate() {
            assert_eq!(a.to_bits(), b.to_bits(), "value {i}");
        }
        assert!(shared.iter().step_by(out_width).all(|v| v.is_nan()), "column 0 untouched");
    }

    /// The general product, every operand layout, against f64 sums of the
    /// bf16-rounded operands, with and without accumulation, on edge shapes.
    #[test]
    fn general_product_of_rounded_operands() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        for (m, n, k) in [(1, 1, 1), (4, 16, 2), (5, 17, 3), (70, 33, 129), (3, 100, 0), (9, 64, 300), (65, 5, 7)] {
            for (la, lb) in [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (0, 2)] {
                let a: Vec<f32> = (0..m * k).map(|_| rng.random::<f32>() * 2.0 - 1.0).collect();
                let b: Vec<f32> = (0..k * n).map(|_| rng.random::<f32>() * 2.0 - 1.0).collect();
                let (am, bm) = (view(&a, m, k, la), view(&b, k, n, lb));
                for accumulate in [false, true] {
                    let width = n + 3;
                    let before: Vec<f32> = (0..m * width).map(|_| rng.random::<f32>()).collect();
                    let mut out = before.clone();
                    // SAFETY: `out` holds `m` rows of `width >= n` values; the
                    // views cover their shapes.
                    unsafe { matmul_bf16(m, n, k, out.as_mut_ptr(), width, accumulate, am, bm, 2) };
                    for i in 0..m {
                        for j in 0..width {
                            let got = out[i * width + j] as f64;
                            if j >= n {
                                assert_eq!(got, before[i * width + j] as f64, "outside the product");
                                continue;
                            }
                            let round = |v: f32| from_bf16(to_bf16(v)) as f64;
                            let mut want: f64 = (0..k).map(|t| round(a[i * k + t]) * round(b[t * n + j])).sum();
                            if accumulate {
                                want += before[i * width + j] as f64;
                            }
                            let tolerance = 1e-5 * (k as f64 + 1.0);
                            assert!(
                                (got - want).abs() < tolerance,
                                "{m}x{n}x{k} layouts {la}/{lb} accumulate {accumulate} ({i}, {j}): {got} vs {want}"
                            );
                        }
                    }
                }
            }
        }
    }
}
