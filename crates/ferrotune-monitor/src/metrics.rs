//! The `--listen` sink: the monitor's counters and gauges
//! ([`MonitorMetrics`], shared through an `Arc` by the stages that count)
//! served as Prometheus metrics at `GET /metrics`, with `GET /health`, by
//! [`serve_metrics`] on a background thread of its own.

use std::collections::VecDeque;
use std::fmt::{Display, Write};
use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Instant;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use tokio::sync::oneshot;

use crate::{Alert, MonitorError, Severity};

/// The seconds over which `classified_per_second` is measured.
const RATE_WINDOW: u64 = 10;

/// The content type of the text exposition format.
const EXPOSITION: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The monitor's counters and gauges; every method takes `&self`.
#[derive(Debug)]
pub struct MonitorMetrics {
    records_in: AtomicU64,
    rejected: AtomicU64,
    classified: AtomicU64,
    alerts: AtomicU64,
    resolutions: AtomicU64,
    queue_depth: AtomicU64,
    webhook_queued: AtomicU64,
    rate: Mutex<Rate>,
}

impl Default for MonitorMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl MonitorMetrics {
    /// All zero; the classification rate is measured from now.
    pub fn new() -> Self {
        Self {
            records_in: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            classified: AtomicU64::new(0),
            alerts: AtomicU64::new(0),
            resolutions: AtomicU64::new(0),
            queue_depth: AtomicU64::new(0),
            webhook_queued: AtomicU64::new(0),
            rate: Mutex::new(Rate::new(Instant::now())),
        }
    }

    /// Counts records read from the stream.
    pub fn add_records_in(&self, n: u64) {
        self.records_in.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts records sent to the dead-letter file.
    pub fn add_rejected(&self, n: u64) {
        self.rejected.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts records classified (and the classification rate).
    pub fn add_classified(&self, n: u64) {
        self.classified.fetch_add(n, Ordering::Relaxed);
        // The instant is taken under the lock, so buckets come in order.
        let mut rate = self.rate.lock().unwrap_or_else(PoisonError::into_inner);
        rate.add(Instant::now(), n);
    }

    /// Counts an alert, or a resolution event.
    pub fn observe_alert(&self, alert: &Alert) {
        let counter = if alert.severity == Severity::Resolved { &self.resolutions } else { &self.alerts };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Sets the records read but not yet classified and stored.
    pub fn set_queue_depth(&self, n: usize) {
        self.queue_depth.store(n as u64, Ordering::Relaxed);
    }

    /// Sets the alerts waiting for the webhook ([`Webhook::queued`](crate::Webhook::queued)).
    pub fn set_webhook_queued(&self, n: usize) {
        self.webhook_queued.store(n as u64, Ordering::Relaxed);
    }

    /// The metrics in the Prometheus text exposition format (0.0.4).
    pub fn render(&self) -> String {
        let load = |value: &AtomicU64| value.load(Ordering::Relaxed);
        let per_second = self.rate.lock().unwrap_or_else(PoisonError::into_inner).per_second(Instant::now());
        let mut out = String::new();
        let counter = "counter";
        let gauge = "gauge";
        metric(&mut out, "records_in_total", counter, "Stream records read.", load(&self.records_in));
        metric(&mut out, "rejected_total", counter, "Records sent to the dead-letter file.", load(&self.rejected));
        metric(&mut out, "classified_total", counter, "Records classified.", load(&self.classified));
        let help = "Records classified per second over the last 10 s.";
        metric(&mut out, "classified_per_second", gauge, help, per_second);
        metric(&mut out, "alerts_total", counter, "Alerts raised (resolutions not included).", load(&self.alerts));
        metric(&mut out, "resolutions_total", counter, "Alerts resolved.", load(&self.resolutions));
        let help = "Records read but not yet classified and stored.";
        metric(&mut out, "queue_depth", gauge, help, load(&self.queue_depth));
        let help = "Alerts waiting for webhook delivery.";
        metric(&mut out, "webhook_queued", gauge, help, load(&self.webhook_queued));
        out
    }
}

/// Appends one metric without labels: HELP, TYPE and its sample.
fn metric(out: &mut String, name: &str, kind: &str, help: &str, value: impl Display) {
    let name = format!("ferrotune_monitor_{name}");
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
}

/// Records classified in each whole second since `start`, for the last
/// [`RATE_WINDOW`] seconds.
#[derive(Debug)]
struct Rate {
    start: Instant,
    buckets: VecDeque<(u64, u64)>,
}

impl Rate {
    fn new(start: Instant) -> Self {
        Self { start, buckets: VecDeque::new() }
    }

    fn add(&mut self, now: Instant, n: u64) {
        let second = now.saturating_duration_since(self.start).as_secs();
        match self.buckets.back_mut() {
            Some((last, count)) if *last == second => *count += n,
            _ => self.buckets.push_back((second, n)),
        }
        let first = second.saturating_sub(RATE_WINDOW - 1);
        while self.buckets.front().is_some_and(|(s, _)| *s < first) {
            self.buckets.pop_front();
        }
    }

    /// Records per second over the window's seconds up to `now` (the
    /// current second counting as far as it has gone; at least 1 s).
    fn per_second(&self, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(self.start).as_secs_f64();
        let first = (elapsed as u64).saturating_sub(RATE_WINDOW - 1);
        let count: u64 = self.buckets.iter().filter(|(s, _)| *s >= first).map(|(_, n)| n).sum();
        count as f64 / (elapsed - first as f64).max(1.0)
    }
}

/// The running metrics server; dropping it stops it.
#[derive(Debug)]
pub struct MetricsServer {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// The address it listens on (the port chosen, for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops it: open connections are dropped, the port is free on return.
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            // The thread may have ended already: nothing to tell.
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            // A panic there has nothing left to report.
            let _ = thread.join();
        }
    }
}

/// Serves `GET /metrics` and `GET /health` on `addr` from a thread of its
/// own; the error names the address if it cannot be bound.
pub fn serve_metrics(addr: SocketAddr, metrics: Arc<MonitorMetrics>) -> Result<MetricsServer, MonitorError> {
    let error = |source| MonitorError::Listen { addr, source };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(error)?;
    let listener = std::net::TcpListener::bind(addr).map_err(error)?;
    listener.set_nonblocking(true).map_err(error)?;
    let local = listener.local_addr().map_err(error)?;
    let listener = {
        let _context = runtime.enter();
        tokio::net::TcpListener::from_std(listener).map_err(error)?
    };
    let app = Router::new().route("/metrics", get(exposition)).route("/health", get(health)).with_state(metrics);
    let (shutdown, stopped) = oneshot::channel();
    let thread = std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            runtime.block_on(async move {
                // Stopping drops open connections: a scrape cut short is
                // simply retried.
                tokio::select! {
                    _ = axum::serve(listener, app).into_future() => {}
                    _ = stopped => {}
                }
            })
        })
        .map_err(|source| MonitorError::Thread { name: "metrics", source })?;
    Ok(MetricsServer { addr: local, shutdown: Some(shutdown), thread: Some(thread) })
}

async fn exposition(State(metrics): State<Arc<MonitorMetrics>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, EXPOSITION)], metrics.render())
}

async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AlertKind;
    use std::collections::BTreeMap;
    use std::time::Duration;

    fn alert(severity: Severity) -> Alert {
        Alert {
            kind: AlertKind::NegativeShare,
            severity,
            topic: "acme".into(),
            window_start: 0,
            window_end: 3600,
            count: 100,
            negatives: 60,
            observed_share: 0.6,
            baseline_share: 0.3,
            baseline_count: 100.0,
            p_value: 1e-6,
            texts: Vec::new(),
        }
    }

    fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let mut response = agent.get(format!("http://{addr}{path}")).call().unwrap();
        let content_type =
            response.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
        (response.status().as_u16(), content_type, response.body_mut().read_to_string().unwrap())
    }

    /// The samples of an exposition, checking every one has HELP and TYPE
    /// lines before it.
    fn samples(text: &str) -> BTreeMap<String, f64> {
        let mut described = Vec::new();
        let mut samples = BTreeMap::new();
        for line in text.lines() {
            let words: Vec<&str> = line.split(' ').collect();
            match words[..] {
                ["#", "HELP", name, _, ..] => described.push((name.to_string(), "HELP")),
                ["#", "TYPE", name, "counter" | "gauge"] => described.push((name.to_string(), "TYPE")),
                [name, value] => {
                    assert!(name.starts_with("ferrotune_monitor_"), "{line}");
                    for kind in ["HELP", "TYPE"] {
                        assert!(described.contains(&(name.to_string(), kind)), "no {kind} for {name}");
                    }
                    samples.insert(name.to_string(), value.parse().unwrap());
                }
                _ => panic!("unexpected line: {line}"),
            }
        }
        samples
    }

    #[test]
    fn metrics_health_and_not_found() {
        let metrics = Arc::new(MonitorMetrics::new());
        let server = serve_metrics("127.0.0.1:0".parse().unwrap(), Arc::clone(&metrics)).unwrap();
        let addr = server.local_addr();
        metrics.add_records_in(5);
        metrics.add_records_in(2);
        metrics.add_rejected(1);
        metrics.add_classified(6);
        metrics.observe_alert(&alert(Severity::Warning));
        metrics.observe_alert(&alert(Severity::Critical));
        metrics.observe_alert(&alert(Severity::Resolved));
        metrics.set_queue_depth(3);
        metrics.set_webhook_queued(4);

        let (status, content_type, text) = get(addr, "/metrics");
        assert_eq!((status, content_type.as_str()), (200, EXPOSITION));
        let samples = samples(&text);
        let value = |name: &str| samples[&format!("ferrotune_monitor_{name}")];
        assert_eq!(samples.len(), 8, "{text}");
        assert_eq!(value("records_in_total"), 7.0);
        assert_eq!(value("rejected_total"), 1.0);
        assert_eq!(value("classified_total"), 6.0);
        assert!(value("classified_per_second") > 0.0 && value("classified_per_second") <= 6.0);
        assert_eq!(value("alerts_total"), 2.0);
        assert_eq!(value("resolutions_total"), 1.0);
        assert_eq!(value("queue_depth"), 3.0);
        assert_eq!(value("webhook_queued"), 4.0);

        let (status, content_type, body) = get(addr, "/health");
        assert_eq!((status, content_type.as_str()), (200, "application/json"));
        assert_eq!(serde_json::from_str::<serde_json::Value>(&body).unwrap(), serde_json::json!({"status": "ok"}));
        assert_eq!(get(addr, "/nothing").0, 404);

        server.stop();
        assert!(std::net::TcpStream::connect(addr).is_err(), "still listening after stop");
    }

    #[test]
    fn address_in_use_is_an_error_naming_it() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let e = serve_metrics(addr, Arc::new(MonitorMetrics::new())).unwrap_err().to_string();
        assert!(e.starts_with(&format!("listen: cannot serve metrics on {addr}: ")), "{e}");
    }

    #[test]
    fn rate_over_the_last_ten_seconds() {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let mut rate = Rate::new(start);
        assert_eq!(rate.per_second(at(0)), 0.0);
        rate.add(at(200), 10);
        rate.add(at(500), 20);
        // Less than a second in: counted over 1 s.
        assert_eq!(rate.per_second(at(500)), 30.0);
        rate.add(at(5_500), 25);
        assert_eq!(rate.per_second(at(5_500)), 55.0 / 5.5);
        // Seconds 3..=12: the first bucket is out.
        assert_eq!(rate.per_second(at(12_500)), 25.0 / 9.5);
        rate.add(at(30_000), 1);
        assert_eq!(rate.buckets.len(), 1, "old buckets dropped");
        assert_eq!(rate.per_second(at(40_000)), 0.0);
    }
}
