//! New adapters for training, initialised as PEFT does.

use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{LoraInit, LoraSettings};
use crate::fused_layer::{matrix_dims, LayerShape};
use crate::{BertConfig, ModelError, ParamStore};

/// Adds new adapters on `settings.targets` of every layer to `params`
/// (`A` as `settings.init` says, `B` zero, as PEFT does, so training
/// starts from the base's outputs), sets `config.lora`, and freezes every tensor but the
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
            let a: Vec<f32> = match settings.init {
                LoraInit::Default => {
                    let bound = 1.0 / (inp as f32).sqrt();
                    (0..settings.rank * inp).map(|_| rng.random_range(-bound..bound)).collect()
                }
                LoraInit::Gaussian => {
                    crate::head::normal_values(settings.rank * inp, 1.0 / settings.rank as f64, &mut rng)
                }
            };
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lora::LoraTarget;

    #[test]
    fn new_adapters_start_as_peft_s_and_only_they_and_the_head_train() {
        let dir = tempfile::tempdir().unwrap();
        crate::tiny::write_tiny_bert(dir.path(), &["fever"], 1).unwrap();
        for init in [LoraInit::Default, LoraInit::Gaussian] {
            let mut config = BertConfig::load(&dir.path().join("config.json")).unwrap();
            let mut params = ParamStore::load(&dir.path().join("model.safetensors"), &Device::Cpu).unwrap();
            params
                .insert("classifier.weight", &Tensor::zeros((3, 32), candle_core::DType::F32, &Device::Cpu).unwrap())
                .unwrap();
            let targets = vec![LoraTarget::Query, LoraTarget::Intermediate];
            let settings = LoraSettings { rank: 4, alpha: 8.0, dropout: 0.0, targets, rslora: false, init };
            add_new_adapters(&mut config, &mut params, &settings, 3, &["classifier"]).unwrap();
            let trainable: Vec<&String> = params.trainable().map(|(n, _)| n).collect();
            assert_eq!(trainable.len(), 2 * 2 * 2 + 1, "{trainable:?}");
            assert!(trainable.iter().all(|n| n.contains(".lora_") || n.starts_with("classifier.")));
            let a: Vec<f32> = params
                .get("encoder.layer.1.intermediate.dense.lora_A.weight")
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            assert_eq!(a.len(), 4 * 32);
            let b = params.get("encoder.layer.1.intermediate.dense.lora_B.weight").unwrap();
            assert_eq!(b.dims(), [64, 4]);
            assert_eq!(b.abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap(), 0.0);
            let max = a.iter().fold(0f32, |m, v| m.max(v.abs()));
            let sd = (a.iter().map(|v| v * v).sum::<f32>() / a.len() as f32).sqrt();
            match init {
                // Uniform in ±1/√32: sd 1/√96.
                LoraInit::Default => assert!(max <= 1.0 / 32f32.sqrt() && (sd - 0.102).abs() < 0.02, "{max} {sd}"),
                LoraInit::Gaussian => assert!((sd - 0.25).abs() < 0.05 && max > 1.0 / 32f32.sqrt(), "{max} {sd}"),
            }
        }
    }
}
