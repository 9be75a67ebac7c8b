//! Inference with fine-tuned models: batched tagging of pre-split sentences
//! (windows merged back) with `predict` records holding entities and
//! character offsets, and batched scoring of texts and text pairs.

mod classifier;
mod error;
mod predict;
mod tagger;

pub use error::InferError;
pub use predict::{EntityOut, Prediction, PredictionInput};
pub use tagger::{predict_windows, Tagger, WordPrediction};
pub use classifier::{decide, score_encoded, Decision, EncodedText, TextClassifier, TextPrediction};
