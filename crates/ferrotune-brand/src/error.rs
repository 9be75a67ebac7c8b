use std::path::PathBuf;

use crate::ahp::{AhpError, Inconsistency, MAX_CONSISTENCY_RATIO};

/// Everything that can be wrong with a scorecard or a brand command.
#[derive(Debug, thiserror::Error)]
pub enum BrandError {
    /// An analysis option is out of range.
    #[error("{field} {message}")]
    InvalidOption {
        /// The option, e.g. `concentration`.
        field: &'static str,
        /// What it must be.
        message: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The scorecard is not valid TOML or does not have the expected shape.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong (with line and column when TOML knows them).
        message: String,
    },
    /// The scorecard parses but says something impossible.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the term, indicator or scenario.
        message: String,
    },
    /// An `[ahp.<name>]` comparison matrix is invalid.
    #[error("{path}: [ahp.{table}]: {source}")]
    Ahp {
        /// The file.
        path: PathBuf,
        /// The `<name>` of the `[ahp.<name>]` table.
        table: String,
        /// What is wrong with its matrix.
        source: AhpError,
    },
    /// AHP comparisons too inconsistent to use.
    #[error(
        "{}: [ahp.{table}] is too inconsistent to use: consistency ratio {ratio:.3} > {MAX_CONSISTENCY_RATIO}; \
         revise the most inconsistent judgements: {}",
        path.display(),
        worst_judgements(worst)
    )]
    Inconsistent {
        /// The file.
        path: PathBuf,
        /// The `<name>` of the `[ahp.<name>]` table.
        table: String,
        /// Its consistency ratio (above [`MAX_CONSISTENCY_RATIO`]).
        ratio: f64,
        /// The judgements furthest from what the weights imply, worst first.
        worst: Vec<Inconsistency>,
    },
}

fn worst_judgements(worst: &[Inconsistency]) -> String {
    let named: Vec<String> = worst
        .iter()
        .map(|p| format!("'{}' vs '{}' is {:.3} but the weights imply {:.3}", p.a, p.b, p.given, p.implied))
        .collect();
    named.join("; ")
}
