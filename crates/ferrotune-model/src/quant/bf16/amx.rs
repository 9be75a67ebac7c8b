//! The bf16 product on AMX: `tdpbf16ps` multiplies a tile register of 16
//! rows of 16 pairs (the left operand, row by row) by one of 16 pairs x 16
//! columns (a block of the right operand, whose packing is already that
//! layout), adding into 16 x 16 fp32 sums. Four accumulators hold 2 x 2
//! tiles (32 rows x 32 columns) over the whole inner dimension. Tiles
//! wholly inside the output start from the bias (a tile load of stride 0)
//! or from the destination and are stored straight into it (through a
//! buffer, a 2048 x 384 x 1152 product took an eighth longer); edge tiles
//! are stored into a buffer and added as the vector kernel does.

use std::arch::x86_64::*;
use std::ops::Range;

use super::pack::{TILE_PAIRS, TILE_ROWS};
use super::{Product, BLOCK};
use crate::quant::amx::{tile_dot, tile_load, tile_store, tile_zero, Accumulators, TileConfig, Tiles};

/// Every register 16 rows of 64 bytes: `tmm0`-`tmm3` the sums of (row
/// tile, block) (0, 0), (0, 1), (1, 0), (1, 1); `tmm4`, `tmm5` two row
/// tiles of the left operand; `tmm6`, `tmm7` two blocks of the right one.
static CONFIG: TileConfig = TileConfig::uniform(TILE_ROWS as u8, (TILE_PAIRS * 4) as u16);

/// Rows `rows` by blocks `blocks` of the product.
///
/// # Safety
/// AMX-BF16 and AVX-512F are usable; the operands are in AMX's layout
/// (`p.a.tiles`); rows and blocks are inside the operands and this task is
/// the only writer of their part of `dst`.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn task(p: &Product, rows: Range<usize>, blocks: Range<usize>) {
    // SAFETY: AMX is usable (contract).
    let _tiles = unsafe { Tiles::configure(&CONFIG) };
    let mut r = rows.start;
    while r < rows.end {
        let two_rows = r + TILE_ROWS < rows.end;
        let mut b = blocks.start;
        while b < blocks.end {
            let two_blocks = b + 1 < blocks.end;
            // SAFETY: the caller's contract; rows from `r` and blocks from
            // `b` are the task's.
            unsafe {
                match (two_rows, two_blocks) {
                    (true, true) => tiles::<true, true>(p, rows.end, r, b),
                    (true, false) => tiles::<true, false>(p, rows.end, r, b),
                    (false, true) => tiles::<false, true>(p, rows.end, r, b),
                    (false, false) => tiles::<false, false>(p, rows.end, r, b),
                }
            }
            b += 2;
        }
        r += 2 * TILE_ROWS;
    }
}

/// Rows `r0..` (one or two tiles, those before `end` written) by blocks
/// `b..` (one or two).
#[target_feature(enable = "avx512f")]
unsafe fn tiles<const TWO_ROWS: bool, const TWO_BLOCKS: bool>(p: &Product, end: usize, r0: usize, b: usize) {
    let (a, w) = (p.a, p.b);
    let (a_stride, w_stride) = (a.row_stride * 4, BLOCK * 4);
    // Whole tiles inside the output go straight to `dst`: their sums start
    // from the destination (accumulating) or the bias, read by tile loads,
    // and tile stores write them; edge tiles go through the masked epilogue
    // below.
    let (blocks, tile_rows) = (if TWO_BLOCKS { 2 } else { 1 }, if TWO_ROWS { 2 } else { 1 });
    let direct =
        (b + blocks) * BLOCK <= w.n && r0 + tile_rows * TILE_ROWS <= end && !(p.accumulate && p.bias.is_some());
    let dst_stride = p.dst_rs * 4;
    let dst = |row_tile: usize, block: usize| {
        // SAFETY: only asked for when `direct`: tile (row_tile, block)
        // then lies inside `dst`.
        unsafe { p.dst.get().add((r0 + row_tile * TILE_ROWS) * p.dst_rs + (b + block) * BLOCK) }
    };
    // SAFETY: the left operand holds whole tiles of rows of `a.pairs` pairs
    // (a multiple of 16), the right one `a.pairs` pairs per block (same
    // inner dimension, same padding); each step reads 16 pairs of each.
    unsafe {
        let x0 = a.data().as_ptr().add(r0 * a.row_stride);
        let x1 = x0.add(TILE_ROWS * a.row_stride);
        let w0 = w.data.as_ptr().add(b * w.pairs * BLOCK);
        let w1 = w0.add(w.pairs * BLOCK);
        if direct {
            macro_rules! start {
                ($t:literal, $row_tile:expr, $block:expr) => {
                    if p.accumulate {
                        tile_load!($t, dst($row_tile, $block), dst_stride)
                    } else if let Some(bias) = p.bias {
                        // Stride 0: the block's 16 bias values in every row.
                        tile_load!($t, bias.as_ptr().add((b + $block) * BLOCK), 0usize)
                    } else {
                        tile_zero!($t)
                    }
                };
            }
            start!(0, 0, 0);
            if TWO_BLOCKS {
                start!(1, 0, 1);
            }
            if TWO_ROWS {
                start!(2, 1, 0);
                if TWO_BLOCKS {
                    start!(3, 1, 1);
                }
            }
        } else {
            tile_zero!(0);
            tile_zero!(1);
            tile_zero!(2);
            tile_zero!(3);
        }
        for q in (0..a.pairs).step_by(TILE_PAIRS) {
            tile_load!(4, x0.add(q), a_stride);
            tile_load!(6, w0.add(q * BLOCK), w_stride);
            tile_dot!("tdpbf16ps", 0, 4, 6);
            if TWO_BLOCKS {
                tile_load!(7, w1.add(q * BLOCK), w_stride);
                tile_dot!("tdpbf16ps", 1, 4, 7);
            }
            if TWO_ROWS {
                tile_load!(5, x1.add(q), a_stride);
                tile_dot!("tdpbf16ps", 2, 5, 6);
                if TWO_BLOCKS {
                    tile_dot!("tdpbf16ps", 3, 5, 7);
                }
            }
        }
    }
    if direct {
        // SAFETY: whole tiles inside `dst`, this task's (contract).
        unsafe {
            tile_store!(0, dst(0, 0), dst_stride);
            if TWO_BLOCKS {
                tile_store!(1, dst(0, 1), dst_stride);
            }
            if TWO_ROWS {
                tile_store!(2, dst(1, 0), dst_stride);
                if TWO_BLOCKS {
                    tile_store!(3, dst(1, 1), dst_stride);
                }
            }
        }
        return;
    }
    // SAFETY: the tiles are configured (`task`).
    let sums = unsafe { Accumulators::store(TWO_ROWS, TWO_BLOCKS) };
    for (row_tile, block, sums) in sums.stored(TWO_ROWS, TWO_BLOCKS) {
        let c0 = (b + block) * BLOCK;
        let valid = w.n.saturating_sub(c0).min(BLOCK);
        let mask: __mmask16 = crate::simd::first_lanes(valid);
        // SAFETY: the bias has `n` values; masked to the valid ones.
        let bias = p.bias.map(|bias| unsafe { _mm512_maskz_loadu_ps(mask, bias.as_ptr().add(c0)) });
        let first = r0 + row_tile * TILE_ROWS;
        for (i, row) in sums.chunks_exact(BLOCK).enumerate().take(end.saturating_sub(first)) {
            // SAFETY: row `first + i < end` and the block's valid columns are
            // inside `dst` and this task's (contract); `row` holds 16 f32.
            unsafe {
                let dst = p.dst.get().add((first + i) * p.dst_rs + c0);
                let mut v = _mm512_loadu_ps(row.as_ptr().cast());
                if let Some(bias) = bias {
                    v = _mm512_add_ps(v, bias);
                }
                if p.accumulate {
                    v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, dst));
                }
                _mm512_mask_storeu_ps(dst, mask, v);
            }
        }
    }
}
