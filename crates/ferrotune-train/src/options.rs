//! Training options, with the project's default recipe.

use ferrotune_data::Task;
use ferrotune_model::Pooling;
use serde::{Deserialize, Serialize};

use crate::{Batching, Schedule, TrainError};

/// Everything that shapes a training run. The defaults are the recipe
/// measured to work best on NCBI-disease with all-MiniLM-L6-v2 (see the
/// README); the design document's recipe is `lr 2e-5, epochs 5,
/// warmup_ratio 0, schedule constant, max_grad_norm 0`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainOptions {
    /// What to learn: tags per word, or a class, classes or a number per text.
    pub task: Task,
    /// How sequence tasks pool token states (`cls`: BERT's pooler).
    pub pooling: Pooling,
    /// Passes over the training set.
    pub epochs: usize,
    /// Windows per optimizer step.
    pub batch_size: usize,
    /// Length-bucketed or plain random batches.
    pub batching: Batching,
    /// Peak learning rate.
    pub lr: f64,
    /// Maximum tokens per window, special tokens included.
    pub max_len: usize,
    /// Fraction of all steps spent warming the learning rate up.
    pub warmup_ratio: f64,
    /// Learning-rate shape after warmup.
    pub schedule: Schedule,
    /// Decoupled weight decay (not on biases and LayerNorm weights).
    pub weight_decay: f64,
    /// Clip the global gradient norm to this (0 disables).
    pub max_grad_norm: f64,
    /// Seed of the head initialisation, shuffling and dropout.
    pub seed: u64,
    /// Stop after this many epochs without a better dev score (0 disables).
    pub patience: usize,
    /// Windows per forward pass when evaluating.
    pub eval_batch_size: usize,
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
        }
    }
}

impl TrainOptions {
    /// Checks that every option is in range.
    pub fn validate(&self) -> Result<(), TrainError> {
        let bad = |m: &str| Err(TrainError::Options(m.to_string()));
        if self.epochs == 0 {
            return bad("--epochs must be at least 1");
        }
        if self.batch_size == 0 || self.eval_batch_size == 0 {
            return bad("--batch-size must be at least 1");
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return bad("--lr must be a positive number");
        }
        if self.max_len < 3 || self.max_len > 4096 {
            return bad("--max-len must be between 3 and 4096");
        }
        if !(0.0..=1.0).contains(&self.warmup_ratio) {
            return bad("--warmup-ratio must be between 0 and 1");
        }
        if !(self.weight_decay >= 0.0 && self.max_grad_norm >= 0.0) {
            return bad("--weight-decay and --max-grad-norm must not be negative");
        }
        Ok(())
    }
}
