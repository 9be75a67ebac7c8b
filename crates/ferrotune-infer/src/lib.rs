//! Running fine-tuned models: [`FineTuned`] loads a folder of any task,
//! runs batches of typed inputs into the records `predict` writes (entities
//! with character offsets, or labels with scores), and evaluates labelled
//! files with the metrics of seqeval and scikit-learn.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod error;
mod evaluate;
mod fine_tuned;
mod record;
mod sequence;
mod token;

pub use error::InferError;
pub use evaluate::EvalSet;
pub use ferrotune_data::TextInput;
pub use fine_tuned::{Evaluation, FineTuned, Outputs, Record, RunSettings, TaskModel};
pub use record::{ClassifyRecord, EntityOut, NerRecord, PredictionInput};
pub use sequence::{decide, score_encoded, Decision};
pub use token::{tag_windows, WindowedSentences, WordPrediction};
