//! A FAQ assistant on sentence embeddings: an index of FAQ entries
//! embedded by a sentence-embedding model (built from a FAQ file, saved as
//! a checked folder), answers to questions with the nearest entries, and a
//! hand-over to a person when the best answer scores below a threshold
//! calibrated on labelled dev questions (or when an intent model says the
//! FAQ does not cover the question's intent).

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod answer;
mod assistant;
mod build;
mod error;
mod index;

pub use answer::{Alternative, Answer, IntentGuess};
pub use assistant::{Evaluation, FaqAssistant, OpenOptions};
pub use build::{build, BuildOptions, Built};
pub use error::AssistantError;
pub use index::{Entry, FaqIndex, IntentGate, Keys, ModelRef, MANIFEST};
