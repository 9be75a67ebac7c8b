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
    /// A `--topics` file that cannot be read or compiled.
    #[error("{}: {message}", path.display())]
    Topics {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A polarity label the model does not have.
    #[error("the {polarity} label '{label}' is not one of the model's labels: {}", labels.join(", "))]
    UnknownLabel {
        /// The label asked for.
        label: String,
        /// Which list it was in: negative or positive.
        polarity: &'static str,
        /// The model's labels.
        labels: Vec<String>,
    },
    /// A label given as negative and as positive.
    #[error("label '{label}' is both negative and positive")]
    BothPolarities {
        /// The label.
        label: String,
    },
    /// No negative label given.
    #[error("no negative label: name the model's negative labels")]
    NoNegativeLabel,
    /// A simulation setting out of its range.
    #[error("{field}: expected {expected}")]
    InvalidSetting {
        /// The setting.
        field: &'static str,
        /// What it must be.
        expected: &'static str,
    },
    /// A record older than the allowed lateness behind the watermark.
    #[error("record at {time} is too late: the window it belongs to closed at watermark {watermark}")]
    TooLate {
        /// The record's time (Unix seconds).
        time: i64,
        /// The watermark when it arrived.
        watermark: i64,
    },
    /// The store could not be read or written.
    #[error("{}: {message}", path.display())]
    Store {
        /// The database file.
        path: std::path::PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The stream could not be read.
    #[error("{}: {message}", path.display())]
    Input {
        /// The stream's file (`-` for stdin).
        path: std::path::PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A store made with other settings than this run's.
    #[error("{}: the store was made with {field} = {stored}, this run asks for {asked}: use the same settings or a new store", path.display())]
    SettingsChanged {
        /// The database file.
        path: std::path::PathBuf,
        /// The setting.
        field: &'static str,
        /// Its value in the store.
        stored: String,
        /// Its value in this run.
        asked: String,
    },
    /// A Redis server that cannot be reached or refuses a command.
    #[error("{url}: {message}")]
    Redis {
        /// The server.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// A webhook URL the client cannot post to.
    #[error("webhook: '{url}' is not a webhook URL: {reason}")]
    WebhookUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The metrics server cannot listen on its address.
    #[error("listen: cannot serve metrics on {addr}: {source}")]
    Listen {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// Why not.
        source: std::io::Error,
    },
    /// A background thread (the webhook's, the metrics server's) that
    /// cannot be started.
    #[error("cannot start the {name} thread: {source}")]
    Thread {
        /// The thread's name.
        name: &'static str,
        /// Why not.
        source: std::io::Error,
    },
}
