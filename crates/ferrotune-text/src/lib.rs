//! Text to model inputs: the WordPiece tokenizer of a checkpoint, splitting
//! raw text into words with character offsets, and the alignment of words to
//! sub-tokens, with overlapping windows for sentences longer than the model
//! input.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod error;
mod tokenizer;
mod windows;
mod words;

pub use error::TextError;
pub use tokenizer::{copy_tokenizer_files, EncodedText, WordTokenizer, TOKENIZER_FILES};
pub use windows::{windows_for_sentence, Window};
pub use words::{split_words, Word};
