//! Soak and abuse test of `ferrotune serve` on loopback, bounded in time:
//! well-behaved clients (one keep-alive connection each, one NER text per
//! request) alongside abusers: slow-loris connections (a header byte every
//! second), oversized bodies, token-heavy requests, malformed JSON and
//! connection floods. Samples the server's RSS every 5 s (from /proc, given
//! its pid). Prints one JSON line: the well-behaved clients' latencies,
//! statuses and dropped connections, the abusers' statuses, the RSS samples.
//!
//! cargo run --release -p ferrotune-serve --features test-support --example soak -- \
//!     --addr 127.0.0.1:8080 --pid PID --seconds 600 [--clients 64] [--abuse true] [--loris 64]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferrotune_serve::client::Connection;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Options {
    addr: SocketAddr,
    pid: Option<u32>,
    seconds: f64,
    clients: usize,
    abuse: bool,
    loris: usize,
}

fn options() -> Options {
    let mut o = Options {
        addr: "127.0.0.1:8080".parse().expect("address"),
        pid: None,
        seconds: 600.0,
        clients: 64,
        abuse: true,
        loris: 64,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let value = pair.get(1).cloned().unwrap_or_default();
        match pair[0].as_str() {
            "--addr" => o.addr = value.parse().expect("--addr HOST:PORT"),
            "--pid" => o.pid = Some(value.parse().expect("--pid N")),
            "--seconds" => o.seconds = value.parse().expect("--seconds S"),
            "--clients" => o.clients = value.parse().expect("--clients N"),
            "--abuse" => o.abuse = value.parse().expect("--abuse true|false"),
            "--loris" => o.loris = value.parse().expect("--loris N"),
            other => panic!("unknown option {other}"),
        }
    }
    assert!(o.addr.ip().is_loopback(), "the soak test only targets loopback addresses");
    o
}

/// Counts by kind of abuse and status (0: the connection was closed or reset).
type Statuses = Arc<Mutex<BTreeMap<String, BTreeMap<u16, usize>>>>;

fn count(statuses: &Statuses, kind: &str, status: u16) {
    *statuses.lock().unwrap().entry(kind.to_string()).or_default().entry(status).or_default() += 1;
}

fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Sends `body` to `path` on a fresh connection; the status, 0 if none came.
async fn one_shot(addr: SocketAddr, path: &str, body: &[u8]) -> u16 {
    let Ok(mut c) = Connection::open(addr).await else { return 0 };
    match c.send("POST", path, &[("Content-Type", "application/json")], body).await {
        Ok(a) => a.status,
        Err(_) => 0,
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    let o = options();
    let deadline = Instant::now() + Duration::from_secs_f64(o.seconds);
    let started = Instant::now();
    let abusive: Statuses = Arc::default();
    let mut abusers = Vec::new();
    if o.abuse {
        // Slow loris: a header byte every second, reconnecting when closed;
        // records how long the server let each connection live.
        let held = Arc::new(Mutex::new(Vec::<f64>::new()));
        for _ in 0..o.loris {
            let (addr, statuses, held) = (o.addr, abusive.clone(), held.clone());
            abusers.push(tokio::spawn(async move {
                while Instant::now() < deadline {
                    let Ok(mut s) = TcpStream::connect(addr).await else {
                        count(&statuses, "slow_loris", 0);
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    };
                    let opened = Instant::now();
                    let head = b"POST /v1/ner HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Slow: ";
                    let mut closed = false;
                    for byte in head.iter().chain(std::iter::repeat(&b'a')) {
                        if Instant::now() >= deadline || s.write_all(&[*byte]).await.is_err() {
                            closed = true;
                            break;
                        }
                        let mut buf = [0u8; 256];
                        match tokio::time::timeout(Duration::from_secs(1), s.read(&mut buf)).await {
                            Ok(Ok(0)) | Ok(Err(_)) => {
                                closed = true;
                                break;
                            }
                            Ok(Ok(_)) | Err(_) => {}
                        }
                    }
                    if closed && Instant::now() < deadline {
                        count(&statuses, "slow_loris", 0);
                        held.lock().unwrap().push(opened.elapsed().as_secs_f64());
                    }
                }
            }));
        }
        // Slow body: full headers, then half the body and silence.
        {
            let (addr, statuses) = (o.addr, abusive.clone());
            abusers.push(tokio::spawn(async move {
                while Instant::now() < deadline {
                    if let Ok(mut s) = TcpStream::connect(addr).await {
                        let head = "POST /v1/ner HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"te";
                        let _ = s.write_all(head.as_bytes()).await;
                        let mut buf = vec![0u8; 4096];
                        let status = match tokio::time::timeout(Duration::from_secs(60), s.read(&mut buf)).await {
                            Ok(Ok(n)) if n > 12 => String::from_utf8_lossy(&buf[9..12]).parse().unwrap_or(0),
                            _ => 0,
                        };
                        count(&statuses, "slow_body", status);
                    }
                }
            }));
        }
        // Oversized, token-heavy and malformed requests, in a loop.
        {
            let (addr, statuses) = (o.addr, abusive.clone());
            abusers.push(tokio::spawn(async move {
                let oversized = format!("{{\"texts\": [\"{}\"]}}", "a ".repeat(600_000));
                // 64 texts of 5,000 one-letter words: within every character
                // limit, hundreds of windows.
                let words = vec!["a"; 5_000].join(" ");
                let heavy = serde_json::json!({ "texts": vec![words; 64] }).to_string();
                let malformed = b"{\"texts\": [\"unterminated".to_vec();
                while Instant::now() < deadline {
                    count(&statuses, "oversized", one_shot(addr, "/v1/ner", oversized.as_bytes()).await);
                    count(&statuses, "token_heavy", one_shot(addr, "/v1/ner", heavy.as_bytes()).await);
                    count(&statuses, "malformed", one_shot(addr, "/v1/ner", &malformed).await);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }));
        }
        // Connection floods: 200 connections opened at once and dropped, every 5 s.
        {
            let (addr, statuses) = (o.addr, abusive.clone());
            abusers.push(tokio::spawn(async move {
                while Instant::now() < deadline {
                    let mut open = Vec::new();
                    for _ in 0..200 {
                        match TcpStream::connect(addr).await {
                            Ok(s) => open.push(s),
                            Err(_) => count(&statuses, "flood_connect_failed", 0),
                        }
                    }
                    count(&statuses, "flood_rounds", 1);
                    drop(open);
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
            }));
        }
        abusers.push(tokio::spawn({
            let (held, statuses) = (held.clone(), abusive.clone());
            async move {
                tokio::time::sleep_until(deadline.into()).await;
                let mut h = held.lock().unwrap().clone();
                h.sort_by(f64::total_cmp);
                if let Some(max) = h.last() {
                    // The longest a slow-loris connection was kept, in whole seconds.
                    count(&statuses, "slow_loris_longest_held_s", *max as u16);
                }
            }
        }));
    }
    // RSS samples every 5 s.
    let rss = Arc::new(Mutex::new(Vec::<(f64, f64)>::new()));
    if let Some(pid) = o.pid {
        let rss = rss.clone();
        tokio::spawn(async move {
            while Instant::now() < deadline {
                if let Some(mib) = rss_mib(pid) {
                    rss.lock().unwrap().push((started.elapsed().as_secs_f64().round(), (mib * 10.0).round() / 10.0));
                }
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        });
    }
    // The well-behaved clients.
    let body = serde_json::json!({ "texts": ["The patient was diagnosed with hereditary breast and ovarian cancer last year ."] });
    let mut clients = Vec::new();
    for _ in 0..o.clients {
        let (addr, body) = (o.addr, body.clone());
        clients.push(tokio::spawn(async move {
            let (mut statuses, mut latencies, mut dropped) = (BTreeMap::<u16, usize>::new(), Vec::new(), 0usize);
            let mut connection = None;
            while Instant::now() < deadline {
                if connection.is_none() {
                    match Connection::open(addr).await {
                        Ok(c) => connection = Some(c),
                        Err(_) => {
                            dropped += 1;
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        }
                    }
                }
                let sent = Instant::now();
                match connection.as_mut().expect("connected").post_json("/v1/ner", &body, &[]).await {
                    Ok(a) => {
                        *statuses.entry(a.status).or_default() += 1;
                        if a.status == 200 {
                            latencies.push(sent.elapsed().as_secs_f64());
                        } else if a.status == 429 {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                    Err(_) => {
                        dropped += 1;
                        connection = None;
                    }
                }
            }
            (statuses, latencies, dropped)
        }));
    }
    let (mut statuses, mut latencies, mut dropped) = (BTreeMap::<u16, usize>::new(), Vec::new(), 0usize);
    for c in clients {
        let (s, l, d) = c.await.expect("client");
        for (k, n) in s {
            *statuses.entry(k).or_default() += n;
        }
        latencies.extend(l);
        dropped += d;
    }
    for a in abusers {
        let _ = tokio::time::timeout(Duration::from_secs(70), a).await;
    }
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        if latencies.is_empty() {
            f64::NAN
        } else {
            latencies[((latencies.len() - 1) as f64 * p).round() as usize] * 1000.0
        }
    };
    let elapsed = started.elapsed().as_secs_f64();
    let server_errors: usize = statuses.iter().filter(|(s, _)| **s >= 500).map(|(_, n)| n).sum();
    let samples = rss.lock().unwrap().clone();
    println!(
        "{}",
        serde_json::json!({
            "clients": o.clients, "abuse": o.abuse, "seconds": elapsed, "ok": latencies.len(),
            "ok_per_s": latencies.len() as f64 / elapsed, "p50_ms": pct(0.5), "p99_ms": pct(0.99),
            "max_ms": pct(1.0), "statuses": statuses, "server_errors": server_errors, "dropped_connections": dropped,
            "abusive": *abusive.lock().unwrap(),
            "rss_mib": samples,
        })
    );
}
