//! What the training loop needs from a task: its examples' lengths, the
//! loss of a batch, a dev evaluation and saving. NER and the sequence tasks
//! each implement it; the loop itself is shared.

use std::path::Path;

use candle_core::Tensor;
use ferrotune_data::Task;
use ferrotune_eval::TaskReport;
use ferrotune_model::ParamStore;
use rand_chacha::ChaCha8Rng;

use crate::{epoch_batches, Batching, TrainError};

/// A model with its encoded training (and dev) data.
pub trait TrainTask {
    /// The task.
    fn task(&self) -> Task;
    /// Token count of every training input, for length bucketing.
    fn lengths(&self) -> Vec<usize>;
    /// Sentences (or texts) behind the inputs.
    fn examples(&self) -> usize;
    /// Of those, how many were longer than `max_len` (split or cut).
    fn long_inputs(&self) -> usize;
    /// The batches of one epoch (example indices): `batching` over the
    /// inputs' lengths unless the task needs its own grouping.
    fn batches(&self, batching: Batching, batch_size: usize, rng: &mut ChaCha8Rng) -> Vec<Vec<usize>> {
        epoch_batches(batching, &self.lengths(), batch_size, rng)
    }
    /// Whether the examples are text pairs.
    fn pairs(&self) -> bool {
        false
    }
    /// The model's trainable parameters.
    fn params(&self) -> &ParamStore;
    /// The model's labels, in id order.
    fn labels(&self) -> &[String];
    /// The training loss of the inputs `ids` (dropout from `rng`).
    fn batch_loss(&self, ids: &[usize], rng: &mut ChaCha8Rng) -> Result<Tensor, TrainError>;
    /// Scores the model on the dev set, if there is one.
    fn evaluate(&self, batch_size: usize) -> Result<Option<TaskReport>, TrainError>;
    /// Writes the model folder (without tokenizer files).
    fn save(&self, dir: &Path) -> Result<(), TrainError>;
}

/// The dev report of a classifier head's frozen copy on `dev`, in batches
/// of `batch_size` inputs at the default decision threshold: the dev pass
/// of the NER and sequence tasks.
pub(crate) fn dev_report(
    dev: &ferrotune_infer::EvalSet,
    model: &ferrotune_infer::TaskModel,
    pad_id: u32,
    batch_size: usize,
) -> Result<TaskReport, TrainError> {
    let limits = ferrotune_infer::BatchLimits::inputs(batch_size);
    Ok(dev.evaluate(model, pad_id, limits, ferrotune_infer::RunSettings::default().threshold)?)
}
