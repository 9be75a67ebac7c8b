//! Which instruction-set path the kernels take, decided once per process:
//! the best the processor has, or less when `FERROTUNE_KERNELS` says so
//! (`portable`: no SIMD; `avx2`: no AVX-512; `avx512`: no AMX), so that
//! tests of the fallbacks run on any machine.

use std::sync::OnceLock;

/// A kernel path, from the most portable to the fastest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SimdLevel {
    /// Plain Rust, any processor.
    Portable,
    /// x86-64 with AVX2 and FMA.
    Avx2,
    /// x86-64 with AVX-512F (and, for int8 and bf16 products, VNNI and
    /// BF16 when [`has_avx512_vnni`] / [`has_avx512_bf16`] say so).
    Avx512,
}

fn detect() -> SimdLevel {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("avx512bw") {
            return SimdLevel::Avx512;
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            return SimdLevel::Avx2;
        }
    }
    SimdLevel::Portable
}

/// The path the kernels take: what the processor has, capped by
/// `FERROTUNE_KERNELS` (`portable`, `avx2`).
pub fn level() -> SimdLevel {
    static LEVEL: OnceLock<SimdLevel> = OnceLock::new();
    *LEVEL.get_or_init(|| {
        let cap = match std::env::var("FERROTUNE_KERNELS").as_deref() {
            Ok("portable") => SimdLevel::Portable,
            Ok("avx2") => SimdLevel::Avx2,
            _ => SimdLevel::Avx512,
        };
        detect().min(cap)
    })
}

/// The mask of the first `n` of 16 lanes (all 16 from 16 on), for
/// AVX-512's masked loads and stores of a partial vector.
#[cfg(target_arch = "x86_64")]
pub(crate) fn first_lanes(n: usize) -> u16 {
    if n >= 16 {
        !0
    } else {
        (1u16 << n) - 1
    }
}

/// Whether int8 products may use AMX (`tdpbusd` on tile registers): the
/// AVX-512 path, not capped by `FERROTUNE_KERNELS=avx512`, and the
/// processor has AMX-INT8 and the kernel lets this process use the tiles.
pub fn has_amx_int8() -> bool {
    amx().int8
}

/// Whether bf16 products may use AMX (`tdpbf16ps`), as for
/// [`has_amx_int8`].
pub fn has_amx_bf16() -> bool {
    amx().bf16
}

/// The AMX parts the kernels may use.
#[derive(Clone, Copy, Default)]
struct Amx {
    int8: bool,
    bf16: bool,
}

fn amx() -> Amx {
    static AMX: OnceLock<Amx> = OnceLock::new();
    *AMX.get_or_init(|| {
        let capped = std::env::var("FERROTUNE_KERNELS").as_deref() == Ok("avx512");
        if level() != SimdLevel::Avx512 || capped {
            return Amx::default();
        }
        detect_amx()
    })
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn detect_amx() -> Amx {
    // CPUID leaf 7: EDX bit 24 AMX-TILE, 25 AMX-INT8, 22 AMX-BF16.
    let edx = std::arch::x86_64::__cpuid_count(7, 0).edx;
    if edx & (1 << 24) == 0 {
        return Amx::default();
    }
    // Linux hands out the tile data state (XTILEDATA, component 18) only to
    // processes that ask for it; it refuses when the kernel or the
    // hypervisor does not support it.
    const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
    const XFEATURE_XTILEDATA: libc::c_long = 18;
    // SAFETY: arch_prctl with these arguments only changes the process's
    // permission to use the tile registers.
    let granted = unsafe { libc::syscall(libc::SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) } == 0;
    Amx { int8: granted && edx & (1 << 25) != 0, bf16: granted && edx & (1 << 22) != 0 }
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
fn detect_amx() -> Amx {
    Amx::default()
}

/// Whether int8 products may use AVX-512 VNNI (`vpdpbusd`).
pub fn has_avx512_vnni() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        level() == SimdLevel::Avx512 && std::arch::is_x86_feature_detected!("avx512vnni")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether bf16 products may use AVX-512 BF16 (`vdpbf16ps`).
pub fn has_avx512_bf16() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        level() == SimdLevel::Avx512 && std::arch::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Defines a function whose body is compiled three times (AVX-512, AVX2 +
/// FMA, portable) and picks the copy of [`level`] at each call: for loops
/// of plain arithmetic that vectorise wider with the features enabled. The
/// copies compute bit-identical results (Rust never fuses a multiply and an
/// add on its own).
macro_rules! multiversion {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn generic($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
                unsafe fn avx512($($arg: $ty),*) $(-> $ret)? {
                    generic($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) $(-> $ret)? {
                    generic($($arg),*)
                }
                match $crate::simd::level() {
                    // SAFETY: `level` checked that the processor has these features.
                    $crate::simd::SimdLevel::Avx512 => return unsafe { avx512($($arg),*) },
                    // SAFETY: as above.
                    $crate::simd::SimdLevel::Avx2 => return unsafe { avx2($($arg),*) },
                    $crate::simd::SimdLevel::Portable => {}
                }
            }
            generic($($arg),*)
        }
    };
}
pub(crate) use multiversion;
