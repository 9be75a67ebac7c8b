//! The named parameters of a model: read from `model.safetensors` under
//! canonical names (no `bert.` prefix), handed to layers through one
//! `VarBuilder`, and written back under Hugging Face names.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use candle_core::{DType, Device, Shape, Tensor, Var};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;

use crate::ModelError;

/// Trainable tensors by canonical name, in a fixed (sorted) order. Clones
/// share the tensors.
#[derive(Clone)]
pub struct ParamStore {
    vars: BTreeMap<String, Var>,
    source: PathBuf,
    device: Device,
}

/// The canonical name of a checkpoint tensor: `bert.` prefix dropped and old
/// TensorFlow-style `gamma`/`beta` renamed.
pub(crate) fn canonical_name(name: &str) -> String {
    let name = name.strip_prefix("bert.").unwrap_or(name);
    if let Some(stem) = name.strip_suffix(".gamma") {
        format!("{stem}.weight")
    } else if let Some(stem) = name.strip_suffix(".beta") {
        format!("{stem}.bias")
    } else {
        name.to_string()
    }
}

/// The Hugging Face name of a canonical name in a `BertFor*` checkpoint.
pub fn hf_name(name: &str) -> String {
    if name.starts_with("classifier.") {
        name.to_string()
    } else {
        format!("bert.{name}")
    }
}

impl ParamStore {
    /// An empty store on `device`; `source` names the weights file in
    /// error messages.
    pub fn new(source: PathBuf, device: &Device) -> Self {
        Self { vars: BTreeMap::new(), source, device: device.clone() }
    }

    /// The device the tensors live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Reads every floating-point tensor of a safetensors file as f32.
    /// Integer buffers such as `embeddings.position_ids` are skipped.
    pub fn load(path: &Path, device: &Device) -> Result<Self, ModelError> {
        let weights_error = |message: String| ModelError::Weights { path: path.to_path_buf(), message };
        if !path.is_file() {
            return Err(weights_error("file not found".into()));
        }
        let mut tensors = candle_core::safetensors::load(path, device).map_err(|e| weights_error(e.to_string()))?;
        crate::quant::dequantize(&mut tensors, path)?;
        let mut store = Self::new(path.to_path_buf(), device);
        for (name, tensor) in tensors {
            if !tensor.dtype().is_float() {
                continue;
            }
            let tensor = tensor.to_dtype(DType::F32)?;
            store.vars.insert(canonical_name(&name), Var::from_tensor(&tensor)?);
        }
        Ok(store)
    }

    /// Adds or replaces a tensor (moved to the store's device).
    pub fn insert(&mut self, name: &str, tensor: &Tensor) -> Result<(), ModelError> {
        self.vars.insert(name.to_string(), Var::from_tensor(&tensor.to_device(&self.device)?)?);
        Ok(())
    }

    /// The tensor of a name.
    pub fn get(&self, name: &str) -> Option<&Var> {
        self.vars.get(name)
    }

    /// Drops every tensor not in `keep` (e.g. a pooler the head does not use).
    pub fn retain(&mut self, keep: &BTreeSet<String>) {
        self.vars.retain(|name, _| keep.contains(name));
    }

    /// Canonical names and tensors, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Var)> {
        self.vars.iter()
    }

    /// Number of scalar parameters.
    pub fn parameter_count(&self) -> usize {
        self.vars.values().map(|v| v.elem_count()).sum()
    }

    /// A `VarBuilder` over the store. Every tensor a layer asks for must be
    /// there with the requested shape; the names asked for are recorded in
    /// `used`.
    pub fn var_builder<'a>(&'a self, used: &'a Mutex<BTreeSet<String>>) -> VarBuilder<'a> {
        VarBuilder::from_backend(
            Box::new(Backend { store: self, used, detach: false }),
            DType::F32,
            self.device.clone(),
        )
    }

    /// Like [`Self::var_builder`], but the tensors handed out are detached
    /// from their variables (same storage): layers built from them record no
    /// autograd graph, so inference frees each activation once it is used.
    pub fn frozen_var_builder<'a>(&'a self, used: &'a Mutex<BTreeSet<String>>) -> VarBuilder<'a> {
        VarBuilder::from_backend(Box::new(Backend { store: self, used, detach: true }), DType::F32, self.device.clone())
    }

    /// Writes the tensors under their Hugging Face names, atomically.
    pub fn save_hf(&self, path: &Path) -> Result<(), ModelError> {
        let tensors: HashMap<String, Tensor> =
            self.vars.iter().map(|(name, var)| (hf_name(name), var.as_tensor().clone())).collect();
        save_atomic(&tensors, path)
    }

    /// Writes the tensors under their canonical names, atomically.
    pub fn save_canonical(&self, path: &Path) -> Result<(), ModelError> {
        let tensors: HashMap<String, Tensor> =
            self.vars.iter().map(|(name, var)| (name.clone(), var.as_tensor().clone())).collect();
        save_atomic(&tensors, path)
    }

    /// Overwrites every tensor with the one of the same name in `path`
    /// (written by [`Self::save_canonical`]); names and shapes must match.
    pub fn restore(&self, path: &Path) -> Result<(), ModelError> {
        let other = Self::load(path, &self.device)?;
        for (name, var) in &self.vars {
            let saved = other.vars.get(name).ok_or_else(|| ModelError::Weights {
                path: path.to_path_buf(),
                message: format!("missing tensor '{name}'"),
            })?;
            var.set(saved.as_tensor())?;
        }
        Ok(())
    }
}

fn save_atomic(tensors: &HashMap<String, Tensor>, path: &Path) -> Result<(), ModelError> {
    ferrotune_data::atomic::write_atomic(path, |tmp| {
        candle_core::safetensors::save(tensors, tmp).map_err(std::io::Error::other)
    })
    .map_err(|e| ModelError::io(path, e))
}

struct Backend<'a> {
    store: &'a ParamStore,
    used: &'a Mutex<BTreeSet<String>>,
    detach: bool,
}

impl SimpleBackend for Backend<'_> {
    fn get(&self, shape: Shape, name: &str, _: candle_nn::Init, _: DType, _: &Device) -> candle_core::Result<Tensor> {
        let tensor = self.get_unchecked(name, DType::F32, &self.store.device)?;
        if tensor.shape() != &shape {
            candle_core::bail!(
                "{}: tensor '{name}' has shape {:?}, the model expects {:?}",
                self.store.source.display(),
                tensor.dims(),
                shape.dims()
            );
        }
        Ok(tensor)
    }

    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> candle_core::Result<Tensor> {
        let var = self.store.vars.get(name).ok_or_else(|| {
            candle_core::Error::Msg(format!("{}: missing tensor '{name}'", self.store.source.display()))
        })?;
        self.used.lock().expect("lock").insert(name.to_string());
        Ok(if self.detach { var.as_tensor().detach() } else { var.as_tensor().clone() })
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.store.vars.contains_key(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        assert_eq!(canonical_name("bert.embeddings.LayerNorm.gamma"), "embeddings.LayerNorm.weight");
        assert_eq!(canonical_name("encoder.layer.0.output.LayerNorm.beta"), "encoder.layer.0.output.LayerNorm.bias");
        assert_eq!(hf_name("encoder.layer.0.output.dense.weight"), "bert.encoder.layer.0.output.dense.weight");
        assert_eq!(hf_name("classifier.bias"), "classifier.bias");
    }

    #[test]
    fn missing_and_misshaped_tensors_are_named() {
        let mut store = ParamStore::new(PathBuf::from("w.safetensors"), &Device::Cpu);
        store.insert("a", &Tensor::zeros((2, 3), DType::F32, &Device::Cpu).unwrap()).unwrap();
        let used = Mutex::new(BTreeSet::new());
        let vb = store.var_builder(&used);
        let err = vb.get((3, 2), "a").unwrap_err().to_string();
        assert!(err.contains("w.safetensors: tensor 'a' has shape [2, 3]"), "{err}");
        let err = vb.get(3, "b").unwrap_err().to_string();
        assert!(err.contains("missing tensor 'b'"), "{err}");
        assert!(vb.get((2, 3), "a").is_ok());
        assert!(used.lock().unwrap().contains("a"));
    }
}
