//! Evaluation with the numbers the Python tools give: entity-level reports
//! of tag sequences as `seqeval` (`classification_report`, default mode),
//! plus token accuracy; text-level classification, multilabel and
//! regression metrics as scikit-learn; retrieval metrics as
//! sentence-transformers' `InformationRetrievalEvaluator`; an assistant's
//! hand-over (AUROC, coverage against precision, the calibrated threshold).

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod classification;
mod confusion_svg;
mod coverage_svg;
mod entities;
mod handover;
mod report;
mod retrieval;
mod task_report;

pub use classification::{ClassReport, MultilabelReport, RegressionReport, TextReport};
pub use confusion_svg::{confusion_svg, escape};
pub use coverage_svg::coverage_svg;
pub use entities::{get_entities, Entity};
pub use handover::{auroc, calibrate, coverage_curve, Calibration, CoveragePoint, HandoverReport, JudgedAnswer};
pub use report::{Averages, Report, Scores};
pub use retrieval::{top_k, RetrievalReport, CUTOFFS, MAP_AT, MRR_AT, NDCG_AT, RANKED};
pub use task_report::TaskReport;
