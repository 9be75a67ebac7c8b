//! Inference with a fine-tuned token classifier: batched tagging of
//! pre-split sentences (windows merged back), and `predict` records with
//! entities and character offsets.

mod error;
mod predict;
mod tagger;

pub use error::InferError;
pub use predict::{EntityOut, Prediction, PredictionInput};
pub use tagger::{predict_windows, Tagger, WordPrediction};
