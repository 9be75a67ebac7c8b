//! `ferrotune monitor run` end to end on a tiny sentiment model trained
//! here: a steady stream with one burst of negative records raises one
//! alert for the burst's window (under the overall stream, the record's
//! own topic and a rule's topic), then its resolution; bad records go to
//! the dead-letter file with their line number and reason, and bad
//! options stop the run at start.

mod common;

use std::fmt::Write;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{ferrotune, stderr};
use rand::{Rng, SeedableRng};

const WORDS: [&str; 8] = ["good", "great", "bad", "awful", "profit", "loss", "rose", "fell"];

/// A classifier that tells "loss fell" (negative) from "profit rose".
fn sentiment_model(t: &std::path::Path) -> String {
    let base = t.join("base");
    ferrotune_model::tiny::write_tiny_bert(&base, &WORDS, 4).unwrap();
    let data = t.join("train.csv");
    let rows = "profit rose,positive\nloss fell,negative\ngreat profit,positive\nawful bad loss,negative\n";
    std::fs::write(&data, format!("text,label\n{}", rows.repeat(6))).unwrap();
    let out = t.join("sentiment");
    let (d, o) = (data.to_str().unwrap(), out.to_str().unwrap());
    let mut args = vec!["train", "--task", "classify", "--model", base.to_str().unwrap(), "--train", d];
    args.extend(["--output", o, "--epochs", "10", "--batch-size", "4", "--lr", "0.01", "--max-len", "16"]);
    args.extend(["--threads", "1"]);
    let run = ferrotune(&args, "");
    assert!(run.status.success(), "{}", stderr(&run));
    o.to_string()
}

#[test]
fn a_burst_alerts_once_then_resolves_and_bad_records_are_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let model = sentiment_model(t);
    // 14 hours of 40 records, 25% negative; 80% negative in hour 8.
    let mut stream = String::new();
    for hour in 0..14i64 {
        let negatives = if hour == 8 { 32 } else { 10 };
        for i in 0..40 {
            let text = if i < negatives { "loss fell" } else { "profit rose" };
            let time = 1_767_225_600 + hour * 3600 + i * 60;
            writeln!(stream, r#"{{"time": {time}, "text": "{text} at acme", "topic": "acme", "id": "{hour}-{i}"}}"#)
                .unwrap();
        }
        if hour == 3 {
            stream +=
                "{\"time\": \"soon\", \"text\": \"loss fell\"}\n{\"time\": 1767225600, \"text\": \"\"}\nnot json\n";
            // An hour late: its window is final.
            stream += "{\"time\": 1767225600, \"text\": \"loss fell\"}\n";
        }
    }
    let input = t.join("stream.jsonl");
    let mut bytes = stream.into_bytes();
    bytes.extend_from_slice(b"{\"time\": 1767225600, \"text\": \"loss \xff fell\"}\n");
    std::fs::write(&input, bytes).unwrap();
    let topics = t.join("topics.toml");
    std::fs::write(&topics, "ACME = [\"Acme\"]\n").unwrap();
    let (alerts, rejects) = (t.join("alerts.jsonl"), t.join("rejects.jsonl"));
    let mut args = vec!["monitor", "run", "--model", &model, "--input", input.to_str().unwrap()];
    args.extend(["--negative", "negative", "--positive", "positive", "--topics", topics.to_str().unwrap()]);
    args.extend(["--alerts", alerts.to_str().unwrap(), "--rejects", rejects.to_str().unwrap(), "--threads", "1"]);
    args.extend(["--window", "1h", "--allowed-lateness", "30m", "--min-count", "20"]);
    let db = t.join("monitor.sqlite");
    args.extend(["--db", db.to_str().unwrap()]);
    let run = ferrotune(&args, "");
    assert!(run.status.success(), "{}", stderr(&run));
    let summary = "561 records classified: 560 stored, 0 already stored; 5 rejected; 42 final windows, 6 alerts";
    assert!(stderr(&run).contains(summary), "{}", stderr(&run));

    let alerts: Vec<serde_json::Value> =
        std::fs::read_to_string(&alerts).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let summary: Vec<(String, String, i64)> = alerts
        .iter()
        .map(|a| {
            let topic = a["topic"].as_str().unwrap().to_string();
            let severity = a["severity"].as_str().unwrap().to_string();
            (topic, severity, (a["window_start"].as_i64().unwrap() - 1_767_225_600) / 3600)
        })
        .collect();
    let expected: Vec<(String, String, i64)> = ["*", "ACME", "acme"]
        .iter()
        .flat_map(|topic| {
            [(topic.to_string(), "critical".to_string(), 8), (topic.to_string(), "resolved".to_string(), 9)]
        })
        .collect();
    let mut sorted = summary.clone();
    sorted.sort();
    assert_eq!(sorted, expected, "{alerts:?}");
    let first = &alerts[0];
    assert_eq!(
        (first["kind"].as_str(), first["count"].as_u64(), first["negatives"].as_u64()),
        (Some("negative_share"), Some(40), Some(32))
    );
    assert!((first["baseline_share"].as_f64().unwrap() - 0.25).abs() < 1e-9);
    assert_eq!(first["texts"][0], "loss fell at acme");

    let rejects: Vec<serde_json::Value> =
        std::fs::read_to_string(&rejects).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let reasons: Vec<(u64, String)> =
        rejects.iter().map(|r| (r["line"].as_u64().unwrap(), r["reason"].as_str().unwrap().to_string())).collect();
    assert_eq!(reasons.iter().map(|r| r.0).collect::<Vec<_>>(), [161, 162, 163, 164, 565]);
    assert!(reasons[0].1.starts_with("bad time 'soon'"), "{reasons:?}");
    assert_eq!(reasons[1].1, "empty text");
    assert!(reasons[2].1.starts_with("invalid JSON"), "{reasons:?}");
    assert!(reasons[3].1.contains("too late"), "{reasons:?}");
    assert!(reasons[4].1.starts_with("invalid UTF-8"), "{reasons:?}");
    assert_eq!(rejects[2]["record"], "not json");
}

#[test]
fn bad_options_stop_at_start() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let model = sentiment_model(t);
    let input = t.join("stream.jsonl");
    std::fs::write(&input, "{\"time\": 0, \"text\": \"loss\"}\n").unwrap();
    let db = t.join("monitor.sqlite");
    let run_with = |extra: &[&str]| {
        let mut args = vec!["monitor", "run", "--model", &model, "--input", input.to_str().unwrap(), "--threads", "1"];
        args.extend(["--db", db.to_str().unwrap()]);
        args.extend_from_slice(extra);
        ferrotune(&args, "")
    };
    let run = run_with(&["--negative", "bearish"]);
    assert_eq!(run.status.code(), Some(1));
    assert!(
        stderr(&run).contains("the negative label 'bearish' is not one of the model's labels: negative, positive"),
        "{}",
        stderr(&run)
    );
    let run = run_with(&["--negative", "negative", "--topics", "missing.toml"]);
    assert_eq!(run.status.code(), Some(1));
    assert!(stderr(&run).contains("missing.toml"), "{}", stderr(&run));
    let run = run_with(&["--negative", "negative"]);
    assert!(run.status.success(), "{}", stderr(&run));
    let run = run_with(&["--negative", "negative", "--window", "15m"]);
    assert_eq!(run.status.code(), Some(1), "{}", stderr(&run));
    assert!(stderr(&run).contains("the store was made with window = 3600, this run asks for 900"), "{}", stderr(&run));
    let run = run_with(&["--negative", "negative", "--window", "1w"]);
    assert_eq!(run.status.code(), Some(2), "{}", stderr(&run));
    let missing = t.join("nowhere");
    let run = ferrotune(
        &["monitor", "run", "--model", missing.to_str().unwrap(), "--input", "-", "--negative", "negative"],
        "",
    );
    assert_eq!(run.status.code(), Some(1), "{}", stderr(&run));
}

#[test]
fn a_replayed_stream_is_scored_against_its_bursts() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let model = sentiment_model(t);
    let data = t.join("test.tsv");
    std::fs::write(&data, "text\tlabel\nloss fell\tnegative\nawful bad loss\tnegative\nprofit rose\tpositive\ngreat profit\tpositive\ngood profit\tneutral\n").unwrap();
    let (stream, truth, alerts) = (t.join("stream.jsonl"), t.join("truth.json"), t.join("alerts.jsonl"));
    let path = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let mut args = vec!["monitor".to_string(), "simulate".into(), "--data".into(), path(&data), "--negative".into()];
    args.extend(["negative".into(), "--output".into(), path(&stream), "--truth".into(), path(&truth)]);
    args.extend(
        ["--windows", "120", "--volume", "40", "--bursts", "4", "--burst-rise", "0.3", "--seed", "3"].map(String::from),
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = ferrotune(&args, "");
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(
        stderr(&run).contains("4800 records over 120 windows, negative share 0.400 outside 4 bursts"),
        "{}",
        stderr(&run)
    );
    let s = path(&stream);
    let a = path(&alerts);
    let run = ferrotune(
        &[
            "monitor",
            "run",
            "--model",
            &model,
            "--input",
            &s,
            "--negative",
            "negative",
            "--alerts",
            &a,
            "--db",
            &path(&t.join("monitor.sqlite")),
            "--threads",
            "1",
        ],
        "",
    );
    assert!(run.status.success(), "{}", stderr(&run));
    let tr = path(&truth);
    let scored = ferrotune(&["monitor", "score", "--truth", &tr, "--alerts", &a], "");
    assert!(scored.status.success(), "{}", stderr(&scored));
    let result: serde_json::Value = serde_json::from_slice(&scored.stdout).unwrap();
    assert_eq!((result["bursts"].as_u64(), result["detected"].as_u64()), (Some(4), Some(4)), "{result}");
    assert_eq!(result["false_alerts"], 0, "{result}");
    let bad = ferrotune(&["monitor", "score", "--truth", &a, "--alerts", &a], "");
    assert_eq!(bad.status.code(), Some(1));
    assert!(stderr(&bad).contains("not a truth file"), "{}", stderr(&bad));
}

/// `records` records an hour over `hours` hours, a quarter negative, 80%
/// in hour `burst`; under two topics; every record with an id.
fn steady_stream(hours: i64, records: i64, burst: i64) -> String {
    let mut stream = String::new();
    for hour in 0..hours {
        let negatives = if hour == burst { records * 4 / 5 } else { records / 4 };
        for i in 0..records {
            let text = if i < negatives { "loss fell" } else { "profit rose" };
            let time = 1_767_225_600 + hour * 3600 + i * 3600 / records;
            let topic = if i % 2 == 0 { "acme" } else { "globex" };
            writeln!(stream, r#"{{"time": {time}, "text": "{text} {i}", "topic": "{topic}", "id": "{hour}-{i}"}}"#)
                .unwrap();
        }
    }
    stream
}

/// A running `ferrotune` that is killed if the test ends (or fails) first.
struct Running(Option<std::process::Child>);

impl Running {
    fn spawn(mut command: Command) -> Self {
        Self(Some(command.spawn().unwrap()))
    }

    /// Sends SIGTERM and waits for the process.
    fn terminate(mut self) -> std::process::Output {
        let child = self.0.take().unwrap();
        assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
        child.wait_with_output().unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Every final window and every alert in a store, in order.
fn store_contents(db: &Path) -> (Vec<ferrotune_monitor::StoredWindow>, Vec<ferrotune_monitor::StoredAlert>) {
    let store = ferrotune_monitor::Store::open(db).unwrap();
    (store.windows(&[], i64::MIN, i64::MAX).unwrap(), store.alerts(0, None, None).unwrap())
}

fn monitor_command(model: &str, input: &Path, db: &Path, alerts: &Path, extra: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ferrotune"));
    command.args(["monitor", "run", "--model", model, "--negative", "negative", "--threads", "1"]);
    command.args(["--input", input.to_str().unwrap(), "--db", db.to_str().unwrap()]);
    command.args(["--alerts", alerts.to_str().unwrap(), "--min-count", "20"]).args(extra);
    command.stdout(Stdio::null()).stderr(Stdio::piped());
    command
}

#[test]
fn sigkill_at_random_moments_then_restart_equals_an_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let model = sentiment_model(t);
    let input = t.join("stream.jsonl");
    std::fs::write(&input, steady_stream(50, 100, 30)).unwrap();
    let small_batches = ["--batch-records", "20"];

    let (full_db, full_alerts) = (t.join("full.sqlite"), t.join("full.jsonl"));
    let started = Instant::now();
    let run = monitor_command(&model, &input, &full_db, &full_alerts, &small_batches).output().unwrap();
    assert!(run.status.success(), "{}", stderr(&run));
    let whole = started.elapsed();

    let (db, alerts) = (t.join("killed.sqlite"), t.join("killed.jsonl"));
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(15);
    // Kills until five have landed mid-stream after new records were
    // stored; a kill before the first commit of a (loaded, slow) restart
    // stores nothing and is followed by a longer wait.
    let (mut kills, mut progress, mut stretch) = (0, vec![0], 1.0);
    while progress.len() <= 5 && kills < 20 {
        let mut child = monitor_command(&model, &input, &db, &alerts, &small_batches).spawn().unwrap();
        std::thread::sleep(whole.mul_f64(rng.random_range(0.05..0.2) * stretch));
        if child.try_wait().unwrap().is_some() {
            break;
        }
        child.kill().unwrap();
        child.wait().unwrap();
        kills += 1;
        let stored = stored_records(&db);
        if stored > *progress.last().unwrap() && stored < 5000 {
            progress.push(stored);
            stretch = 1.0;
        } else {
            stretch *= 1.5;
        }
    }
    let run = monitor_command(&model, &input, &db, &alerts, &small_batches).output().unwrap();
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(
        progress.len() > 5,
        "{kills} kills, records stored after those that landed mid-stream: {progress:?} (uninterrupted run: {whole:?})"
    );
    eprintln!("records stored after each kill: {progress:?}; uninterrupted run {whole:?}");

    let (windows, raised) = store_contents(&db);
    let (full_windows, full_raised) = store_contents(&full_db);
    assert_eq!(windows.len(), 150, "50 hours of 3 topics");
    assert_eq!(windows.iter().map(|w| w.window.count).sum::<u64>(), 2 * 5000, "each record in * and its topic");
    assert_eq!(windows.iter().map(counts).collect::<Vec<_>>(), full_windows.iter().map(counts).collect::<Vec<_>>());
    assert!(raised.iter().any(|a| a.alert.window_start == 1_767_225_600 + 30 * 3600), "{raised:?}");
    let alerts_of = |raised: &[ferrotune_monitor::StoredAlert]| -> Vec<_> {
        raised
            .iter()
            .map(|a| (a.id, a.alert.kind, a.alert.severity, a.alert.topic.clone(), a.alert.window_start))
            .collect()
    };
    assert_eq!(alerts_of(&raised), alerts_of(&full_raised));
    let ids = |path: &Path| -> Vec<i64> {
        let text = std::fs::read_to_string(path).unwrap();
        text.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["id"].as_i64().unwrap()).collect()
    };
    assert_eq!(ids(&alerts), ids(&full_alerts), "each alert written once");
    assert_eq!(stored_records(&db), 5000);
}

/// A window's counts: batches of other sizes after a restart change the
/// model's scores in their last bits, never the labels.
fn counts(w: &ferrotune_monitor::StoredWindow) -> (String, i64, u64, u64, Vec<(String, u64)>) {
    let labels = w.window.labels.iter().map(|(l, n)| (l.clone(), *n)).collect();
    (w.window.topic.clone(), w.window.start, w.window.count, w.window.negatives, labels)
}

fn stored_records(db: &Path) -> i64 {
    let store = ferrotune_monitor::Store::open(db).unwrap();
    store.counts().unwrap().into_iter().find(|(table, _)| *table == "records").unwrap().1
}

#[test]
fn a_followed_csv_stream_stops_on_sigterm_and_continues_from_its_position() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let model = sentiment_model(t);
    let lines: Vec<String> = steady_stream(12, 40, 8)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            format!(
                "{},{},\"{}\",{}",
                v["id"].as_str().unwrap(),
                v["time"],
                v["text"].as_str().unwrap(),
                v["topic"].as_str().unwrap()
            )
        })
        .collect();
    let input = t.join("stream.csv");
    let (db, alerts) = (t.join("m.sqlite"), t.join("alerts.jsonl"));
    std::fs::write(&input, format!("id,time,text,topic\n{}\n", lines[..200].join("\n"))).unwrap();
    let child = Running::spawn(monitor_command(&model, &input, &db, &alerts, &["--follow"]));
    let store = ferrotune_monitor::Store::open(&db);
    let stored = |n: i64| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(store) = &store {
                if store.counts().is_ok_and(|c| c.contains(&("records", n))) {
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    };
    assert!(stored(200), "the first 200 rows were not stored");
    let mut file = std::fs::OpenOptions::new().append(true).open(&input).unwrap();
    writeln!(file, "{}", lines[200..300].join("\n")).unwrap();
    file.write_all(lines[300].as_bytes()).unwrap();
    assert!(stored(300), "appended rows were not stored");
    let out = child.terminate();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("300 records classified: 300 stored"), "{}", stderr(&out));
    let (windows, _) = store_contents(&db);
    assert!(windows.iter().all(|w| w.window.start < 1_767_225_600 + 7 * 3600), "windows stay open when followed");

    // The rest of row 300, then the rest of the stream; a run without --follow ends it.
    writeln!(file, "\n{}", lines[301..].join("\n")).unwrap();
    let run = monitor_command(&model, &input, &db, &alerts, &[]).output().unwrap();
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(
        stderr(&run).contains("180 records classified: 180 stored, 0 already stored; 0 rejected"),
        "{}",
        stderr(&run)
    );
    let (windows, raised) = store_contents(&db);
    assert_eq!(windows.iter().map(|w| w.window.count).sum::<u64>(), 2 * 480);
    let burst: Vec<_> = raised.iter().filter(|a| a.alert.window_start == 1_767_225_600 + 8 * 3600).collect();
    assert_eq!(burst.len(), 3, "{raised:?}");
}

#[test]
fn records_already_stored_are_not_counted_again() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let model = sentiment_model(t);
    let stream = steady_stream(6, 40, 99);
    let input = t.join("stream.jsonl");
    // Every record twice: the second copies repeat ids; a record without an id repeats its time and text.
    let without_id = "{\"time\": 1767225601, \"text\": \"loss fell\"}\n";
    std::fs::write(&input, format!("{stream}{without_id}{stream}{without_id}")).unwrap();
    let (db, alerts) = (t.join("m.sqlite"), t.join("alerts.jsonl"));
    let run = monitor_command(&model, &input, &db, &alerts, &["--allowed-lateness", "1d"]).output().unwrap();
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(stderr(&run).contains("482 records classified: 241 stored, 241 already stored"), "{}", stderr(&run));
    let (windows, _) = store_contents(&db);
    assert_eq!(windows.iter().filter(|w| w.window.topic == "*").map(|w| w.window.count).sum::<u64>(), 241);
}

/// A `redis-server` (Debian's package) on a free loopback port, stopped on drop.
struct RedisServer {
    child: std::process::Child,
    port: u16,
}

impl RedisServer {
    fn start(dir: &Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server (Debian's redis-server package; .ci/run installs it)");
        let server = Self { child, port };
        let deadline = Instant::now() + Duration::from_secs(20);
        while server.connection().is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start on port {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    fn connection(&self) -> redis::RedisResult<redis::Connection> {
        let mut connection = redis::Client::open(format!("redis://127.0.0.1:{}", self.port))?.get_connection()?;
        redis::cmd("PING").query::<String>(&mut connection)?;
        Ok(connection)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Entries of a consumer group not yet acknowledged.
fn pending(connection: &mut redis::Connection, stream: &str, group: &str) -> i64 {
    let reply: redis::Value = redis::cmd("XPENDING").arg(stream).arg(group).query(connection).unwrap();
    match reply {
        redis::Value::Array(values) => match values.first() {
            Some(redis::Value::Int(n)) => *n,
            other => panic!("XPENDING: {other:?}"),
        },
        other => panic!("XPENDING: {other:?}"),
    }
}

#[test]
fn two_redis_workers_one_killed_store_every_record_once_and_count_as_one() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let model = sentiment_model(t);
    let redis = RedisServer::start(t);
    let stream = steady_stream(50, 100, 30);
    let input = t.join("stream.jsonl");
    std::fs::write(&input, &stream).unwrap();
    let mut connection = redis.connection().unwrap();
    let mut feed = redis::pipe();
    for line in stream.lines() {
        feed.cmd("XADD").arg("news").arg("*").arg("record").arg(line).ignore();
    }
    feed.query::<()>(&mut connection).unwrap();

    let lateness = ["--allowed-lateness", "3d"];
    let (single_db, single_alerts) = (t.join("single.sqlite"), t.join("single.jsonl"));
    let run = monitor_command(&model, &input, &single_db, &single_alerts, &lateness).output().unwrap();
    assert!(run.status.success(), "{}", stderr(&run));

    let db = t.join("shared.sqlite");
    let url = format!("redis://127.0.0.1:{}/news", redis.port);
    let worker = |name: &str| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ferrotune"));
        command.args(["monitor", "run", "--model", &model, "--negative", "negative", "--threads", "1"]);
        command.args(["--input", &url, "--group", "monitors", "--consumer", name, "--claim-idle", "1s"]);
        command.args(["--batch-records", "50", "--db", db.to_str().unwrap()]);
        command.stdout(Stdio::null()).stderr(Stdio::piped());
        Running::spawn(command)
    };
    let (first, second) = (worker("w1"), worker("w2"));
    let wait_for = |what: &str, done: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(120);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait_for("1,000 records", &|| stored_records(&db) >= 1000);
    drop(first); // SIGKILL, and reaped
    let at_kill = stored_records(&db);
    wait_for("every record", &|| {
        stored_records(&db) == 5000 && pending(&mut redis.connection().unwrap(), "news", "monitors") == 0
    });
    let out = second.terminate();
    assert!(out.status.success(), "{}", stderr(&out));
    eprintln!("w1 killed at {at_kill} records stored; w2: {}", stderr(&out));
    assert!(at_kill < 5000, "w1 was killed after the end ({at_kill} records)");

    let alerts = t.join("alerts.jsonl");
    let mut aggregate = Command::new(env!("CARGO_BIN_EXE_ferrotune"));
    aggregate.args(["monitor", "aggregate", "--db", db.to_str().unwrap(), "--alerts", alerts.to_str().unwrap()]);
    let out = aggregate.args(["--min-count", "20"]).args(lateness).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("5000 stored records counted, 0 rejected; 150 final windows"), "{}", stderr(&out));
    let (windows, raised) = store_contents(&db);
    let (single_windows, single_raised) = store_contents(&single_db);
    assert_eq!(windows.iter().map(counts).collect::<Vec<_>>(), single_windows.iter().map(counts).collect::<Vec<_>>());
    let alerts_of = |raised: &[ferrotune_monitor::StoredAlert]| -> Vec<_> {
        raised.iter().map(|a| (a.alert.kind, a.alert.severity, a.alert.topic.clone(), a.alert.window_start)).collect()
    };
    assert_eq!(alerts_of(&raised), alerts_of(&single_raised));
    assert!(!raised.is_empty());
}

#[test]
fn the_dashboard_shows_each_topic_and_alert_of_a_store() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let model = sentiment_model(t);
    let input = t.join("stream.jsonl");
    std::fs::write(&input, steady_stream(12, 40, 8)).unwrap();
    let (db, alerts) = (t.join("m.sqlite"), t.join("alerts.jsonl"));
    let run = monitor_command(&model, &input, &db, &alerts, &[]).output().unwrap();
    assert!(run.status.success(), "{}", stderr(&run));
    let raised = std::fs::read_to_string(&alerts).unwrap().lines().count();
    assert_eq!(raised, 6, "a rise and its resolution under *, acme and globex");

    let page = t.join("dashboard.html");
    let report = |extra: &[&str]| {
        let mut args = vec!["monitor", "report", "--db", db.to_str().unwrap(), "--output", page.to_str().unwrap()];
        args.extend_from_slice(extra);
        let out = ferrotune(&args, "");
        assert!(out.status.success(), "{}", stderr(&out));
        std::fs::read_to_string(&page).unwrap()
    };
    let html = report(&[]);
    for topic in ["*", "acme", "globex"] {
        assert!(html.contains(&format!("data-topic=\"{topic}\"")), "{topic}");
    }
    assert_eq!(html.matches("<section class=\"topic\"").count(), 3);
    assert_eq!(html.matches("class=\"alert-marker").count(), raised);
    assert!(html.contains("loss fell"), "the texts behind the alerts");
    assert!(!html.contains("http") && !html.contains("<script"), "self-contained");

    // One topic, from hour 9 on: the rise (hour 8) is out of range, its resolution (hour 9) in.
    let html = report(&["--topic", "acme", "--from", "2026-01-01T09:00:00Z"]);
    assert_eq!(html.matches("<section class=\"topic\"").count(), 1);
    assert_eq!(html.matches("class=\"alert-marker").count(), 1);

    let missing = ferrotune(&["monitor", "report", "--db", t.join("none.sqlite").to_str().unwrap()], "");
    assert_eq!(missing.status.code(), Some(1));
    assert!(stderr(&missing).contains("none.sqlite: no such store"), "{}", stderr(&missing));
}

/// A webhook endpoint on a free loopback port: it answers 500 to the first
/// `failures` requests, then 200, and keeps the bodies it took.
fn webhook_endpoint(failures: usize) -> (String, std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>) {
    use std::io::{BufRead, BufReader, Read};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/alerts", listener.local_addr().unwrap());
    let bodies = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let taken = bodies.clone();
    std::thread::spawn(move || {
        for (served, stream) in listener.incoming().enumerate() {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if line.trim().is_empty() {
                    break;
                }
                if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = value.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let status = if served < failures { "500 Internal Server Error" } else { "200 OK" };
            if served >= failures {
                taken.lock().unwrap().push(serde_json::from_slice(&body).unwrap());
            }
            let answer = format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            stream.write_all(answer.as_bytes()).unwrap();
        }
    });
    (url, bodies)
}

#[test]
fn alerts_reach_a_webhook_through_failures_and_a_dead_one_is_caught_up_after_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let model = sentiment_model(t);
    let input = t.join("stream.jsonl");
    std::fs::write(&input, steady_stream(12, 40, 8)).unwrap();

    // Two failures, then every alert delivered, in order.
    let (url, bodies) = webhook_endpoint(2);
    let (db, alerts) = (t.join("m.sqlite"), t.join("alerts.jsonl"));
    let run = monitor_command(&model, &input, &db, &alerts, &["--webhook", &url]).output().unwrap();
    assert!(run.status.success(), "{}", stderr(&run));
    let ids: Vec<i64> = bodies.lock().unwrap().iter().map(|b| b["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, [1, 2, 3, 4, 5, 6]);
    assert_eq!(bodies.lock().unwrap()[0]["severity"], "critical");
    let store = ferrotune_monitor::Store::open(&db).unwrap();
    assert!(store.alerts(0, None, Some(false)).unwrap().is_empty(), "every alert recorded as delivered");
    assert!(store.counts().unwrap().contains(&("deliveries", 8)), "{:?}", store.counts().unwrap());

    // A dead endpoint holds nothing up; the next start delivers what it missed.
    let dead = format!("http://{}/alerts", std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap());
    let (db, alerts) = (t.join("dead.sqlite"), t.join("dead.jsonl"));
    let quick = ["--webhook", dead.as_str(), "--webhook-timeout", "1s", "--webhook-retries", "1"];
    let run = monitor_command(&model, &input, &db, &alerts, &quick).output().unwrap();
    assert!(run.status.success(), "{}", stderr(&run));
    assert_eq!(std::fs::read_to_string(&alerts).unwrap().lines().count(), 6);
    let store = ferrotune_monitor::Store::open(&db).unwrap();
    assert_eq!(store.alerts(0, None, Some(false)).unwrap().len(), 6, "none delivered");
    let (url, bodies) = webhook_endpoint(0);
    let run = monitor_command(&model, &input, &db, &alerts, &["--webhook", &url]).output().unwrap();
    assert!(run.status.success(), "{}", stderr(&run));
    assert_eq!(bodies.lock().unwrap().len(), 6);
    assert!(store.alerts(0, None, Some(false)).unwrap().is_empty());
    assert_eq!(std::fs::read_to_string(&alerts).unwrap().lines().count(), 6, "the alerts file is not written again");
}

/// The body of `GET path` from a loopback server.
fn http_get(addr: &str, path: &str) -> String {
    use std::io::Read;
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

#[test]
fn a_followed_stream_serves_its_metrics_and_health() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let model = sentiment_model(t);
    let input = t.join("stream.jsonl");
    std::fs::write(&input, format!("{}not json\n", steady_stream(12, 40, 8))).unwrap();
    let (db, alerts) = (t.join("m.sqlite"), t.join("alerts.jsonl"));
    let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    let rejects = t.join("rejects.jsonl");
    let extra = ["--follow", "--listen", addr.as_str(), "--rejects", rejects.to_str().unwrap()];
    let child = Running::spawn(monitor_command(&model, &input, &db, &alerts, &extra));
    let deadline = Instant::now() + Duration::from_secs(60);
    let metrics = loop {
        assert!(Instant::now() < deadline, "no metrics");
        if std::net::TcpStream::connect(&addr).is_ok() {
            let metrics = http_get(&addr, "/metrics");
            // Records are counted in as read, rejected once committed.
            if metrics.contains("ferrotune_monitor_records_in_total 481")
                && metrics.contains("ferrotune_monitor_rejected_total 1")
            {
                break metrics;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    for line in [
        "ferrotune_monitor_classified_total 480",
        "ferrotune_monitor_alerts_total 3",
        "# TYPE ferrotune_monitor_queue_depth gauge",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
    let health = http_get(&addr, "/health");
    assert!(health.starts_with("HTTP/1.1 200") || health.starts_with("HTTP/1.0 200"), "{health}");
    let out = child.terminate();
    assert!(out.status.success(), "{}", stderr(&out));
}
