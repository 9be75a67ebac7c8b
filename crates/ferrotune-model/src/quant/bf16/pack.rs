//! The operands of a bf16 product, converted from fp32 (round to nearest
//! even) and laid out for `vdpbf16ps`, which multiplies pairs of bf16 values
//! along the inner dimension: the left operand as one pair per `u32`, the
//! right operand in blocks of 16 columns.

use rayon::prelude::*;

use super::{from_bf16, to_bf16};
use crate::scratch;
use crate::strided::Mat;

/// Columns per block of the right operand (one 512-bit vector of fp32
/// results).
pub(super) const BLOCK: usize = 16;

/// Two bf16 values as one `u32`: `lo` at the lower address.
fn pair(lo: u16, hi: u16) -> u32 {
    lo as u32 | (hi as u32) << 16
}

/// The left operand `[m, k]`: pair `p` of row `i` (columns `2p`, `2p + 1`)
/// at `data[i * row_stride + p * pair_stride]`.
pub(super) struct PackedRows {
    /// The pairs' bits, in a pooled `f32` buffer ([`crate::scratch`]):
    /// every word is written, so none is zeroed first.
    storage: Vec<f32>,
    /// Pairs per row, zeros past `k` included.
    pub(super) pairs: usize,
    pub(super) row_stride: usize,
    pub(super) pair_stride: usize,
    /// Whether the layout is AMX's: rows of pairs padded with zeros to
    /// whole tile rows ([`TILE_PAIRS`]), whole tiles of rows ([`TILE_ROWS`]).
    pub(super) tiles: bool,
}

/// Pairs per AMX tile row (64 bytes).
pub(super) const TILE_PAIRS: usize = 16;
/// Rows per AMX tile.
pub(super) const TILE_ROWS: usize = crate::quant::AMX_ROWS;

/// The pairs stored per row (left operand) or per block (right operand)
/// for an inner dimension of `k`: whole tile rows where AMX runs the product.
fn stored_pairs(k: usize) -> usize {
    let pairs = k.div_ceil(2);
    if crate::simd::has_amx_bf16() {
        pairs.next_multiple_of(TILE_PAIRS)
    } else {
        pairs
    }
}

impl PackedRows {
    /// Converts `a` (`[m, k]`); rows stay rows when `a`'s rows are
    /// contiguous or AMX runs the product, otherwise the pairs are stored
    /// pair by pair.
    pub(super) fn new(a: Mat, m: usize, k: usize) -> Self {
        let tiles = crate::simd::has_amx_bf16();
        let pairs = stored_pairs(k);
        let held = if tiles { m.next_multiple_of(TILE_ROWS) } else { m };
        let real_pairs = k.div_ceil(2);
        let mut storage = scratch::take(held * pairs);
        let data: &mut [u32] = bytemuck::cast_slice_mut(&mut storage);
        // The rows past `m` (whole tiles for AMX) are zero.
        data[m * pairs..].fill(0);
        if a.row_stride() == 1 && a.col_stride() != 1 && m > 0 && k > 0 {
            if tiles {
                // AMX reads rows: 16 rows at a time, each pair's two source
                // columns (16 contiguous values each) converted together,
                // then transposed into the rows through a 16 x 16 tile.
                data[..m * pairs].par_chunks_mut(TILE_ROWS * pairs).enumerate().for_each(|(t, out)| {
                    let (i0, n) = (t * TILE_ROWS, (m - t * TILE_ROWS).min(TILE_ROWS));
                    let mut tile = [[0u32; TILE_ROWS]; TILE_PAIRS];
                    for first in (0..real_pairs).step_by(TILE_PAIRS) {
                        let count = (real_pairs - first).min(TILE_PAIRS);
                        for (q, column) in tile.iter_mut().enumerate().take(count) {
                            let p = first + q;
                            // SAFETY: column `2p` holds rows `i0..i0 + n` contiguously.
                            let lo = unsafe { std::slice::from_raw_parts(a.at(i0, 2 * p), n) };
                            // SAFETY: as does column `2p + 1` when inside.
                            let hi =
                                (2 * p + 1 < k).then(|| unsafe { std::slice::from_raw_parts(a.at(i0, 2 * p + 1), n) });
                            interleave(lo, hi, &mut column[..n]);
                        }
                        for (r, row) in out.chunks_mut(pairs).enumerate() {
                            for (q, column) in tile.iter().enumerate().take(count) {
                                row[first + q] = column[r];
                            }
                        }
                    }
                    for row in out.chunks_mut(pairs) {
                        row[real_pairs..].fill(0);
                    }
                });
                return Self { storage, pairs, row_stride: pairs, pair_stride: 1, tiles };
            }
            // Two source rows (columns of `a`) make one run of pairs.
            data.par_chunks_mut(m).enumerate().for_each(|(p, out)| {
                // SAFETY: column `2p` of `a` holds `m` contiguous elements.
                let lo = unsafe { std::slice::from_raw_parts(a.at(0, 2 * p), m) };
                // SAFETY: as is column `2p + 1` when inside.
                let hi = (2 * p + 1 < k).then(|| unsafe { std::slice::from_raw_parts(a.at(0, 2 * p + 1), m) });
                interleave(lo, hi, out);
            });
            return Self { storage, pairs, row_stride: 1, pair_stride: m, tiles };
        }
        if pairs > 0 {
            data[..m * pairs].par_chunks_mut(pairs).enumerate().for_each(|(i, out)| {
                let (out, padding) = out.split_at_mut(real_pairs);
                padding.fill(0);
                if a.col_stride() == 1 {
                    // SAFETY: row `i` of `a` holds `k` contiguous elements.
                    convert_pairs(unsafe { std::slice::from_raw_parts(a.at(i, 0), k) }, out);
                } else {
                    // SAFETY: `(i, j)` for `j < k` is inside `a`.
                    let row: Vec<f32> = (0..k).map(|j| unsafe { *a.at(i, j) }).collect();
                    convert_pairs(&row, out);
                }
            });
        }
        Self { storage, pairs, row_stride: pairs, pair_stride: 1, tiles }
    }

    /// The pairs (see the type's docs).
    pub(super) fn data(&self) -> &[u32] {
        bytemuck::cast_slice(&self.storage)
    }
}

impl Drop for PackedRows {
    fn drop(&mut self) {
        scratch::give_back(std::mem::take(&mut self.storage));
    }
}

/// The right operand `[k, n]`: column `j` of block `b`, pair `p` (rows `2p`,
/// `2p + 1`) at `data[(b * pairs + p) * BLOCK + j]`; columns past `n`, the
/// row past an odd `k` and the pairs past it (whole tile rows for AMX) are
/// zero.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct PackedColumns {
    pub(super) data: Vec<u32>,
    pub(super) pairs: usize,
    pub(super) n: usize,
}

impl PackedColumns {
    /// Converts `b` (`[k, n]`).
    pub(super) fn new(b: Mat, k: usize, n: usize) -> Self {
        let pairs = stored_pairs(k);
        let mut data = vec![0u32; n.div_ceil(BLOCK) * pairs * BLOCK];
        if pairs == 0 {
            return Self { data, pairs, n };
        }
        data.par_chunks_mut(pairs * BLOCK).enumerate().for_each(|(block, out)| {
            let (c0, valid) = (block * BLOCK, (n - block * BLOCK).min(BLOCK));
            if b.col_stride() == 1 {
                // Rows contiguous: rows `2p` and `2p + 1` of the block's
                // columns make its pairs.
                for (p, out) in out.chunks_mut(BLOCK).enumerate().take(k.div_ceil(2)) {
                    // SAFETY: row `2p` holds the block's `valid` columns
                    // contiguously.
                    let lo = unsafe { std::slice::from_raw_parts(b.at(2 * p, c0), valid) };
                    // SAFETY: as does row `2p + 1` when inside.
                    let hi = (2 * p + 1 < k).then(|| unsafe { std::slice::from_raw_parts(b.at(2 * p + 1, c0), valid) });
                    interleave(lo, hi, &mut out[..valid]);
                }
            } else {
                let mut column = vec![0u32; k.div_ceil(2)];
                let mut gathered = Vec::new();
                for j in 0..valid {
                    if b.row_stride() == 1 {
                        // SAFETY: column `c0 + j` holds `k` contiguous elements.
                        convert_pairs(unsafe { std::slice::from_raw_parts(b.at(0, c0 + j), k) }, &mut column);
                    } else {
                        gathered.clear();
                        // SAFETY: `(r, c0 + j)` for `r < k` is inside `b`.
                        gathered.extend((0..k).map(|r| unsafe { *b.at(r, c0 + j) }));
                        convert_pairs(&gathered, &mut column);
                    }
                    for (p, &v) in column.iter().enumerate() {
                        out[p * BLOCK + j] = v;
                    }
                }
            }
        });
        Self { data, pairs, n }
    }

    /// Packs `Wᵀ` for a weight matrix `W` `[n, k]` of bf16 `values`
    /// (row-major), so that `x · Wᵀ` is a product with this right operand.
    pub(super) fn transposed_bf16(values: &[u16], n: usize, k: usize) -> Self {
        let pairs = stored_pairs(k);
        let mut data = vec![0u32; n.div_ceil(BLOCK) * pairs * BLOCK];
        for (c, row) in values.chunks(k.max(1)).enumerate().take(n) {
            let (block, j) = (c / BLOCK, c % BLOCK);
            for p in 0..k.div_ceil(2) {
                let hi = row.get(2 * p + 1).copied().unwrap_or(0);
                data[(block * pairs + p) * BLOCK + j] = pair(row[2 * p], hi);
            }
        }
        Self { data, pairs, n }
    }
}

/// `out[p] = (bf16(x[2p]), bf16(x[2p + 1]))`, a zero high half past an odd end.
fn convert_pairs(x: &[f32], out: &mut [u32]) {
    debug_assert_eq!(out.len(), x.len().div_ceil(2));
    #[cfg(target_arch = "x86_64")]
    if crate::simd::has_avx512_bf16() {
        // SAFETY: AVX-512 BF16 is present; the lengths were checked.
        return unsafe { x86::convert_pairs(x, out) };
    }
    for (o, x) in out.iter_mut().zip(x.chunks(2)) {
        *o = pair(to_bf16(x[0]), x.get(1).map_or(0, |&v| to_bf16(v)));
    }
}

/// `out[j] = (bf16(lo[j]), bf16(hi[j]))` (`hi` zero when absent).
fn interleave(lo: &[f32], hi: Option<&[f32]>, out: &mut [u32]) {
    debug_assert!(out.len() == lo.len() && hi.is_none_or(|hi| hi.len() == lo.len()));
    #[cfg(target_arch = "x86_64")]
    if crate::simd::has_avx512_bf16() {
        // SAFETY: AVX-512 BF16 (and BW, part of the AVX-512 level) is
        // present; the lengths were checked.
        return unsafe { x86::interleave(lo, hi, out) };
    }
    for (j, o) in out.iter_mut().enumerate() {
        *o = pair(to_bf16(lo[j]), hi.map_or(0, |hi| to_bf16(hi[j])));
    }
}

/// A contiguous `[rows, cols]` copy of `a` with every value rounded to
/// bf16 (for the fallback that multiplies on the fp32 kernels).
pub(super) fn rounded(a: Mat, rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0f32; rows * cols];
    if cols > 0 {
        out.par_chunks_mut(cols).enumerate().for_each(|(i, row)| {
            for (j, v) in row.iter_mut().enumerate() {
                // SAFETY: `(i, j)` is inside `a` by the caller's shapes.
                *v = from_bf16(to_bf16(unsafe { *a.at(i, j) }));
            }
        });
    }
    out
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// 16 fp32 values at `x` (the first `n`), zeros after.
    ///
    /// # Safety
    /// AVX-512F is present; `x..x + n` is readable.
    #[target_feature(enable = "avx512f")]
    unsafe fn load(x: *const f32, n: usize) -> __m512 {
        let mask: __mmask16 = crate::simd::first_lanes(n);
        // SAFETY: only the first `n` lanes are read.
        unsafe { _mm512_maskz_loadu_ps(mask, x) }
    }

    /// # Safety
    /// AVX-512F and BF16 are present; `out.len() == x.len().div_ceil(2)`.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub(super) unsafe fn convert_pairs(x: &[f32], out: &mut [u32]) {
        for (o, x) in out.chunks_mut(16).zip(x.chunks(32)) {
            // SAFETY: the chunks' lengths bound the loads and the store.
            unsafe {
                let lo = load(x.as_ptr(), x.len());
                let hi = if x.len() > 16 { load(x.as_ptr().add(16), x.len() - 16) } else { _mm512_setzero_ps() };
                // Lower 16 words from `lo`, upper from `hi`: memory order.
                let v: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(hi, lo));
                let mask: __mmask16 = crate::simd::first_lanes(o.len());
                _mm512_mask_storeu_epi32(o.as_mut_ptr().cast(), mask, v);
            }
        }
    }

    /// # Safety
    /// AVX-512F, BW and BF16 are present; `lo`, `hi` (when given) and `out`
    /// have the same length.
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    pub(super) unsafe fn interleave(lo: &[f32], hi: Option<&[f32]>, out: &mut [u32]) {
        // Word 2j takes word j (from `lo`), word 2j + 1 takes word 16 + j.
        let order: [i16; 32] = std::array::from_fn(|w| (w / 2 + 16 * (w % 2)) as i16);
        // SAFETY: 64 bytes read from a 64-byte array.
        let order = unsafe { _mm512_loadu_si512(order.as_ptr().cast()) };
        for (c, o) in out.chunks_mut(16).enumerate() {
            let n = o.len();
            // SAFETY: at most `n` elements read from each input at `16c`,
            // at most `n` written.
            unsafe {
                let l = load(lo.as_ptr().add(16 * c), n);
                let h = hi.map_or(_mm512_setzero_ps(), |hi| load(hi.as_ptr().add(16 * c), n));
                let v: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(h, l));
                let v = _mm512_permutexvar_epi16(order, v);
                let mask: __mmask16 = crate::simd::first_lanes(n);
                _mm512_mask_storeu_epi32(o.as_mut_ptr().cast(), mask, v);
            }
        }
    }
}
