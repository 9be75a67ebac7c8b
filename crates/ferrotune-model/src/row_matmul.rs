//! `y = x Wᵀ + b` for inputs of few rows (inference on short texts), as
//! dot products of contiguous rows of `x` and of `W` with AVX-512, four by
//! four outputs at a time. `gemm` repacks all of `W` on every call, which
//! costs about as much as the product itself when `x` has a few dozen rows;
//! here `W` is read once, in place.

use rayon::prelude::*;

/// Up to this many rows of `x` the kernel beats `gemm` at all-MiniLM-L6's
/// shapes on the development machine (`ferrotune bench forward`: 1 x 32
/// 1.4x, 4 x 64 1.08x, even at 512 rows, behind at 2048).
pub(crate) const MAX_ROWS: usize = 256;

/// Whether the kernel runs on this processor (x86-64 with AVX-512F).
pub(crate) fn available() -> bool {
    crate::simd::level() == crate::simd::SimdLevel::Avx512
}

/// `out[r, col + o] = b[o] + Σᵢ x[r, i] · w[o, i]` for `x` `[rows, in]`, `w`
/// `[b.len(), in]`, into rows of `out_width` elements. The caller checks
/// [`available`].
pub(crate) fn linear(x: &[f32], in_dim: usize, w: &[f32], b: &[f32], out: &mut [f32], out_width: usize, col: usize) {
    let (rows, out_dim) = (x.len() / in_dim, b.len());
    assert!(available() && x.len() == rows * in_dim && w.len() >= out_dim * in_dim && out.len() == rows * out_width);
    assert!(col + out_dim <= out_width);
    // Tasks of 16 outputs (columns); each writes its own columns of every row.
    let out_ptr = OutPtr(out.as_mut_ptr());
    (0..out_dim.div_ceil(16)).into_par_iter().for_each(|task| {
        let (start, end) = (task * 16, ((task + 1) * 16).min(out_dim));
        // SAFETY: AVX-512F is present (asserted); reads stay inside `x`,
        // `w` and `b` (shapes asserted); this task writes columns
        // `col + start..col + end` only.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            avx512::columns(x, rows, in_dim, w, b, out_ptr.get(), out_width, col, start, end)
        };
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (start, end, out_ptr);
    });
}

#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: the tasks write disjoint columns.
unsafe impl Send for OutPtr {}
// SAFETY: as for Send: the tasks sharing it write disjoint columns.
unsafe impl Sync for OutPtr {}

impl OutPtr {
    fn get(self) -> *mut f32 {
        self.0
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    /// Outputs `start..end` (columns) of every row.
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn columns(
        x: &[f32],
        rows: usize,
        k: usize,
        w: &[f32],
        b: &[f32],
        out: *mut f32,
        out_width: usize,
        col: usize,
        start: usize,
        end: usize,
    ) {
        let (x, w) = (x.as_ptr(), w.as_ptr());
        // Rows outside, columns inside: this task's rows of `w` stay in
        // cache while each group of rows of `x` passes once.
        let mut r = 0;
        while r < rows {
            let tall = rows - r >= 4;
            let mut o = start;
            while o < end {
                let wide = end - o >= 4;
                let (xr, wo, dst) = (x.add(r * k), w.add(o * k), out.add(r * out_width + col + o));
                match (tall, wide) {
                    (true, true) => tile::<4, 4>(xr, k, wo, dst, out_width, &b[o..]),
                    (true, false) => tile::<4, 1>(xr, k, wo, dst, out_width, &b[o..]),
                    (false, true) => tile::<1, 4>(xr, k, wo, dst, out_width, &b[o..]),
                    (false, false) => tile::<1, 1>(xr, k, wo, dst, out_width, &b[o..]),
                }
                o += if wide { 4 } else { 1 };
            }
            r += if tall { 4 } else { 1 };
        }
    }

    /// `R x C` outputs: rows of `x` from `x`, rows of `w` from `w` (both
    /// `k` long), written at `out` (row stride `out_width`) plus `bias`.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn tile<const R: usize, const C: usize>(
        x: *const f32,
        k: usize,
        w: *const f32,
        out: *mut f32,
        out_width: usize,
        bias: &[f32],
    ) {
        let mut acc = [[_mm512_setzero_ps(); C]; R];
        let full = k / 16 * 16;
        let mut i = 0;
        while i < full {
            let mut wv = [_mm512_setzero_ps(); C];
            for (c, v) in wv.iter_mut().enumerate() {
                *v = _mm512_loadu_ps(w.add(c * k + i));
            }
            for (r, acc) in acc.iter_mut().enumerate() {
                let xv = _mm512_loadu_ps(x.add(r * k + i));
                for (a, v) in acc.iter_mut().zip(&wv) {
                    *a = _mm512_fmadd_ps(xv, *v, *a);
                }
            }
            i += 16;
        }
        if full < k {
            let mask: __mmask16 = ((1u32 << (k - full)) - 1) as u16;
            for (r, acc) in acc.iter_mut().enumerate() {
                let xv = _mm512_maskz_loadu_ps(mask, x.add(r * k + full));
                for (c, a) in acc.iter_mut().enumerate() {
                    *a = _mm512_fmadd_ps(xv, _mm512_maskz_loadu_ps(mask, w.add(c * k + full)), *a);
                }
            }
        }
        if R == 4 && C == 4 {
            // All 16 sums at once: lane r of `sums` holds row r's 4 outputs.
            let v: [__m512; 16] = std::array::from_fn(|j| acc[j / 4 % R][j % C]);
            let sums = sum_16(&v);
            let b = _mm_loadu_ps(bias.as_ptr());
            for r in 0..4 {
                let row = match r {
                    0 => _mm512_extractf32x4_ps::<0>(sums),
                    1 => _mm512_extractf32x4_ps::<1>(sums),
                    2 => _mm512_extractf32x4_ps::<2>(sums),
                    _ => _mm512_extractf32x4_ps::<3>(sums),
                };
                _mm_storeu_ps(out.add(r * out_width), _mm_add_ps(row, b));
            }
            return;
        }
        for (r, acc) in acc.iter().enumerate() {
            for (c, a) in acc.iter().enumerate() {
                *out.add(r * out_width + c) = _mm512_reduce_add_ps(*a) + bias[c];
            }
        }
    }

    /// Element `j` of the result is the sum of the elements of `v[j]`
    /// (a transposing reduction tree: 45 instructions instead of 16 full
    /// horizontal sums).
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn sum_16(v: &[__m512; 16]) -> __m512 {
        // Pairs: per 128-bit lane, [a0+a2, b0+b2, a1+a3, b1+b3].
        let pair = |a: __m512, b: __m512| _mm512_add_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b));
        // Quads: per lane, the lane sums of the four inputs in order.
        let quad = |ab: __m512, cd: __m512| {
            let (ab, cd) = (_mm512_castps_pd(ab), _mm512_castps_pd(cd));
            _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(ab, cd)), _mm512_castpd_ps(_mm512_unpackhi_pd(ab, cd)))
        };
        let q: [__m512; 4] = std::array::from_fn(|i| {
            let v = &v[4 * i..4 * i + 4];
            quad(pair(v[0], v[1]), pair(v[2], v[3]))
        });
        // Lanes: add lanes 0+1 and 2+3, twice, gathering the quads in order.
        let fold = |a: __m512, b: __m512| {
            _mm512_add_ps(_mm512_shuffle_f32x4::<0b10_00_10_00>(a, b), _mm512_shuffle_f32x4::<0b11_01_11_01>(a, b))
        };
        fold(fold(q[0], q[1]), fold(q[2], q[3]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_a_plain_product_on_every_edge_shape() {
        if !available() {
            eprintln!("no AVX-512F here: skipped");
            return;
        }
        let value = |i: usize| ((i * 7919) % 23) as f32 * 0.1 - 1.1;
        // Rows and outputs not multiples of 4, inputs not a multiple of 16.
        for (rows, in_dim, out_dim) in [(7, 37, 9), (4, 16, 4), (32, 384, 40), (1, 5, 3)] {
            let x: Vec<f32> = (0..rows * in_dim).map(value).collect();
            let w: Vec<f32> = (0..out_dim * in_dim).map(|i| value(i + 3)).collect();
            let b: Vec<f32> = (0..out_dim).map(|i| value(i + 11)).collect();
            let (width, col) = (out_dim + 5, 2);
            let mut out = vec![f32::NAN; rows * width];
            linear(&x, in_dim, &w, &b, &mut out, width, col);
            for r in 0..rows {
                for o in 0..out_dim {
                    let expected: f32 = b[o] + (0..in_dim).map(|i| x[r * in_dim + i] * w[o * in_dim + i]).sum::<f32>();
                    let got = out[r * width + col + o];
                    assert!(
                        (got - expected).abs() < 1e-4 * (1.0 + expected.abs()),
                        "{rows}x{in_dim}x{out_dim} [{r},{o}] {got} vs {expected}"
                    );
                }
                // Columns outside the range are not touched.
                assert!(out[r * width].is_nan() && out[r * width + col + out_dim].is_nan());
            }
        }
    }
}
