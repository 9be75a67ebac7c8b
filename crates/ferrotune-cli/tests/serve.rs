//! `ferrotune serve` end to end: a server process on an ephemeral loopback
//! port with an NER and a classification model (tiny, random), every route,
//! the API key, each client error, answers equal to `ferrotune predict`,
//! 429 when the queue is full, and a drain on SIGTERM.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use candle_core::Device;
use common::{ferrotune, json_lines};
use ferrotune_data::SequenceKind;
use ferrotune_model::{Pooling, SequenceClassifier, SequenceHead, TokenClassifier, TokenHead};
use ferrotune_serve::client::Connection;
use serde_json::{json, Value};

const WORDS: [&str; 10] = ["the", "patient", "has", "fever", "and", "cough", "good", "bad", "profit", "rose"];
const KEY: &str = "0123456789abcdef-test-key";

fn make_models(dir: &Path) -> (String, String) {
    let base = dir.join("base");
    ferrotune_model::tiny::write_tiny_bert(&base, &WORDS, 8).unwrap();
    let ner = dir.join("ner");
    let labels: Vec<String> = ["O", "B-Disease", "I-Disease"].map(String::from).to_vec();
    TokenClassifier::load(&base, TokenHead::For { labels: &labels, seed: 1 }, &Device::Cpu)
        .unwrap()
        .save_pretrained(&ner)
        .unwrap();
    ferrotune_text::copy_tokenizer_files(&base, &ner).unwrap();
    let cls = dir.join("cls");
    let classes: Vec<String> = ["negative", "positive"].map(String::from).to_vec();
    let head = SequenceHead::For { kind: SequenceKind::Classify, labels: &classes, pooling: Pooling::Cls, seed: 2 };
    SequenceClassifier::load(&base, head, &Device::Cpu).unwrap().save_pretrained(&cls).unwrap();
    ferrotune_text::copy_tokenizer_files(&base, &cls).unwrap();
    (ner.to_str().unwrap().to_string(), cls.to_str().unwrap().to_string())
}

struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    fn start(args: &[&str]) -> Self {
        Self::start_with_env(args, &[])
    }

    fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ferrotune"))
            .arg("serve")
            .args(["--addr", "127.0.0.1:0", "--threads", "1"])
            .args(args)
            .envs(env.iter().copied())
            // The startup summary is logged at `info`: keep it on.
            .env_remove("RUST_LOG")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        stderr.read_line(&mut line).unwrap();
        let addr =
            line.split("http://").nth(1).and_then(|s| s.split_whitespace().next()).expect(&line).parse().unwrap();
        std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
        Self { child, addr }
    }

    fn terminate(&mut self) -> std::process::ExitStatus {
        self.signal_term();
        self.child.wait().unwrap()
    }

    fn signal_term(&self) {
        Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
    }

    /// Waits up to `limit` for the process to end.
    fn wait_for_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

fn predict(model: &str, input: &str) -> Vec<Value> {
    json_lines(&ferrotune(&["predict", "--model", model, "--threads", "1"], input))
}

fn predict_jsonl(model: &str, input: &str) -> Vec<Value> {
    json_lines(&ferrotune(&["predict", "--model", model, "--threads", "1", "--format", "jsonl"], input))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

#[test]
fn routes_auth_errors_and_predict_equality() {
    let tmp = tempfile::tempdir().unwrap();
    let (ner, cls) = make_models(tmp.path());
    let key_file = tmp.path().join("key");
    std::fs::write(&key_file, format!("{KEY}\n")).unwrap();
    let server = Server::start(&[
        "--model",
        &format!("ner={ner}"),
        "--model",
        &format!("sentiment={cls}"),
        "--api-key-file",
        key_file.to_str().unwrap(),
        "--max-texts",
        "4",
        "--max-chars",
        "200",
        "--max-body-bytes",
        "4096",
    ]);
    let auth = format!("Bearer {KEY}");
    let auth = [("Authorization", auth.as_str())];
    runtime().block_on(async {
        let mut c = Connection::open(server.addr).await.unwrap();
        // Health is public; everything else needs the key.
        assert_eq!(c.send("GET", "/health", &[], b"").await.unwrap().status, 200);
        for path in ["/ready", "/metrics", "/openapi.json", "/v1/models"] {
            let a = c.send("GET", path, &[], b"").await.unwrap();
            assert_eq!(a.status, 401, "{path}");
            assert_eq!(a.json()["error"]["code"], "unauthorized");
            let wrong = c.send("GET", path, &[("Authorization", "Bearer wrong-key-wrong-key")], b"").await.unwrap();
            assert_eq!(wrong.status, 401, "{path}");
            assert_eq!(c.send("GET", path, &auth, b"").await.unwrap().status, 200, "{path}");
        }
        let models = c.send("GET", "/v1/models", &auth, b"").await.unwrap().json();
        assert_eq!(models["models"][0]["name"], "ner");
        assert_eq!(models["models"][0]["task"], "ner");
        assert_eq!(models["models"][1]["labels"], json!(["negative", "positive"]));
        let doc = c.send("GET", "/openapi.json", &auth, b"").await.unwrap().json();
        for (method, path) in ferrotune_serve::ROUTES {
            assert!(doc["paths"][path][method].is_object(), "{method} {path}");
        }

        // Answers are exactly what `ferrotune predict` writes.
        let texts = ["the patient has fever and cough", "fever"];
        let a = c.post_json("/v1/ner", &json!({ "texts": texts }), &auth).await.unwrap();
        assert_eq!(a.status, 200, "{:?}", a.json());
        assert_eq!(a.json()["model"], "ner");
        assert_eq!(a.json()["results"], Value::Array(predict(&ner, &texts.join("\n"))));
        let a = c
            .post_json("/v1/classify", &json!({ "model": "sentiment", "texts": ["good profit", "bad"] }), &auth)
            .await
            .unwrap();
        assert_eq!(a.status, 200, "{:?}", a.json());
        assert_eq!(a.json()["results"], Value::Array(predict(&cls, "good profit\nbad")));
        let a = c
            .post_json("/v1/classify", &json!({ "model": "sentiment", "pairs": [["good", "profit rose"]] }), &auth)
            .await
            .unwrap();
        let expected = predict_jsonl(&cls, "{\"text_a\": \"good\", \"text_b\": \"profit rose\"}");
        assert_eq!(a.json()["results"], Value::Array(expected));

        // Client errors: JSON bodies with a code, 4xx statuses.
        // (route, headers, body, status, code)
        type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, Vec<u8>, u16, &'a str);
        let cases: Vec<Case> = vec![
            ("/v1/ner", vec![("Content-Type", "application/json")], b"{\"texts\": [".to_vec(), 400, "malformed_json"),
            (
                "/v1/ner",
                vec![("Content-Type", "text/plain")],
                b"{\"texts\": [\"a\"]}".to_vec(),
                415,
                "unsupported_media_type",
            ),
            (
                "/v1/ner",
                vec![("Content-Type", "application/json")],
                b"{\"text\": \"a\"}".to_vec(),
                422,
                "invalid_request",
            ),
            (
                "/v1/ner",
                vec![("Content-Type", "application/json")],
                b"{\"texts\": [1]}".to_vec(),
                422,
                "invalid_request",
            ),
            ("/v1/ner", vec![("Content-Type", "application/json")], b"{\"texts\": []}".to_vec(), 400, "no_inputs"),
            (
                "/v1/ner",
                vec![("Content-Type", "application/json")],
                b"{\"model\": \"x\", \"texts\": [\"a\"]}".to_vec(),
                404,
                "unknown_model",
            ),
            (
                "/v1/ner",
                vec![("Content-Type", "application/json")],
                b"{\"model\": \"sentiment\", \"texts\": [\"a\"]}".to_vec(),
                400,
                "wrong_task",
            ),
            (
                "/v1/classify",
                vec![("Content-Type", "application/json")],
                b"{\"model\": \"sentiment\", \"texts\": [\"a\"], \"pairs\": [[\"a\", \"b\"]]}".to_vec(),
                422,
                "invalid_request",
            ),
            (
                "/v1/ner",
                vec![("Content-Type", "application/json")],
                b"{\"texts\": [\"a\", \"b\", \"c\", \"d\", \"e\"]}".to_vec(),
                413,
                "too_many_texts",
            ),
            (
                "/v1/ner",
                vec![("Content-Type", "application/json")],
                format!("{{\"texts\": [\"{}\"]}}", "a".repeat(201)).into_bytes(),
                413,
                "text_too_long",
            ),
            (
                "/v1/ner",
                vec![("Content-Type", "application/json")],
                format!("{{\"texts\": [\"{}\"]}}", "a ".repeat(3000)).into_bytes(),
                413,
                "body_too_large",
            ),
            ("/nowhere", vec![], Vec::new(), 404, "not_found"),
        ];
        for (path, mut headers, body, status, code) in cases {
            headers.extend_from_slice(&auth);
            let mut fresh = Connection::open(server.addr).await.unwrap();
            let a = fresh.send("POST", path, &headers, &body).await.unwrap();
            assert_eq!(
                (a.status, a.json()["error"]["code"].as_str()),
                (status, Some(code)),
                "{path} {}",
                String::from_utf8_lossy(&body)
            );
        }
        let a = c.send("GET", "/v1/ner", &auth, b"").await.unwrap();
        assert_eq!((a.status, a.json()["error"]["code"].as_str()), (405, Some("method_not_allowed")));

        let metrics = String::from_utf8(c.send("GET", "/metrics", &auth, b"").await.unwrap().body).unwrap();
        assert!(metrics.contains("ferrotune_requests_total{route=\"/v1/ner\",status=\"200\"} 1"), "{metrics}");
        assert!(metrics.contains("ferrotune_requests_total{route=\"/v1/ner\",status=\"415\"} 1"), "{metrics}");
        assert!(metrics.contains("ferrotune_batch_size_count"), "{metrics}");
        assert!(metrics.contains("ferrotune_queue_depth{model=\"sentiment\"} 0"), "{metrics}");
    });
}

#[test]
fn full_queue_answers_429_and_sigterm_drains() {
    let tmp = tempfile::tempdir().unwrap();
    let (ner, _) = make_models(tmp.path());
    // One waiting request at most (in requests and in tokens: a request
    // costs 5 tokens), and a long batching wait to keep it there.
    let mut server = Server::start(&[
        "--model",
        &ner,
        "--max-queue",
        "1",
        "--max-queue-tokens",
        "8",
        "--max-tokens-per-request",
        "8",
        "--max-batch",
        "64",
        "--max-wait-ms",
        "400",
    ]);
    let addr = server.addr;
    // Under CPU load slow clients can be admitted one after another; a few
    // bursts make sure some arrive while the queue is full.
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.extend(runtime().block_on(async move {
            let tasks: Vec<_> = (0..12)
                .map(|_| {
                    tokio::spawn(async move {
                        let mut c = Connection::open(addr).await.unwrap();
                        let a = c.post_json("/v1/ner", &json!({ "texts": ["fever and cough"] }), &[]).await.unwrap();
                        (a.status, a.header("retry-after").map(str::to_string))
                    })
                })
                .collect();
            let mut out = Vec::new();
            for t in tasks {
                out.push(t.await.unwrap());
            }
            out
        }));
        if statuses.iter().any(|(s, _)| *s == 429) {
            break;
        }
    }
    let ok = statuses.iter().filter(|(s, _)| *s == 200).count();
    let refused: Vec<_> = statuses.iter().filter(|(s, _)| *s == 429).collect();
    assert!(ok >= 1 && !refused.is_empty() && ok + refused.len() == statuses.len(), "{statuses:?}");
    assert!(refused.iter().all(|(_, retry)| retry.as_deref() == Some("1")));

    // A request in flight when SIGTERM arrives still gets its answer.
    let in_flight = std::thread::spawn(move || {
        runtime().block_on(async move {
            let mut c = Connection::open(addr).await.unwrap();
            c.post_json("/v1/ner", &json!({ "texts": ["fever"] }), &[]).await.unwrap().status
        })
    });
    std::thread::sleep(std::time::Duration::from_millis(150));
    let status = server.terminate();
    assert_eq!(in_flight.join().unwrap(), 200);
    assert!(status.success(), "{status:?}");
}

/// Each failed request is logged on stderr with its status, code and message,
/// a 500 with the model's own error; so are the startup and the shutdown.
#[test]
fn failures_are_logged_with_their_cause() {
    let tmp = tempfile::tempdir().unwrap();
    let (ner, cls) = make_models(tmp.path());
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferrotune"))
        .args(["serve", "--addr", "127.0.0.1:0", "--threads", "1", "--model", &format!("ner={ner}")])
        .args(["--model", &format!("sentiment={cls}")])
        .env_remove("RUST_LOG")
        .env("FERROTUNE_TEST_PANIC_ON", "boom")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut first = String::new();
    stderr.read_line(&mut first).unwrap();
    assert!(first.contains(&format!("serving ner={ner}, sentiment={cls} on http://")), "{first}");
    let addr = first.split("http://").nth(1).and_then(|s| s.split_whitespace().next()).unwrap();
    let addr: SocketAddr = addr.parse().unwrap();
    runtime().block_on(async {
        let mut c = Connection::open(addr).await.unwrap();
        assert_eq!(c.post_json("/v1/ner", &json!({ "texts": [] }), &[]).await.unwrap().status, 400);
        // The model fails (a `--max-len` beyond the model's positions, the
        // earlier way to fail it, is now refused at start): a panic on cue.
        let a = c.post_json("/v1/classify", &json!({ "model": "sentiment", "texts": ["boom"] }), &[]).await.unwrap();
        assert_eq!((a.status, a.json()["error"]["code"].as_str()), (500, Some("inference_failed")));
        // The cause is logged, not answered.
        assert!(!String::from_utf8_lossy(&a.body).contains("panicked"));
        assert_eq!(c.send("DELETE", "/health", &[], b"").await.unwrap().status, 405);
    });
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(child.wait().unwrap().success());
    let mut log = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut log).unwrap();
    let line = |needle: &str| log.lines().find(|l| l.contains(needle)).unwrap_or_else(|| panic!("{needle}: {log}"));
    assert!(line("POST /v1/ner: 400 no_inputs: give at least one text").contains("WARN"));
    let failed = line("POST /v1/classify: 500 inference_failed: the model could not answer: ");
    assert!(failed.contains("ERROR") && failed.contains("model 'sentiment' panicked: test-support"), "{failed}");
    line("DELETE /health: 405 method_not_allowed");
    line("shutting down: finishing requests in flight");
}

#[test]
fn out_of_range_options_are_refused_naming_the_field() {
    for (flag, message) in [
        ("--max-batch", "max_batch must be at least 1"),
        ("--max-queue", "max_queue must be at least 1"),
        ("--max-texts", "max_texts must be at least 1"),
        ("--max-chars", "max_chars must be at least 1"),
        ("--max-body-bytes", "max_body_bytes must be at least 1"),
        ("--timeout-ms", "timeout must be more than 0"),
        ("--max-len", "max_len must be between 3 and 4096"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_ferrotune"))
            .args(["serve", "--model", "no-such-model", "--threads", "1", flag, "0"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains(message), "{flag}: {stderr}");
    }
}

/// Issue 13, item 3: a panic in a model call answers that request 500 and
/// the model keeps serving; `/ready` stays 200 because its thread is alive.
#[test]
fn a_panicking_model_answers_500_and_keeps_serving() {
    let tmp = tempfile::tempdir().unwrap();
    let (ner, _) = make_models(tmp.path());
    let _server = Server::start_with_env(&["--model", &ner], &[("FERROTUNE_TEST_PANIC_ON", "boom")]);
    let addr = _server.addr;
    runtime().block_on(async move {
        let mut c = Connection::open(addr).await.unwrap();
        for _ in 0..2 {
            let a = c.post_json("/v1/ner", &json!({ "texts": ["fever", "boom"] }), &[]).await.unwrap();
            assert_eq!((a.status, a.json()["error"]["code"].as_str()), (500, Some("inference_failed")));
            let a = c.post_json("/v1/ner", &json!({ "texts": ["fever and cough"] }), &[]).await.unwrap();
            assert_eq!(a.status, 200, "{:?}", a.json());
        }
        assert_eq!(c.send("GET", "/ready", &[], b"").await.unwrap().status, 200);
    });
}

/// Reads from a raw connection until it closes or `limit` passes; the bytes.
fn read_until_closed(stream: &mut std::net::TcpStream, limit: Duration) -> Option<Vec<u8>> {
    use std::io::Read;
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Some(all),
            Ok(n) => all.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Some(all),
            Err(_) => return None,
        }
    }
}

/// Issue 13, item 1: half a request's headers closes the connection after
/// the read timeout, half a body gets 408; connections over
/// `--max-connections` are closed at once; SIGTERM with a client holding a
/// connection ends the process within the shutdown grace period, exit 0.
#[test]
fn slow_clients_time_out_and_cannot_block_shutdown() {
    use std::io::Write;
    let tmp = tempfile::tempdir().unwrap();
    let (ner, _) = make_models(tmp.path());
    let args = ["--model", &ner, "--read-timeout-ms", "300", "--shutdown-grace-ms", "700"];
    let mut server = Server::start(&args);
    let connect = || std::net::TcpStream::connect(server.addr).unwrap();

    let mut headers = connect();
    headers.write_all(b"POST /v1/ner HTTP/1.1\r\nHost: x\r\nContent-Type: app").unwrap();
    let started = Instant::now();
    assert!(read_until_closed(&mut headers, Duration::from_secs(5)).is_some(), "still open after 5 s");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());

    let mut body = connect();
    body.write_all(
        b"POST /v1/ner HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"te",
    )
    .unwrap();
    let answer = read_until_closed(&mut body, Duration::from_secs(5)).expect("closed");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");

    // Three open connections (the limit): a fourth is closed at once (on a
    // server whose read timeout does not close the three meanwhile).
    let limited = Server::start(&["--model", &ner, "--max-connections", "3", "--read-timeout-ms", "60000"]);
    let held: Vec<_> = (0..3).map(|_| std::net::TcpStream::connect(limited.addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut extra = std::net::TcpStream::connect(limited.addr).unwrap();
    let _ = extra.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    let answer = read_until_closed(&mut extra, Duration::from_secs(5)).expect("closed at once");
    assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
    drop(held);

    // A client that sends a byte now and then never finishes its headers; it
    // cannot keep the server from stopping.
    let mut loris = connect();
    loris.write_all(b"GET /health HTTP/1.1\r\n").unwrap();
    let stop = Instant::now();
    server.signal_term();
    let status = server.wait_for_exit(Duration::from_secs(5)).expect("exited within the grace period");
    assert!(status.success(), "{status:?}");
    assert!(stop.elapsed() < Duration::from_secs(3), "{:?}", stop.elapsed());
}

/// Issue 13, item 4: on SIGTERM `/ready` answers 503 at once while the
/// server still answers requests (new connections too) for the drain
/// delay, then exits 0.
#[test]
fn draining_is_visible_before_the_server_stops_accepting() {
    let tmp = tempfile::tempdir().unwrap();
    let (ner, _) = make_models(tmp.path());
    let mut server = Server::start(&["--model", &ner, "--drain-delay-ms", "1500"]);
    let addr = server.addr;
    let ready = |addr| {
        runtime().block_on(async move {
            Connection::open(addr).await.unwrap().send("GET", "/ready", &[], b"").await.unwrap()
        })
    };
    assert_eq!(ready(addr).status, 200);
    server.signal_term();
    std::thread::sleep(Duration::from_millis(200));
    let a = ready(addr);
    assert_eq!((a.status, a.json()["error"]["code"].as_str()), (503, Some("draining")));
    let status = runtime().block_on(async move {
        let mut c = Connection::open(addr).await.unwrap();
        c.post_json("/v1/ner", &json!({ "texts": ["fever"] }), &[]).await.unwrap().status
    });
    assert_eq!(status, 200);
    let status = server.wait_for_exit(Duration::from_secs(10)).expect("exited");
    assert!(status.success(), "{status:?}");
}

/// Issue 13, item 2: a request is admitted by its cost in tokens, not its
/// count of texts or characters.
#[test]
fn requests_over_the_token_budget_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (ner, _) = make_models(tmp.path());
    let server = Server::start(&["--model", &ner, "--max-tokens-per-request", "40", "--max-queue-tokens", "40"]);
    runtime().block_on(async move {
        let mut c = Connection::open(server.addr).await.unwrap();
        // 30 one-letter words: 32 tokens a text, within every character limit.
        let text = vec!["a"; 30].join(" ");
        let a = c.post_json("/v1/ner", &json!({ "texts": [text, text] }), &[]).await.unwrap();
        assert_eq!((a.status, a.json()["error"]["code"].as_str()), (413, Some("too_many_tokens")), "{:?}", a.json());
        assert!(a.json()["error"]["message"].as_str().unwrap().contains("at most 40 per request"));
        let a = c.post_json("/v1/ner", &json!({ "texts": [text] }), &[]).await.unwrap();
        assert_eq!(a.status, 200);
    });
}

/// Issue 13, item 7: a `--max-len` beyond the model's positions is refused
/// at start, naming both numbers.
#[test]
fn max_len_beyond_the_model_is_refused_at_start() {
    let tmp = tempfile::tempdir().unwrap();
    let (ner, _) = make_models(tmp.path());
    let out = Command::new(env!("CARGO_BIN_EXE_ferrotune"))
        .args(["serve", "--addr", "127.0.0.1:0", "--threads", "1", "--model", &ner, "--max-len", "1000"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("max_len 1000") && stderr.contains("max_position_embeddings 128"), "{stderr}");
    let data = tmp.path().join("d.tsv");
    std::fs::write(&data, "fever\tB-Disease\n").unwrap();
    let data = data.to_str().unwrap();
    let out = tmp.path().join("out");
    let out = out.to_str().unwrap();
    for args in [
        vec!["predict", "--model", &ner],
        vec!["eval", "--model", &ner, "--data", data],
        vec!["train", "--model", &ner, "--train", data, "--output", out],
    ] {
        let o = common::ferrotune(&[&args[..], &["--max-len", "129", "--threads", "1"]].concat(), "fever\n");
        let stderr = common::stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("max_len 129") && stderr.contains("max_position_embeddings 128"), "{stderr}");
    }
}

/// Issue 14, item 5: `--faq NAME=INDEX` adds `/v1/answer` (answers equal to
/// `faq ask`'s) and `/v1/embed`, behind the same key, limits and error
/// mapping as the model routes.
#[test]
fn faq_routes_answer_embed_and_refuse_bad_requests() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, cls) = make_models(tmp.path());
    let base = tmp.path().join("embedder");
    common::write_tiny_sentence_model(&base, &WORDS, 8);
    let faq = tmp.path().join("faq.tsv");
    std::fs::write(&faq, "id\tquestion\tanswer\nf1\tthe patient has fever\tRest.\nf2\tgood profit\tInvest.\n").unwrap();
    let index = tmp.path().join("index");
    let index = index.to_str().unwrap();
    let (b, f) = (base.to_str().unwrap(), faq.to_str().unwrap());
    let build = ferrotune(&["faq", "build", "--model", b, "--faq", f, "--output", index, "--threads", "1"], "");
    assert!(build.status.success(), "{}", common::stderr(&build));
    let key_file = tmp.path().join("key");
    std::fs::write(&key_file, KEY).unwrap();
    let server = Server::start(&[
        "--model",
        &cls,
        "--faq",
        &format!("help={index}"),
        "--api-key-file",
        key_file.to_str().unwrap(),
        "--max-texts",
        "2",
        "--max-body-bytes",
        "512",
    ]);
    let auth = format!("Bearer {KEY}");
    let auth = [("Authorization", auth.as_str())];
    let asked = json_lines(&ferrotune(&["faq", "ask", "--index", index, "--threads", "1"], "good profit\nfever\n"));
    runtime().block_on(async {
        // A refused request's body may be left unread, and the server then
        // closes that connection: the next requests go on another.
        let mut anonymous = Connection::open(server.addr).await.unwrap();
        let a = anonymous.post_json("/v1/answer", &json!({ "queries": ["good profit"] }), &[]).await.unwrap();
        assert_eq!(a.status, 401);
        let mut c = Connection::open(server.addr).await.unwrap();
        let a = c.post_json("/v1/answer", &json!({ "queries": ["good profit", "fever"] }), &auth).await.unwrap();
        assert_eq!(a.status, 200, "{:?}", a.json());
        assert_eq!(a.json()["index"], "help");
        assert_eq!(a.json()["results"], Value::Array(asked));
        assert_eq!(a.json()["results"][0]["faq_id"], "f2");
        let a = c.post_json("/v1/embed", &json!({ "texts": ["fever"] }), &auth).await.unwrap();
        assert_eq!(a.status, 200, "{:?}", a.json());
        assert_eq!(a.json()["model"], "help");
        assert_eq!(a.json()["results"][0]["text"], "fever");
        assert!(!a.json()["results"][0]["embedding"].as_array().unwrap().is_empty());
        let models = c.send("GET", "/v1/models", &auth, b"").await.unwrap().json();
        assert_eq!(models["faq_indexes"][0]["entries"], 2);

        let refused = [
            ("/v1/answer", json!({ "queries": ["fever", " "] }), 400, "empty_text"),
            ("/v1/answer", json!({ "queries": [] }), 400, "no_inputs"),
            ("/v1/answer", json!({ "index": "nope", "queries": ["fever"] }), 404, "unknown_index"),
            ("/v1/answer", json!({ "queries": ["a", "b", "c"] }), 413, "too_many_texts"),
            ("/v1/answer", json!({ "question": "fever" }), 422, "invalid_request"),
            ("/v1/embed", json!({ "model": "nope", "texts": ["fever"] }), 404, "unknown_model"),
        ];
        for (path, body, status, code) in refused {
            let a = c.post_json(path, &body, &auth).await.unwrap();
            assert_eq!((a.status, a.json()["error"]["code"].as_str()), (status, Some(code)), "{path} {body}");
        }
        let headers = [auth[0], ("Content-Type", "application/json")];
        let a = c.send("POST", "/v1/answer", &headers, b"{\"queries\": [").await.unwrap();
        assert_eq!((a.status, a.json()["error"]["code"].as_str()), (400, Some("malformed_json")));
        let metrics = String::from_utf8(c.send("GET", "/metrics", &auth, b"").await.unwrap().body).unwrap();
        assert!(metrics.contains("route=\"/v1/answer\""), "{metrics}");
        assert!(metrics.contains("model=\"answer:help\""), "{metrics}");
        let mut c = Connection::open(server.addr).await.unwrap();
        let a = c.post_json("/v1/answer", &json!({ "queries": ["fever ".repeat(100)] }), &auth).await.unwrap();
        assert_eq!((a.status, a.json()["error"]["code"].as_str()), (413, Some("body_too_large")));
    });
}

/// Trains a LoRA adapter on `base` from `data` (`train` flags `extra`); returns its folder.
fn train_adapter(base: &Path, data: &Path, out: &Path, extra: &[&str]) -> String {
    let (base, data, out_s) = (base.to_str().unwrap(), data.to_str().unwrap(), out.to_str().unwrap());
    #[rustfmt::skip]
    let mut args = vec!["train", "--model", base, "--train", data, "--dev", data, "--output", out_s,
        "--peft", "lora", "--epochs", "3", "--batch-size", "4", "--max-len", "16", "--threads", "1"];
    args.extend_from_slice(extra);
    let o = ferrotune(&args, "");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    out.join("model").to_str().unwrap().to_string()
}

/// Issue 16, item 5: one base, several adapters (two NER adapters of other
/// ranks and targets, a classifier); concurrent requests for different
/// adapters are answered in shared batches exactly as `predict --adapter`
/// answers each alone; adapters are added and removed while serving,
/// behind the key, and bad ones are refused with a 4xx naming the file.
#[test]
fn adapters_on_one_base_share_batches_and_come_and_go() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let base = t.join("base");
    ferrotune_model::tiny::write_tiny_bert(&base, &WORDS, 8).unwrap();
    let ner_data = t.join("ner.tsv");
    std::fs::write(&ner_data, "the\tO\npatient\tO\nhas\tO\nfever\tB-Disease\nand\tO\ncough\tB-Disease\n\n".repeat(8))
        .unwrap();
    let cls_data = t.join("cls.csv");
    std::fs::write(&cls_data, format!("text,label\n{}", "profit rose,positive\nbad,negative\n".repeat(8))).unwrap();
    let a = train_adapter(&base, &ner_data, &t.join("a"), &["--lora-r", "4", "--lr", "0.02"]);
    #[rustfmt::skip]
    let b = train_adapter(&base, &ner_data, &t.join("b"),
        &["--lora-r", "2", "--lr", "0.05", "--lora-targets", "query,key,value,attention.output.dense,intermediate.dense,output.dense"]);
    let c = train_adapter(&base, &cls_data, &t.join("c"), &["--task", "classify", "--lr", "0.02"]);
    let key_file = t.join("key");
    std::fs::write(&key_file, KEY).unwrap();
    let base_s = base.to_str().unwrap();
    #[rustfmt::skip]
    let server = Server::start(&["--model", base_s, "--adapter", &format!("a={a}"), "--adapter", &format!("b={b}"),
        "--adapter", &format!("c={c}"), "--max-wait-ms", "200", "--api-key-file", key_file.to_str().unwrap()]);
    let auth = format!("Bearer {KEY}");
    let auth = [("Authorization", auth.as_str())];
    let adapted = |adapter: &str, input: &str| {
        json_lines(&ferrotune(&["predict", "--model", base_s, "--adapter", adapter, "--threads", "1"], input))
    };
    let texts = ["the patient has fever and cough", "cough", "fever and the patient"];
    let (expect_a, expect_b) = (adapted(&a, &texts.join("\n")), adapted(&b, &texts.join("\n")));
    assert_ne!(expect_a, expect_b, "the two NER adapters should answer differently");
    let expect_c = adapted(&c, "profit rose\nbad");
    runtime().block_on(async {
        let models = Connection::open(server.addr).await.unwrap().send("GET", "/v1/models", &auth, b"").await.unwrap();
        let names: Vec<Value> = models.json()["models"].as_array().unwrap().iter().map(|m| m["name"].clone()).collect();
        assert_eq!(names, ["a", "b", "c"]);

        // Concurrent requests for three adapters: one batch (max wait 200 ms).
        let ask = |route: &'static str, body: Value| async move {
            let mut conn = Connection::open(server.addr).await.unwrap();
            conn.post_json(route, &body, &auth).await.unwrap().json()
        };
        let (ra, rb, rc, rdefault) = tokio::join!(
            ask("/v1/ner", json!({ "model": "a", "texts": texts })),
            ask("/v1/ner", json!({ "model": "b", "texts": texts })),
            ask("/v1/classify", json!({ "model": "c", "texts": ["profit rose", "bad"] })),
            ask("/v1/ner", json!({ "texts": ["cough"] })),
        );
        assert_eq!(ra["results"], Value::Array(expect_a.clone()), "{ra}");
        assert_eq!(rb["results"], Value::Array(expect_b.clone()), "{rb}");
        assert_eq!(rc["results"], Value::Array(expect_c), "{rc}");
        assert_eq!(rdefault["model"], "a");
        assert_eq!(rdefault["results"][0], expect_a[1]);
        let mut conn = Connection::open(server.addr).await.unwrap();
        let metrics = conn.send("GET", "/metrics", &auth, b"").await.unwrap();
        let batches = String::from_utf8_lossy(&metrics.body).to_string();
        let count: f64 = batches
            .lines()
            .find_map(|l| l.strip_prefix("ferrotune_batch_size_count "))
            .and_then(|v| v.trim().parse().ok())
            .expect("a batch count");
        assert!(count < 4.0, "four requests in {count} batches:\n{batches}");

        // Adding and removing adapters while serving, behind the key.
        let add = json!({ "name": "b2", "path": b });
        let mut anonymous = Connection::open(server.addr).await.unwrap();
        assert_eq!(anonymous.post_json("/v1/adapters", &add, &[]).await.unwrap().status, 401);
        let added = conn.post_json("/v1/adapters", &add, &auth).await.unwrap();
        assert_eq!(added.status, 201, "{:?}", added.json());
        assert_eq!(added.json()["task"], "ner");
        let r = conn.post_json("/v1/ner", &json!({ "model": "b2", "texts": texts }), &auth).await.unwrap();
        assert_eq!(r.json()["results"], Value::Array(expect_b));
        let taken = conn.post_json("/v1/adapters", &add, &auth).await.unwrap();
        assert_eq!((taken.status, taken.json()["error"]["code"].clone()), (409, json!("adapter_exists")));
        let removed = conn.send("DELETE", "/v1/adapters/b2", &auth, b"").await.unwrap();
        assert_eq!(removed.status, 200);
        let gone = conn.post_json("/v1/ner", &json!({ "model": "b2", "texts": texts }), &auth).await.unwrap();
        assert_eq!((gone.status, gone.json()["error"]["code"].clone()), (404, json!("unknown_model")));
        assert_eq!(conn.send("DELETE", "/v1/adapters/b2", &auth, b"").await.unwrap().status, 404);

        // Bad adapter folders: 422 naming the file and the key.
        let broken = t.join("broken");
        std::fs::create_dir_all(&broken).unwrap();
        for f in std::fs::read_dir(&a).unwrap() {
            let f = f.unwrap().path();
            std::fs::copy(&f, broken.join(f.file_name().unwrap())).unwrap();
        }
        let config_path = broken.join("adapter_config.json");
        let mut config: Value = serde_json::from_str(&std::fs::read_to_string(&config_path).unwrap()).unwrap();
        config["r"] = json!(0);
        std::fs::write(&config_path, config.to_string()).unwrap();
        let bad = conn.post_json("/v1/adapters", &json!({ "name": "bad", "path": broken }), &auth).await.unwrap();
        assert_eq!(bad.status, 422, "{:?}", bad.json());
        let message = bad.json()["error"]["message"].as_str().unwrap().to_string();
        assert!(message.contains("adapter_config.json") && message.contains('r'), "{message}");
        let nowhere = json!({ "name": "none", "path": t.join("nowhere") });
        assert_eq!(conn.post_json("/v1/adapters", &nowhere, &auth).await.unwrap().status, 422);
        let odd = conn.post_json("/v1/adapters", &json!({ "name": "../x", "path": a }), &auth).await.unwrap();
        assert_eq!(odd.status, 422);
        // The served adapters still answer.
        let r = conn.post_json("/v1/ner", &json!({ "model": "a", "texts": texts }), &auth).await.unwrap();
        assert_eq!(r.json()["results"], Value::Array(expect_a));
    });

    drop(server);

    // In int8 the adapters share the base's packed matrices and answer as
    // each does alone; without --model the base is the local folder the
    // first adapter names (base_model_name_or_path).
    #[rustfmt::skip]
    let server = Server::start(&["--adapter", &format!("a={a}"), "--adapter", &format!("b={b}"),
        "--precision", "int8", "--max-wait-ms", "100"]);
    let int8 = |adapter: &str| {
        #[rustfmt::skip]
        let args = ["predict", "--model", base_s, "--adapter", adapter, "--precision", "int8", "--threads", "1"];
        json_lines(&ferrotune(&args, &texts.join("\n")))
    };
    let (int8_a, int8_b) = (int8(&a), int8(&b));
    runtime().block_on(async {
        let ask = |model: &'static str| async move {
            let mut conn = Connection::open(server.addr).await.unwrap();
            conn.post_json("/v1/ner", &json!({ "model": model, "texts": texts }), &[]).await.unwrap().json()
        };
        let (ra, rb) = tokio::join!(ask("a"), ask("b"));
        assert_eq!(ra["results"], Value::Array(int8_a));
        assert_eq!(rb["results"], Value::Array(int8_b));
    });

    // --adapter needs exactly one --model (the base).
    let o = ferrotune(&["serve", "--model", base_s, "--model", base_s, "--adapter", &format!("a={a}")], "");
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("exactly one --model"));
}
