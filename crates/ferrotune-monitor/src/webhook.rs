//! The `--webhook` sink: alerts POSTed as JSON to one URL, in order and one
//! at a time, on a background thread, so a slow or dead endpoint never
//! holds up the stream. Each attempt is reported as a [`Delivery`] for the
//! caller to record; an alert left undelivered when the monitor stops stays
//! undelivered in the caller's store, which sends it again on its next
//! start (delivery is at least once: an attempt cut off by the deadline may
//! still have reached the endpoint).

use std::collections::VecDeque;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ureq::http::Uri;
use ureq::Agent;

use crate::MonitorError;

/// The longest timeout, backoff or `finish` deadline: keeps every instant
/// computed from them in range.
const LONGEST: Duration = Duration::from_secs(86_400);

/// How long `finish` waits past its deadline for an attempt cut off at the
/// deadline to report.
const REPORT_GRACE: Duration = Duration::from_millis(200);

/// Where and how alerts are delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSettings {
    /// The endpoint: an `http://` URL.
    pub url: String,
    /// The longest one attempt may take, connection included (at most a
    /// day).
    pub timeout: Duration,
    /// Attempts after the first one before an alert is given up.
    pub retries: u32,
    /// The pause before the first retry; each further pause doubles.
    pub first_backoff: Duration,
    /// The longest pause between attempts (at most a day).
    pub max_backoff: Duration,
}

impl Default for WebhookSettings {
    /// No URL; 5 s timeout, 5 retries, pauses from 0.5 s doubling to 30 s.
    fn default() -> Self {
        Self {
            url: String::new(),
            timeout: Duration::from_secs(5),
            retries: 5,
            first_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
        }
    }
}

/// One attempt to deliver an alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The alert, as given to [`Webhook::send`].
    pub alert_id: i64,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// The HTTP status answered, if any.
    pub status: Option<u16>,
    /// The transport error (refused, timeout, ...), if no status came.
    pub error: Option<String>,
    /// Whether the endpoint took the alert (a 2xx status).
    pub delivered: bool,
    /// When the attempt ended (Unix seconds).
    pub at: i64,
    /// No further attempt follows in this run: the alert was delivered,
    /// refused (a 4xx status other than 408 and 429) or out of retries.
    pub final_attempt: bool,
}

/// The webhook client: a queue of alerts and the thread that delivers them.
pub struct Webhook {
    shared: Arc<Shared>,
    results: Receiver<Delivery>,
}

impl Webhook {
    /// Checks the settings and starts the delivery thread.
    pub fn start(settings: WebhookSettings) -> Result<Self, MonitorError> {
        let uri = parse_url(&settings.url)?;
        check_duration(settings.timeout, "webhook timeout")?;
        check_duration(settings.max_backoff, "webhook max_backoff")?;
        let agent: Agent = Agent::config_builder().http_status_as_error(false).max_redirects(0).build().into();
        let shared = Arc::new(Shared::default());
        let (sender, results) = mpsc::channel();
        let worker = Worker { agent, uri, settings, shared: Arc::clone(&shared), results: sender };
        std::thread::Builder::new()
            .name("webhook".into())
            .spawn(move || worker.run())
            .map_err(|source| MonitorError::Thread { name: "webhook", source })?;
        Ok(Self { shared, results })
    }

    /// Queues an alert's JSON body; never blocks.
    pub fn send(&self, alert_id: i64, body: String) {
        self.shared.push(Pending { alert_id, body });
    }

    /// The attempts made since the last call, without waiting.
    pub fn attempts(&self) -> impl Iterator<Item = Delivery> + '_ {
        self.results.try_iter()
    }

    /// Alerts not yet delivered nor given up, the one being sent included.
    pub fn queued(&self) -> usize {
        self.shared.queued()
    }

    /// Stops: delivers what is queued until `deadline` (at most a day) has
    /// passed, then returns the attempts not yet taken by
    /// [`attempts`](Self::attempts). Waits at most `deadline` plus 0.2 s:
    /// attempts started from now on are cut off at the deadline and report
    /// their timeout; one already under way when `finish` is called and
    /// outlasting the wait goes unreported. Alerts not delivered by then
    /// (no later alert is sent before them) are left to the caller's next
    /// start.
    pub fn finish(self, deadline: Duration) -> Vec<Delivery> {
        let stop = Instant::now() + deadline.min(LONGEST);
        self.shared.stop_at(stop);
        let give_up = stop + REPORT_GRACE;
        let mut left = Vec::new();
        loop {
            match self.results.recv_timeout(give_up.saturating_duration_since(Instant::now())) {
                Ok(delivery) => left.push(delivery),
                // The thread has ended, or the wait is over.
                Err(RecvTimeoutError::Disconnected) | Err(RecvTimeoutError::Timeout) => return left,
            }
        }
    }
}

impl Drop for Webhook {
    /// Tells the thread to stop after its current attempt.
    fn drop(&mut self) {
        self.shared.stop_at(Instant::now());
    }
}

/// The URL, if it is one the client can post to.
fn parse_url(url: &str) -> Result<Uri, MonitorError> {
    let error = |reason: String| MonitorError::WebhookUrl { url: url.to_string(), reason };
    let uri: Uri = url.parse().map_err(|e| error(format!("{e}")))?;
    if uri.scheme_str() != Some("http") {
        return Err(error("expected an http:// URL (https is not supported)".into()));
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(error("no host".into()));
    }
    Ok(uri)
}

fn check_duration(value: Duration, field: &'static str) -> Result<(), MonitorError> {
    if value.is_zero() || value > LONGEST {
        return Err(MonitorError::InvalidSetting { field, expected: "a duration above 0 and at most a day" });
    }
    Ok(())
}

/// An alert waiting for delivery.
struct Pending {
    alert_id: i64,
    body: String,
}

/// The queue, shared by the client and its thread.
#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Pending>,
    /// Whether the thread is delivering an alert taken from the queue.
    in_flight: bool,
    /// When the thread must stop, once `finish` or `drop` has been called.
    stop_at: Option<Instant>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The lock guards no invariant a panic could break.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn push(&self, pending: Pending) {
        self.lock().queue.push_back(pending);
        self.wake.notify_all();
    }

    fn queued(&self) -> usize {
        let state = self.lock();
        state.queue.len() + usize::from(state.in_flight)
    }

    fn stop_at(&self, at: Instant) {
        self.lock().stop_at = Some(at);
        self.wake.notify_all();
    }

    /// The next alert, waiting for one; `None` once stopping, with the
    /// queue empty or the deadline passed.
    fn next(&self) -> Option<Pending> {
        let mut state = self.lock();
        state.in_flight = false;
        loop {
            if let Some(stop) = state.stop_at {
                if state.queue.is_empty() || Instant::now() >= stop {
                    return None;
                }
            }
            if let Some(pending) = state.queue.pop_front() {
                state.in_flight = true;
                return Some(pending);
            }
            state = self.wake.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// The time one attempt may take: `timeout`, cut at the deadline;
    /// `None` once the deadline has passed.
    fn attempt_time(&self, timeout: Duration) -> Option<Duration> {
        match self.lock().stop_at {
            None => Some(timeout),
            Some(stop) => {
                let left = stop.saturating_duration_since(Instant::now());
                (!left.is_zero()).then(|| timeout.min(left))
            }
        }
    }

    /// Waits `pause` before a retry; false (at once) if the deadline comes
    /// first.
    fn pause(&self, pause: Duration) -> bool {
        let until = Instant::now() + pause;
        let mut state = self.lock();
        loop {
            if state.stop_at.is_some_and(|stop| stop < until) {
                return false;
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            state = self.wake.wait_timeout(state, left).unwrap_or_else(PoisonError::into_inner).0;
        }
    }
}

/// The delivery thread.
struct Worker {
    agent: Agent,
    uri: Uri,
    settings: WebhookSettings,
    shared: Arc<Shared>,
    results: Sender<Delivery>,
}

impl Worker {
    fn run(self) {
        while let Some(pending) = self.shared.next() {
            if !self.deliver(&pending) {
                // No later alert overtakes one left undelivered.
                return;
            }
        }
    }

    /// Attempts until delivered, refused or out of retries (true), or
    /// stopped by the deadline (false).
    fn deliver(&self, pending: &Pending) -> bool {
        let mut backoff = self.settings.first_backoff.min(self.settings.max_backoff);
        let mut attempt = 1;
        loop {
            let Some(time) = self.shared.attempt_time(self.settings.timeout) else { return false };
            let delivery = self.attempt(pending, attempt, time);
            let last = delivery.final_attempt;
            // A dropped client no longer records attempts: nothing to do.
            let _ = self.results.send(delivery);
            if last {
                return true;
            }
            if !self.shared.pause(backoff) {
                return false;
            }
            backoff = backoff.saturating_mul(2).min(self.settings.max_backoff);
            attempt = attempt.saturating_add(1);
        }
    }

    /// One POST, taking at most `time`.
    fn attempt(&self, pending: &Pending, attempt: u32, time: Duration) -> Delivery {
        let answer = self
            .agent
            .post(self.uri.clone())
            .config()
            .timeout_global(Some(time))
            .build()
            .header("Content-Type", "application/json")
            .send(pending.body.as_str());
        let (status, error) = match answer {
            Ok(response) => (Some(response.status().as_u16()), None),
            Err(e) => (None, Some(e.to_string())),
        };
        let delivered = status.is_some_and(|s| (200..300).contains(&s));
        let refused = status.is_some_and(|s| (400..500).contains(&s) && s != 408 && s != 429);
        let final_attempt = delivered || refused || attempt > self.settings.retries;
        Delivery { alert_id: pending.alert_id, attempt, status, error, delivered, at: unix_now(), final_attempt }
    }
}

fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::{SocketAddr, TcpListener, TcpStream};

    /// A request as the test server saw it.
    struct Request {
        head: String,
        body: String,
        at: Instant,
    }

    /// An endpoint answering one connection per status, in order.
    struct Server {
        addr: SocketAddr,
        requests: Receiver<Request>,
    }

    fn serve(statuses: Vec<u16>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (sender, requests) = mpsc::channel();
        std::thread::spawn(move || {
            for status in statuses {
                let Ok((stream, _)) = listener.accept() else { return };
                let _ = sender.send(read_request(&stream));
                let answer = format!("HTTP/1.1 {status} Scripted\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                let _ = (&stream).write_all(answer.as_bytes());
            }
        });
        Server { addr, requests }
    }

    fn read_request(stream: &TcpStream) -> Request {
        let mut reader = BufReader::new(stream);
        let mut head = String::new();
        while !head.ends_with("\r\n\r\n") {
            if reader.read_line(&mut head).unwrap() == 0 {
                break;
            }
        }
        let length = head
            .lines()
            .find_map(|line| line.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string()))
            .map_or(0, |v| v.parse().unwrap());
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        Request { head, body: String::from_utf8(body).unwrap(), at: Instant::now() }
    }

    fn settings(addr: SocketAddr, retries: u32) -> WebhookSettings {
        WebhookSettings {
            url: format!("http://{addr}/hook"),
            timeout: Duration::from_millis(300),
            retries,
            first_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(80),
        }
    }

    fn summary(deliveries: &[Delivery]) -> Vec<(i64, u32, Option<u16>, bool, bool)> {
        deliveries.iter().map(|d| (d.alert_id, d.attempt, d.status, d.delivered, d.final_attempt)).collect()
    }

    #[test]
    fn delivered_first_time() {
        let server = serve(vec![200]);
        let webhook = Webhook::start(settings(server.addr, 3)).unwrap();
        webhook.send(7, r#"{"topic":"acme"}"#.into());
        let deliveries = webhook.finish(Duration::from_secs(5));
        assert_eq!(summary(&deliveries), [(7, 1, Some(200), true, true)]);
        assert_eq!(deliveries[0].error, None);
        assert!(deliveries[0].at > 1_600_000_000);
        let request = server.requests.recv().unwrap();
        assert!(request.head.starts_with("POST /hook HTTP/1.1\r\n"), "{}", request.head);
        assert!(request.head.to_ascii_lowercase().contains("content-type: application/json\r\n"), "{}", request.head);
        assert_eq!(request.body, r#"{"topic":"acme"}"#);
    }

    #[test]
    fn server_errors_retried_after_growing_pauses() {
        let server = serve(vec![500, 500, 200]);
        let webhook = Webhook::start(settings(server.addr, 5)).unwrap();
        webhook.send(1, "{}".into());
        let deliveries = webhook.finish(Duration::from_secs(5));
        assert_eq!(
            summary(&deliveries),
            [(1, 1, Some(500), false, false), (1, 2, Some(500), false, false), (1, 3, Some(200), true, true)]
        );
        let times: Vec<Instant> = server.requests.try_iter().map(|r| r.at).collect();
        assert_eq!(times.len(), 3);
        // 50 ms, then 100 ms capped at 80 ms.
        assert!(times[1] - times[0] >= Duration::from_millis(50), "{:?}", times[1] - times[0]);
        assert!(times[2] - times[1] >= Duration::from_millis(80), "{:?}", times[2] - times[1]);
    }

    #[test]
    fn too_many_requests_retried_bad_request_not() {
        let server = serve(vec![429, 200, 400, 200]);
        let webhook = Webhook::start(settings(server.addr, 5)).unwrap();
        webhook.send(1, "{}".into());
        webhook.send(2, "{}".into());
        webhook.send(3, "{}".into());
        let deliveries = webhook.finish(Duration::from_secs(5));
        assert_eq!(
            summary(&deliveries),
            [
                (1, 1, Some(429), false, false),
                (1, 2, Some(200), true, true),
                (2, 1, Some(400), false, true),
                (3, 1, Some(200), true, true)
            ]
        );
    }

    #[test]
    fn silent_server_times_out_without_blocking() {
        // Connections queue in the backlog; nobody ever answers.
        let silent = TcpListener::bind("127.0.0.1:0").unwrap();
        let webhook = Webhook::start(settings(silent.local_addr().unwrap(), 5)).unwrap();
        let sent = Instant::now();
        webhook.send(1, "{}".into());
        webhook.send(2, "{}".into());
        assert!(sent.elapsed() < Duration::from_millis(50));
        assert_eq!(webhook.queued(), 2);
        let waited = Instant::now();
        let first = loop {
            if let Some(delivery) = webhook.attempts().next() {
                break delivery;
            }
            assert!(waited.elapsed() < Duration::from_secs(3), "no attempt reported");
            std::thread::sleep(Duration::from_millis(10));
        };
        assert_eq!(summary(std::slice::from_ref(&first)), [(1, 1, None, false, false)]);
        assert!(first.error.as_deref().unwrap().contains("timeout"), "{first:?}");
        let finishing = Instant::now();
        let rest = webhook.finish(Duration::from_millis(400));
        assert!(finishing.elapsed() < Duration::from_millis(400) + REPORT_GRACE, "{:?}", finishing.elapsed());
        assert!(
            !rest.is_empty() && rest.iter().all(|d| d.alert_id == 1 && !d.delivered && !d.final_attempt),
            "{rest:?}"
        );
        drop(silent);
    }

    #[test]
    fn refused_connection_retried_then_given_up() {
        let addr = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let webhook = Webhook::start(settings(addr, 2)).unwrap();
        webhook.send(5, "{}".into());
        let deliveries = webhook.finish(Duration::from_secs(5));
        assert_eq!(
            summary(&deliveries),
            [(5, 1, None, false, false), (5, 2, None, false, false), (5, 3, None, false, true)]
        );
        assert!(deliveries.iter().all(|d| d.error.is_some()));
    }

    #[test]
    fn urls_and_durations_checked() {
        for bad in ["", "not a url", "https://example.com/hook", "ftp://example.com/", "/hook", "http://"] {
            let settings = WebhookSettings { url: bad.into(), ..WebhookSettings::default() };
            let e = Webhook::start(settings).err().unwrap().to_string();
            assert!(e.starts_with(&format!("webhook: '{bad}' is not a webhook URL")), "{e}");
        }
        let url = "http://127.0.0.1:9/hook".to_string();
        let zero = WebhookSettings { url: url.clone(), timeout: Duration::ZERO, ..WebhookSettings::default() };
        assert!(Webhook::start(zero).err().unwrap().to_string().starts_with("webhook timeout:"));
        let long = WebhookSettings { url: url.clone(), max_backoff: Duration::MAX, ..WebhookSettings::default() };
        assert!(Webhook::start(long).err().unwrap().to_string().starts_with("webhook max_backoff:"));
        assert!(Webhook::start(WebhookSettings { url, ..WebhookSettings::default() }).is_ok());
    }
}
