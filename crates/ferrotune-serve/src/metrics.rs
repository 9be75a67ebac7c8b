//! Prometheus metrics in the text exposition format: requests by route and
//! status, request latency and batch size histograms, and queue depth.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

/// Upper bounds of the latency histogram, in seconds.
const LATENCY_BUCKETS: [f64; 12] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
/// Upper bounds of the batch size histogram, in inputs.
const BATCH_BUCKETS: [f64; 9] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

#[derive(Default)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, bounds: &[f64], value: f64) {
        if self.counts.is_empty() {
            self.counts = vec![0; bounds.len()];
        }
        for (slot, bound) in self.counts.iter_mut().zip(bounds) {
            if value <= *bound {
                *slot += 1;
            }
        }
        self.sum += value;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str, bounds: &[f64]) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (bound, n) in bounds.iter().zip(self.counts.iter().chain(std::iter::repeat(&0))) {
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {n}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}", self.count);
        let braces = if labels.is_empty() { String::new() } else { format!("{{{labels}}}") };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

#[derive(Default)]
struct State {
    requests: BTreeMap<(String, u16), u64>,
    latency: BTreeMap<String, Histogram>,
    batches: Histogram,
}

/// The server's metrics.
#[derive(Default)]
pub struct Metrics {
    state: Mutex<State>,
}

impl Metrics {
    /// Counts a finished request and its latency.
    pub fn observe_request(&self, route: &str, status: u16, seconds: f64) {
        let mut state = self.state.lock().expect("metrics lock");
        *state.requests.entry((route.to_string(), status)).or_default() += 1;
        state.latency.entry(route.to_string()).or_default().observe(&LATENCY_BUCKETS, seconds);
    }

    /// Records the size of one model call.
    pub fn observe_batch(&self, inputs: usize) {
        self.state.lock().expect("metrics lock").batches.observe(&BATCH_BUCKETS, inputs as f64);
    }

    /// The exposition text; `queues` gives each model's waiting jobs.
    pub fn render(&self, queues: &[(String, usize)]) -> String {
        let state = self.state.lock().expect("metrics lock");
        let mut out = String::new();
        out += "# HELP ferrotune_requests_total Requests answered, by route and HTTP status.\n";
        out += "# TYPE ferrotune_requests_total counter\n";
        for ((route, status), n) in &state.requests {
            let _ = writeln!(out, "ferrotune_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}");
        }
        out += "# HELP ferrotune_request_duration_seconds Time from request to answer, by route.\n";
        out += "# TYPE ferrotune_request_duration_seconds histogram\n";
        for (route, h) in &state.latency {
            h.render(&mut out, "ferrotune_request_duration_seconds", &format!("route=\"{route}\""), &LATENCY_BUCKETS);
        }
        out += "# HELP ferrotune_batch_size Inputs per model call.\n";
        out += "# TYPE ferrotune_batch_size histogram\n";
        state.batches.render(&mut out, "ferrotune_batch_size", "", &BATCH_BUCKETS);
        out += "# HELP ferrotune_queue_depth Requests waiting for a model.\n";
        out += "# TYPE ferrotune_queue_depth gauge\n";
        for (model, depth) in queues {
            let _ = writeln!(out, "ferrotune_queue_depth{{model=\"{model}\"}} {depth}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histograms_and_gauges() {
        let m = Metrics::default();
        m.observe_request("/v1/ner", 200, 0.02);
        m.observe_request("/v1/ner", 200, 0.3);
        m.observe_request("/v1/ner", 429, 0.001);
        m.observe_batch(5);
        let text = m.render(&[("default".into(), 3)]);
        assert!(text.contains("ferrotune_requests_total{route=\"/v1/ner\",status=\"200\"} 2"));
        assert!(text.contains("ferrotune_requests_total{route=\"/v1/ner\",status=\"429\"} 1"));
        assert!(text.contains("ferrotune_request_duration_seconds_bucket{route=\"/v1/ner\",le=\"0.025\"} 2"));
        assert!(text.contains("ferrotune_request_duration_seconds_bucket{route=\"/v1/ner\",le=\"+Inf\"} 3"));
        assert!(text.contains("ferrotune_batch_size_bucket{le=\"4\"} 0"));
        assert!(text.contains("ferrotune_batch_size_bucket{le=\"8\"} 1"));
        assert!(text.contains("ferrotune_queue_depth{model=\"default\"} 3"));
    }
}
