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

pub(super) use {tile_dot, tile_load, tile_store, tile_zero};
