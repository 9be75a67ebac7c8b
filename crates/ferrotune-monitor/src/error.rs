//! What can go wrong in the monitor's core.

/// An error of the monitor's core, naming the value at fault.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    /// A duration such as `15m` that does not parse.
    #[error("'{text}' is not a duration: expected a positive number followed by s, m, h or d (e.g. 15m, 1h, 1d)")]
    Duration {
        /// The text given.
        text: String,
    },
    /// A record older than the allowed lateness behind the watermark.
    #[error("record at {time} is too late: the window it belongs to closed at watermark {watermark}")]
    TooLate {
        /// The record's time (Unix seconds).
        time: i64,
        /// The watermark when it arrived.
        watermark: i64,
    },
}
