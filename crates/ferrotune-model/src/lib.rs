//! The model: BERT-family configuration, an encoder (on the CPU each layer is
//! one fused op with a hand-written backward; elsewhere candle's
//! differentiable ops), token- and sequence-classification heads, sentence
//! embeddings (`sentence`), and
//! loading/saving in the Hugging Face layout.

#![deny(missing_docs)]

mod batch;
mod bert;
mod config;
mod device;
mod dropout;
mod error;
mod fused_layer;
mod head;
pub mod lora;
mod model_folder;
pub mod ops;
mod params;
pub mod quant;
mod row_matmul;
mod scratch;
pub mod sentence;
mod sequence_classifier;
pub mod simd;
mod strided;
#[cfg(feature = "test-support")]
pub mod tiny;
mod token_classifier;
mod weights_file;

pub use batch::Batch;
pub use bert::{BertEncoder, LayerNorm, Linear, PackedWeights};
pub use config::{Activation, BertConfig, Pooling};
pub use device::device_from_name;
pub use dropout::{Dropout, Mode};
pub use error::ModelError;
pub use model_folder::{model_folder, TRAINED_MODEL};
pub use params::{hf_name, ParamStore};
pub use scratch::ScratchScope;
pub use sequence_classifier::{SequenceClassifier, SequenceHead};
pub use strided::matmul_abt;
pub use token_classifier::{TokenClassifier, TokenHead};
