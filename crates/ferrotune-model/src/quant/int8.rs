//! Dynamic int8 quantization of a linear layer, as ONNX Runtime's
//! `quantize_dynamic` does it: weights int8, symmetric, one scale per output
//! channel, packed once; activations quantized per row at run time; int32
//! accumulation; scales and bias applied in fp32.
//!
//! Packed layout (what `vpdpbusd` wants): output channels in blocks of 16,
//! inputs in groups of 4; block `b`, group `g`, channel `j`, input `t` is
//! byte `(b * groups + g) * 64 + j * 4 + t`. A row's four quantized inputs
//! of a group, broadcast as one 32-bit value, times one 64-byte load of the
//! block give 16 channels' partial sums in one instruction.
//!
//! Activations are unsigned and asymmetric, as ONNX Runtime's are: each
//! row's range (0 included) maps onto the codes `0..=top`, so `x ≈ (u - zero)
//! · scale` with the row's own zero point, and `Σ (u - zero) w = Σ u w -
//! zero Σ w`, the second term subtracted with the channel's weight sum.
//! A row of GELU outputs (about -0.17 up to a few units) thus gets almost
//! twice the steps a symmetric code would give it.
//!
//! AVX2 has no `vpdpbusd`; `vpmaddubsw` adds two u8·i8 products into a
//! saturating i16. There activations use 7 bits (codes up to 127), and two
//! groups' pair sums add in i16 before one `vpmaddwd` widens them: three
//! multiplies per 32 channel-inputs where one group at a time takes four.
//! An i16 lane then holds four products, which cannot saturate when the
//! channel's four weights of either sign sum to at most 258 (127 · 258 <
//! 2¹⁵). Most channels meet that with their ±127 weights; the others (about
//! one in eight in the demo model) are quantized again, for the AVX2 path
//! only, to the largest range that meets it (±64 always does; ONNX
//! Runtime's `reduce_range` takes a bit from every weight on such
//! processors instead). The weights are packed for the path the process
//! runs ([`simd::level`]).

use rayon::prelude::*;

use super::{AMX_ROWS, AMX_TASK};
use crate::scratch;
use crate::simd::{self, SimdLevel};

#[cfg(target_arch = "x86_64")]
mod amx;

/// Output channels per packed block.
const BLOCK: usize = 16;
/// Inputs per group.
const GROUP: usize = 4;
/// Rows of `x` per parallel task.
const ROWS_PER_TASK: usize = 64;
/// Blocks per parallel task.
const BLOCKS_PER_TASK: usize = 4;
/// AMX: inputs one step covers (a tile row of 64 codes).
const AMX_STEP: usize = 64;

/// A weight matrix `[out, in]` quantized to int8 per output channel and
/// packed for the kernels.
#[derive(Debug, Clone, PartialEq)]
pub struct Int8Matrix {
    out_dim: usize,
    in_dim: usize,
    /// Packed weights (see the module docs); padding is zero.
    packed: Vec<i8>,
    /// Scale of each output channel (`max |w|` over its largest code, 127
    /// or, on AVX2, less where a lane needs it), padded with zeros.
    scales: Vec<f32>,
    /// Sum of each output channel's quantized weights.
    sums: Vec<i32>,
    /// Whether no channel can saturate an AVX2 i16 lane (see the module docs).
    lanes_fit: bool,
}

/// The largest activation code on a path (see the module docs).
fn top_code(level: SimdLevel) -> f32 {
    if level == SimdLevel::Avx2 {
        127.0
    } else {
        255.0
    }
}

/// How one row of activations was quantized: `x ≈ (u - zero) · scale`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct RowCode {
    scale: f32,
    zero: i32,
}

impl RowCode {
    /// The code of a row whose values lie in `lo..=hi` (0 among them) on
    /// the codes `0..=top`.
    fn new(lo: f32, hi: f32, top: f32) -> Self {
        if hi > lo {
            let scale = (hi - lo) / top;
            Self { scale, zero: (-lo / scale).round().clamp(0.0, top) as i32 }
        } else {
            Self { scale: 1.0, zero: 0 }
        }
    }

    /// The range of `x · (1 / scale)` that maps onto the codes `0..=top`.
    fn clamp_range(self, top: f32) -> (f32, f32) {
        (-(self.zero as f32), top - self.zero as f32)
    }
}

/// The largest weight magnitude (stored folders' too).
pub(super) const WEIGHT_MAX: i32 = 127;

/// One channel's weights quantized symmetrically to `±code`, and its scale.
pub(super) fn quantize_channel(row: &[f32], code: i32) -> (f32, Vec<i8>) {
    let (max, code) = (row.iter().fold(0f32, |m, v| m.max(v.abs())), code as f32);
    let scale = if max > 0.0 { max / code } else { 1.0 };
    (scale, row.iter().map(|v| (v / scale).round().clamp(-code, code) as i8).collect())
}

/// On the AVX2 path one i16 lane adds four products of activation codes
/// (up to 127) and one channel's weights: inputs `8p + 2h + {0, 1, 4, 5}`
/// (pair `h` of groups `2p` and `2p + 1`). Its weights of either sign may
/// sum to at most this, so that `127 · 258 = 32,766` fits.
const LANE_WEIGHT_SUM: i32 = 258;

/// The largest sum of same-signed weights in one AVX2 i16 lane of a
/// channel's row of weights (see [`LANE_WEIGHT_SUM`]).
fn worst_lane_sum(row: &[i8]) -> i32 {
    let mut worst = 0;
    for pair in row.chunks(2 * GROUP) {
        for half in 0..2 {
            let (mut up, mut down) = (0, 0);
            for k in [0, 1, GROUP, GROUP + 1].map(|k| k + 2 * half) {
                let w = pair.get(k).map_or(0, |&w| i32::from(w));
                (up, down) = (up + w.max(0), down + (-w).max(0));
            }
            worst = worst.max(up).max(down);
        }
    }
    worst
}

/// One channel as packed: scale, weights, and whether no AVX2 lane of it
/// can saturate.
struct Channel {
    scale: f32,
    weights: Vec<i8>,
    lanes_fit: bool,
}

/// A channel's weights and scale for `path`: `quantize(WEIGHT_MAX)`, or on
/// the AVX2 path, where that would saturate a lane, `quantize(code)` at the
/// largest code that does not (64 always fits: 4 · 64 <= 258).
fn fit_channel(path: SimdLevel, quantize: impl Fn(i32) -> (f32, Vec<i8>)) -> Channel {
    let (scale, weights) = quantize(WEIGHT_MAX);
    let worst = worst_lane_sum(&weights);
    if path != SimdLevel::Avx2 || worst <= LANE_WEIGHT_SUM {
        return Channel { scale, weights, lanes_fit: worst <= LANE_WEIGHT_SUM };
    }
    let mut code = (WEIGHT_MAX * LANE_WEIGHT_SUM / worst).max(64);
    loop {
        let (scale, weights) = quantize(code);
        if code <= 64 || worst_lane_sum(&weights) <= LANE_WEIGHT_SUM {
            return Channel { scale, weights, lanes_fit: true };
        }
        code -= 1;
    }
}

/// The int8 kernel path for `level`: AVX-512 without VNNI runs AVX2's.
fn int8_path(level: SimdLevel) -> SimdLevel {
    if level == SimdLevel::Avx512 && !simd::has_avx512_vnni() {
        SimdLevel::Avx2
    } else {
        level
    }
}

/// The kernel that computes a product's tiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kernel {
    /// Plain Rust.
    Portable,
    /// `vpmaddubsw` (7-bit activations, see the module docs).
    Avx2,
    /// AVX-512 VNNI `vpdpbusd`, rows and blocks in vector registers.
    Vnni,
    /// AMX `tdpbusd` on tile registers (16 rows x 64 inputs by 64 inputs x
    /// 16 channels per instruction), the weights packed as for VNNI.
    Amx,
}

impl Kernel {
    /// The fastest kernel on `level`'s path.
    fn best(level: SimdLevel) -> Self {
        match int8_path(level) {
            SimdLevel::Avx512 if simd::has_amx_int8() => Kernel::Amx,
            SimdLevel::Avx512 => Kernel::Vnni,
            SimdLevel::Avx2 => Kernel::Avx2,
            SimdLevel::Portable => Kernel::Portable,
        }
    }

    /// The path whose weights and activation codes the kernel takes.
    fn path(self) -> SimdLevel {
        match self {
            Kernel::Portable => SimdLevel::Portable,
            Kernel::Avx2 => SimdLevel::Avx2,
            Kernel::Vnni | Kernel::Amx => SimdLevel::Avx512,
        }
    }
}

impl Int8Matrix {
    /// Quantizes `w` (`[out_dim, in_dim]`, row-major) for the process's
    /// kernel path.
    pub fn quantize(w: &[f32], out_dim: usize, in_dim: usize) -> Self {
        Self::quantize_on(int8_path(simd::level()), w, out_dim, in_dim)
    }

    fn quantize_on(path: SimdLevel, w: &[f32], out_dim: usize, in_dim: usize) -> Self {
        assert_eq!(w.len(), out_dim * in_dim, "weights of {out_dim} x {in_dim}");
        let channels: Vec<Channel> =
            w.par_chunks(in_dim.max(1)).map(|row| fit_channel(path, |code| quantize_channel(row, code))).collect();
        Self::pack(channels, out_dim, in_dim)
    }

    /// Packs stored quantized weights `values` (`[out_dim, in_dim]`) with
    /// their per-channel `scales` for the process's kernel path (on AVX2 a
    /// channel that could saturate a lane is re-quantized to a narrower
    /// range, see the module docs).
    pub fn from_quantized(values: &[i8], scales: &[f32], out_dim: usize, in_dim: usize) -> Self {
        Self::from_quantized_on(int8_path(simd::level()), values, scales, out_dim, in_dim)
    }

    fn from_quantized_on(path: SimdLevel, values: &[i8], scales: &[f32], out_dim: usize, in_dim: usize) -> Self {
        assert_eq!(values.len(), out_dim * in_dim);
        assert_eq!(scales.len(), out_dim);
        let channels: Vec<Channel> = values
            .par_chunks(in_dim.max(1))
            .zip(scales)
            .map(|(row, &scale)| {
                fit_channel(path, |code| {
                    if code == WEIGHT_MAX {
                        return (scale, row.to_vec());
                    }
                    let ratio = code as f32 / WEIGHT_MAX as f32;
                    let code = code as f32;
                    (
                        scale / ratio,
                        row.iter().map(|&v| (f32::from(v) * ratio).round().clamp(-code, code) as i8).collect(),
                    )
                })
            })
            .collect();
        Self::pack(channels, out_dim, in_dim)
    }

    /// Packs each channel's scale and weights (see the module docs).
    fn pack(channels: Vec<Channel>, out_dim: usize, in_dim: usize) -> Self {
        assert_eq!(channels.len(), out_dim);
        let (blocks, groups) = (out_dim.div_ceil(BLOCK), in_dim.div_ceil(GROUP));
        let mut packed = vec![0i8; blocks * groups * BLOCK * GROUP];
        let (mut scales, mut sums) = (vec![0f32; blocks * BLOCK], vec![0i32; blocks * BLOCK]);
        let mut lanes_fit = true;
        for (c, Channel { scale, weights: row, lanes_fit: fits }) in channels.into_iter().enumerate() {
            assert_eq!(row.len(), in_dim);
            let (b, j) = (c / BLOCK, c % BLOCK);
            for (k, &v) in row.iter().enumerate() {
                packed[(b * groups + k / GROUP) * BLOCK * GROUP + j * GROUP + k % GROUP] = v;
            }
            scales[c] = scale;
            sums[c] = row.iter().map(|&v| i32::from(v)).sum();
            lanes_fit &= fits;
        }
        Self { out_dim, in_dim, packed, scales, sums, lanes_fit }
    }

    /// Output channels.
    pub fn out_dim(&self) -> usize {
        self.out_dim
    }

    /// Inputs.
    pub fn in_dim(&self) -> usize {
        self.in_dim
    }

    /// The quantized weights, `[out_dim, in_dim]` row-major, and the scales.
    pub fn unpack(&self) -> (Vec<i8>, Vec<f32>) {
        let groups = self.in_dim.div_ceil(GROUP);
        let mut values = vec![0i8; self.out_dim * self.in_dim];
        for c in 0..self.out_dim {
            let (b, j) = (c / BLOCK, c % BLOCK);
            for k in 0..self.in_dim {
                values[c * self.in_dim + k] =
                    self.packed[(b * groups + k / GROUP) * BLOCK * GROUP + j * GROUP + k % GROUP];
            }
        }
        (values, self.scales[..self.out_dim].to_vec())
    }

    /// `out[r, col + c] = b[c] + Σₖ x[r, k] · w[c, k]` for `x` `[rows, in]`,
    /// into rows of `out_width` values; the kernel is the fastest of
    /// [`simd::level`]'s path.
    pub fn linear(&self, x: &[f32], b: &[f32], out: &mut [f32], out_width: usize, col: usize) {
        Self::linear_shared(&[(self, b, col)], x, out, out_width)
    }

    /// [`Self::linear`] of several matrices of the same input width over
    /// the same `x`, each `(matrix, bias, first column)`, with `x`
    /// quantized once (as for the query, key and value projections).
    pub fn linear_shared(parts: &[(&Int8Matrix, &[f32], usize)], x: &[f32], out: &mut [f32], out_width: usize) {
        Self::shared_on(Kernel::best(simd::level()), parts, x, out, out_width)
    }

    fn shared_on(kernel: Kernel, parts: &[(&Int8Matrix, &[f32], usize)], x: &[f32], out: &mut [f32], out_width: usize) {
        let Some(&(first, _, _)) = parts.first() else { return };
        let in_dim = first.in_dim;
        let rows = x.len() / in_dim;
        assert!(x.len() == rows * in_dim && out.len() == rows * out_width);
        for &(m, b, col) in parts {
            assert!(m.in_dim == in_dim && b.len() == m.out_dim && col + m.out_dim <= out_width);
        }
        // Tasks of different parts write at once: their columns must not overlap.
        let mut columns: Vec<_> = parts.iter().map(|(m, _, col)| (*col, col + m.out_dim)).collect();
        columns.sort_unstable();
        assert!(columns.windows(2).all(|w| w[0].1 <= w[1].0), "int8 products writing the same columns");
        let padded_in = in_dim.div_ceil(GROUP) * GROUP;
        // AMX takes 64 inputs per step: other widths run on VNNI.
        let kernel = if kernel == Kernel::Amx && !padded_in.is_multiple_of(AMX_STEP) { Kernel::Vnni } else { kernel };
        let level = kernel.path();
        assert!(
            level != SimdLevel::Avx2 || parts.iter().all(|(m, _, _)| m.lanes_fit),
            "int8 weights packed for another path than AVX2"
        );
        let top = top_code(level);
        // AMX loads whole tiles of rows: the rows past the last are read
        // (whatever they hold) and their sums dropped.
        let (held_rows, rows_per_task, blocks_per_task) = match kernel {
            Kernel::Amx => (rows.next_multiple_of(AMX_ROWS), AMX_TASK.0, AMX_TASK.1),
            _ => (rows, ROWS_PER_TASK, BLOCKS_PER_TASK),
        };
        let mut storage = scratch::take((held_rows * padded_in).div_ceil(4));
        let xq = &mut bytemuck::cast_slice_mut::<f32, u8>(&mut storage)[..held_rows * padded_in];
        let x_codes = quantize_rows(x, in_dim, top, level, xq);
        let xq = &*xq;
        let out_ptr = OutPtr(out.as_mut_ptr());
        // Every part's tasks in one parallel loop: (part, rows, blocks).
        let mut tasks = Vec::new();
        for (part, (m, _, _)) in parts.iter().enumerate() {
            let blocks = m.out_dim.div_ceil(BLOCK);
            for row_start in (0..rows).step_by(rows_per_task) {
                for block_start in (0..blocks).step_by(blocks_per_task) {
                    let tile = Tile {
                        rows: row_start..(row_start + rows_per_task).min(rows),
                        blocks: block_start..(block_start + blocks_per_task).min(blocks),
                    };
                    tasks.push((part, tile));
                }
            }
        }
        tasks.into_par_iter().for_each(|(part, tile)| {
            let (matrix, bias, col) = parts[part];
            let args = KernelArgs { matrix, xq, x_codes: &x_codes, padded_in, bias, out: out_ptr, out_width, col };
            match kernel {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: AMX-INT8 is usable (`Kernel::best` or the test
                // checked it); the inputs are whole steps of 64 and `xq`
                // holds whole tiles of rows (above); the tile is inside the
                // matrices; this task writes its own rows and columns of
                // `out` only (the parts' columns do not overlap: caller).
                Kernel::Amx => unsafe { amx::tile(&args, &tile) },
                #[cfg(target_arch = "x86_64")]
                // SAFETY: VNNI is present (as above); the tile is inside
                // the matrices; as above for `out`.
                Kernel::Vnni => unsafe { x86::tile_vnni(&args, &tile) },
                #[cfg(target_arch = "x86_64")]
                // SAFETY: AVX2 is present (`simd::level` checked it); as above.
                Kernel::Avx2 => unsafe { x86::tile_avx2(&args, &tile) },
                _ => tile_portable(&args, &tile),
            }
        });
        scratch::give_back(storage);
    }
}

/// Quantizes each row of `x` onto the codes `0..=top` (see the module
/// docs) into `q`'s rows of `in_dim` rounded up to a multiple of [`GROUP`];
/// returns each row's code. The padding keeps whatever bytes it held: the
/// packed weights it meets are zero.
fn quantize_rows(x: &[f32], in_dim: usize, top: f32, level: SimdLevel, q: &mut [u8]) -> Vec<RowCode> {
    let padded = in_dim.div_ceil(GROUP) * GROUP;
    let rows = x.len() / in_dim;
    let mut codes = vec![RowCode { scale: 1.0, zero: 0 }; rows];
    q[..rows * padded]
        .par_chunks_mut(padded)
        .zip(codes.par_iter_mut())
        .zip(x.par_chunks(in_dim))
        .with_min_len(16)
        .for_each(|((q, code), x)| *code = quantize_row_on(level, x, top, q));
    codes
}

/// Quantizes one row on `level`'s path; returns its code. Every path
/// gives the same values (the vector paths round to nearest even, as
/// [`round_even`] does).
fn quantize_row_on(level: SimdLevel, x: &[f32], top: f32, q: &mut [u8]) -> RowCode {
    #[cfg(target_arch = "x86_64")]
    match level {
        SimdLevel::Avx512 => {
            // SAFETY: AVX-512F/BW are present at this level; `q` holds at
            // least `x.len()` values.
            let (lo, hi) = unsafe { x86::range(x) };
            let code = RowCode::new(lo, hi, top);
            let (lo, hi) = code.clamp_range(top);
            // SAFETY: as above.
            unsafe { x86::quantize_row(x, 1.0 / code.scale, lo, hi, code.zero, q) };
            return code;
        }
        SimdLevel::Avx2 => {
            // SAFETY: AVX2 is present at this level; `q` holds at least
            // `x.len()` values.
            let (lo, hi) = unsafe { x86::range_avx2(x) };
            let code = RowCode::new(lo, hi, top);
            // SAFETY: as above.
            let done = unsafe {
                let (lo, hi) = code.clamp_range(top);
                x86::quantize_row_avx2(x, 1.0 / code.scale, lo, hi, code.zero, q)
            };
            quantize_plain(&x[done..], code, top, &mut q[done..]);
            return code;
        }
        SimdLevel::Portable => {}
    }
    let _ = level;
    let (lo, hi) = range(x);
    let code = RowCode::new(lo, hi, top);
    quantize_plain(x, code, top, q);
    code
}

/// The smallest and largest of `x` and 0 (NaN is ignored).
fn range(x: &[f32]) -> (f32, f32) {
    x.iter().fold((0f32, 0f32), |(lo, hi), &v| (lo.min(v), hi.max(v)))
}

/// `q = round_even(clamp(x / scale)) + zero`, in plain Rust.
fn quantize_plain(x: &[f32], code: RowCode, top: f32, q: &mut [u8]) {
    let (inv, (lo, hi)) = (1.0 / code.scale, code.clamp_range(top));
    for (q, v) in q.iter_mut().zip(x) {
        *q = (round_even((v * inv).clamp(lo, hi)) + code.zero as f32) as u8;
    }
}

/// Rounds to the nearest integer, ties to even (what the vector convert
/// instructions do), in plain arithmetic that vectorises: adding and
/// subtracting 1.5 · 2²³ drops the fraction in the current (nearest-even)
/// rounding mode. For `|v| < 2²²`.
fn round_even(v: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0;
    (v + MAGIC) - MAGIC
}

/// The rows and blocks one task computes.
struct Tile {
    rows: std::ops::Range<usize>,
    blocks: std::ops::Range<usize>,
}

/// Everything a tile kernel reads and where it writes.
struct KernelArgs<'a> {
    matrix: &'a Int8Matrix,
    xq: &'a [u8],
    x_codes: &'a [RowCode],
    padded_in: usize,
    bias: &'a [f32],
    out: OutPtr,
    out_width: usize,
    col: usize,
}

impl KernelArgs<'_> {
    /// Writes channel `c` of row `r` from its integer sum.
    ///
    /// # Safety
    /// `r` and `c` are inside the output; no other task writes them.
    #[inline(always)]
    unsafe fn store(&self, r: usize, c: usize, acc: i32) {
        let m = self.matrix;
        let x = self.x_codes[r];
        let value = (acc - x.zero * m.sums[c]) as f32 * (x.scale * m.scales[c]) + self.bias[c];
        // SAFETY: the caller's contract.
        unsafe { *self.out.0.add(r * self.out_width + self.col + c) = value };
    }
}

/// A destination pointer that tasks write disjoint parts of.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: tasks write disjoint (row, column) cells.
unsafe impl Send for OutPtr {}
// SAFETY: as for Send.
unsafe impl Sync for OutPtr {}

/// The tile in plain Rust.
fn tile_portable(a: &KernelArgs, tile: &Tile) {
    let m = a.matrix;
    let groups = a.padded_in / GROUP;
    for r in tile.rows.clone() {
        let x = &a.xq[r * a.padded_in..(r + 1) * a.padded_in];
        for b in tile.blocks.clone() {
            let mut acc = [0i32; BLOCK];
            for g in 0..groups {
                let w = &m.packed[(b * groups + g) * BLOCK * GROUP..][..BLOCK * GROUP];
                let xg = &x[g * GROUP..(g + 1) * GROUP];
                for (j, acc) in acc.iter_mut().enumerate() {
                    *acc += (0..GROUP).map(|t| xg[t] as i32 * w[j * GROUP + t] as i32).sum::<i32>();
                }
            }
            for (j, &acc) in acc.iter().enumerate().take(m.out_dim.saturating_sub(b * BLOCK)) {
                // SAFETY: row `r` and channel `b * 16 + j < out_dim` belong
                // to this tile.
                unsafe { a.store(r, b * BLOCK + j, acc) };
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{KernelArgs, Tile, BLOCK, GROUP};

    /// Rows of a register tile.
    const R: usize = 4;

    /// The smallest and largest of `x` and 0 (NaN is ignored).
    ///
    /// # Safety
    /// AVX-512F is present.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn range(x: &[f32]) -> (f32, f32) {
        // Four running minima and maxima, so that the loop is not bound by
        // the latency of one chain.
        let (mut lo, mut hi) = ([_mm512_setzero_ps(); 4], [_mm512_setzero_ps(); 4]);
        let quads = x.chunks_exact(64);
        let tail = quads.remainder();
        for quad in quads {
            for j in 0..4 {
                // SAFETY: the quad holds 64 values.
                let v = unsafe { _mm512_loadu_ps(quad.as_ptr().add(16 * j)) };
                // `min_ps` and `max_ps` return their second operand when either is NaN.
                lo[j] = _mm512_min_ps(v, lo[j]);
                hi[j] = _mm512_max_ps(v, hi[j]);
            }
        }
        for chunk in tail.chunks(16) {
            let mask: __mmask16 = crate::simd::first_lanes(chunk.len());
            // SAFETY: masked to the chunk's lanes (the others read as 0).
            let v = unsafe { _mm512_maskz_loadu_ps(mask, chunk.as_ptr()) };
            lo[0] = _mm512_min_ps(v, lo[0]);
            hi[0] = _mm512_max_ps(v, hi[0]);
        }
        let lo = _mm512_min_ps(_mm512_min_ps(lo[0], lo[1]), _mm512_min_ps(lo[2], lo[3]));
        let hi = _mm512_max_ps(_mm512_max_ps(hi[0], hi[1]), _mm512_max_ps(hi[2], hi[3]));
        (_mm512_reduce_min_ps(lo), _mm512_reduce_max_ps(hi))
    }

    /// Quantizes one row: `q = round_even(clamp(x · inv, lo, hi)) + zero`.
    ///
    /// # Safety
    /// AVX-512F/BW are present; `q.len() >= x.len()`.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn quantize_row(x: &[f32], inv: f32, lo: f32, hi: f32, zero: i32, q: &mut [u8]) {
        let (inv, hi, lo, zero) =
            (_mm512_set1_ps(inv), _mm512_set1_ps(hi), _mm512_set1_ps(lo), _mm512_set1_epi32(zero));
        for (i, chunk) in x.chunks(16).enumerate() {
            let mask: __mmask16 = crate::simd::first_lanes(chunk.len());
            // SAFETY: masked to the chunk's lanes; `q` has room (contract).
            unsafe {
                let v = _mm512_maskz_loadu_ps(mask, chunk.as_ptr());
                let y = _mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(v, inv), lo), hi);
                let n = _mm512_add_epi32(_mm512_cvtps_epi32(y), zero);
                _mm512_mask_cvtepi32_storeu_epi8(q.as_mut_ptr().add(i * 16).cast(), mask, n);
            }
        }
    }

    /// The smallest and largest of `x` and 0 (NaN is ignored).
    ///
    /// # Safety
    /// AVX2 is present.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn range_avx2(x: &[f32]) -> (f32, f32) {
        let (mut lo, mut hi) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let chunks = x.chunks_exact(8);
        let tail = super::range(chunks.remainder());
        for chunk in chunks {
            // SAFETY: the chunk holds 8 values.
            let v = unsafe { _mm256_loadu_ps(chunk.as_ptr()) };
            // `min_ps` and `max_ps` return their second operand when either is NaN.
            lo = _mm256_min_ps(v, lo);
            hi = _mm256_max_ps(v, hi);
        }
        let (mut lows, mut highs) = ([0f32; 8], [0f32; 8]);
        // SAFETY: both arrays hold 8 values.
        unsafe {
            _mm256_storeu_ps(lows.as_mut_ptr(), lo);
            _mm256_storeu_ps(highs.as_mut_ptr(), hi);
        }
        (lows.iter().fold(tail.0, |m, &v| m.min(v)), highs.iter().fold(tail.1, |m, &v| m.max(v)))
    }

    /// Quantizes the first multiple of 32 values of a row (`q = round_even(
    /// clamp(x · inv, lo, hi)) + zero`, for codes inside 0..=255); returns
    /// how many.
    ///
    /// # Safety
    /// AVX2 is present; `q.len() >= x.len()`.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn quantize_row_avx2(x: &[f32], inv: f32, lo: f32, hi: f32, zero: i32, q: &mut [u8]) -> usize {
        let (inv, hi, lo, zero) =
            (_mm256_set1_ps(inv), _mm256_set1_ps(hi), _mm256_set1_ps(lo), _mm256_set1_epi32(zero));
        // `packs` and `packus` interleave the 128-bit lanes; this puts the
        // four 8-byte runs of each lane back in order.
        let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
        let chunks = x.chunks_exact(32);
        let done = x.len() - chunks.remainder().len();
        for (i, chunk) in chunks.enumerate() {
            let mut codes = [_mm256_setzero_si256(); 4];
            for (j, code) in codes.iter_mut().enumerate() {
                // SAFETY: the chunk holds 32 values.
                let v = unsafe { _mm256_loadu_ps(chunk.as_ptr().add(8 * j)) };
                let y = _mm256_min_ps(_mm256_max_ps(_mm256_mul_ps(v, inv), lo), hi);
                *code = _mm256_add_epi32(_mm256_cvtps_epi32(y), zero);
            }
            let words = (_mm256_packs_epi32(codes[0], codes[1]), _mm256_packs_epi32(codes[2], codes[3]));
            let bytes = _mm256_permutevar8x32_epi32(_mm256_packus_epi16(words.0, words.1), order);
            // SAFETY: `q` has room for the chunk (contract).
            unsafe { _mm256_storeu_si256(q.as_mut_ptr().add(32 * i).cast(), bytes) };
        }
        done
    }

    /// The tile with AVX-512 VNNI: 4 rows x up to 4 blocks of 16 channels
    /// in registers, one `vpdpbusd` per (row, block) and input group.
    ///
    /// # Safety
    /// AVX-512F/BW and VNNI are present; the tile is inside the matrices.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn tile_vnni(a: &KernelArgs, tile: &Tile) {
        let mut r = tile.rows.start;
        while r < tile.rows.end {
            let n = (tile.rows.end - r).min(R);
            let mut b = tile.blocks.start;
            while b < tile.blocks.end {
                let nb = (tile.blocks.end - b).min(4);
                // SAFETY: the caller's contract; rows `r..r + n` and blocks
                // `b..b + nb` are in the tile.
                unsafe { crate::quant::dispatch_tile!(n, nb, rows_vnni(a, r, b)) }
                b += nb;
            }
            r += n;
        }
    }

    /// Rows `r0..r0 + N` by blocks `b..b + NB`, all in registers.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    #[inline]
    unsafe fn rows_vnni<const N: usize, const NB: usize>(a: &KernelArgs, r0: usize, b: usize) {
        let m = a.matrix;
        let groups = a.padded_in / GROUP;
        {
            let mut acc = [[_mm512_setzero_si512(); NB]; N];
            let x_rows: [*const u8; N] = std::array::from_fn(|i| a.xq[(r0 + i) * a.padded_in..].as_ptr());
            let w_base = m.packed.as_ptr();
            for g in 0..groups {
                // SAFETY: blocks `b..b + NB` and group `g` are inside `packed`.
                let w: [__m512i; NB] = std::array::from_fn(|k| unsafe {
                    _mm512_loadu_si512(w_base.add(((b + k) * groups + g) * BLOCK * GROUP).cast())
                });
                for (i, x_row) in x_rows.iter().enumerate() {
                    // SAFETY: group `g` of row `r0 + i` is inside `xq`.
                    let xb = _mm512_set1_epi32(unsafe { x_row.add(g * GROUP).cast::<i32>().read_unaligned() });
                    for k in 0..NB {
                        acc[i][k] = _mm512_dpbusd_epi32(acc[i][k], xb, w[k]);
                    }
                }
            }
            for k in 0..NB {
                for (i, acc) in acc.iter().enumerate() {
                    // SAFETY: row `r0 + i` and block `b + k` are this tile's.
                    unsafe { store_block(a, r0 + i, b + k, acc[k]) };
                }
            }
        }
    }

    /// Writes row `r`'s channels of block `b` from their integer sums, as
    /// [`KernelArgs::store`] does one.
    ///
    /// # Safety
    /// AVX-512F is present; row `r` and block `b` are inside the product
    /// and this task's.
    #[target_feature(enable = "avx512f")]
    #[inline]
    pub(super) unsafe fn store_block(a: &KernelArgs, r: usize, b: usize, acc: __m512i) {
        let m = a.matrix;
        let c0 = b * BLOCK;
        let valid = m.out_dim.saturating_sub(c0).min(BLOCK);
        let mask: __mmask16 = crate::simd::first_lanes(valid);
        // SAFETY: `sums` and `scales` are padded to whole blocks; the bias is
        // read (and the output written) in the valid lanes only.
        unsafe {
            let sums = _mm512_loadu_si512(m.sums.as_ptr().add(c0).cast());
            let channel_scales = _mm512_loadu_ps(m.scales.as_ptr().add(c0));
            let bias = _mm512_maskz_loadu_ps(mask, a.bias.as_ptr().add(c0));
            let x = a.x_codes[r];
            let offset = _mm512_mullo_epi32(_mm512_set1_epi32(x.zero), sums);
            let scale = _mm512_mul_ps(_mm512_set1_ps(x.scale), channel_scales);
            let value = _mm512_cvtepi32_ps(_mm512_sub_epi32(acc, offset));
            let value = _mm512_add_ps(_mm512_mul_ps(value, scale), bias);
            _mm512_mask_storeu_ps(a.out.0.add(r * a.out_width + a.col + c0), mask, value);
        }
    }

    /// The tile with AVX2: `vpmaddubsw` (u8 x i8 pairs into i16), two
    /// groups added in i16, then `vpmaddwd` by ones into i32 (7-bit
    /// activations and weights within ±64 so that nothing saturates).
    ///
    /// # Safety
    /// AVX2 is present; the tile is inside the matrices; the weights are
    /// within ±64.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn tile_avx2(a: &KernelArgs, tile: &Tile) {
        let mut r = tile.rows.start;
        while r < tile.rows.end {
            let n = (tile.rows.end - r).min(R);
            // SAFETY: the caller's contract; rows `r..r + n` are in the tile.
            unsafe {
                match n {
                    4 => rows_avx2::<4>(a, tile, r),
                    3 => rows_avx2::<3>(a, tile, r),
                    2 => rows_avx2::<2>(a, tile, r),
                    _ => rows_avx2::<1>(a, tile, r),
                }
            }
            r += n;
        }
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn rows_avx2<const N: usize>(a: &KernelArgs, tile: &Tile, r0: usize) {
        let m = a.matrix;
        let groups = a.padded_in / GROUP;
        let ones = _mm256_set1_epi16(1);
        let x_rows: [*const u8; N] = std::array::from_fn(|i| a.xq[(r0 + i) * a.padded_in..].as_ptr());
        for b in tile.blocks.clone() {
            // Two halves of 8 channels per block.
            let mut acc = [[_mm256_setzero_si256(); 2]; N];
            let w_block = m.packed[b * groups * BLOCK * GROUP..].as_ptr();
            // Two groups at a time: their i16 pair sums add without
            // saturating (module docs), then one `vpmaddwd` per half.
            for g in (0..groups - groups % 2).step_by(2) {
                // SAFETY: groups `g` and `g + 1` of block `b` and of the
                // tile's rows are inside `packed` and `xq`.
                let (wa, wb) = unsafe { (group_weights(w_block, g), group_weights(w_block, g + 1)) };
                for (acc, &x_row) in acc.iter_mut().zip(&x_rows) {
                    // SAFETY: as above.
                    let (xa, xb) = unsafe { (group_codes(x_row, g), group_codes(x_row, g + 1)) };
                    for half in 0..2 {
                        let pairs =
                            _mm256_add_epi16(_mm256_maddubs_epi16(xa, wa[half]), _mm256_maddubs_epi16(xb, wb[half]));
                        acc[half] = _mm256_add_epi32(acc[half], _mm256_madd_epi16(pairs, ones));
                    }
                }
            }
            if groups % 2 == 1 {
                // SAFETY: the last group of block `b` and of the tile's rows
                // is inside `packed` and `xq`.
                let w = unsafe { group_weights(w_block, groups - 1) };
                for (acc, &x_row) in acc.iter_mut().zip(&x_rows) {
                    // SAFETY: as above.
                    let x = unsafe { group_codes(x_row, groups - 1) };
                    for half in 0..2 {
                        acc[half] =
                            _mm256_add_epi32(acc[half], _mm256_madd_epi16(_mm256_maddubs_epi16(x, w[half]), ones));
                    }
                }
            }
            let c0 = b * BLOCK;
            if c0 + BLOCK <= m.out_dim {
                // SAFETY: the block's channels are inside the matrix and the
                // bias; rows `r0..r0 + N` are this tile's.
                unsafe { store_block_avx2(a, r0, c0, &acc) };
                continue;
            }
            for (i, acc) in acc.iter().enumerate() {
                let mut lanes = [0i32; BLOCK];
                // SAFETY: `lanes` holds 16 i32.
                unsafe {
                    _mm256_storeu_si256(lanes.as_mut_ptr().cast(), acc[0]);
                    _mm256_storeu_si256(lanes.as_mut_ptr().add(8).cast(), acc[1]);
                }
                for (j, &v) in lanes.iter().enumerate().take(m.out_dim.saturating_sub(c0)) {
                    // SAFETY: row `r0 + i`, channel `c0 + j` are this tile's.
                    unsafe { a.store(r0 + i, c0 + j, v) };
                }
            }
        }
    }

    /// Group `g`'s 64 weight bytes of the block at `w_block`, two halves of
    /// 8 channels.
    ///
    /// # Safety
    /// AVX2 is present; the 64 bytes are inside the packed weights.
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn group_weights(w_block: *const i8, g: usize) -> [__m256i; 2] {
        // SAFETY: the caller's contract.
        unsafe {
            let w = w_block.add(g * BLOCK * GROUP);
            [_mm256_loadu_si256(w.cast()), _mm256_loadu_si256(w.add(32).cast())]
        }
    }

    /// A row's four codes of group `g` in every 32-bit lane.
    ///
    /// # Safety
    /// AVX2 is present; the four bytes are inside the quantized inputs.
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn group_codes(x_row: *const u8, g: usize) -> __m256i {
        // SAFETY: the caller's contract.
        _mm256_set1_epi32(unsafe { x_row.add(g * GROUP).cast::<i32>().read_unaligned() })
    }

    /// Writes a whole block of 16 channels for rows `r0..r0 + N` from their
    /// integer sums (two halves of 8), as [`KernelArgs::store`] does one.
    ///
    /// # Safety
    /// AVX2 is present; channels `c0..c0 + 16` are inside the matrix and the
    /// bias; rows `r0..r0 + N` and those channels are this task's.
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn store_block_avx2<const N: usize>(a: &KernelArgs, r0: usize, c0: usize, acc: &[[__m256i; 2]; N]) {
        let m = a.matrix;
        for half in 0..2 {
            let c = c0 + half * 8;
            // SAFETY: channels `c..c + 8` are inside `sums`, `scales` and the
            // bias (contract).
            let (sums, channel_scales, bias) = unsafe {
                (
                    _mm256_loadu_si256(m.sums.as_ptr().add(c).cast()),
                    _mm256_loadu_ps(m.scales.as_ptr().add(c)),
                    _mm256_loadu_ps(a.bias.as_ptr().add(c)),
                )
            };
            for (i, acc) in acc.iter().enumerate() {
                let r = r0 + i;
                let x = a.x_codes[r];
                let offset = _mm256_mullo_epi32(_mm256_set1_epi32(x.zero), sums);
                let scale = _mm256_mul_ps(_mm256_set1_ps(x.scale), channel_scales);
                let value = _mm256_cvtepi32_ps(_mm256_sub_epi32(acc[half], offset));
                let value = _mm256_add_ps(_mm256_mul_ps(value, scale), bias);
                // SAFETY: row `r`, channels `c..c + 8` are this task's (contract).
                unsafe { _mm256_storeu_ps(a.out.0.add(r * a.out_width + a.col + c), value) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::scratch::ScratchScope;

    fn random(n: usize, rng: &mut rand_chacha::ChaCha8Rng) -> Vec<f32> {
        (0..n).map(|_| rng.random::<f32>() * 2.0 - 1.0).collect()
    }

    /// Every quantizer path gives the portable one's values and scales, on
    /// rows of every length around the vector widths (the vector body and
    /// the plain tail), with values at or next to halfway between two codes
    /// and the row's largest at the clamp.
    #[test]
    fn every_quantizer_path_gives_the_portable_values() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let mut levels = Vec::new();
        if simd::level() >= SimdLevel::Avx2 {
            levels.push(SimdLevel::Avx2);
        }
        if simd::level() == SimdLevel::Avx512 {
            levels.push(SimdLevel::Avx512);
        }
        for top in [top_code(SimdLevel::Avx2), top_code(SimdLevel::Portable)] {
            for len in [0, 1, 7, 8, 9, 31, 32, 33, 64, 70, 384] {
                // Rows around 0, all positive and all negative.
                for shift in [0.0, 1.5, -1.5] {
                    let mut x: Vec<f32> = random(len, &mut rng).iter().map(|v| v + shift).collect();
                    if len > 3 {
                        // Halfway between two codes (up to the scale's rounding), both signs.
                        let (lo, hi) = range(&x);
                        x[1] = 2.5 * (hi - lo) / top;
                        x[2] = -3.5 * (hi - lo) / top;
                    }
                    let (mut want, mut got) = (vec![0u8; len], vec![0u8; len]);
                    let want_code = quantize_row_on(SimdLevel::Portable, &x, top, &mut want);
                    for &level in &levels {
                        let code = quantize_row_on(level, &x, top, &mut got);
                        assert_eq!((code, &got), (want_code, &want), "{level:?}, {len} values, shift {shift}");
                    }
                }
            }
        }
    }

    /// A row's range, 0 included, spans the codes; the zero point is the
    /// code of 0.
    #[test]
    fn row_codes_span_the_range_with_zero() {
        let gelu = RowCode::new(-0.17, 5.0, 127.0);
        assert_eq!((gelu.scale, gelu.zero), (5.17 / 127.0, 4));
        assert_eq!(RowCode::new(0.0, 2.0, 255.0), RowCode { scale: 2.0 / 255.0, zero: 0 });
        assert_eq!(RowCode::new(-2.0, 0.0, 255.0), RowCode { scale: 2.0 / 255.0, zero: 255 });
        assert_eq!(RowCode::new(0.0, 0.0, 127.0), RowCode { scale: 1.0, zero: 0 });
        assert_eq!(range(&[0.5, f32::NAN, 2.0]), (0.0, 2.0));
        let mut q = [0u8; 3];
        let code = quantize_row_on(SimdLevel::Portable, &[-0.17, 0.0, 5.0], 127.0, &mut q);
        assert_eq!((code, q), (gelu, [0, 4, 127]));
    }

    /// Every kernel this machine can run (the forced fallbacks limit it).
    fn machine_kernels() -> Vec<Kernel> {
        let mut kernels = vec![Kernel::Portable];
        if simd::level() >= SimdLevel::Avx2 {
            kernels.push(Kernel::Avx2);
        }
        if simd::has_avx512_vnni() {
            kernels.push(Kernel::Vnni);
        }
        if simd::has_amx_int8() {
            kernels.push(Kernel::Amx);
        }
        kernels
    }

    /// Every path the machine has, on edge shapes, against the fp32 product
    /// of the same inputs: within the error of 8-bit (7-bit on AVX2)
    /// quantization, and exactly the integer product of the quantized values.
    #[test]
    fn every_path_matches_the_fp32_product() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let kernels = machine_kernels();
        // AMX's shapes: one and two tiles of rows and blocks, parts of
        // them, several steps of 64 inputs; (6, 20, 128) last.
        let shapes = [
            (1, 1, 1),
            (3, 17, 5),
            (5, 33, 64),
            (70, 80, 384),
            (4, 16, 4),
            (9, 100, 67),
            (33, 47, 192),
            (150, 130, 64),
            (16, 16, 128),
            (6, 20, 128),
        ];
        for (case, (rows, out_dim, in_dim)) in shapes.into_iter().enumerate() {
            let (mut x, mut w, b) =
                (random(rows * in_dim, &mut rng), random(out_dim * in_dim, &mut rng), random(out_dim, &mut rng));
            if case == shapes.len() - 1 {
                // Every code and weight at its largest magnitude, signs in
                // runs: the i16 sums are at their extremes (no saturation).
                x.iter_mut().enumerate().for_each(|(i, v)| *v = if (i / 8) % 2 == 0 { 1.0 } else { -1.0 });
                w.iter_mut().enumerate().for_each(|(i, v)| *v = if (i / 16) % 3 == 0 { -1.0 } else { 1.0 });
            }
            let out_width = out_dim + 3;
            let mut reference = vec![0f32; rows * out_width];
            for r in 0..rows {
                for c in 0..out_dim {
                    let dot: f32 = (0..in_dim).map(|k| x[r * in_dim + k] * w[c * in_dim + k]).sum();
                    reference[r * out_width + 2 + c] = dot + b[c];
                }
            }
            let mut results = Vec::new();
            for &kernel in &kernels {
                let level = kernel.path();
                let m = Int8Matrix::quantize_on(level, &w, out_dim, in_dim);
                let (_, scales) = m.unpack();
                // The quantized inputs go to a pooled buffer holding old
                // bytes (padding included).
                let _scope = ScratchScope::enter();
                let mut old = scratch::take(rows * (in_dim + GROUP));
                old.fill(f32::from_bits(u32::MAX));
                scratch::give_back(old);
                let mut out = vec![f32::NAN; rows * out_width];
                Int8Matrix::shared_on(kernel, &[(&m, &b, 2)], &x, &mut out, out_width);
                for r in 0..rows {
                    assert!(out[r * out_width].is_nan() && out[r * out_width + 1].is_nan(), "untouched columns");
                    let (lo, hi) = range(&x[r * in_dim..(r + 1) * in_dim]);
                    let x_step = (hi - lo) / top_code(level);
                    for c in 0..out_dim {
                        let (got, want) = (out[r * out_width + 2 + c], reference[r * out_width + 2 + c]);
                        // Error bound (every |x|, |w| <= 1): half a step of
                        // each operand per product.
                        let bound = in_dim as f32 * (x_step + scales[c]) * 0.5 + 1e-4;
                        assert!(
                            (got - want).abs() <= bound,
                            "{kernel:?} {rows}x{out_dim}x{in_dim} r{r} c{c}: {got} vs {want}"
                        );
                    }
                }
                results.push((kernel, m, out));
            }
            // The integer part is exact: every path gives, bit for bit, its
            // quantized inputs' integer sums, scaled and offset as `store` does.
            for (kernel, m, out) in &results {
                let (values, scales) = m.unpack();
                let padded = in_dim.div_ceil(GROUP) * GROUP;
                let mut xq = vec![0u8; rows * padded];
                let x_codes = quantize_rows(&x, in_dim, top_code(kernel.path()), SimdLevel::Portable, &mut xq);
                for r in 0..rows {
                    for c in 0..out_dim {
                        let dot: i32 =
                            (0..in_dim).map(|k| xq[r * padded + k] as i32 * values[c * in_dim + k] as i32).sum();
                        let x = x_codes[r];
                        let want = (dot - x.zero * m.sums[c]) as f32 * (x.scale * scales[c]) + b[c];
                        let got = out[r * out_width + 2 + c];
                        assert_eq!(got.to_bits(), want.to_bits(), "{kernel:?} {rows}x{out_dim}x{in_dim} r{r} c{c}");
                    }
                }
            }
        }
    }

    /// Several matrices over one input, quantized once, give each one's
    /// own product bit for bit, on every path the machine has.
    #[test]
    fn shared_input_products_match_separate_ones() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let (rows, in_dim, dims) = (37, 128, [48, 17, 64]);
        let x = random(rows * in_dim, &mut rng);
        let out_width: usize = dims.iter().sum::<usize>() + 1;
        let kernels = machine_kernels();
        for kernel in kernels {
            let matrices: Vec<_> = dims
                .iter()
                .map(|&d| {
                    let (w, b) = (random(d * in_dim, &mut rng), random(d, &mut rng));
                    (Int8Matrix::quantize_on(kernel.path(), &w, d, in_dim), b)
                })
                .collect();
            let cols: Vec<usize> = dims.iter().scan(1, |c, &d| Some(std::mem::replace(c, *c + d))).collect();
            let parts: Vec<_> = matrices.iter().zip(&cols).map(|((m, b), &c)| (m, &b[..], c)).collect();
            let mut shared = vec![f32::NAN; rows * out_width];
            Int8Matrix::shared_on(kernel, &parts, &x, &mut shared, out_width);
            let mut separate = vec![f32::NAN; rows * out_width];
            for part in &parts {
                Int8Matrix::shared_on(kernel, &[*part], &x, &mut separate, out_width);
            }
            for (i, (a, b)) in shared.iter().zip(&separate).enumerate() {
                assert_eq!(a.to_bits(), b.to_bits(), "{kernel:?} value {i}");
            }
            assert!(shared.iter().step_by(out_width).all(|v| v.is_nan()), "column 0 untouched");
        }
    }

    #[test]
    #[should_panic(expected = "same columns")]
    fn shared_products_may_not_overlap() {
        let m = Int8Matrix::quantize(&[1.0; 8], 2, 4);
        let mut out = vec![0f32; 3];
        Int8Matrix::linear_shared(&[(&m, &[0.0, 0.0], 0), (&m, &[0.0, 0.0], 1)], &[1.0; 4], &mut out, 3);
    }

    /// An AVX2 lane adds inputs `8p + 2h + {0, 1, 4, 5}` of a channel;
    /// its same-signed weights are summed, a short tail included.
    #[test]
    fn lane_sums_follow_the_avx2_layout() {
        assert_eq!(worst_lane_sum(&[0, 0, 100, 100, 0, 0, 100, 100]), 400);
        assert_eq!(worst_lane_sum(&[100, 100, 100, 100, -100, -100, 0, 0]), 200);
        assert_eq!(worst_lane_sum(&[1, 1, 1, 1, 1, 1, 1, 1, -90, -90]), 180);
        assert_eq!(worst_lane_sum(&[]), 0);
    }

    /// Stored weights stay as stored, except on the AVX2 path for a
    /// channel that could saturate a lane: it gets the largest narrower
    /// range that fits, its scale widened to match.
    #[test]
    fn stored_weights_are_narrowed_where_an_avx2_lane_needs_it() {
        let values: Vec<i8> = vec![
            127, 127, 0, 0, 127, 127, 0, 0, // lane sum 508: narrowed to ±64
            127, -127, 5, 3, -100, 100, 2, 1, // 227 of each sign: kept
            -128, -128, 0, 0, -1, -2, 0, 0, // 259: narrowed to ±126
        ];
        let scales = [0.5f32, 0.25, 2.0];
        let portable = Int8Matrix::from_quantized_on(SimdLevel::Portable, &values, &scales, 3, 8);
        assert_eq!(portable.unpack(), (values.clone(), scales.to_vec()));
        assert!(!portable.lanes_fit);
        let avx2 = Int8Matrix::from_quantized_on(SimdLevel::Avx2, &values, &scales, 3, 8);
        let (got, got_scales) = avx2.unpack();
        assert!(avx2.lanes_fit);
        assert_eq!(got[..8], [64, 64, 0, 0, 64, 64, 0, 0]);
        assert_eq!(got[8..16], values[8..16]);
        assert_eq!(got[16..], [-126, -126, 0, 0, -1, -2, 0, 0]);
        assert_eq!(got_scales, [0.5 * 127.0 / 64.0, 0.25, 2.0 * 127.0 / 126.0]);
        assert_eq!(avx2.sums[..3], [256, 11, -255]);
    }
}
