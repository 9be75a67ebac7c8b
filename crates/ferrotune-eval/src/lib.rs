//! Entity-level evaluation of tag sequences, with the numbers Python
//! `seqeval` gives (`classification_report`, default mode), plus token
//! accuracy.

mod entities;
mod report;

pub use entities::{get_entities, Entity};
pub use report::{Averages, Report, Scores};
