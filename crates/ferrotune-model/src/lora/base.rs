//! A base model read once, for many adapters: each model built on a clone
//! of it shares its weight tensors and adds only its adapters and head.

use std::path::{Path, PathBuf};

use candle_core::Device;

use crate::{BertConfig, ModelError, ParamStore};

/// A base model folder's configuration and weights. Clones share the
/// tensors, so models built on clones (see
/// `TokenClassifier::on_base`) hold one copy of the base between them.
#[derive(Clone)]
pub struct BaseWeights {
    /// The folder.
    pub dir: PathBuf,
    /// Its `config.json`.
    pub config: BertConfig,
    /// Its `model.safetensors`.
    pub params: ParamStore,
}

impl BaseWeights {
    /// Reads `config.json` and `model.safetensors` of `dir` onto `device`.
    pub fn load(dir: &Path, device: &Device) -> Result<Self, ModelError> {
        let config = BertConfig::load(&dir.join("config.json"))?;
        let params = ParamStore::load(&dir.join("model.safetensors"), device)?;
        crate::quant::check_names(&config, &params, dir)?;
        Ok(Self { dir: dir.to_path_buf(), config, params })
    }
}
