//! The sentiment monitor's core (issue 15, first part): classified records
//! counted in tumbling windows per topic ([`Windows`], late records
//! accepted up to an allowed lateness, a window final once the watermark
//! passes it), and each final window tested against its topic's own
//! baseline ([`Detector`]: a beta-binomial tail probability of the negative
//! count, a Poisson tail of the volume, cooldown and resolution events).
//!
//! Also: stream records parsed line by line ([`parse_record`]; the error is
//! the reason a record goes to the dead-letter file), topic rules
//! ([`TopicRules`]), the model's negative labels ([`Polarity`]) and the
//! dashboard page ([`Dashboard`]). No tensor code: `ferrotune monitor run`
//! reads the stream and runs the model.
//!
//! Two sinks: [`Webhook`] posts alerts as JSON from a thread of its own
//! (retries with backoff, each attempt reported as a [`Delivery`] for the
//! caller's store), and [`serve_metrics`] serves [`MonitorMetrics`] as
//! Prometheus metrics, with `/health`.
//!
//! ```
//! use ferrotune_monitor::{Classified, DetectorSettings, Detector, Windows};
//!
//! let mut windows = Windows::new(3600, 0);
//! let mut detector = Detector::new(DetectorSettings::default());
//! let mut alerts = Vec::new();
//! for hour in 0..30u32 {
//!     // 100 texts an hour, 30% negative; 60% in hour 25.
//!     let negatives = if hour == 25 { 60 } else { 30 };
//!     for i in 0..100 {
//!         let negative = i < negatives;
//!         let record = Classified {
//!             time: i64::from(hour) * 3600 + i,
//!             topic: "acme".into(),
//!             label: if negative { "negative" } else { "positive" }.into(),
//!             negative,
//!             negative_score: if negative { 0.9 } else { 0.1 },
//!             text: format!("post {i}"),
//!         };
//!         for window in windows.add(record).unwrap() {
//!             alerts.extend(detector.observe(&window));
//!         }
//!     }
//! }
//! assert_eq!(alerts.len(), 2); // the rise, then its resolution
//! assert_eq!(alerts[0].window_start, 25 * 3600);
//! ```

#![deny(missing_docs)]

mod dashboard;
mod detect;
mod duration;
mod engine;
mod error;
mod metrics;
mod polarity;
mod record;
mod redis_stream;
mod simulate;
mod source;
mod stats;
mod store;
mod topics;
mod webhook;
mod window;

pub use dashboard::{Dashboard, TopicSeries, WindowPoint};
pub use detect::{Alert, AlertKind, Baseline, Detector, DetectorSettings, Severity};
pub use duration::parse_duration;
pub use engine::{store_classified, BatchOutcome, Labelled, Monitor, MonitorSettings, Reject, OVERALL};
pub use error::MonitorError;
pub use metrics::{serve_metrics, MetricsServer, MonitorMetrics};
pub use polarity::Polarity;
pub use record::{parse_record, parse_time, StreamRecord};
pub use redis_stream::{RedisStream, RedisStreamAddress};
pub use simulate::{score, simulate, Burst, DetectionScore, ReplayRecord, SimulationSettings, Truth};
pub use source::{Position, SourceItem, StreamFormat, StreamReader};
pub use store::{record_key, Emitted, Store, StoreTransaction, StoredAlert, StoredRecord, StoredWindow};
pub use topics::TopicRules;
pub use webhook::{Delivery, Webhook, WebhookSettings};
pub use window::{Classified, Window, Windows};
