//! The AVX-512 BF16 kernel: up to 4 rows by 4 blocks of 16 columns in
//! registers, one `vdpbf16ps` per (row, block) and pair of the inner
//! dimension, which runs in chunks that keep the right operand's panel in
//! the L1 cache.

use std::arch::x86_64::*;
use std::ops::Range;

use super::{Product, BLOCK};

/// Pairs of the inner dimension per chunk: 4 blocks x 64 pairs x 64 bytes
/// of the right operand (16 KiB) stay in L1 while the rows pass.
const PAIRS_PER_CHUNK: usize = 64;

/// Rows `rows` by blocks `blocks` of the product.
///
/// # Safety
/// AVX-512F and BF16 are present; rows and blocks are inside the operands
/// and this task is the only writer of their part of `dst`.
#[target_feature(enable = "avx512f,avx512bf16")]
pub(super) unsafe fn task(p: &Product, rows: Range<usize>, blocks: Range<usize>) {
    let pairs = p.a.pairs;
    let mut p0 = 0;
    // One pass even for an empty inner dimension, to write `dst`.
    loop {
        let chunk = p0..(p0 + PAIRS_PER_CHUNK).min(pairs);
        let mut r = rows.start;
        while r < rows.end {
            let n = (rows.end - r).min(4);
            let mut b = blocks.start;
            while b < blocks.end {
                let nb = (blocks.end - b).min(4);
                // SAFETY: the caller's contract.
                unsafe { crate::quant::dispatch_tile!(n, nb, tile(p, r, b, chunk.clone())) }
                b += nb;
            }
            r += n;
        }
        p0 = chunk.end;
        if p0 >= pairs {
            break;
        }
    }
}

/// Rows `r0..r0 + N` by blocks `b0..b0 + NB` over the pairs `chunk`: the
/// first chunk starts from zero and applies `accumulate` and the bias, later
/// chunks add to what the earlier ones stored.
#[target_feature(enable = "avx512f,avx512bf16")]
#[inline]
unsafe fn tile<const N: usize, const NB: usize>(p: &Product, r0: usize, b0: usize, chunk: Range<usize>) {
    let (a, b) = (p.a, p.b);
    let first = chunk.start == 0;
    let masks: [__mmask16; NB] =
        std::array::from_fn(|k| crate::simd::first_lanes(b.n.saturating_sub((b0 + k) * BLOCK)));
    // In all the blocks below: rows `r0..r0 + N` and blocks `b0..b0 + NB`
    // are inside the operands and `dst` (the caller's contract), and loads
    // and stores of `dst` and the bias touch the valid lanes only.
    // SAFETY: see above.
    let dst = |i: usize, k: usize| unsafe { p.dst.get().add((r0 + i) * p.dst_rs + (b0 + k) * BLOCK) };
    let mut acc = [[_mm512_setzero_ps(); NB]; N];
    if !first {
        for (i, acc) in acc.iter_mut().enumerate() {
            for (k, acc) in acc.iter_mut().enumerate() {
                // SAFETY: see above.
                *acc = unsafe { _mm512_maskz_loadu_ps(masks[k], dst(i, k)) };
            }
        }
    }
    // SAFETY: see above.
    let a_rows: [*const u32; N] = std::array::from_fn(|i| unsafe { a.data().as_ptr().add((r0 + i) * a.row_stride) });
    for q in chunk.clone() {
        // SAFETY: see above.
        let w: [__m512i; NB] = std::array::from_fn(|k| unsafe {
            _mm512_loadu_si512(b.data.as_ptr().add(((b0 + k) * b.pairs + q) * BLOCK).cast())
        });
        for (i, a_row) in a_rows.iter().enumerate() {
            // SAFETY: see above.
            let x = _mm512_set1_epi32(unsafe { a_row.add(q * a.pair_stride).read() } as i32);
            for k in 0..NB {
                // SAFETY: same-size bit casts of 512-bit vectors.
                acc[i][k] = unsafe {
                    _mm512_dpbf16_ps(
                        acc[i][k],
                        std::mem::transmute::<__m512i, __m512bh>(x),
                        std::mem::transmute::<__m512i, __m512bh>(w[k]),
                    )
                };
            }
        }
    }
    for k in 0..NB {
        let bias = match p.bias {
            // SAFETY: see above.
            Some(bias) if first => unsafe { _mm512_maskz_loadu_ps(masks[k], bias.as_ptr().add((b0 + k) * BLOCK)) },
            _ => _mm512_setzero_ps(),
        };
        for (i, acc) in acc.iter().enumerate() {
            let mut v = _mm512_add_ps(acc[k], bias);
            if first && p.accumulate {
                // SAFETY: see above.
                v = _mm512_add_ps(v, unsafe { _mm512_maskz_loadu_ps(masks[k], dst(i, k)) });
            }
            // SAFETY: see above.
            unsafe { _mm512_mask_storeu_ps(dst(i, k), masks[k], v) };
        }
    }
}
