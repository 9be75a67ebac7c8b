//! AdamW with decoupled weight decay on chosen parameters only, global-norm
//! gradient clipping, updating the parameters in place (on the CPU; on other
//! devices a host copy is updated and written back). The moments live in
//! host memory.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;

use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, Device, InplaceOp1, Layout, Storage, Tensor, Var};
use ferrotune_model::ParamStore;
use rayon::prelude::*;

use crate::TrainError;

/// AdamW hyper-parameters (PyTorch's defaults for betas and epsilon).
#[derive(Debug, Clone, Copy)]
pub struct AdamWConfig {
    /// Exponential decay of the first moment.
    pub beta1: f32,
    /// Exponential decay of the second moment.
    pub beta2: f32,
    /// Added to the denominator.
    pub eps: f32,
    /// Decoupled weight decay, applied to decayed parameters only.
    pub weight_decay: f32,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01 }
    }
}

/// Whether a parameter gets weight decay: not biases and not LayerNorm
/// weights (as in the BERT paper and transformers' examples).
pub fn decays(name: &str) -> bool {
    !(name.ends_with(".bias") || name.contains("LayerNorm"))
}

struct Slot {
    name: String,
    var: Var,
    decay: bool,
    m: Vec<f32>,
    v: Vec<f32>,
}

/// AdamW over the parameters of a [`ParamStore`].
pub struct AdamW {
    config: AdamWConfig,
    slots: Vec<Slot>,
    /// Number of steps taken.
    pub step: u64,
}

/// One AdamW update of one parameter tensor, run in place on its storage.
struct Update<'a> {
    grad: &'a [f32],
    m: RefCell<&'a mut [f32]>,
    v: RefCell<&'a mut [f32]>,
    lr: f32,
    decay: f32,
    grad_scale: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    bias1: f32,
    bias2_sqrt: f32,
}

const CHUNK: usize = 1 << 14;

impl InplaceOp1 for Update<'_> {
    fn name(&self) -> &'static str {
        "ferrotune-adamw"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> candle_core::Result<()> {
        let (start, end) = layout
            .contiguous_offsets()
            .ok_or_else(|| candle_core::Error::Msg("adamw: parameter must be contiguous".into()))?;
        let p = match storage {
            CpuStorage::F32(v) => &mut v[start..end],
            _ => candle_core::bail!("adamw: parameters must be f32"),
        };
        let grad = self.grad;
        let mut m = self.m.borrow_mut();
        let mut v = self.v.borrow_mut();
        let step_size = self.lr / self.bias1;
        let keep = 1.0 - self.lr * self.decay;
        let (scale, beta1, beta2, eps, bias2_sqrt) =
            (self.grad_scale, self.beta1, self.beta2, self.eps, self.bias2_sqrt);
        p.par_chunks_mut(CHUNK)
            .zip(m.par_chunks_mut(CHUNK))
            .zip(v.par_chunks_mut(CHUNK))
            .zip(grad.par_chunks(CHUNK))
            .for_each(|(((p, m), v), g)| {
                for i in 0..p.len() {
                    let g = g[i] * scale;
                    m[i] = beta1 * m[i] + (1.0 - beta1) * g;
                    v[i] = beta2 * v[i] + (1.0 - beta2) * g * g;
                    let denom = v[i].sqrt() / bias2_sqrt + eps;
                    p[i] = p[i] * keep - step_size * m[i] / denom;
                }
            });
        Ok(())
    }
}

/// Runs `f` on a tensor's f32 values (copied to the host if it lives on
/// another device).
fn with_f32<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> candle_core::Result<R> {
    let t = t.to_device(&Device::Cpu)?.contiguous()?;
    let (storage, layout) = t.storage_and_layout();
    let (start, end) = layout.contiguous_offsets().expect("contiguous");
    match &*storage {
        Storage::Cpu(CpuStorage::F32(v)) => Ok(f(&v[start..end])),
        _ => candle_core::bail!("gradients must be f32 on the CPU"),
    }
}

impl AdamW {
    /// An optimizer for every trainable parameter of `params` (frozen ones
    /// get no moments), moments at zero.
    pub fn new(params: &ParamStore, config: AdamWConfig) -> Self {
        let slots = params
            .trainable()
            .map(|(name, var)| Slot {
                name: name.clone(),
                var: var.clone(),
                decay: decays(name),
                m: vec![0.0; var.elem_count()],
                v: vec![0.0; var.elem_count()],
            })
            .collect();
        Self { config, slots, step: 0 }
    }

    /// Global L2 norm of the gradients (missing gradients count as zero).
    pub fn grad_norm(&self, grads: &GradStore) -> Result<f32, TrainError> {
        let mut sum = 0f64;
        for slot in &self.slots {
            if let Some(g) = grads.get(slot.var.as_tensor()) {
                // Fixed chunks summed in order: the same result on any thread count.
                let partials: Vec<f64> = with_f32(g, |g| {
                    g.par_chunks(CHUNK).map(|c| c.iter().map(|x| (*x as f64) * (*x as f64)).sum()).collect()
                })?;
                sum += partials.iter().sum::<f64>();
            }
        }
        Ok(sum.sqrt() as f32)
    }

    /// One update with learning rate `lr`, gradients scaled by `grad_scale`
    /// (for clipping). Parameters without a gradient are left alone.
    pub fn step(&mut self, grads: &GradStore, lr: f32, grad_scale: f32) -> Result<(), TrainError> {
        self.apply(grads, lr, grad_scale, false)
    }

    /// [`Self::step`]; `via_host` updates a host copy of every parameter and
    /// writes it back, as is done for parameters on other devices than the
    /// CPU (the tests use it to check that path on the CPU).
    fn apply(&mut self, grads: &GradStore, lr: f32, grad_scale: f32, via_host: bool) -> Result<(), TrainError> {
        self.step += 1;
        let c = self.config;
        let t = self.step as i32;
        let bias1 = 1.0 - c.beta1.powi(t);
        let bias2_sqrt = (1.0 - c.beta2.powi(t)).sqrt();
        for slot in &mut self.slots {
            let Some(g) = grads.get(slot.var.as_tensor()) else { continue };
            let decay = if slot.decay { c.weight_decay } else { 0.0 };
            let host = via_host || !slot.var.device().is_cpu();
            // On the CPU the parameter's own storage; otherwise a host copy.
            let target =
                if host { slot.var.as_tensor().to_device(&Device::Cpu)?.copy()? } else { slot.var.as_tensor().clone() };
            with_f32(g, |grad| {
                let update = Update {
                    grad,
                    m: RefCell::new(&mut slot.m),
                    v: RefCell::new(&mut slot.v),
                    lr,
                    decay,
                    grad_scale,
                    beta1: c.beta1,
                    beta2: c.beta2,
                    eps: c.eps,
                    bias1,
                    bias2_sqrt,
                };
                target.inplace_op1(&update)
            })??;
            if host {
                slot.var.set(&target.to_device(slot.var.device())?)?;
            }
        }
        Ok(())
    }

    /// Writes the moments (`m.<name>`, `v.<name>`) to a safetensors file.
    pub fn save(&self, path: &Path) -> Result<(), TrainError> {
        let mut tensors = HashMap::new();
        for s in &self.slots {
            let shape = s.var.shape();
            tensors.insert(format!("m.{}", s.name), Tensor::from_slice(&s.m, shape, &Device::Cpu)?);
            tensors.insert(format!("v.{}", s.name), Tensor::from_slice(&s.v, shape, &Device::Cpu)?);
        }
        ferrotune_data::atomic::write_atomic(path, |tmp| {
            candle_core::safetensors::save(&tensors, tmp).map_err(std::io::Error::other)
        })
        .map_err(|e| TrainError::io(path, e))
    }

    /// Reads the moments written by [`Self::save`].
    pub fn load(&mut self, path: &Path, step: u64) -> Result<(), TrainError> {
        let tensors = candle_core::safetensors::load(path, &Device::Cpu)
            .map_err(|e| TrainError::CheckpointFile { path: path.to_path_buf(), message: e.to_string() })?;
        for s in &mut self.slots {
            for (key, dst) in [(format!("m.{}", s.name), &mut s.m), (format!("v.{}", s.name), &mut s.v)] {
                let t = tensors.get(&key).ok_or_else(|| TrainError::CheckpointFile {
                    path: path.to_path_buf(),
                    message: format!("missing '{key}'"),
                })?;
                let values: Vec<f32> = t.flatten_all()?.to_vec1()?;
                if values.len() != dst.len() {
                    return Err(TrainError::CheckpointFile {
                        path: path.to_path_buf(),
                        message: format!("'{key}' has the wrong size"),
                    });
                }
                *dst = values;
            }
        }
        self.step = step;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::DType;

    /// Values from torch.optim.AdamW(lr=0.1, weight_decay=0.5) on
    /// p = [1, -2], two steps with gradients [0.5, -1] then [0.25, 3].
    #[test]
    fn matches_pytorch_adamw() {
        let mut store = ParamStore::new("t".into(), &Device::Cpu);
        store.insert("w.weight", &Tensor::new(&[1f32, -2.0], &Device::Cpu).unwrap()).unwrap();
        let var = store.get("w.weight").unwrap().clone();
        let mut opt = AdamW::new(&store, AdamWConfig { weight_decay: 0.5, ..Default::default() });
        for g in [[0.5f32, -1.0], [0.25, 3.0]] {
            let loss = (var.as_tensor() * Tensor::new(&g, &Device::Cpu).unwrap()).unwrap().sum_all().unwrap();
            let grads = loss.backward().unwrap();
            opt.step(&grads, 0.1, 1.0).unwrap();
        }
        let p: Vec<f32> = var.as_tensor().to_dtype(DType::F32).unwrap().to_vec1().unwrap();
        let expected = [0.714_282_04f32, -1.759_418_8];
        for (a, b) in p.iter().zip(expected) {
            assert!((a - b).abs() < 1e-5, "{p:?} vs {expected:?}");
        }
    }

    /// The path used for parameters on other devices (a host copy updated
    /// and written back) gives exactly the in-place result.
    #[test]
    fn host_copy_path_equals_in_place_update() {
        let run = |via_host: bool| {
            let mut store = ParamStore::new("t".into(), &Device::Cpu);
            store.insert("w.weight", &Tensor::new(&[1f32, -2.0, 0.5], &Device::Cpu).unwrap()).unwrap();
            store.insert("w.bias", &Tensor::new(&[0.25f32], &Device::Cpu).unwrap()).unwrap();
            let (w, b) = (store.get("w.weight").unwrap().clone(), store.get("w.bias").unwrap().clone());
            let mut opt = AdamW::new(&store, AdamWConfig::default());
            for g in [[0.5f32, -1.0, 2.0], [0.25, 3.0, -0.5]] {
                let x = Tensor::new(&g, &Device::Cpu).unwrap();
                let loss =
                    ((w.as_tensor() * &x).unwrap().sum_all().unwrap() * b.as_tensor().sum_all().unwrap()).unwrap();
                opt.apply(&loss.backward().unwrap(), 0.1, 0.5, via_host).unwrap();
            }
            (w.as_tensor().to_vec1::<f32>().unwrap(), b.as_tensor().to_vec1::<f32>().unwrap())
        };
        assert_eq!(run(true), run(false));
    }

    #[test]
    fn no_decay_on_biases_and_layer_norm() {
        assert!(decays("encoder.layer.0.attention.self.query.weight"));
        assert!(!decays("encoder.layer.0.attention.self.query.bias"));
        assert!(!decays("embeddings.LayerNorm.weight"));
    }
}
