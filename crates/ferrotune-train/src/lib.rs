//! Fine-tuning for NER and sequence tasks (one loop): AdamW with parameter
//! groups, warmup and decay, clipping, length-bucketed batches, dev-set
//! model selection, early stopping, and resumable end-of-epoch checkpoints.
//! Progress goes to a [`TrainObserver`]; the library never prints.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod batching;
pub mod checkpoint;
mod error;
mod ner_task;
mod observer;
mod optimizer;
mod options;
mod schedule;
mod sequence_task;
mod task;
mod trainer;

pub use batching::{epoch_batches, Batching};
pub use error::TrainError;
pub use observer::{DataSummary, EpochReport, RunStart, Silent, StepReport, TrainObserver};
pub use optimizer::{decays, AdamW, AdamWConfig};
pub use options::TrainOptions;
pub use schedule::{learning_rate, Schedule};
pub use trainer::{train, TrainRequest, TrainSummary};
