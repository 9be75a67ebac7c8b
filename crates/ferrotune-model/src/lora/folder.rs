//! The adapter folder in PEFT's layout: `adapter_config.json` and
//! `adapter_model.safetensors` with PEFT's tensor names
//! (`base_model.model.bert.encoder.layer.N.attention.self.query.lora_A.weight`,
//! the saved head under `base_model.model.classifier.*`), beside a
//! `config.json` with the head's labels. ferrotune records the SHA-256 of
//! the base's `model.safetensors` in the weights file's metadata (PEFT
//! ignores it) and checks it when the adapter is applied.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{LoraSettings, LoraTarget, PeftTaskType};
use crate::params::canonical_name;
use crate::weights_file::WeightsFile;
use crate::{hf_name, BertConfig, ModelError, ParamStore};

/// The adapter's settings file.
pub const ADAPTER_CONFIG: &str = "adapter_config.json";
/// The adapter's weights file.
pub const ADAPTER_WEIGHTS: &str = "adapter_model.safetensors";
/// PEFT's prefix of every saved tensor name.
const PREFIX: &str = "base_model.model.";
/// The metadata key of the base weights' SHA-256.
const BASE_HASH: &str = "ferrotune.base_model_sha256";

/// `target_modules`: names matched as suffixes of module paths, or one
/// regular expression matched against the whole path.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum TargetModules {
    Names(Vec<String>),
    Pattern(String),
}

/// The keys of `adapter_config.json` that ferrotune reads.
#[derive(Debug, Deserialize)]
struct ConfigFile {
    task_type: Option<PeftTaskType>,
    r: usize,
    lora_alpha: f64,
    #[serde(default)]
    lora_dropout: f32,
    target_modules: TargetModules,
    #[serde(default)]
    bias: Option<String>,
    #[serde(default)]
    base_model_name_or_path: Option<String>,
    #[serde(default)]
    fan_in_fan_out: bool,
    #[serde(default)]
    use_rslora: bool,
    #[serde(default)]
    use_dora: bool,
    #[serde(default)]
    rank_pattern: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    alpha_pattern: BTreeMap<String, serde_json::Value>,
}

/// A LoRA adapter read from its folder.
#[derive(Debug, Clone)]
pub struct AdapterFolder {
    /// The folder.
    pub dir: PathBuf,
    /// Rank, scaling, dropout and the adapted matrices (from the tensors).
    pub settings: LoraSettings,
    /// PEFT's `task_type`, if given.
    pub task_type: Option<PeftTaskType>,
    /// `base_model_name_or_path`, if given.
    pub base_model: Option<String>,
    /// The SHA-256 of the base weights it was trained on (ferrotune's
    /// adapters only).
    pub base_sha256: Option<String>,
    /// Labels of the saved head (`id2label` of the folder's `config.json`).
    pub labels: Option<Vec<String>>,
    /// The adapter matrices and saved modules, by canonical name.
    tensors: Vec<(String, Tensor)>,
}

/// The SHA-256 of a file, in hex.
pub(crate) fn file_sha256(path: &Path) -> Result<String, ModelError> {
    let mut file = std::fs::File::open(path).map_err(|e| ModelError::io(path, e))?;
    let mut hash = Sha256::new();
    std::io::copy(&mut file, &mut hash).map_err(|e| ModelError::io(path, e))?;
    Ok(format!("{:x}", hash.finalize()))
}

/// The module paths (`encoder.layer.N.<path>`) of a LoRA tensor's
/// canonical name: `(layer, target, is_a)`, `None` for other tensors.
fn lora_tensor(name: &str) -> Option<(usize, LoraTarget, bool)> {
    let rest = name.strip_prefix("encoder.layer.")?;
    let (layer, rest) = rest.split_once('.')?;
    let (module, is_a) = match rest.strip_suffix(".lora_A.weight") {
        Some(module) => (module, true),
        None => (rest.strip_suffix(".lora_B.weight")?, false),
    };
    let target = LoraTarget::ALL.into_iter().find(|t| t.module_path() == module)?;
    Some((layer.parse().ok()?, target, is_a))
}

impl AdapterFolder {
    /// Reads `adapter_config.json`, `adapter_model.safetensors` and (if
    /// present) `config.json` of `dir`; errors name the file and key.
    pub fn read(dir: &Path) -> Result<Self, ModelError> {
        let config_path = dir.join(ADAPTER_CONFIG);
        let config_error = |message: String| ModelError::Config { path: config_path.clone(), message };
        let text = std::fs::read_to_string(&config_path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                config_error("not found: an adapter folder needs PEFT's adapter_config.json".into())
            }
            _ => ModelError::io(&config_path, e),
        })?;
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| config_error(format!("not valid JSON: {e}")))?;
        match value.get("peft_type").and_then(|v| v.as_str()) {
            Some("LORA") => {}
            Some(other) => {
                return Err(config_error(format!(
                    "peft_type '{other}' is not supported; ferrotune loads LORA adapters"
                )))
            }
            None => return Err(config_error("peft_type is missing (expected \"LORA\")".into())),
        }
        let file: ConfigFile = serde_json::from_value(value).map_err(|e| config_error(e.to_string()))?;
        if file.fan_in_fan_out {
            return Err(config_error("fan_in_fan_out: true is for Conv1D models (GPT-2); BERT's are false".into()));
        }
        if file.use_dora {
            return Err(config_error("use_dora: DoRA adapters are not supported".into()));
        }
        if !file.rank_pattern.is_empty() || !file.alpha_pattern.is_empty() {
            return Err(config_error("rank_pattern/alpha_pattern: per-module ranks are not supported".into()));
        }
        if let Some(bias) = file.bias.as_deref().filter(|b| *b != "none") {
            return Err(config_error(format!("bias '{bias}' is not supported (only \"none\")")));
        }
        check_target_modules(&file.target_modules).map_err(|m| config_error(format!("target_modules: {m}")))?;

        let weights_path = dir.join(ADAPTER_WEIGHTS);
        let weights_error = |message: String| ModelError::Weights { path: weights_path.clone(), message };
        if !weights_path.is_file() {
            return Err(weights_error("not found".into()));
        }
        let mut weights = WeightsFile::open(&weights_path)?;
        let names: Vec<String> = weights.names().cloned().collect();
        let mut tensors = Vec::new();
        let mut targets = BTreeSet::new();
        for name in &names {
            let canonical = name
                .strip_prefix(PREFIX)
                .map(canonical_name)
                .ok_or_else(|| weights_error(format!("tensor '{name}' is not under PEFT's '{PREFIX}' prefix")))?;
            if canonical.contains(".lora_") {
                let (_, target, is_a) =
                    lora_tensor(&canonical).ok_or_else(|| weights_error(format!("unknown LoRA module in '{name}'")))?;
                let shape = weights.shape(name).unwrap_or_default();
                let rank = if is_a { shape.first() } else { shape.get(1) };
                if shape.len() != 2 || rank != Some(&file.r) {
                    return Err(weights_error(format!(
                        "'{name}' has shape {shape:?}, which does not fit r = {} of {ADAPTER_CONFIG}",
                        file.r
                    )));
                }
                targets.insert(target);
            }
            let tensor = weights
                .read(name, &Device::Cpu)?
                .ok_or_else(|| weights_error(format!("tensor '{name}' is not floating-point")))?;
            tensors.push((canonical, tensor));
        }
        if targets.is_empty() {
            return Err(weights_error("no LoRA matrices (lora_A/lora_B) in the file".into()));
        }
        let settings = LoraSettings {
            rank: file.r,
            alpha: file.lora_alpha,
            dropout: file.lora_dropout,
            targets: targets.into_iter().collect(),
            rslora: file.use_rslora,
            // How the adapter started no longer matters once it is trained.
            init: super::LoraInit::Default,
        };
        // The hidden size is checked when the adapter meets its base.
        settings.validate(usize::MAX).map_err(config_error)?;
        let head_config = dir.join("config.json");
        let labels = match head_config.is_file() {
            true => BertConfig::load(&head_config)?.labels,
            false => None,
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            settings,
            task_type: file.task_type,
            base_model: file.base_model_name_or_path,
            base_sha256: weights.metadata(BASE_HASH).map(str::to_string),
            labels,
            tensors,
        })
    }

    /// Whether the adapter saved tensor `name` (canonical), e.g. a head.
    pub fn has_tensor(&self, name: &str) -> bool {
        self.tensors.iter().any(|(n, _)| n == name)
    }

    /// Puts the adapter on a base model: checks it against the base
    /// (`base_dir`'s weights hash where recorded, every matrix's shape),
    /// adds its matrices and saved modules to `params` and sets
    /// `config.lora`.
    pub fn apply(&self, base_dir: &Path, config: &mut BertConfig, params: &mut ParamStore) -> Result<(), ModelError> {
        let weights_path = self.dir.join(ADAPTER_WEIGHTS);
        let error = |message: String| ModelError::Weights { path: weights_path.clone(), message };
        if let Some(expected) = &self.base_sha256 {
            let base_weights = base_dir.join("model.safetensors");
            let found = file_sha256(&base_weights)?;
            if &found != expected {
                return Err(error(format!(
                    "trained on a base whose model.safetensors has SHA-256 {expected}; {} has {found}",
                    base_weights.display()
                )));
            }
        }
        self.settings
            .validate(config.hidden_size)
            .map_err(|m| ModelError::Config { path: self.dir.join(ADAPTER_CONFIG), message: m })?;
        let layer = crate::fused_layer::LayerShape::of(config);
        for (name, tensor) in &self.tensors {
            if let Some((index, target, is_a)) = lora_tensor(name) {
                let (out, inp) = crate::fused_layer::matrix_dims(&layer, target.slot());
                let expected = if is_a { [self.settings.rank, inp] } else { [out, self.settings.rank] };
                if index >= config.num_hidden_layers || tensor.dims() != expected {
                    return Err(error(format!(
                        "'{PREFIX}{}' has shape {:?}; the base ({} layers, hidden {}) needs {expected:?} in layers 0 to {}",
                        hf_name(name),
                        tensor.dims(),
                        config.num_hidden_layers,
                        config.hidden_size,
                        config.num_hidden_layers - 1
                    )));
                }
            } else if let Some(base) = params.get(name) {
                if base.dims() != tensor.dims() && !name.starts_with("classifier.") {
                    return Err(error(format!(
                        "'{PREFIX}{}' has shape {:?}, the base's {:?}",
                        hf_name(name),
                        tensor.dims(),
                        base.dims()
                    )));
                }
            }
            params.insert(name, tensor)?;
        }
        config.lora = Some(self.settings.clone());
        if let Some(labels) = &self.labels {
            config.labels = Some(labels.clone());
        }
        Ok(())
    }

    /// Writes an adapter folder: `adapter_config.json` (PEFT's keys),
    /// `adapter_model.safetensors` with the adapter matrices and the
    /// trainable modules `saved` (canonical name prefixes, e.g.
    /// `classifier`) of `params` under PEFT's names, and `head_config` as
    /// `config.json`; `base_dir` is the base it was trained on.
    pub fn write(
        dir: &Path,
        settings: &LoraSettings,
        task_type: PeftTaskType,
        saved: &[&str],
        params: &ParamStore,
        head_config: &serde_json::Value,
        base_dir: &Path,
    ) -> Result<(), ModelError> {
        std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
        let base_hash = file_sha256(&base_dir.join("model.safetensors"))?;
        let keep = |name: &str| name.contains(".lora_") || saved.iter().any(|m| name.starts_with(&format!("{m}.")));
        // A `BertFor*` model's names carry `bert.`; a bare `BertModel`'s not.
        let peft_name = |name: &str| match task_type {
            PeftTaskType::FeatureExtraction => format!("{PREFIX}{name}"),
            _ => format!("{PREFIX}{}", hf_name(name)),
        };
        let tensors: Vec<(String, Tensor)> = params
            .iter()
            .filter(|(name, _)| keep(name))
            .map(|(name, var)| (peft_name(name), var.as_tensor().clone()))
            .collect();
        let metadata = BTreeMap::from([("format".to_string(), "pt".to_string()), (BASE_HASH.to_string(), base_hash)]);
        let weights = dir.join(ADAPTER_WEIGHTS);
        crate::params::save_safetensors(&tensors, Some(metadata), &weights)?;
        let modules: Vec<&str> = saved.iter().map(|m| m.split('.').next().unwrap_or(m)).collect();
        let config = serde_json::json!({
            "peft_type": "LORA",
            "task_type": task_type,
            "r": settings.rank,
            "lora_alpha": settings.alpha,
            "lora_dropout": settings.dropout,
            "target_modules": target_modules_json(&settings.targets),
            "bias": "none",
            "modules_to_save": if modules.is_empty() { serde_json::Value::Null } else { modules.into() },
            "base_model_name_or_path": base_dir.to_string_lossy(),
            "fan_in_fan_out": false,
            "inference_mode": true,
            "init_lora_weights": settings.init.to_json(),
            "use_rslora": settings.rslora,
            "use_dora": false,
            "rank_pattern": {},
            "alpha_pattern": {},
            "layers_to_transform": null,
        });
        for (name, value) in [(ADAPTER_CONFIG, &config), ("config.json", head_config)] {
            let path = dir.join(name);
            let text = serde_json::to_string_pretty(value).expect("JSON value serialises");
            ferrotune_data::atomic::write_bytes_atomic(&path, text.as_bytes()).map_err(|e| ModelError::io(&path, e))?;
        }
        Ok(())
    }
}

/// `target_modules` as PEFT matches it: the names as a list, unless the
/// feed-forward output is adapted without the attention output (PEFT's
/// suffix match of `output.dense` takes both), then one regular expression.
fn target_modules_json(targets: &[LoraTarget]) -> serde_json::Value {
    let output_alone = targets.contains(&LoraTarget::Output) && !targets.contains(&LoraTarget::AttentionOutput);
    if !output_alone {
        return targets.iter().map(|t| t.name()).collect::<Vec<_>>().into();
    }
    let paths: Vec<String> = targets.iter().map(|t| t.module_path().replace('.', r"\.")).collect();
    format!(r"(?:.*\.)?encoder\.layer\.\d+\.({})", paths.join("|")).into()
}

/// Every name must suffix-match a module a BERT layer adapts (as PEFT
/// matches it), and a pattern must match one of their paths.
fn check_target_modules(targets: &TargetModules) -> Result<(), String> {
    let paths: Vec<String> =
        LoraTarget::ALL.iter().map(|t| format!("bert.encoder.layer.0.{}", t.module_path())).collect();
    match targets {
        TargetModules::Names(names) if names.is_empty() => Err("empty".into()),
        TargetModules::Names(names) => {
            match names.iter().find(|n| !paths.iter().any(|p| p == *n || p.ends_with(&format!(".{n}")))) {
                Some(unknown) => Err(format!(
                    "unknown target module '{unknown}' (a BERT layer has query, key, value, attention.output.dense, intermediate.dense, output.dense)"
                )),
                None => Ok(()),
            }
        }
        TargetModules::Pattern(pattern) => {
            let re = regex::Regex::new(&format!("^(?:{pattern})$")).map_err(|e| format!("'{pattern}': {e}"))?;
            match paths.iter().any(|p| re.is_match(p)) {
                true => Ok(()),
                false => Err(format!("'{pattern}' matches none of a BERT layer's modules")),
            }
        }
    }
}

/// Folds every adapter of `params` into its base matrix
/// (`W + s · B A`), removes the adapter matrices and clears `config.lora`:
/// the weights of a plain model with the same outputs.
pub fn merge_into(config: &mut BertConfig, params: &mut ParamStore) -> Result<(), ModelError> {
    let Some(settings) = config.lora.take() else { return Ok(()) };
    let scaling = settings.scaling();
    let names: Vec<String> = params.iter().map(|(n, _)| n.clone()).filter(|n| n.ends_with(".lora_A.weight")).collect();
    for a_name in names {
        let stem = a_name.trim_end_matches(".lora_A.weight");
        let b_name = format!("{stem}.lora_B.weight");
        let w_name = format!("{stem}.weight");
        let (Some(a), Some(b), Some(w)) = (params.get(&a_name), params.get(&b_name), params.get(&w_name)) else {
            return Err(ModelError::Weights {
                path: PathBuf::from(&w_name),
                message: format!("'{a_name}' has no lora_B or base weight to fold into"),
            });
        };
        let merged = (w.as_tensor() + (b.as_tensor().matmul(a.as_tensor())? * scaling)?)?;
        params.insert(&w_name, &merged)?;
    }
    let keep: BTreeSet<String> = params.iter().map(|(n, _)| n.clone()).filter(|n| !n.contains(".lora_")).collect();
    params.retain(&keep);
    params.unfreeze();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lora_tensor_names_parse() {
        assert_eq!(
            lora_tensor("encoder.layer.3.attention.self.query.lora_A.weight"),
            Some((3, LoraTarget::Query, true))
        );
        assert_eq!(lora_tensor("encoder.layer.0.output.dense.lora_B.weight"), Some((0, LoraTarget::Output, false)));
        assert_eq!(lora_tensor("encoder.layer.0.attention.self.query.weight"), None);
        assert_eq!(lora_tensor("encoder.layer.0.pooler.lora_A.weight"), None);
    }

    #[test]
    fn target_modules_are_written_as_peft_matches_them() {
        assert_eq!(target_modules_json(&[LoraTarget::Query, LoraTarget::Value]), serde_json::json!(["query", "value"]));
        let pattern = target_modules_json(&[LoraTarget::Query, LoraTarget::Output]);
        let re = regex::Regex::new(&format!("^(?:{})$", pattern.as_str().unwrap())).unwrap();
        assert!(re.is_match("base_model.model.bert.encoder.layer.11.output.dense"));
        assert!(re.is_match("bert.encoder.layer.0.attention.self.query"));
        assert!(!re.is_match("bert.encoder.layer.0.attention.output.dense"));
        assert!(re.is_match("encoder.layer.0.output.dense"), "a bare BertModel's names");
        assert!(check_target_modules(&TargetModules::Pattern(pattern.as_str().unwrap().into())).is_ok());
    }

    #[test]
    fn unknown_target_modules_are_named() {
        let names = |n: &[&str]| TargetModules::Names(n.iter().map(|s| s.to_string()).collect());
        assert!(check_target_modules(&names(&["query", "dense", "attention.output.dense"])).is_ok());
        let err = check_target_modules(&names(&["query", "c_attn"])).unwrap_err();
        assert!(err.contains("unknown target module 'c_attn'"), "{err}");
        assert!(check_target_modules(&names(&[])).is_err());
        assert!(check_target_modules(&TargetModules::Pattern("q_proj".into())).is_err());
    }
}
