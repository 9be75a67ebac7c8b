//! LoRA (low-rank adaptation) in Hugging Face PEFT's format: the settings
//! of an adapter ([`LoraSettings`], [`LoraTarget`]), the adapter folder
//! (`adapter_config.json`, `adapter_model.safetensors`; [`AdapterFolder`]),
//! and folding an adapter into its base's weights ([`merge_into`]).
//!
//! An adapted weight matrix `W` (`[out, in]`) computes
//! `x Wᵀ + s · drop(x) Aᵀ Bᵀ` with `A` `[r, in]`, `B` `[out, r]` and
//! `s = alpha / r` (`alpha / √r` with rsLoRA).

mod base;
mod folder;
mod init;
mod settings;

pub use base::BaseWeights;
pub use folder::{merge_into, AdapterFolder, ADAPTER_CONFIG, ADAPTER_WEIGHTS};
pub use init::add_new_adapters;
pub use settings::{LoraInit, LoraSettings, LoraTarget, PeftTaskType};
