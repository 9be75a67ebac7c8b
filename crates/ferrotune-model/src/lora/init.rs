//! New adapters for training, initialised as PEFT does.

use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::LoraSettings;
use crate::fused_layer::{matrix_dims, LayerShape};
use crate::{BertConfig, ModelError, ParamStore};

/// Adds new adapters on `settings.targets` of every layer to `params`
/// (`A` Kaiming-uniform with `a = √5`, i.e. uniform in ±1/√in, and `B`
/// zero, as PEFT's default `init_lora_weights`, so training starts from the
/// base's outputs), sets `config.lora`, and freezes every tensor but the
/// adapters and the `trained` modules (canonical name prefixes such as
/// `classifier`).
pub fn add_new_adapters(
    config: &mut BertConfig,
    params: &mut ParamStore,
    settings: &LoraSettings,
    seed: u64,
    trained: &[&str],
) -> Result<(), ModelError> {
    settings.validate(config.hidden_size).map_err(|message| ModelError::Config {
        path: std::path::PathBuf::from("--lora-r/--lora-alpha/--lora-dropout/--lora-targets"),
        message,
    })?;
    if params.has_int8() {
        return Err(ModelError::Config {
            path: std::path::PathBuf::from("model.safetensors"),
            message: "LoRA trains on an fp32 base; this folder is quantized".into(),
        });
    }
    let layer = LayerShape::of(config);
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x6c6f_7261);
    for index in 0..config.num_hidden_layers {
        for &target in &settings.targets {
            let (out, inp) = matrix_dims(&layer, target.slot());
            let bound = 1.0 / (inp as f32).sqrt();
            let a: Vec<f32> = (0..settings.rank * inp).map(|_| rng.random_range(-bound..bound)).collect();
            let stem = format!("encoder.layer.{index}.{}", target.module_path());
            params
                .insert(&format!("{stem}.lora_A.weight"), &Tensor::from_vec(a, (settings.rank, inp), &Device::Cpu)?)?;
            params.insert(
                &format!("{stem}.lora_B.weight"),
                &Tensor::zeros((out, settings.rank), candle_core::DType::F32, &Device::Cpu)?,
            )?;
        }
    }
    config.lora = Some(settings.clone());
    params.freeze_all_but(|name| name.contains(".lora_") || trained.iter().any(|m| name.starts_with(&format!("{m}."))));
    Ok(())
}
