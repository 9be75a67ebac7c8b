//! Lower-precision linear layers for inference: int8 (dynamic
//! quantization) and bf16 (bf16 products, fp32 accumulation). Everything
//! else (attention products, softmax, GELU, layer norm, residuals,
//! embeddings, the task head) stays fp32.

#[cfg(target_arch = "x86_64")]
mod amx;
mod bf16;
mod folder;
mod int8;

pub(crate) use bf16::matmul_bf16;
pub use bf16::{from_bf16, to_bf16, Bf16Matrix};
pub(crate) use folder::{check_names, is_layer_matrix, scale_name, widen_int8};
pub use folder::{save_quantized, QuantizationConfig, QuantizedFolder};
pub use int8::Int8Matrix;

/// AMX: rows of one tile register (int8 and bf16 kernels alike).
const AMX_ROWS: usize = 16;
/// AMX: rows and 16-column blocks of the output per parallel task, for
/// both kernels (larger than the vector kernels': AMX finishes a task's
/// products in a few thousand cycles).
const AMX_TASK: (usize, usize) = (128, 8);

/// The numeric precision of a model's linear layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// fp32 throughout.
    #[default]
    Fp32,
    /// bf16 weights and products, fp32 accumulation.
    Bf16,
    /// int8 weights (per output channel) and activations (per row), int32
    /// accumulation.
    Int8,
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
            Precision::Int8 => "int8",
        })
    }
}

/// Runs `encoder`'s weight matrices in `precision` and, for int8 and bf16,
/// drops their fp32 copies from `params` (the packed matrices replace them).
pub(crate) fn set_precision(
    encoder: &mut crate::BertEncoder,
    params: &mut crate::ParamStore,
    precision: Precision,
) -> Result<(), crate::ModelError> {
    encoder.set_precision(precision)?;
    if precision != Precision::Fp32 {
        let keep = params.iter().map(|(n, _)| n.clone()).filter(|n| !is_layer_matrix(n)).collect();
        params.retain(&keep);
    }
    Ok(())
}

/// [`set_precision`] with matrices another encoder on the same base packed.
pub(crate) fn share_packed(
    encoder: &mut crate::BertEncoder,
    params: &mut crate::ParamStore,
    packed: &crate::bert::PackedWeights,
) -> Result<(), crate::ModelError> {
    encoder.share_packed(packed)?;
    if packed.is_packed() {
        let keep = params.iter().map(|(n, _)| n.clone()).filter(|n| !is_layer_matrix(n)).collect();
        params.retain(&keep);
    }
    Ok(())
}

/// Calls `$kernel::<N, NB>($($arg),*)` for the register tile of `n` rows
/// (1 to 4) and `nb` blocks (1 to 4): the tile sizes are compile-time so
/// that the accumulators stay in registers.
macro_rules! dispatch_tile {
    ($n:expr, $nb:expr, $kernel:ident($($arg:expr),*)) => {
        match ($n, $nb) {
            (4, 4) => $kernel::<4, 4>($($arg),*),
            (4, 3) => $kernel::<4, 3>($($arg),*),
            (4, 2) => $kernel::<4, 2>($($arg),*),
            (4, _) => $kernel::<4, 1>($($arg),*),
            (3, 4) => $kernel::<3, 4>($($arg),*),
            (3, 3) => $kernel::<3, 3>($($arg),*),
            (3, 2) => $kernel::<3, 2>($($arg),*),
            (3, _) => $kernel::<3, 1>($($arg),*),
            (2, 4) => $kernel::<2, 4>($($arg),*),
            (2, 3) => $kernel::<2, 3>($($arg),*),
            (2, 2) => $kernel::<2, 2>($($arg),*),
            (2, _) => $kernel::<2, 1>($($arg),*),
            (_, 4) => $kernel::<1, 4>($($arg),*),
            (_, 3) => $kernel::<1, 3>($($arg),*),
            (_, 2) => $kernel::<1, 2>($($arg),*),
            (_, _) => $kernel::<1, 1>($($arg),*),
        }
    };
}
#[cfg_attr(not(target_arch = "x86_64"), allow(unused_imports))]
pub(crate) use dispatch_tile;

/// A linear layer's weight matrix as a layer in a lower precision runs it.
#[derive(Debug, Clone, PartialEq)]
pub enum PackedLinear {
    /// int8, see [`Int8Matrix`].
    Int8(Int8Matrix),
    /// bf16, see [`Bf16Matrix`].
    Bf16(Bf16Matrix),
    /// Kept in fp32 (a quantized folder's `kept_fp32`): `[out, in]`
    /// row-major.
    Fp32 {
        /// The weights.
        weight: Vec<f32>,
        /// Inputs.
        in_dim: usize,
    },
}

impl PackedLinear {
    /// Converts `w` (`[out_dim, in_dim]`) to `precision`; `None` for fp32.
    pub fn new(w: &[f32], out_dim: usize, in_dim: usize, precision: Precision) -> Option<Self> {
        match precision {
            Precision::Fp32 => None,
            Precision::Bf16 => Some(PackedLinear::Bf16(Bf16Matrix::convert(w, out_dim, in_dim))),
            Precision::Int8 => Some(PackedLinear::Int8(Int8Matrix::quantize(w, out_dim, in_dim))),
        }
    }

    /// The precision.
    pub fn precision(&self) -> Precision {
        match self {
            PackedLinear::Int8(_) => Precision::Int8,
            PackedLinear::Bf16(_) => Precision::Bf16,
            PackedLinear::Fp32 { .. } => Precision::Fp32,
        }
    }

    /// [`Self::linear`] of several matrices over the same `x`, each
    /// `(matrix, bias, first column)`: int8 matrices quantize `x` once,
    /// bf16 ones convert it once (when all are of the one precision).
    pub fn linear_shared<'a>(
        parts: &[(&'a PackedLinear, &'a [f32], usize)],
        x: &[f32],
        out: &mut [f32],
        out_width: usize,
    ) {
        /// The parts' matrices as `M`, when every one is one.
        fn all_as<'a, M>(
            parts: &[(&'a PackedLinear, &'a [f32], usize)],
            matrix: impl Fn(&'a PackedLinear) -> Option<&'a M>,
        ) -> Option<Vec<(&'a M, &'a [f32], usize)>> {
            parts.iter().map(|&(m, b, col)| matrix(m).map(|m| (m, b, col))).collect()
        }
        let int8 = |m: &'a PackedLinear| if let PackedLinear::Int8(m) = m { Some(m) } else { None };
        let bf16 = |m: &'a PackedLinear| if let PackedLinear::Bf16(m) = m { Some(m) } else { None };
        if let Some(parts) = all_as(parts, int8) {
            Int8Matrix::linear_shared(&parts, x, out, out_width)
        } else if let Some(parts) = all_as(parts, bf16) {
            Bf16Matrix::linear_shared(&parts, x, out, out_width)
        } else {
            for &(m, b, col) in parts {
                m.linear(x, b, out, out_width, col);
            }
        }
    }

    /// `out[r, col + c] = b[c] + x[r] · w[c]` (see the matrices' `linear`).
    pub fn linear(&self, x: &[f32], b: &[f32], out: &mut [f32], out_width: usize, col: usize) {
        match self {
            PackedLinear::Int8(m) => m.linear(x, b, out, out_width, col),
            PackedLinear::Bf16(m) => m.linear(x, b, out, out_width, col),
            PackedLinear::Fp32 { weight, in_dim } => {
                crate::fused_layer::fp32_linear(x, *in_dim, weight, b, out, out_width, col)
            }
        }
    }
}
