//! Fine-tuning for NER, sequence and retrieval tasks (one loop): AdamW with parameter
//! groups, warmup and decay, clipping, length-bucketed batches, dev-set
//! model selection, early stopping, and resumable end-of-epoch checkpoints.
//! Progress goes to a [`TrainObserver`]; the library never prints.
//!
//! ```
//! use ferrotune_train::{train, Silent, TrainOptions, TrainRequest};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let (base, data, output) = (dir.path().join("base"), dir.path().join("train.tsv"), dir.path().join("out"));
//! ferrotune_model::tiny::write_tiny_bert(&base, &["fever", "cough", "the"], 1)?;
//! std::fs::write(&data, "the\tO\nfever\tB-Disease\n\ncough\tB-Disease\nthe\tO\n\n".repeat(4))?;
//! let summary = train(
//!     &TrainRequest {
//!         model_dir: &base,
//!         train: &data,
//!         dev: Some(&data),
//!         dev_corpus: None,
//!         output: &output,
//!         options: TrainOptions { epochs: 2, batch_size: 4, max_len: 16, ..Default::default() },
//!         resume: false,
//!         device: candle_core::Device::Cpu,
//!         stop_after: None,
//!     },
//!     &mut Silent,
//! )?;
//! assert_eq!(summary.epochs_done, 2);
//! assert_eq!(summary.output, output.join("model"));
//! assert!(summary.output.join("model.safetensors").is_file() && summary.output.join("config.json").is_file());
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod batching;
pub mod checkpoint;
mod error;
mod events;
mod ner_task;
mod observer;
mod optimizer;
mod options;
mod ranking_loss;
pub mod report;
mod retrieval_task;
mod schedule;
mod sequence_task;
mod task;
mod trainer;

pub use batching::{distinct_batches, epoch_batches, Batching};
pub use error::TrainError;
pub use events::metric_scalars;
pub use observer::{DataSummary, EpochReport, RunStart, Silent, StepReport, TrainObserver};
pub use optimizer::{decays, AdamW, AdamWConfig};
pub use options::{Peft, TrainOptions};
pub use ranking_loss::ranking_loss;
pub use schedule::{learning_rate, Schedule};
pub use trainer::{train, TrainRequest, TrainSummary, RUN_FILE};
