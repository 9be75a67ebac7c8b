//! Quantized model folders: the weight matrices of the encoder (and the
//! word embeddings) stored as int8 with one scale per row, or as bf16;
//! `config.json` says what was quantized (`quantization_config`). Loading
//! keeps int8 matrices int8 (packed for the kernels as they are read) and
//! widens bf16 ones to f32; the precision named there is the one the model
//! runs in.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use super::int8::{quantize_channel, WEIGHT_MAX};
use crate::quant::{to_bf16, Precision};
use crate::{BertConfig, ModelError, ParamStore};

/// The name of the scale tensor of an int8 tensor.
pub(crate) fn scale_name(name: &str) -> String {
    format!("{name}_scale")
}

/// What `config.json` says about a quantized folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuantizationConfig {
    /// Always `"ferrotune"`.
    pub quant_method: String,
    /// The precision the weights are stored and run in.
    pub precision: Precision,
    /// The tensors stored in that precision (Hugging Face names).
    pub weights: Vec<String>,
    /// Tensors kept in fp32 on request.
    #[serde(default)]
    pub kept_fp32: Vec<String>,
}

/// Whether a tensor is quantized by default: the encoder's six weight
/// matrices per layer and the word embeddings.
fn quantizable(name: &str) -> bool {
    is_layer_matrix(name) || name.ends_with("embeddings.word_embeddings.weight")
}

/// Whether a tensor is one of the six weight matrices of an encoder layer.
pub(crate) fn is_layer_matrix(name: &str) -> bool {
    const MATRICES: [&str; 6] = [
        "attention.self.query.weight",
        "attention.self.key.weight",
        "attention.self.value.weight",
        "attention.output.dense.weight",
        "intermediate.dense.weight",
        "output.dense.weight",
    ];
    name.contains("encoder.layer.") && MATRICES.iter().any(|m| name.ends_with(m))
}

/// What [`save_quantized`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantizedFolder {
    /// The quantization config written into `config.json`.
    pub config: QuantizationConfig,
    /// Bytes of the new `model.safetensors`.
    pub weight_bytes: u64,
}

/// Writes `config.json` and `model.safetensors` of the fine-tuned folder
/// `source` into `output` with its weight matrices in `precision` (int8 or
/// bf16); tensors whose name contains one of `keep_fp32` stay fp32.
pub fn save_quantized(
    source: &Path,
    output: &Path,
    precision: Precision,
    keep_fp32: &[String],
) -> Result<QuantizedFolder, ModelError> {
    let config = BertConfig::load(&source.join("config.json"))?;
    if config.quantization.is_some() {
        return Err(ModelError::Config {
            path: source.join("config.json"),
            message: "already quantized; quantize the fp32 folder".into(),
        });
    }
    if precision == Precision::Fp32 {
        return Err(ModelError::Config {
            path: output.to_path_buf(),
            message: "fp32 is not a quantized precision".into(),
        });
    }
    let params = ParamStore::load(&source.join("model.safetensors"), &Device::Cpu)?;
    let mut tensors = HashMap::new();
    let (mut weights, mut kept) = (Vec::new(), Vec::new());
    for (name, var) in params.iter() {
        let hf = crate::hf_name(name);
        let tensor = var.as_tensor();
        if !quantizable(&hf) || tensor.rank() != 2 {
            tensors.insert(hf, tensor.clone());
            continue;
        }
        if keep_fp32.iter().any(|k| hf.contains(k.as_str())) {
            kept.push(hf.clone());
            tensors.insert(hf, tensor.clone());
            continue;
        }
        let (rows, cols) = tensor.dims2()?;
        let values: Vec<f32> = tensor.flatten_all()?.to_vec1()?;
        match precision {
            Precision::Int8 => {
                let mut scales = Vec::with_capacity(rows);
                let mut q = Vec::with_capacity(rows * cols);
                for row in values.chunks(cols.max(1)) {
                    let (scale, values) = quantize_channel(row, WEIGHT_MAX);
                    scales.push(scale);
                    q.extend(values.into_iter().map(|v| v as u8));
                }
                // candle stores i8 as u8 bytes: the bit pattern is kept.
                tensors.insert(scale_name(&hf), Tensor::from_vec(scales, rows, &Device::Cpu)?);
                tensors.insert(hf.clone(), Tensor::from_vec(q, (rows, cols), &Device::Cpu)?);
            }
            _ => {
                let bits: Vec<u16> = values.iter().map(|&v| to_bf16(v)).collect();
                let bf16: Vec<half::bf16> = bits.into_iter().map(half::bf16::from_bits).collect();
                tensors.insert(hf.clone(), Tensor::from_vec(bf16, (rows, cols), &Device::Cpu)?);
            }
        }
        weights.push(hf);
    }
    weights.sort();
    kept.sort();
    let quantization = QuantizationConfig { quant_method: "ferrotune".into(), precision, weights, kept_fp32: kept };
    std::fs::create_dir_all(output).map_err(|e| ModelError::io(output, e))?;
    let path = output.join("model.safetensors");
    ferrotune_data::atomic::write_atomic(&path, |tmp| {
        candle_core::safetensors::save(&tensors, tmp).map_err(std::io::Error::other)
    })
    .map_err(|e| ModelError::io(&path, e))?;
    let mut json = config.raw.clone();
    json["quantization_config"] = serde_json::to_value(&quantization).expect("config serialises");
    let config_path = output.join("config.json");
    let text = serde_json::to_string_pretty(&json).expect("JSON value serialises");
    ferrotune_data::atomic::write_bytes_atomic(&config_path, text.as_bytes())
        .map_err(|e| ModelError::io(&config_path, e))?;
    let weight_bytes = std::fs::metadata(&path).map_err(|e| ModelError::io(&path, e))?.len();
    Ok(QuantizedFolder { config: quantization, weight_bytes })
}

/// Checks that every tensor `config.json`'s `quantization_config` names
/// (quantized or kept in fp32) is in the weights.
pub(crate) fn check_names(config: &BertConfig, params: &ParamStore, dir: &Path) -> Result<(), ModelError> {
    let Some(q) = &config.quantization else { return Ok(()) };
    match q.weights.iter().chain(&q.kept_fp32).find(|w| !params.contains(&crate::params::canonical_name(w))) {
        Some(missing) => Err(ModelError::Config {
            path: dir.join("config.json"),
            message: format!("quantization_config names '{missing}', which model.safetensors does not have"),
        }),
        None => Ok(()),
    }
}

/// The f32 values of int8 bit patterns `q` (`U8`, `[rows, cols]`) with one
/// scale per row (`[rows]`): `(q as i8) * scale`, exactly as stored.
pub(crate) fn widen_int8(q: &Tensor, scales: &Tensor) -> candle_core::Result<Tensor> {
    let negative = q.ge(128u8)?.to_dtype(DType::F32)?;
    let values = (q.to_dtype(DType::F32)? - (negative * 256.0)?)?;
    values.broadcast_mul(&scales.unsqueeze(1)?)
}
