//! How a training run reports progress: the loop calls a [`TrainObserver`]
//! and never prints. The CLI draws a progress bar or writes plain lines;
//! tests pass [`Silent`].

use std::path::Path;

use ferrotune_data::Task;

/// The training data, once read and encoded.
#[derive(Debug, Clone, PartialEq)]
pub struct DataSummary {
    /// The task.
    pub task: Task,
    /// Sentences (NER) or texts read.
    pub examples: usize,
    /// Model inputs made of them (NER: windows).
    pub model_inputs: usize,
    /// Examples longer than `max_len` (split into windows, or cut).
    pub long_inputs: usize,
    /// The `max_len` option.
    pub max_len: usize,
    /// Whether the examples are text pairs.
    pub pairs: bool,
    /// Labels the head learns.
    pub labels: usize,
    /// Parameters of the model.
    pub parameters: usize,
    /// Of those, how many train (fewer than all with LoRA).
    pub trainable: usize,
}

/// Where the run starts from.
#[derive(Debug, Clone, PartialEq)]
pub enum RunStart<'a> {
    /// From the pretrained model.
    Fresh,
    /// `--resume` was asked for but there is no checkpoint in this folder.
    NoCheckpoint(&'a Path),
    /// From a checkpoint taken after an epoch.
    Resumed {
        /// The checkpoint folder.
        dir: &'a Path,
        /// Epochs done before it.
        epochs_done: usize,
        /// Optimizer steps taken before it.
        step: u64,
    },
}

/// One optimizer step.
#[derive(Debug, Clone, PartialEq)]
pub struct StepReport {
    /// The epoch (from 1).
    pub epoch: usize,
    /// The number of epochs of the run.
    pub epochs: usize,
    /// The step within the epoch (from 1).
    pub index: usize,
    /// Steps in this epoch.
    pub steps: usize,
    /// The step's loss.
    pub loss: f64,
    /// The epoch's mean loss so far.
    pub mean_loss: f64,
    /// The learning rate of the step.
    pub lr: f64,
    /// The gradient norm before clipping.
    pub grad_norm: f32,
    /// Training examples per second in this epoch so far.
    pub examples_per_second: f64,
    /// Seconds since the epoch started.
    pub seconds: f64,
}

/// The end of an epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochReport {
    /// The epoch (from 1).
    pub epoch: usize,
    /// The number of epochs of the run.
    pub epochs: usize,
    /// Mean training loss.
    pub train_loss: f64,
    /// One line on the dev set (e.g. `P 0.81 R 0.83 F1 0.82`), if there is one.
    pub dev_summary: Option<String>,
    /// Whether this epoch's model was the best so far (and saved).
    pub improved: bool,
    /// Seconds of training in the epoch.
    pub seconds: f64,
    /// Training examples per second.
    pub examples_per_second: f64,
    /// Early stopping ends the run after this epoch, after this many
    /// epochs without a better dev score.
    pub stopping_early_after: Option<usize>,
}

/// Receives a run's progress; every method does nothing by default.
pub trait TrainObserver {
    /// The data is read and the model loaded.
    fn data(&mut self, _summary: &DataSummary) {}
    /// The loop starts.
    fn start(&mut self, _start: &RunStart) {}
    /// An epoch of `steps` steps starts.
    fn epoch_start(&mut self, _epoch: usize, _epochs: usize, _steps: usize) {}
    /// A step is done.
    fn step(&mut self, _step: &StepReport) {}
    /// An epoch is done (dev set scored, checkpoint written).
    fn epoch_end(&mut self, _epoch: &EpochReport) {}
    /// A line was appended to `metrics.jsonl` (a step's or an epoch's; see
    /// [`crate::metric_scalars`] for its numbers).
    fn metrics(&mut self, _line: &serde_json::Value) {}
}

/// An observer that ignores everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl TrainObserver for Silent {}
