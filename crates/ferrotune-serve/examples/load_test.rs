//! Load generator for `ferrotune serve` on loopback: N clients, each on its
//! own keep-alive connection, send the same single-text request back to back
//! for a fixed time (or until a request budget is spent), then print
//! throughput, latency percentiles and the status counts as one JSON line.
//!
//! cargo run --release -p ferrotune-serve --features test-support --example load_test -- \
//!     --addr 127.0.0.1:8080 --clients 64 --seconds 30 [--path /v1/ner] [--text "..."] [--max-requests N]
//!     [--models a,b,c]   (client i names model i mod 3 in its requests)

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ferrotune_serve::client::Connection;

struct Options {
    addr: SocketAddr,
    clients: usize,
    seconds: f64,
    max_requests: usize,
    path: String,
    text: String,
    key: Option<String>,
    /// Model names the clients take in turn (none: the server's default).
    models: Vec<String>,
}

fn options() -> Options {
    let mut o = Options {
        addr: "127.0.0.1:8080".parse().expect("address"),
        clients: 1,
        seconds: 10.0,
        max_requests: 1_000_000,
        path: "/v1/ner".into(),
        text: "The patient was diagnosed with hereditary breast and ovarian cancer last year .".into(),
        key: None,
        models: Vec::new(),
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let value = pair.get(1).cloned().unwrap_or_default();
        match pair[0].as_str() {
            "--addr" => o.addr = value.parse().expect("--addr HOST:PORT"),
            "--clients" => o.clients = value.parse().expect("--clients N"),
            "--seconds" => o.seconds = value.parse().expect("--seconds S"),
            "--max-requests" => o.max_requests = value.parse().expect("--max-requests N"),
            "--path" => o.path = value,
            "--text" => o.text = value,
            "--key" => o.key = Some(value),
            "--models" => o.models = value.split(',').map(String::from).collect(),
            other => panic!("unknown option {other}"),
        }
    }
    assert!(o.addr.ip().is_loopback(), "the load test only targets loopback addresses");
    o
}

#[derive(Default)]
struct Tally {
    statuses: BTreeMap<u16, usize>,
    latencies_ok: Vec<f64>,
    latencies_refused: Vec<f64>,
    dropped: usize,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    let o = options();
    let budget = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(o.max_requests));
    let deadline = Instant::now() + Duration::from_secs_f64(o.seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for client in 0..o.clients {
        let mut body = serde_json::json!({ "texts": [o.text] });
        if !o.models.is_empty() {
            body["model"] = o.models[client % o.models.len()].clone().into();
        }
        let (budget, path, key) = (budget.clone(), o.path.clone(), o.key.clone());
        let addr = o.addr;
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            let auth = key.map(|k| format!("Bearer {k}"));
            let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
            let mut connection = None;
            while Instant::now() < deadline
                && budget
                    .fetch_update(std::sync::atomic::Ordering::SeqCst, std::sync::atomic::Ordering::SeqCst, |n| {
                        n.checked_sub(1)
                    })
                    .is_ok()
            {
                if connection.is_none() {
                    match Connection::open(addr).await {
                        Ok(c) => connection = Some(c),
                        Err(_) => {
                            tally.dropped += 1;
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        }
                    }
                }
                let sent = Instant::now();
                match connection.as_mut().expect("connected").post_json(&path, &body, &headers).await {
                    Ok(answer) => {
                        let seconds = sent.elapsed().as_secs_f64();
                        *tally.statuses.entry(answer.status).or_default() += 1;
                        if answer.status == 200 {
                            tally.latencies_ok.push(seconds);
                        } else if answer.status == 429 {
                            tally.latencies_refused.push(seconds);
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                    Err(_) => {
                        tally.dropped += 1;
                        connection = None;
                    }
                }
            }
            tally
        }));
    }
    let mut all = Tally::default();
    for task in tasks {
        let t = task.await.expect("client task");
        for (s, n) in t.statuses {
            *all.statuses.entry(s).or_default() += n;
        }
        all.latencies_ok.extend(t.latencies_ok);
        all.latencies_refused.extend(t.latencies_refused);
        all.dropped += t.dropped;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let pct = |v: &mut Vec<f64>, p: f64| {
        v.sort_by(f64::total_cmp);
        if v.is_empty() {
            f64::NAN
        } else {
            v[((v.len() - 1) as f64 * p).round() as usize] * 1000.0
        }
    };
    let ok = all.latencies_ok.len();
    let server_errors: usize = all.statuses.iter().filter(|(s, _)| **s >= 500).map(|(_, n)| n).sum();
    println!(
        "{}",
        serde_json::json!({
            "clients": o.clients, "seconds": elapsed, "ok": ok, "ok_per_s": ok as f64 / elapsed,
            "p50_ms": pct(&mut all.latencies_ok, 0.5), "p95_ms": pct(&mut all.latencies_ok, 0.95),
            "p99_ms": pct(&mut all.latencies_ok, 0.99),
            "refused_p99_ms": pct(&mut all.latencies_refused, 0.99),
            "statuses": all.statuses, "server_errors": server_errors, "dropped_connections": all.dropped,
        })
    );
}
