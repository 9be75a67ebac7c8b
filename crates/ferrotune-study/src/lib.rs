//! Hyperparameter studies over `ferrotune train`'s options, in the manner of
//! Optuna: a [`SearchSpace`] of floats (uniform or log-uniform), integers
//! and categoricals; a seeded sampler (random, or TPE with Optuna's
//! defaults); a pruner on the per-epoch dev score (median, or asynchronous
//! successive halving); a [`Study`] that keeps every trial in a journal
//! rewritten atomically after each change, so a killed study resumes with
//! the same trials. Running a trial is the caller's business: the study
//! says which options to try, hears each epoch's dev score and answers
//! whether to go on.
//!
//! ```
//! use ferrotune_study::{Decision, Study, StudyConfig};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let config = StudyConfig::parse(
//!     r#"
//!     trials = 6
//!     seed = 1
//!     sampler = "tpe"
//!     pruner = "asha"
//!     [train]
//!     epochs = 3
//!     [space]
//!     lr = { type = "float", low = 1e-5, high = 1e-3, log = true }
//!     "#,
//!     "search.toml".as_ref(),
//! )?;
//! let mut study = Study::create(config, &dir.path().join("journal.jsonl"))?;
//! while let Some(number) = study.start_trial()? {
//!     let lr = study.trial(number).params["lr"].as_f64().unwrap();
//!     let mut pruned = false;
//!     for epoch in 1..=3 {
//!         // Stands in for training: the closer lr is to 1e-4, the better.
//!         let score = epoch as f64 / 3.0 - (lr.ln() - 1e-4f64.ln()).abs() / 10.0;
//!         if study.report(number, epoch, score)? == Decision::Prune {
//!             pruned = true;
//!             break;
//!         }
//!     }
//!     if !pruned {
//!         study.complete(number)?;
//!     }
//! }
//! assert_eq!(study.trials().len(), 6);
//! assert!(study.best().is_some());
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod config;
mod error;
mod journal;
mod page;
mod pruner;
mod sampler;
mod space;
mod study;
mod tpe;
mod trial;

pub use config::{PrunerConfig, SamplerConfig, StudyConfig};
pub use error::StudyError;
pub use page::{study_page, trials_tsv};
pub use space::{Param, SearchSpace};
pub use study::{Decision, Study};
pub use trial::{Trial, TrialState};
