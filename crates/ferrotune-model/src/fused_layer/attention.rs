//! Inference's attention for one (sequence, head) pair with AVX2:
//! `softmax(q kᵀ · scale + mask) v`, the pair's scores kept in a small
//! buffer. At all-MiniLM-L6's shapes (64 tokens, heads of 32) `gemm`
//! spends about as long packing and dispatching as multiplying; here both
//! products run on one register-tiled kernel, keys transposed once per
//! pair. It runs wherever AVX2 and FMA do (AVX-512 processors included);
//! elsewhere (the portable path, training) the layer keeps its `gemm`
//! products.

use super::elementwise::{exp, row_max, row_sum};
use crate::simd::{self, multiversion, SimdLevel};

/// One (sequence, head) pair's queries, keys and values: rows of the
/// head's width, `stride` values apart, from the start of each slice.
pub(super) struct HeadRows<'a> {
    pub(super) queries: &'a [f32],
    pub(super) keys: &'a [f32],
    pub(super) values: &'a [f32],
    pub(super) stride: usize,
}

/// Buffers one thread reuses from pair to pair.
#[derive(Default)]
pub(super) struct AttentionScratch {
    keys_t: Vec<f32>,
    values: Vec<f32>,
    scores: Vec<f32>,
    mask: Vec<f32>,
    inv_sums: Vec<f32>,
}

/// Whether inference's attention takes this kernel: the AVX2 path, heads
/// a multiple of 8 wide. (On AVX-512 `gemm` keeps it: not measured there.)
pub(super) fn available(head_dim: usize) -> bool {
    simd::level() >= SimdLevel::Avx2 && head_dim.is_multiple_of(8)
}

/// Writes `softmax(q kᵀ · scale + mask) v` (`len` rows of `dim`) into
/// `out`. `mask` is the sequence's additive mask (0 or a large negative per
/// key). Needs AVX2 and FMA (see [`available`]).
pub(super) fn attend(
    head: &HeadRows,
    len: usize,
    dim: usize,
    mask: &[f32],
    scale: f32,
    scratch: &mut AttentionScratch,
    out: &mut [f32],
) {
    assert!(has_avx2_fma(), "the attention kernel needs AVX2 and FMA");
    assert!(dim.is_multiple_of(8) && mask.len() == len && out.len() == len * dim);
    if len == 0 {
        return;
    }
    // Keys transposed, `width` columns: padding columns are zero and
    // masked out, so every score row is whole vectors.
    let width = len.next_multiple_of(8);
    let AttentionScratch { keys_t, values, scores, mask: padded_mask, inv_sums } = scratch;
    keys_t.resize(dim * width, 0.0);
    let keys = Operand { values: head.keys, stride: head.stride };
    // SAFETY: AVX2 and FMA are present (asserted).
    unsafe { x86::transpose(keys, len, dim, keys_t, width) };
    // Values copied together, so that the second product reads them from L1.
    values.clear();
    for i in 0..len {
        values.extend_from_slice(&head.values[i * head.stride..i * head.stride + dim]);
    }
    padded_mask.clear();
    padded_mask.extend_from_slice(mask);
    padded_mask.resize(width, f32::MIN);
    scores.resize(len * width, 0.0);
    let queries = Operand { values: head.queries, stride: head.stride };
    let values = Operand { values, stride: dim };
    // SAFETY: AVX2 and FMA are present (asserted).
    unsafe { x86::product(queries, Operand { values: keys_t, stride: width }, dim, len, width, scores, width) };
    inv_sums.resize(len, 0.0);
    exponentiate_rows(scores, width, padded_mask, scale, inv_sums);
    // SAFETY: as above.
    unsafe { x86::product(Operand { values: scores, stride: width }, values, len, len, dim, out, dim) };
    for (row, &inv) in out.chunks_exact_mut(dim).zip(inv_sums.iter()) {
        row.iter_mut().for_each(|v| *v *= inv);
    }
}

multiversion! {
    /// Softmax of each row of `scores` (`width` values, a multiple of 8)
    /// but for its normalisation: `exp(s · scale + mask - max)` in place,
    /// and each row's `1 / Σ` into `inv_sums`. All the maxima first, then
    /// all the exponentials in one long loop of independent vectors.
    fn exponentiate_rows(scores: &mut [f32], width: usize, mask: &[f32], scale: f32, inv_sums: &mut [f32]) {
        for (row, max) in scores.chunks_exact_mut(width).zip(inv_sums.iter_mut()) {
            row.iter_mut().zip(mask).for_each(|(s, m)| *s = *s * scale + m);
            *max = row_max(row);
        }
        for (row, &max) in scores.chunks_exact_mut(width).zip(inv_sums.iter()) {
            row.iter_mut().for_each(|s| *s -= max);
        }
        scores.iter_mut().for_each(|s| *s = exp(*s));
        for (row, inv) in scores.chunks_exact_mut(width).zip(inv_sums.iter_mut()) {
            *inv = 1.0 / row_sum(row);
        }
    }
}

fn has_avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// A row-major matrix: row `i` starts at `values[i * stride]`.
#[derive(Clone, Copy)]
struct Operand<'a> {
    values: &'a [f32],
    stride: usize,
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::Operand;

    /// Rows of a register tile (6 rows x 16 columns: 12 accumulators).
    const ROWS: usize = 6;

    /// `out[i·out_stride + c] = Σₖ a[i, k] · b[k, c]` for `i < rows`,
    /// `c < cols` (a multiple of 8), `k < depth`; the reach of every operand
    /// is checked.
    ///
    /// # Safety
    /// AVX2 and FMA are present.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn product(
        a: Operand,
        b: Operand,
        depth: usize,
        rows: usize,
        cols: usize,
        out: &mut [f32],
        out_stride: usize,
    ) {
        assert!(cols.is_multiple_of(8) && depth > 0 && rows > 0);
        assert!((rows - 1) * a.stride + depth <= a.values.len());
        assert!((depth - 1) * b.stride + cols <= b.values.len());
        assert!((rows - 1) * out_stride + cols <= out.len());
        let mut i = 0;
        while i < rows {
            let n = (rows - i).min(ROWS);
            // SAFETY: AVX2 and FMA (contract); rows `i..i + n` are inside
            // `a` and `out` (checked above).
            unsafe {
                match n {
                    6 => tile_rows::<6>(a, b, depth, i, cols, out, out_stride),
                    5 => tile_rows::<5>(a, b, depth, i, cols, out, out_stride),
                    4 => tile_rows::<4>(a, b, depth, i, cols, out, out_stride),
                    3 => tile_rows::<3>(a, b, depth, i, cols, out, out_stride),
                    2 => tile_rows::<2>(a, b, depth, i, cols, out, out_stride),
                    _ => tile_rows::<1>(a, b, depth, i, cols, out, out_stride),
                }
            }
            i += n;
        }
    }

    /// `out[c·out_stride + r] = m[r, c]` for `r < rows` of `m`, `c < cols` (a
    /// multiple of 8), in 8 x 8 blocks; rows `rows..` up to the next multiple
    /// of 8 are written as zeros. `out` holds `cols` rows of `out_stride`
    /// (at least `rows` rounded up to 8); the reach is checked.
    ///
    /// # Safety
    /// AVX2 is present.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn transpose(m: Operand, rows: usize, cols: usize, out: &mut [f32], out_stride: usize) {
        assert!(cols.is_multiple_of(8) && rows > 0 && out_stride >= rows.next_multiple_of(8));
        assert!((rows - 1) * m.stride + cols <= m.values.len() && cols * out_stride <= out.len());
        for r0 in (0..rows).step_by(8) {
            for c0 in (0..cols).step_by(8) {
                // SAFETY: rows `r0..min(r0 + 8, rows)`, columns `c0..c0 + 8`
                // of `m`, and rows `c0..c0 + 8`, columns `r0..r0 + 8` of
                // `out`, are inside them (checked above).
                unsafe {
                    let v: [__m256; 8] = std::array::from_fn(|i| {
                        if r0 + i < rows {
                            _mm256_loadu_ps(m.values.as_ptr().add((r0 + i) * m.stride + c0))
                        } else {
                            _mm256_setzero_ps()
                        }
                    });
                    let t = [
                        _mm256_unpacklo_ps(v[0], v[1]),
                        _mm256_unpackhi_ps(v[0], v[1]),
                        _mm256_unpacklo_ps(v[2], v[3]),
                        _mm256_unpackhi_ps(v[2], v[3]),
                        _mm256_unpacklo_ps(v[4], v[5]),
                        _mm256_unpackhi_ps(v[4], v[5]),
                        _mm256_unpacklo_ps(v[6], v[7]),
                        _mm256_unpackhi_ps(v[6], v[7]),
                    ];
                    let u = [
                        _mm256_shuffle_ps::<0x44>(t[0], t[2]),
                        _mm256_shuffle_ps::<0xEE>(t[0], t[2]),
                        _mm256_shuffle_ps::<0x44>(t[1], t[3]),
                        _mm256_shuffle_ps::<0xEE>(t[1], t[3]),
                        _mm256_shuffle_ps::<0x44>(t[4], t[6]),
                        _mm256_shuffle_ps::<0xEE>(t[4], t[6]),
                        _mm256_shuffle_ps::<0x44>(t[5], t[7]),
                        _mm256_shuffle_ps::<0xEE>(t[5], t[7]),
                    ];
                    let columns = [
                        _mm256_permute2f128_ps::<0x20>(u[0], u[4]),
                        _mm256_permute2f128_ps::<0x20>(u[1], u[5]),
                        _mm256_permute2f128_ps::<0x20>(u[2], u[6]),
                        _mm256_permute2f128_ps::<0x20>(u[3], u[7]),
                        _mm256_permute2f128_ps::<0x31>(u[0], u[4]),
                        _mm256_permute2f128_ps::<0x31>(u[1], u[5]),
                        _mm256_permute2f128_ps::<0x31>(u[2], u[6]),
                        _mm256_permute2f128_ps::<0x31>(u[3], u[7]),
                    ];
                    for (c, column) in columns.into_iter().enumerate() {
                        _mm256_storeu_ps(out.as_mut_ptr().add((c0 + c) * out_stride + r0), column);
                    }
                }
            }
        }
    }

    /// Rows `i0..i0 + N` of the product, 16 columns at a time (8 at the end).
    ///
    /// # Safety
    /// AVX2 and FMA are present; the rows and `cols` are inside the
    /// operands and `out`.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn tile_rows<const N: usize>(
        a: Operand,
        b: Operand,
        depth: usize,
        i0: usize,
        cols: usize,
        out: &mut [f32],
        out_stride: usize,
    ) {
        let mut c = 0;
        while c < cols {
            // SAFETY: the caller's contract; columns `c..c + 16` (or 8)
            // are inside `cols`.
            unsafe {
                if cols - c >= 16 {
                    tile::<N, 2>(a, b, depth, i0, c, out, out_stride);
                    c += 16;
                } else {
                    tile::<N, 1>(a, b, depth, i0, c, out, out_stride);
                    c += 8;
                }
            }
        }
    }

    /// One `N x 8·V` tile: for each `k`, `V` vectors of `b`'s row `k` times
    /// each row's `a[i, k]`, broadcast.
    ///
    /// # Safety
    /// As [`tile_rows`], for columns `c0..c0 + 8·V`.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn tile<const N: usize, const V: usize>(
        a: Operand,
        b: Operand,
        depth: usize,
        i0: usize,
        c0: usize,
        out: &mut [f32],
        out_stride: usize,
    ) {
        let mut acc = [[_mm256_setzero_ps(); V]; N];
        let (a_ptr, b_ptr) = (a.values.as_ptr(), b.values.as_ptr());
        for k in 0..depth {
            // SAFETY: row `k`, columns `c0..c0 + 8·V` of `b`, and column `k`
            // of the tile's rows of `a`, are inside them (contract).
            unsafe {
                let row: [__m256; V] = std::array::from_fn(|v| _mm256_loadu_ps(b_ptr.add(k * b.stride + c0 + 8 * v)));
                for (i, acc) in acc.iter_mut().enumerate() {
                    let x = _mm256_set1_ps(*a_ptr.add((i0 + i) * a.stride + k));
                    for v in 0..V {
                        acc[v] = _mm256_fmadd_ps(x, row[v], acc[v]);
                    }
                }
            }
        }
        for (i, acc) in acc.iter().enumerate() {
            for (v, &value) in acc.iter().enumerate() {
                // SAFETY: row `i0 + i`, columns `c0 + 8v..+ 8` are inside
                // `out` (contract).
                unsafe { _mm256_storeu_ps(out.as_mut_ptr().add((i0 + i) * out_stride + c0 + 8 * v), value) };
            }
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod x86 {
    use super::Operand;

    /// Never called: [`super::attend`] asserts AVX2 first.
    pub(super) unsafe fn product(_: Operand, _: Operand, _: usize, _: usize, _: usize, _: &mut [f32], _: usize) {
        unreachable!("the attention kernel needs x86-64")
    }

    /// Never called, as [`product`].
    pub(super) unsafe fn transpose(_: Operand, _: usize, _: usize, _: &mut [f32], _: usize) {
        unreachable!("the attention kernel needs x86-64")
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};

    use super::*;

    /// `softmax(q kᵀ · scale + mask) v` in f64.
    fn reference(head: &HeadRows, len: usize, dim: usize, mask: &[f32], scale: f32) -> Vec<f64> {
        let row = |m: &[f32], i: usize| -> Vec<f64> {
            m[i * head.stride..i * head.stride + dim].iter().map(|&v| v as f64).collect()
        };
        let mut out = vec![0f64; len * dim];
        for i in 0..len {
            let q = row(head.queries, i);
            let scores: Vec<f64> = (0..len)
                .map(|j| {
                    let k = row(head.keys, j);
                    q.iter().zip(&k).map(|(a, b)| a * b).sum::<f64>() * scale as f64 + mask[j] as f64
                })
                .collect();
            let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
            let total: f64 = e.iter().sum();
            for (j, e) in e.iter().enumerate() {
                let v = row(head.values, j);
                for d in 0..dim {
                    out[i * dim + d] += e / total * v[d];
                }
            }
        }
        out
    }

    #[test]
    fn attention_matches_the_f64_formula_on_edge_shapes() {
        if !has_avx2_fma() {
            eprintln!("skipped: no AVX2 and FMA here");
            return;
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let mut scratch = AttentionScratch::default();
        // Lengths around the 8-column vectors and 6-row tiles; heads of one
        // vector, two (one 16-column tile) and three (a tile and a vector).
        for (len, dim) in [(1, 8), (5, 16), (7, 24), (8, 32), (13, 32), (64, 32), (70, 64), (9, 8)] {
            let stride = 3 * dim + 5;
            let data: Vec<f32> = (0..len * stride + 2 * dim).map(|_| rng.random_range(-2.0..2.0)).collect();
            let head = HeadRows { queries: &data, keys: &data[dim..], values: &data[2 * dim..], stride };
            // The last two keys padded out, as a shorter sequence in a batch.
            let mask: Vec<f32> = (0..len).map(|j| if len > 2 && j + 2 >= len { f32::MIN } else { 0.0 }).collect();
            let scale = 1.0 / (dim as f32).sqrt();
            let mut out = vec![f32::NAN; len * dim];
            attend(&head, len, dim, &mask, scale, &mut scratch, &mut out);
            let expected = reference(&head, len, dim, &mask, scale);
            for (i, (&got, &want)) in out.iter().zip(&expected).enumerate() {
                assert!((got as f64 - want).abs() <= 1e-5 * (1.0 + want.abs()), "{len}x{dim} [{i}]: {got} vs {want}");
            }
        }
    }
}
