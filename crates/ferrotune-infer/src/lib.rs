//! Running fine-tuned models: [`FineTuned`] loads a folder of any task,
//! runs batches of typed inputs into the records `predict` writes (entities
//! with character offsets, or labels with scores), and evaluates labelled
//! files with the metrics of seqeval and scikit-learn; [`Embedder`] turns
//! texts into sentence embeddings.
//!
//! ```
//! use candle_core::Device;
//! use ferrotune_infer::{FineTuned, Record, RunSettings, TextInput};
//! use ferrotune_model::{TokenClassifier, TokenHead};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // A tiny random BERT with a new tag head, saved as a fine-tuned folder.
//! let dir = tempfile::tempdir()?;
//! let (base, tagger) = (dir.path().join("base"), dir.path().join("tagger"));
//! ferrotune_model::tiny::write_tiny_bert(&base, &["fever", "cough"], 1)?;
//! let labels = ["O", "B-Disease", "I-Disease"].map(String::from);
//! TokenClassifier::load(&base, TokenHead::For { labels: &labels, seed: 1 }, &Device::Cpu)?.save_pretrained(&tagger)?;
//! ferrotune_text::copy_tokenizer_files(&base, &tagger)?;
//!
//! let model = FineTuned::load(&tagger, RunSettings::default(), &Device::Cpu)?;
//! let outputs = model.run(&[TextInput::Text("Fever and cough, no rash.".into())])?;
//! let Record::Ner(record) = &outputs.records[0] else { panic!("an NER model answers with entities") };
//! assert_eq!(record.tokens, ["Fever", "and", "cough", ",", "no", "rash", "."]);
//! assert_eq!(record.tags.len(), record.tokens.len());
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod batches;
mod embed;
mod error;
mod evaluate;
mod fine_tuned;
mod record;
mod retrieval;
mod sequence;
mod token;

pub use batches::BatchLimits;
pub use embed::{embed_texts, Embedder, Embeddings};
pub use error::InferError;
pub use evaluate::EvalSet;
pub use ferrotune_data::TextInput;
pub use fine_tuned::{AdapterHost, Evaluation, FineTuned, Outputs, Record, RunSettings, TaskModel};
pub use record::{ClassifyRecord, EntityOut, NerRecord, PredictionInput};
pub use retrieval::{RetrievalEvaluation, RetrievalSet};
pub use sequence::{decide, score_encoded, score_encoded_grouped, Decision};
pub use token::{tag_windows, tag_windows_grouped, WindowedSentences, WordPrediction};
