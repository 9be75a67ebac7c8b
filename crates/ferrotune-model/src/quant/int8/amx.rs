//! The int8 tile on AMX: `tdpbusd` multiplies a tile register of 16 rows
//! of 64 activation codes by one of 64 inputs x 16 channels of weights, in
//! the layout the VNNI kernel's packing already has (a block's 16 groups of
//! 4 inputs are 16 rows of 64 bytes). Four accumulators hold 2 x 2 tiles
//! (32 rows x 32 channels); their integer sums are stored once and scaled
//! as the VNNI kernel's are.

use std::arch::x86_64::*;

use super::{KernelArgs, Tile, BLOCK, GROUP};
use crate::quant::amx::{tile_dot, tile_load, tile_zero, Accumulators, TileConfig, Tiles};

/// Rows of one tile register.
const ROWS: usize = super::AMX_ROWS;
/// Inputs one step covers: a tile row of 64 codes.
const STEP: usize = super::AMX_STEP;

/// Every register 16 rows of 64 bytes: `tmm0`-`tmm3` the i32 sums of
/// (row tile, block) (0, 0), (0, 1), (1, 0), (1, 1); `tmm4`, `tmm5` two
/// row tiles of codes; `tmm6`, `tmm7` two blocks of weights.
static CONFIG: TileConfig = TileConfig::uniform(ROWS as u8, STEP as u16);

/// Computes the tile.
///
/// # Safety
/// AMX-INT8 and AVX-512F are usable; `a.padded_in` is a multiple of
/// [`STEP`]; `a.xq` holds the tile's rows rounded up to a multiple of
/// [`ROWS`]; the tile is inside the matrices and this task's.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn tile(a: &KernelArgs, tile: &Tile) {
    // SAFETY: AMX is usable (contract).
    let _tiles = unsafe { Tiles::configure(&CONFIG) };
    let mut r = tile.rows.start;
    while r < tile.rows.end {
        let two_rows = r + ROWS < tile.rows.end;
        let mut b = tile.blocks.start;
        while b < tile.blocks.end {
            let two_blocks = b + 1 < tile.blocks.end;
            // SAFETY: the caller's contract; rows from `r` and blocks from
            // `b` are the tile's.
            unsafe {
                match (two_rows, two_blocks) {
                    (true, true) => tiles::<true, true>(a, tile.rows.end, r, b),
                    (true, false) => tiles::<true, false>(a, tile.rows.end, r, b),
                    (false, true) => tiles::<false, true>(a, tile.rows.end, r, b),
                    (false, false) => tiles::<false, false>(a, tile.rows.end, r, b),
                }
            }
            b += 2;
        }
        r += 2 * ROWS;
    }
}

/// Rows `r0..` (one or two tiles, those before `end` written) by blocks
/// `b..` (one or two).
#[target_feature(enable = "avx512f")]
unsafe fn tiles<const TWO_ROWS: bool, const TWO_BLOCKS: bool>(a: &KernelArgs, end: usize, r0: usize, b: usize) {
    let groups = a.padded_in / GROUP;
    let block_bytes = groups * BLOCK * GROUP;
    let (x_stride, w_stride) = (a.padded_in, BLOCK * GROUP);
    // SAFETY: rows `r0..r0 + 16` (`+ 32` with two tiles) of `xq` exist
    // (contract), each step reads 64 of their `padded_in` bytes; a block's
    // weights are `groups` rows of 64 bytes, of which each step reads 16.
    unsafe {
        let x0 = a.xq.as_ptr().add(r0 * x_stride);
        let x1 = x0.add(ROWS * x_stride);
        let w0 = a.matrix.packed.as_ptr().add(b * block_bytes);
        let w1 = w0.add(block_bytes);
        tile_zero!(0);
        tile_zero!(1);
        tile_zero!(2);
        tile_zero!(3);
        for k in (0..a.padded_in).step_by(STEP) {
            // Group `k / 4` of a block starts at byte `k / 4 · 64`.
            let w_offset = k / GROUP * BLOCK * GROUP;
            tile_load!(4, x0.add(k), x_stride);
            tile_load!(6, w0.add(w_offset), w_stride);
            tile_dot!("tdpbusd", 0, 4, 6);
            if TWO_BLOCKS {
                tile_load!(7, w1.add(w_offset), w_stride);
                tile_dot!("tdpbusd", 1, 4, 7);
            }
            if TWO_ROWS {
                tile_load!(5, x1.add(k), x_stride);
                tile_dot!("tdpbusd", 2, 5, 6);
                if TWO_BLOCKS {
                    tile_dot!("tdpbusd", 3, 5, 7);
                }
            }
        }
    }
    // SAFETY: the tiles are configured (`tile`).
    let sums = unsafe { Accumulators::store(TWO_ROWS, TWO_BLOCKS) };
    for (row_tile, block, sums) in sums.stored(TWO_ROWS, TWO_BLOCKS) {
        let first = r0 + row_tile * ROWS;
        for (i, row) in sums.chunks_exact(BLOCK).enumerate().take(end.saturating_sub(first)) {
            // SAFETY: row `first + i < end` and block `b + block` are this
            // task's; `row` holds 16 i32.
            unsafe { super::x86::store_block(a, first + i, b + block, _mm512_loadu_si512(row.as_ptr().cast())) };
        }
    }
}
