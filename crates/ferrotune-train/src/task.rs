//! What the training loop needs from a task: its examples' lengths, the
//! loss of a batch, a dev evaluation and saving. NER and the sequence tasks
//! each implement it; the loop itself is shared.

use std::path::Path;

use candle_core::Tensor;
use ferrotune_model::ParamStore;
use rand_chacha::ChaCha8Rng;

use crate::TrainError;

/// The result of evaluating on the dev set.
pub struct DevResult {
    /// Higher is better: entity micro F1 (NER), macro F1 (classify), micro
    /// F1 (multilabel), negative MSE (regression).
    pub score: f64,
    /// The full report, for `metrics.jsonl`.
    pub report: serde_json::Value,
    /// One line for the log, e.g. `dev P 0.81 R 0.83 F1 0.82`.
    pub summary: String,
}

/// A model with its encoded training (and dev) data.
pub trait TrainTask {
    /// Token count of every training example, for length bucketing.
    fn lengths(&self) -> Vec<usize>;
    /// Texts (or sentences) behind the examples.
    fn sentences(&self) -> usize;
    /// Of those, how many were split into several windows.
    fn split_sentences(&self) -> usize;
    /// The model's trainable parameters.
    fn params(&self) -> &ParamStore;
    /// The model's labels, in id order.
    fn labels(&self) -> &[String];
    /// The training loss of the examples `ids` (dropout from `rng`).
    fn batch_loss(&self, ids: &[usize], rng: &mut ChaCha8Rng) -> Result<Tensor, TrainError>;
    /// Scores the model on the dev set, if there is one.
    fn evaluate(&self, batch_size: usize) -> Result<Option<DevResult>, TrainError>;
    /// Writes the model folder (without tokenizer files).
    fn save(&self, dir: &Path) -> Result<(), TrainError>;
}
