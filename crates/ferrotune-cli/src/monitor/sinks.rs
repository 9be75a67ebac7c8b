//! Where the monitor's alerts and rejected records go: files (each item
//! exactly once), the webhook (every attempt recorded in the store,
//! undelivered alerts sent again on the next start) and the metrics.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use ferrotune_monitor::{
    serve_metrics, BatchOutcome, Emitted, MetricsServer, MonitorMetrics, Store, Webhook, WebhookSettings,
};
use serde::Serialize;

use super::parse_seconds;

#[derive(Args)]
pub struct SinkArgs {
    /// Alerts and resolutions as JSON lines appended to this file [default: stdout].
    #[arg(long)]
    pub alerts: Option<PathBuf>,
    /// Rejected records (bad JSON, CSV, time or text; too late) as JSON lines {"id", "line", "reason",
    /// "record"} appended to this file [default: stderr].
    #[arg(long)]
    pub rejects: Option<PathBuf>,
    /// POST each alert as JSON to this http:// URL, from a thread of its own (a slow or dead endpoint never
    /// holds the stream up); every attempt is recorded in the store, and alerts not delivered are sent
    /// again on the next start.
    #[arg(long)]
    pub webhook: Option<String>,
    /// Longest a webhook attempt may take; also how long the end of a run waits for queued deliveries.
    #[arg(long, default_value = "5s", value_parser = parse_seconds)]
    pub webhook_timeout: i64,
    /// Attempts after the first before an alert is left for the next start (pauses from 0.5 s, doubling
    /// up to 30 s).
    #[arg(long, default_value_t = 5)]
    pub webhook_retries: u32,
    /// Serve Prometheus metrics (records in, rejected, classified per second, queue depth, alerts) at
    /// http://ADDR/metrics, and /health.
    #[arg(long)]
    pub listen: Option<SocketAddr>,
}

/// A sink written exactly once per item: alerts, or rejected records.
/// Items are written once committed, then marked emitted in the store; a
/// restart first writes those not yet emitted. In a file, an id already
/// there counts as emitted (and a line cut short by a kill is dropped), so
/// that a file gets each item exactly once; stdout and stderr get them at
/// least once.
pub struct OnceSink {
    out: Box<dyn Write>,
    file: Option<File>,
    table: Emitted,
    /// Items written by this run.
    pub written: usize,
}

impl OnceSink {
    fn open(path: Option<&Path>, default: Box<dyn Write>, table: Emitted, store: &Store) -> anyhow::Result<Self> {
        let (out, file): (Box<dyn Write>, _) = match path {
            Some(path) => {
                store.mark_emitted(table, last_id(path)?)?;
                let file = File::options().create(true).append(true).open(path)?;
                (Box::new(BufWriter::new(file.try_clone()?)), Some(file))
            }
            None => (default, None),
        };
        Ok(Self { out, file, table, written: 0 })
    }

    /// Writes `items` (the last with id `last`) as JSON lines.
    fn write<T: Serialize>(&mut self, items: &[T], last: i64, store: &Store) -> anyhow::Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        for item in items {
            serde_json::to_writer(&mut self.out, item)?;
            self.out.write_all(b"\n")?;
        }
        self.out.flush()?;
        if let Some(file) = &self.file {
            file.sync_data()?;
        }
        store.mark_emitted(self.table, last)?;
        self.written += items.len();
        Ok(())
    }
}

/// The highest `id` in a JSON-lines file (0 when there is none), after
/// dropping a last line cut short.
fn last_id(path: &Path) -> anyhow::Result<i64> {
    let context = || format!("{}", path.display());
    let mut bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e).with_context(context),
    };
    let whole = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    if whole < bytes.len() {
        File::options().write(true).open(path).and_then(|f| f.set_len(whole as u64)).with_context(context)?;
        bytes.truncate(whole);
    }
    let ids = bytes.split(|&b| b == b'\n').filter_map(|line| {
        let value: serde_json::Value = serde_json::from_slice(line).ok()?;
        value.get("id")?.as_i64()
    });
    Ok(ids.max().unwrap_or(0))
}

/// Alerts and rejected records, the webhook and the metrics.
pub struct Sinks {
    pub alerts: OnceSink,
    pub rejects: OnceSink,
    webhook: Option<Webhook>,
    drain: Duration,
    pub metrics: Arc<MonitorMetrics>,
    /// Serves `metrics` while the sinks live.
    _server: Option<MetricsServer>,
}

impl Sinks {
    /// Opens the sinks (files: stdout for alerts, stderr for rejects when
    /// not given) and sends them what the store holds that they have not
    /// had yet: alerts and rejects not written, alerts not delivered.
    pub fn open(args: &SinkArgs, store: &Store) -> anyhow::Result<Self> {
        let stdout = Box::new(BufWriter::new(std::io::stdout()));
        let name = |path: Option<&Path>| path.unwrap_or(Path::new("-")).display().to_string();
        let (alerts, rejects) = (args.alerts.as_deref(), args.rejects.as_deref());
        let alert_sink = OnceSink::open(alerts, stdout, Emitted::Alerts, store)
            .with_context(|| format!("alerts file {}", name(alerts)))?;
        let reject_sink = OnceSink::open(rejects, Box::new(std::io::stderr()), Emitted::Rejects, store)
            .with_context(|| format!("rejects file {}", name(rejects)))?;
        let drain = Duration::from_secs(args.webhook_timeout.unsigned_abs());
        let webhook = match &args.webhook {
            Some(url) => Some(Webhook::start(WebhookSettings {
                url: url.clone(),
                timeout: drain,
                retries: args.webhook_retries,
                ..WebhookSettings::default()
            })?),
            None => None,
        };
        let metrics = Arc::new(MonitorMetrics::new());
        let server = args.listen.map(|addr| serve_metrics(addr, metrics.clone())).transpose()?;
        let mut sinks = Self { alerts: alert_sink, rejects: reject_sink, webhook, drain, metrics, _server: server };
        if let Some(webhook) = &sinks.webhook {
            for alert in store.alerts(0, None, Some(false))? {
                webhook.send(alert.id, serde_json::to_string(&alert)?);
            }
        }
        let pending = BatchOutcome {
            alerts: store.alerts(0, Some(false), None)?,
            rejects: store.unemitted_rejects()?,
            ..Default::default()
        };
        sinks.write_files(&pending, store)?;
        Ok(sinks)
    }

    /// Sends a committed batch's rejects and alerts everywhere.
    pub fn write(&mut self, outcome: &BatchOutcome, store: &Store) -> anyhow::Result<()> {
        self.write_files(outcome, store)?;
        self.metrics.add_rejected(outcome.rejects.len() as u64);
        for alert in &outcome.alerts {
            self.metrics.observe_alert(&alert.alert);
            if let Some(webhook) = &self.webhook {
                webhook.send(alert.id, serde_json::to_string(alert)?);
            }
        }
        self.record_deliveries(store)
    }

    fn write_files(&mut self, outcome: &BatchOutcome, store: &Store) -> anyhow::Result<()> {
        let last_reject = outcome.rejects.last().map_or(0, |r| r.id);
        self.rejects.write(&outcome.rejects, last_reject, store)?;
        let last_alert = outcome.alerts.last().map_or(0, |a| a.id);
        self.alerts.write(&outcome.alerts, last_alert, store)
    }

    /// Records the webhook's attempts so far.
    pub fn record_deliveries(&mut self, store: &Store) -> anyhow::Result<()> {
        if let Some(webhook) = &self.webhook {
            for delivery in webhook.attempts() {
                store.record_delivery(&delivery)?;
            }
            self.metrics.set_webhook_queued(webhook.queued());
        }
        Ok(())
    }

    /// Waits (up to the webhook's timeout) for queued deliveries and
    /// records them; what is left undelivered goes out on the next start.
    pub fn finish(mut self, store: &Store) -> anyhow::Result<()> {
        self.record_deliveries(store)?;
        if let Some(webhook) = self.webhook.take() {
            for delivery in webhook.finish(self.drain) {
                store.record_delivery(&delivery)?;
            }
        }
        Ok(())
    }
}
