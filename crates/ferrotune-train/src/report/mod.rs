//! `ferrotune report`: a training run's logs (`metrics.jsonl`, `run.json`)
//! as one self-contained HTML page (inline CSS and SVG, opens offline):
//! loss, learning rate and throughput per step, dev scores per epoch with
//! the kept epoch marked, the kept epoch's per-class or per-type scores and
//! confusion matrix, the options, data sizes and timings. Several runs are
//! overlaid, with a table of their options and best scores.

pub mod chart;
mod log;
mod page;

pub use log::{EpochPoint, RunLog, StepPoint};
pub use page::report_html;
