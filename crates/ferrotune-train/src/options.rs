//! Training options, with the project's default recipe. This struct is the
//! one definition of every option: the `--config` TOML schema, the command
//! line's flags (with their defaults, shown by `--help`) and what a
//! checkpoint records.

use clap::Args;
use ferrotune_data::Task;
use ferrotune_model::lora::{LoraInit, LoraSettings, LoraTarget};
use ferrotune_model::quant::Precision;
use ferrotune_model::Pooling;
use serde::{Deserialize, Serialize};

use crate::{Batching, Schedule, TrainError};

/// Everything that shapes a training run. The defaults are the recipe
/// measured to work best on NCBI-disease with all-MiniLM-L6-v2 (see the
/// README); the design document's recipe is `lr 2e-5, epochs 5,
/// warmup_ratio 0, schedule constant, max_grad_norm 0`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Args)]
#[serde(default, deny_unknown_fields)]
pub struct TrainOptions {
    /// What to learn: tags per word, or a class, classes or a number per text.
    #[arg(long, value_enum, default_value_t = TrainOptions::default().task)]
    pub task: Task,
    /// Sequence tasks: how token states are pooled (cls: BERT's pooler over
    /// [CLS], as transformers; mean: mean of token states, ferrotune only).
    #[arg(long, value_enum, default_value_t = TrainOptions::default().pooling)]
    pub pooling: Pooling,
    /// Passes over the training set.
    #[arg(long, default_value_t = TrainOptions::default().epochs)]
    pub epochs: usize,
    /// Windows (texts) per optimizer step.
    #[arg(long, default_value_t = TrainOptions::default().batch_size)]
    pub batch_size: usize,
    /// bucketed (similar lengths together: less padding) or random.
    #[arg(long, value_enum, default_value_t = TrainOptions::default().batching)]
    pub batching: Batching,
    /// Peak learning rate of AdamW.
    #[arg(long, default_value_t = TrainOptions::default().lr)]
    pub lr: f64,
    /// Maximum tokens per window, special tokens included; longer sentences
    /// are split (NER) or cut (sequence tasks).
    #[arg(long, default_value_t = TrainOptions::default().max_len)]
    pub max_len: usize,
    /// Fraction of all steps spent warming the learning rate up linearly.
    #[arg(long, default_value_t = TrainOptions::default().warmup_ratio)]
    pub warmup_ratio: f64,
    /// Learning-rate shape after warmup: linear (decay to 0) or constant.
    #[arg(long, value_enum, default_value_t = TrainOptions::default().schedule)]
    pub schedule: Schedule,
    /// Decoupled weight decay (not on biases and LayerNorm weights).
    #[arg(long, default_value_t = TrainOptions::default().weight_decay)]
    pub weight_decay: f64,
    /// Clip the global gradient norm to this (0 disables).
    #[arg(long, default_value_t = TrainOptions::default().max_grad_norm)]
    pub max_grad_norm: f64,
    /// Seed of the head initialisation, shuffling and dropout.
    #[arg(long, default_value_t = TrainOptions::default().seed)]
    pub seed: u64,
    /// Stop after this many epochs without a better dev score (0 disables).
    #[arg(long, default_value_t = TrainOptions::default().patience)]
    pub patience: usize,
    /// Windows (texts) per forward pass when evaluating on the dev set.
    #[arg(long, default_value_t = TrainOptions::default().eval_batch_size)]
    pub eval_batch_size: usize,
    /// Retrieval: the multiplier of the cosine similarities in the ranking
    /// loss (1 / temperature).
    #[arg(long, default_value_t = TrainOptions::default().scale)]
    pub scale: f64,
    /// Linear-layer products: fp32, or bf16 (mixed precision: bf16 operands,
    /// fp32 accumulation, fp32 weights, gradients and optimizer; fast with
    /// AVX-512 BF16, emulated elsewhere).
    #[arg(long, value_enum, default_value_t = TrainOptions::default().precision)]
    pub precision: Precision,
    /// Parameter-efficient fine-tuning: none (every weight trains) or lora
    /// (low-rank adapters on a frozen base, saved in PEFT's format).
    #[arg(long, value_enum, default_value_t = TrainOptions::default().peft)]
    pub peft: Peft,
    /// LoRA: rank of the adapters.
    #[arg(long, default_value_t = TrainOptions::default().lora_r)]
    pub lora_r: usize,
    /// LoRA: alpha (the adapters' product is scaled by alpha / r).
    #[arg(long, default_value_t = TrainOptions::default().lora_alpha)]
    pub lora_alpha: f64,
    /// LoRA: dropout on the adapters' input.
    #[arg(long, default_value_t = TrainOptions::default().lora_dropout)]
    pub lora_dropout: f32,
    /// LoRA: the adapted matrices of every layer, any of query, key, value,
    /// attention.output.dense, intermediate.dense, output.dense.
    #[arg(long, default_value_t = TrainOptions::default().lora_targets)]
    pub lora_targets: String,
    /// LoRA: how new adapters start: default (PEFT's: A Kaiming-uniform) or
    /// gaussian (A normal, standard deviation 1/r); B is zero either way.
    #[arg(long, value_enum, default_value_t = TrainOptions::default().lora_init)]
    pub lora_init: LoraInit,
}

/// How many of the weights train.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Peft {
    /// Full fine-tuning.
    #[default]
    None,
    /// LoRA adapters (Hugging Face PEFT's `LoraConfig`).
    Lora,
}

impl Default for TrainOptions {
    fn default() -> Self {
        Self {
            task: Task::Ner,
            pooling: Pooling::Cls,
            epochs: 4,
            batch_size: 16,
            batching: Batching::Bucketed,
            lr: 1e-4,
            max_len: 128,
            warmup_ratio: 0.1,
            schedule: Schedule::Linear,
            weight_decay: 0.01,
            max_grad_norm: 1.0,
            seed: 42,
            patience: 2,
            eval_batch_size: 64,
            precision: Precision::Fp32,
            scale: 20.0,
            peft: Peft::None,
            lora_r: 8,
            lora_alpha: 16.0,
            lora_dropout: 0.1,
            lora_targets: "query,value".into(),
            lora_init: LoraInit::Default,
        }
    }
}

impl TrainOptions {
    /// Checks that every option is in range; the error names the field and
    /// the allowed range.
    pub fn validate(&self) -> Result<(), TrainError> {
        let invalid = |field, expected| Err(TrainError::InvalidOption { field, expected });
        if self.epochs == 0 {
            return invalid("epochs", "at least 1");
        }
        if self.batch_size == 0 {
            return invalid("batch_size", "at least 1");
        }
        if self.eval_batch_size == 0 {
            return invalid("eval_batch_size", "at least 1");
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return invalid("lr", "a positive number");
        }
        if !(3..=4096).contains(&self.max_len) {
            return invalid("max_len", "between 3 and 4096");
        }
        if !(0.0..=1.0).contains(&self.warmup_ratio) {
            return invalid("warmup_ratio", "between 0 and 1");
        }
        if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            return invalid("weight_decay", "a number of at least 0");
        }
        if !(self.max_grad_norm >= 0.0 && self.max_grad_norm.is_finite()) {
            return invalid("max_grad_norm", "a number of at least 0 (0 disables clipping)");
        }
        if !(self.scale > 0.0 && self.scale.is_finite()) {
            return invalid("scale", "a positive number");
        }
        if self.precision == Precision::Int8 {
            return invalid("precision", "fp32 or bf16 (int8 is for inference: `ferrotune quantize`)");
        }
        if self.lora_r == 0 {
            return invalid("lora_r", "at least 1 (and at most the hidden size)");
        }
        if !(self.lora_alpha > 0.0 && self.lora_alpha.is_finite()) {
            return invalid("lora_alpha", "a positive number");
        }
        if !(0.0..1.0).contains(&self.lora_dropout) {
            return invalid("lora_dropout", "in [0, 1)");
        }
        if LoraTarget::parse_list(&self.lora_targets).is_err() {
            return invalid(
                "lora_targets",
                "a comma-separated list of query, key, value, attention.output.dense, intermediate.dense, output.dense",
            );
        }
        Ok(())
    }

    /// The adapters' settings when `peft` is `lora`.
    pub fn lora_settings(&self) -> Option<LoraSettings> {
        (self.peft == Peft::Lora).then(|| LoraSettings {
            rank: self.lora_r,
            alpha: self.lora_alpha,
            dropout: self.lora_dropout,
            targets: LoraTarget::parse_list(&self.lora_targets).unwrap_or_default(),
            rslora: false,
            init: self.lora_init,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_values_are_refused_by_field() {
        assert!(TrainOptions::default().validate().is_ok());
        let cases = [
            (TrainOptions { epochs: 0, ..Default::default() }, "epochs must be at least 1"),
            (TrainOptions { batch_size: 0, ..Default::default() }, "batch_size must be at least 1"),
            (TrainOptions { lr: f64::NAN, ..Default::default() }, "lr must be a positive number"),
            (TrainOptions { max_len: 2, ..Default::default() }, "max_len must be between 3 and 4096"),
            (TrainOptions { warmup_ratio: 1.5, ..Default::default() }, "warmup_ratio must be between 0 and 1"),
            (TrainOptions { scale: 0.0, ..Default::default() }, "scale must be a positive number"),
            (TrainOptions { lora_r: 0, ..Default::default() }, "lora_r must be at least 1 (and at most the hidden size)"),
            (
                TrainOptions { lora_targets: "query,c_attn".into(), ..Default::default() },
                "lora_targets must be a comma-separated list of query, key, value, attention.output.dense, intermediate.dense, output.dense",
            ),
            (
                TrainOptions { precision: Precision::Int8, ..Default::default() },
                "precision must be fp32 or bf16 (int8 is for inference: `ferrotune quantize`)",
            ),
        ];
        for (options, message) in cases {
            assert_eq!(options.validate().unwrap_err().to_string(), message);
        }
    }
}
