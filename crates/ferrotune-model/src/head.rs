//! What the task heads share: initialising new weights and writing a model
//! folder.

use std::path::Path;

use candle_core::{Device, Result as CandleResult, Shape, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::{ModelError, ParamStore};

/// A tensor of normal values with standard deviation 0.02 (BERT's
/// `initializer_range`), from `seed`; `stream` tells tensors of one seed apart.
pub(crate) fn normal_init(shape: impl Into<Shape>, seed: u64, stream: u64) -> CandleResult<Tensor> {
    let shape = shape.into();
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x6865_6164);
    rng.set_stream(stream);
    Tensor::from_vec(normal_values(shape.elem_count(), 0.02, &mut rng), shape, &Device::Cpu)
}

/// `n` normal values with mean 0 and standard deviation `std` from `rng`.
pub(crate) fn normal_values(n: usize, std: f64, rng: &mut impl Rng) -> Vec<f32> {
    (0..n)
        .map(|_| {
            // Box-Muller: a standard normal from two uniforms.
            let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
            let u2: f64 = rng.random();
            ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos() * std) as f32
        })
        .collect()
}

/// Writes `config.json` and `model.safetensors` (Hugging Face names) into
/// `dir`, each atomically.
pub(crate) fn save_model(dir: &Path, config: &serde_json::Value, params: &ParamStore) -> Result<(), ModelError> {
    std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
    let text = serde_json::to_string_pretty(config).expect("JSON value serialises");
    let path = dir.join("config.json");
    ferrotune_data::atomic::write_bytes_atomic(&path, text.as_bytes()).map_err(|e| ModelError::io(&path, e))?;
    params.save_hf(&dir.join("model.safetensors"))
}
