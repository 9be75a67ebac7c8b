//! How token states become one vector per text, with the definitions of
//! sentence-transformers' `Pooling` and `Normalize` modules, written with
//! candle's differentiable ops (a model trains through them).

use candle_core::{Result as CandleResult, Tensor, D};

/// The pooling of a sentence-transformers `Pooling` module (one
/// `pooling_mode_*` key of `1_Pooling/config.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum PoolingMode {
    /// The mean of the token states over the attention mask
    /// (`pooling_mode_mean_tokens`).
    Mean,
    /// The state of the first token, `[CLS]`, as it is: no pooler layer
    /// (`pooling_mode_cls_token`).
    Cls,
    /// The largest value of each coordinate over the unpadded tokens
    /// (`pooling_mode_max_tokens`).
    Max,
    /// The sum of the token states over the attention mask divided by the
    /// square root of the number of tokens (`pooling_mode_mean_sqrt_len_tokens`).
    #[value(name = "mean_sqrt_len")]
    MeanSqrtLen,
}

impl PoolingMode {
    /// Every mode, in the order of the `pooling_mode_*` keys below.
    pub const ALL: [PoolingMode; 4] = [PoolingMode::Cls, PoolingMode::Mean, PoolingMode::Max, PoolingMode::MeanSqrtLen];

    /// The key of `1_Pooling/config.json` that selects this mode.
    pub fn config_key(self) -> &'static str {
        match self {
            PoolingMode::Cls => "pooling_mode_cls_token",
            PoolingMode::Mean => "pooling_mode_mean_tokens",
            PoolingMode::Max => "pooling_mode_max_tokens",
            PoolingMode::MeanSqrtLen => "pooling_mode_mean_sqrt_len_tokens",
        }
    }

    /// Pools `hidden` `[batch, len, dim]` into `[batch, dim]`; `mask`
    /// `[batch, len]` (f32, 1 for real tokens, 0 for padding) keeps padding
    /// out of every mode. Rows without tokens pool to zeros (mean) as in
    /// sentence-transformers, whose count is clamped at 1e-9.
    pub fn pool(self, hidden: &Tensor, mask: &Tensor) -> CandleResult<Tensor> {
        let mask = mask.to_device(hidden.device())?.to_dtype(hidden.dtype())?.unsqueeze(2)?;
        match self {
            PoolingMode::Cls => hidden.narrow(1, 0, 1)?.squeeze(1),
            PoolingMode::Mean => {
                let sum = hidden.broadcast_mul(&mask)?.sum(1)?;
                sum.broadcast_div(&mask.sum(1)?.clamp(1e-9, f64::INFINITY)?)
            }
            PoolingMode::MeanSqrtLen => {
                let sum = hidden.broadcast_mul(&mask)?.sum(1)?;
                sum.broadcast_div(&mask.sum(1)?.sqrt()?)
            }
            PoolingMode::Max => {
                // Padding becomes -1e9 (as sentence-transformers sets it), so
                // it is never the maximum of a row with a token.
                let filler = ((&mask - 1.0)? * 1e9)?;
                hidden.broadcast_mul(&mask)?.broadcast_add(&filler)?.max(1)
            }
        }
    }
}

impl std::fmt::Display for PoolingMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PoolingMode::Mean => "mean",
            PoolingMode::Cls => "cls",
            PoolingMode::Max => "max",
            PoolingMode::MeanSqrtLen => "mean_sqrt_len",
        })
    }
}

/// How a sentence encoder turns token states into an embedding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SentencePooling {
    /// The pooling of the token states.
    pub mode: PoolingMode,
    /// Whether the pooled vector is scaled to unit length (a
    /// sentence-transformers `Normalize` module).
    pub normalize: bool,
}

impl SentencePooling {
    /// Pools `hidden` `[batch, len, dim]` with `mask` `[batch, len]` and
    /// normalises the rows when asked: `[batch, dim]`.
    pub fn apply(&self, hidden: &Tensor, mask: &Tensor) -> CandleResult<Tensor> {
        let pooled = self.mode.pool(hidden, mask)?;
        if self.normalize {
            normalize_rows(&pooled)
        } else {
            Ok(pooled)
        }
    }
}

impl std::fmt::Display for SentencePooling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", self.mode, if self.normalize { "+normalize" } else { "" })
    }
}

/// Each row of `x` `[batch, dim]` divided by its Euclidean norm (at least
/// 1e-12, as `torch.nn.functional.normalize`).
pub fn normalize_rows(x: &Tensor) -> CandleResult<Tensor> {
    let norm = x.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?.clamp(1e-12, f64::INFINITY)?;
    x.broadcast_div(&norm)
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Var};

    use super::*;

    /// Two rows of 3 tokens (the second has one padding token), dim 2.
    fn inputs() -> (Vec<[[f32; 2]; 3]>, Tensor, Tensor) {
        let states = vec![[[1.0, -2.0], [3.0, 0.5], [-1.0, 4.0]], [[2.0, 1.0], [-4.0, 3.0], [100.0, 100.0]]];
        let flat: Vec<f32> = states.iter().flatten().flatten().copied().collect();
        let hidden = Tensor::from_vec(flat, (2, 3, 2), &Device::Cpu).unwrap();
        let mask = Tensor::from_vec(vec![1f32, 1., 1., 1., 1., 0.], (2, 3), &Device::Cpu).unwrap();
        (states, hidden, mask)
    }

    /// By hand over the unpadded tokens of each row.
    fn expected(mode: PoolingMode, rows: &[[[f32; 2]; 3]], lens: [usize; 2]) -> Vec<Vec<f32>> {
        rows.iter()
            .zip(lens)
            .map(|(row, n)| {
                (0..2)
                    .map(|d| {
                        let col: Vec<f32> = row[..n].iter().map(|t| t[d]).collect();
                        let sum: f32 = col.iter().sum();
                        match mode {
                            PoolingMode::Cls => col[0],
                            PoolingMode::Mean => sum / n as f32,
                            PoolingMode::MeanSqrtLen => sum / (n as f32).sqrt(),
                            PoolingMode::Max => col.iter().copied().fold(f32::MIN, f32::max),
                        }
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn each_mode_matches_a_hand_computation_and_ignores_padding() {
        let (states, hidden, mask) = inputs();
        for mode in PoolingMode::ALL {
            let got: Vec<Vec<f32>> = mode.pool(&hidden, &mask).unwrap().to_vec2().unwrap();
            let want = expected(mode, &states, [3, 2]);
            for (g, w) in got.iter().flatten().zip(want.iter().flatten()) {
                assert!((g - w).abs() < 1e-6, "{mode}: {got:?} vs {want:?}");
            }
        }
    }

    #[test]
    fn normalize_gives_unit_rows() {
        let (_, hidden, mask) = inputs();
        for mode in PoolingMode::ALL {
            let rows: Vec<Vec<f32>> =
                SentencePooling { mode, normalize: true }.apply(&hidden, &mask).unwrap().to_vec2().unwrap();
            for row in rows {
                let norm: f32 = row.iter().map(|x| x * x).sum::<f32>().sqrt();
                assert!((norm - 1.0).abs() < 1e-6, "{mode}: {norm}");
            }
        }
    }

    #[test]
    fn gradients_flow_through_every_mode_and_skip_padding() {
        let (_, hidden, mask) = inputs();
        let var = Var::from_tensor(&hidden).unwrap();
        for mode in PoolingMode::ALL {
            let pooled = SentencePooling { mode, normalize: true }.apply(var.as_tensor(), &mask).unwrap();
            let grads = pooled.sum_all().unwrap().backward().unwrap();
            let g: Vec<Vec<Vec<f32>>> = grads.get(var.as_tensor()).expect("a gradient").to_vec3().unwrap();
            assert_eq!(g[1][2], [0.0, 0.0], "{mode}: padding gets no gradient");
            assert!(g.iter().flatten().flatten().any(|x| *x != 0.0), "{mode}");
        }
    }
}
