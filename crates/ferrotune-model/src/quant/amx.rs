//! Intel AMX tile registers, through inline assembly (Rust's AMX
//! intrinsics are not stable). A kernel configures the eight tile
//! registers for its shapes ([`Tiles::configure`]), loads rows of memory
//! into them, multiplies, stores the accumulators and releases them (on
//! drop). The tile numbers are part of the instruction, so the operations
//! are macros taking literal register numbers.
//!
//! Only [`crate::simd::has_amx_int8`] / [`crate::simd::has_amx_bf16`]
//! make the tiles usable: the process must have asked Linux for them.

use std::marker::PhantomData;
use std::mem::MaybeUninit;

/// A tile configuration (palette 1): rows and bytes per row of each of the
/// eight registers.
#[repr(C, align(64))]
pub(super) struct TileConfig([u8; 64]);

impl TileConfig {
    /// Every register `rows` rows of `bytes` bytes (at most 16 and 64).
    pub(super) const fn uniform(rows: u8, bytes: u16) -> Self {
        assert!(rows <= 16 && bytes <= 64);
        let mut config = [0u8; 64];
        config[0] = 1;
        let mut t = 0;
        while t < 8 {
            let le = bytes.to_le_bytes();
            config[16 + 2 * t] = le[0];
            config[17 + 2 * t] = le[1];
            config[48 + t] = rows;
            t += 1;
        }
        Self(config)
    }
}

/// The calling thread's tile registers, configured; released when dropped.
/// Not `Send`: the configuration belongs to the thread.
pub(super) struct Tiles(PhantomData<*const ()>);

impl Tiles {
    /// Configures the thread's tile registers.
    ///
    /// # Safety
    /// The process may use AMX tiles (see the module docs).
    #[inline]
    pub(super) unsafe fn configure(config: &TileConfig) -> Self {
        // SAFETY: AMX is usable (contract); the configuration is 64 valid bytes.
        unsafe { std::arch::asm!("ldtilecfg [{0}]", in(reg) config.0.as_ptr(), options(nostack, readonly)) };
        Tiles(PhantomData)
    }
}

impl Drop for Tiles {
    fn drop(&mut self) {
        // SAFETY: the tiles were configured by `configure`.
        unsafe { std::arch::asm!("tilerelease", options(nostack, nomem)) };
    }
}

/// Zeroes tile register `$t`.
macro_rules! tile_zero {
    ($t:literal) => {
        std::arch::asm!(concat!("tilezero tmm", $t), options(nostack, nomem))
    };
}

/// Loads tile register `$t` from rows `$stride` bytes apart at `$ptr`.
macro_rules! tile_load {
    ($t:literal, $ptr:expr, $stride:expr) => {
        std::arch::asm!(
            concat!("tileloadd tmm", $t, ", [{0} + {1}*1]"),
            in(reg) $ptr,
            in(reg) $stride,
            options(nostack, readonly)
        )
    };
}

/// Stores tile register `$t` into rows `$stride` bytes apart at `$ptr`.
macro_rules! tile_store {
    ($t:literal, $ptr:expr, $stride:expr) => {
        std::arch::asm!(
            concat!("tilestored [{0} + {1}*1], tmm", $t),
            in(reg) $ptr,
            in(reg) $stride,
            options(nostack)
        )
    };
}

/// `tmm$c += tmm$a · tmm$b` with the instruction `$op` (`tdpbusd`: u8 by
/// i8 into i32; `tdpbf16ps`: bf16 pairs into f32).
macro_rules! tile_dot {
    ($op:literal, $c:literal, $a:literal, $b:literal) => {
        std::arch::asm!(concat!($op, " tmm", $c, ", tmm", $a, ", tmm", $b), options(nostack, nomem))
    };
}

/// Words (32-bit sums) of one accumulator: 16 rows of 16.
const ACCUMULATOR_WORDS: usize = 16 * 16;

/// The sums of the kernels' four accumulators, `tmm0`-`tmm3`: (row tile,
/// block) (0, 0), (0, 1), (1, 0) and (1, 1), each 16 rows of 16 32-bit
/// words (i32 for int8, f32 for bf16). Only the stored ones are
/// initialised (the others are never read).
#[repr(C, align(64))]
pub(super) struct Accumulators([MaybeUninit<[u32; ACCUMULATOR_WORDS]>; 4]);

impl Accumulators {
    /// Stores the accumulators in use: the second row tile's only with
    /// `two_rows`, the second block's only with `two_blocks`.
    ///
    /// # Safety
    /// The tiles are configured (`tmm0`-`tmm3` 16 rows of 64 bytes).
    #[inline]
    pub(super) unsafe fn store(two_rows: bool, two_blocks: bool) -> Self {
        let mut sums = Accumulators([MaybeUninit::uninit(); 4]);
        let row_bytes = 64usize;
        // SAFETY: each accumulator's 16 rows of 64 bytes fit its array
        // (contract for the tiles); `tilestored` writes all of them.
        unsafe {
            tile_store!(0, sums.0[0].as_mut_ptr(), row_bytes);
            if two_blocks {
                tile_store!(1, sums.0[1].as_mut_ptr(), row_bytes);
            }
            if two_rows {
                tile_store!(2, sums.0[2].as_mut_ptr(), row_bytes);
                if two_blocks {
                    tile_store!(3, sums.0[3].as_mut_ptr(), row_bytes);
                }
            }
        }
        sums
    }

    /// The stored accumulators: (row tile, block, their 16 rows of 16
    /// words).
    pub(super) fn stored(&self, two_rows: bool, two_blocks: bool) -> impl Iterator<Item = (usize, usize, &[u32])> {
        self.0.iter().enumerate().filter_map(move |(t, words)| {
            let (row_tile, block) = (t / 2, t % 2);
            let used = (row_tile == 0 || two_rows) && (block == 0 || two_blocks);
            // SAFETY: `store` wrote every accumulator in use.
            used.then(|| (row_tile, block, &unsafe { words.assume_init_ref() }[..]))
        })
    }
}

pub(super) use {tile_dot, tile_load, tile_store, tile_zero};
