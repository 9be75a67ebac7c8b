//! `ferrotune monitor run` end to end on a tiny sentiment model trained
//! here: a steady stream with one burst of negative records raises one
//! alert for the burst's window (under the overall stream, the record's
//! own topic and a rule's topic), then its resolution; bad records go to
//! the dead-letter file with their line number and reason, and bad
//! options stop the run at start.

mod common;

use std::fmt::Write;

use common::{ferrotune, stderr};

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
    std::fs::write(&input, stream).unwrap();
    let topics = t.join("topics.toml");
    std::fs::write(&topics, "ACME = [\"Acme\"]\n").unwrap();
    let (alerts, rejects) = (t.join("alerts.jsonl"), t.join("rejects.jsonl"));
    let mut args = vec!["monitor", "run", "--model", &model, "--input", input.to_str().unwrap()];
    args.extend(["--negative", "negative", "--positive", "positive", "--topics", topics.to_str().unwrap()]);
    args.extend(["--alerts", alerts.to_str().unwrap(), "--rejects", rejects.to_str().unwrap(), "--threads", "1"]);
    args.extend(["--window", "1h", "--allowed-lateness", "30m", "--min-count", "20"]);
    let run = ferrotune(&args, "");
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(stderr(&run).contains("560 records classified, 4 rejected; 42 final windows"), "{}", stderr(&run));

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
    assert_eq!(reasons.iter().map(|r| r.0).collect::<Vec<_>>(), [161, 162, 163, 164]);
    assert!(reasons[0].1.starts_with("bad time 'soon'"), "{reasons:?}");
    assert_eq!(reasons[1].1, "empty text");
    assert!(reasons[2].1.starts_with("invalid JSON"), "{reasons:?}");
    assert!(reasons[3].1.contains("too late"), "{reasons:?}");
    assert_eq!(rejects[2]["record"], "not json");
}

#[test]
fn bad_options_stop_at_start() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let model = sentiment_model(t);
    let input = t.join("stream.jsonl");
    std::fs::write(&input, "{\"time\": 0, \"text\": \"loss\"}\n").unwrap();
    let run_with = |extra: &[&str]| {
        let mut args = vec!["monitor", "run", "--model", &model, "--input", input.to_str().unwrap(), "--threads", "1"];
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
