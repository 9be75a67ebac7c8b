//! The named parameters of a model: read from `model.safetensors` under
//! canonical names (no `bert.` prefix), handed to layers through one
//! `VarBuilder`, and written back under Hugging Face names. int8 tensors of
//! a quantized folder stay int8 (see [`ParamStore::load`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use candle_core::{DType, Device, Shape, Tensor, Var};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;

use crate::ModelError;

/// Trainable tensors by canonical name, in a fixed (sorted) order, and the
/// int8 tensors of a quantized folder. Clones share the tensors.
#[derive(Clone)]
pub struct ParamStore {
    vars: BTreeMap<String, Var>,
    /// int8 bit patterns (`U8`) and their `_scale` rows (f32), by canonical
    /// name: handed out as stored when a layer asks for `U8`, widened to
    /// f32 (a new tensor each time) when it asks for f32.
    int8: BTreeMap<String, Tensor>,
    /// Tensors that do not train (the base under LoRA adapters): handed
    /// out detached, left out of [`Self::trainable`].
    frozen: BTreeSet<String>,
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
        Self { vars: BTreeMap::new(), int8: BTreeMap::new(), frozen: BTreeSet::new(), source, device: device.clone() }
    }

    /// The device the tensors live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Reads a safetensors file one tensor at a time: floating-point
    /// tensors as f32; int8 matrices (`U8` bit patterns beside a `_scale`
    /// row per output channel, as `ferrotune quantize` writes them) stay
    /// int8. Other integer buffers such as `embeddings.position_ids` are
    /// skipped.
    pub fn load(path: &Path, device: &Device) -> Result<Self, ModelError> {
        let weights_error = |message: String| ModelError::Weights { path: path.to_path_buf(), message };
        if !path.is_file() {
            return Err(weights_error("file not found".into()));
        }
        let mut file = crate::weights_file::WeightsFile::open(path)?;
        let names: Vec<String> = file.names().cloned().collect();
        let mut store = Self::new(path.to_path_buf(), device);
        for name in &names {
            let scale = crate::quant::scale_name(name);
            let int8 = file.is_bytes(name) && names.contains(&scale);
            if store.int8.contains_key(&canonical_name(name)) {
                continue; // a scale, read with its matrix (which sorts first)
            }
            let Some(tensor) = file.read(name, device)? else { continue };
            if int8 {
                let rows =
                    tensor.dims2().map_err(|_| weights_error(format!("int8 tensor '{name}' is not a matrix")))?.0;
                let scales =
                    file.read(&scale, device)?.ok_or_else(|| weights_error(format!("'{scale}' is not f32")))?;
                if scales.dims() != [rows] {
                    return Err(weights_error(format!("'{scale}' has shape {:?} for {rows} rows", scales.dims())));
                }
                store.int8.insert(canonical_name(name), tensor);
                store.int8.insert(canonical_name(&scale), scales);
            } else {
                store.vars.insert(canonical_name(name), Var::from_tensor(&tensor)?);
            }
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

    /// Whether a tensor of that name is stored (f32 or int8).
    pub fn contains(&self, name: &str) -> bool {
        self.vars.contains_key(name) || self.int8.contains_key(name)
    }

    /// Whether any tensor is stored in int8 (a quantized folder: for
    /// inference only).
    pub fn has_int8(&self) -> bool {
        !self.int8.is_empty()
    }

    /// Drops every tensor not in `keep` (e.g. a pooler the head does not use).
    pub fn retain(&mut self, keep: &BTreeSet<String>) {
        self.vars.retain(|name, _| keep.contains(name));
        self.int8.retain(|name, _| keep.contains(name));
    }

    /// Canonical names and tensors, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Var)> {
        self.vars.iter()
    }

    /// Freezes every tensor for which `trains` is false: it is handed out
    /// detached (no gradient) and is not among [`Self::trainable`].
    pub fn freeze_all_but(&mut self, trains: impl Fn(&str) -> bool) {
        self.frozen = self.vars.keys().filter(|n| !trains(n)).cloned().collect();
    }

    /// Makes every tensor trainable again.
    pub fn unfreeze(&mut self) {
        self.frozen.clear();
    }

    /// The tensors that train, sorted by name (all unless some are frozen).
    pub fn trainable(&self) -> impl Iterator<Item = (&String, &Var)> {
        self.vars.iter().filter(|(n, _)| !self.frozen.contains(*n))
    }

    /// Number of scalar parameters that train.
    pub fn trainable_count(&self) -> usize {
        self.trainable().map(|(_, v)| v.elem_count()).sum()
    }

    /// Number of scalar parameters (int8 ones included, their scales not).
    pub fn parameter_count(&self) -> usize {
        let int8 = self.int8.iter().filter(|(_, t)| t.dtype() == DType::U8).map(|(_, t)| t.elem_count());
        self.vars.values().map(|v| v.elem_count()).sum::<usize>() + int8.sum::<usize>()
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

    /// Writes the trainable tensors under their canonical names, atomically.
    pub fn save_canonical(&self, path: &Path) -> Result<(), ModelError> {
        let tensors: HashMap<String, Tensor> =
            self.trainable().map(|(name, var)| (name.clone(), var.as_tensor().clone())).collect();
        save_atomic(&tensors, path)
    }

    /// Overwrites every trainable tensor with the one of the same name in
    /// `path` (written by [`Self::save_canonical`]); names and shapes must
    /// match.
    pub fn restore(&self, path: &Path) -> Result<(), ModelError> {
        let other = Self::load(path, &self.device)?;
        for (name, var) in self.trainable() {
            let saved = other.vars.get(name).ok_or_else(|| ModelError::Weights {
                path: path.to_path_buf(),
                message: format!("missing tensor '{name}'"),
            })?;
            var.set(saved.as_tensor())?;
        }
        Ok(())
    }
}

/// Writes `tensors` with the header's `metadata`, atomically.
pub(crate) fn save_safetensors(
    tensors: &[(String, Tensor)],
    metadata: Option<BTreeMap<String, String>>,
    path: &Path,
) -> Result<(), ModelError> {
    let metadata = metadata.map(|m| m.into_iter().collect());
    ferrotune_data::atomic::write_atomic(path, |tmp| {
        let contiguous: Vec<(&str, Tensor)> = tensors
            .iter()
            .map(|(n, t)| Ok((n.as_str(), t.contiguous()?)))
            .collect::<candle_core::Result<_>>()
            .map_err(std::io::Error::other)?;
        safetensors::serialize_to_file(contiguous, metadata, tmp).map_err(std::io::Error::other)
    })
    .map_err(|e| ModelError::io(path, e))
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
    fn get(
        &self,
        shape: Shape,
        name: &str,
        _: candle_nn::Init,
        dtype: DType,
        _: &Device,
    ) -> candle_core::Result<Tensor> {
        let tensor = self.get_unchecked(name, dtype, &self.store.device)?;
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

    fn get_unchecked(&self, name: &str, dtype: DType, _: &Device) -> candle_core::Result<Tensor> {
        let tensor = match (self.store.vars.get(name), self.store.int8.get(name)) {
            (Some(var), _) if self.detach || self.store.frozen.contains(name) => var.as_tensor().detach(),
            (Some(var), _) => var.as_tensor().clone(),
            (None, Some(q)) if dtype == DType::U8 || q.dtype() != DType::U8 => q.clone(),
            (None, Some(q)) => {
                let scales = &self.store.int8[&crate::quant::scale_name(name)];
                crate::quant::widen_int8(q, scales)?
            }
            (None, None) => candle_core::bail!("{}: missing tensor '{name}'", self.store.source.display()),
        };
        self.used.lock().expect("lock").insert(name.to_string());
        if tensor.dtype() == DType::U8 {
            // The scales go with the matrix they belong to.
            self.used.lock().expect("lock").insert(crate::quant::scale_name(name));
        }
        Ok(tensor)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.store.contains(name)
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
