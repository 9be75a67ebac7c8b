//! `ferrotune search` end to end on a tiny random NER model: a TPE + ASHA
//! study prunes trials and writes its journal, table, page and best
//! options (which `ferrotune train --config` takes); the same seed gives
//! the same trials; a study killed in the middle of a trial and resumed
//! ends with the same trials; `--parallel 2` runs them two at a time; bad
//! study files and a journal of another study are refused naming the file
//! and key (exit 1). `ferrotune report` on a study folder draws its page.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{ferrotune, stderr};
use serde_json::Value;

const WORDS: [&str; 8] = ["the", "patient", "has", "fever", "and", "cough", "no", "asthma"];
const TRAIN: &str =
    "the\tO\npatient\tO\nhas\tO\nfever\tB-Disease\nand\tO\ncough\tB-Disease\n\nno\tO\nasthma\tB-Disease\n\n";

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A study file over lr, warm-up and batch size: 7 trials of 3 epochs.
fn study_file(t: &Path, extra_space: &str) -> String {
    format!(
        r#"
trials = 7
seed = 3
sampler = {{ type = "tpe", startup_trials = 3 }}
pruner = "asha"

[train]
model = "{}"
train = "{}"
dev = "{}"
epochs = 3
max_len = 16

[space]
lr = {{ type = "float", low = 1e-4, high = 3e-2, log = true }}
warmup_ratio = {{ type = "float", low = 0.0, high = 0.2 }}
batch_size = {{ type = "categorical", values = [2, 4] }}
{extra_space}
"#,
        s(&t.join("base")),
        s(&t.join("train.tsv")),
        s(&t.join("train.tsv"))
    )
}

fn setup() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path().to_path_buf();
    ferrotune_model::tiny::write_tiny_bert(&t.join("base"), &WORDS, 3).unwrap();
    std::fs::write(t.join("train.tsv"), TRAIN.repeat(4)).unwrap();
    std::fs::write(t.join("search.toml"), study_file(&t, "")).unwrap();
    (tmp, t)
}

/// The journal's trials.
fn trials(out: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(out.join("study.jsonl")).unwrap();
    text.lines().skip(1).map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn search(t: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let config = t.join("search.toml");
    let mut args = vec!["search", "--config", s(&config), "--output", s(out)];
    args.extend_from_slice(extra);
    if !extra.contains(&"--threads") {
        args.extend(["--threads", "1"]);
    }
    ferrotune(&args, "")
}

#[test]
fn a_study_prunes_repeats_itself_and_resumes_into_the_same_trials() {
    let (_tmp, t) = setup();
    let first = t.join("first");
    let o = search(&t, &first, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let done = trials(&first);
    assert_eq!(done.len(), 7);
    let states: Vec<&str> = done.iter().map(|t| t["state"].as_str().unwrap()).collect();
    assert!(states.iter().all(|s| ["complete", "pruned"].contains(s)), "{states:?}");
    assert!(states.contains(&"pruned") && states.contains(&"complete"), "{states:?}");
    let epochs: usize = done.iter().map(|t| t["scores"].as_array().unwrap().len()).sum();
    assert!(epochs < 7 * 3, "pruning saves epochs: {epochs}");
    for trial in &done {
        let lr = trial["params"]["lr"].as_f64().unwrap();
        assert!((1e-4..=3e-2).contains(&lr));
        assert!([2, 4].contains(&trial["params"]["batch_size"].as_i64().unwrap()));
        // The trial trained with its options.
        let dir = first.join("trials").join(format!("{:03}", trial["number"].as_u64().unwrap()));
        let config: toml::Table = toml::from_str(&std::fs::read_to_string(dir.join("train.toml")).unwrap()).unwrap();
        assert_eq!(config["lr"].as_float(), Some(lr));
        assert_eq!(epoch_lines(&dir), trial["scores"].as_array().unwrap().len(), "one metrics line per scored epoch");
        assert!(!dir.join("run").join("checkpoint").exists(), "checkpoints of ended trials go");
    }

    // Outputs: the table (printed too), the page, the best options.
    let table = std::fs::read_to_string(first.join("trials.tsv")).unwrap();
    assert_eq!(table.lines().count(), 8);
    assert_eq!(String::from_utf8_lossy(&o.stdout), table);
    assert!(stderr(&o).contains("best: trial "), "{}", stderr(&o));
    let page = std::fs::read_to_string(first.join("study.html")).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>") && !page.contains("<script"));
    assert_eq!(page.matches("<svg class=\"chart\"").count(), 2 + 3, "two study charts, one per option");
    assert_eq!(page.matches("<tr class=\"best\">").count(), 1);
    let redrawn = t.join("redrawn.html");
    let o = ferrotune(&["report", s(&first), "--output", s(&redrawn)], "");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&redrawn).unwrap(), page, "`report` on a study folder draws its page");
    let best: toml::Table = toml::from_str(&std::fs::read_to_string(first.join("best.toml")).unwrap()).unwrap();
    let o = ferrotune(&["train", "--config", s(&first.join("best.toml")), "--epochs", "1", "--threads", "1"], "");
    assert!(o.status.success(), "best.toml is a train --config file: {}", stderr(&o));
    assert!(Path::new(best["output"].as_str().unwrap()).join("model").is_dir());

    // The same seed, the same trials.
    let second = t.join("second");
    let o = search(&t, &second, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(trials(&second), done);

    // Killed while its 3rd trial trains, then resumed: the same trials.
    let killed = t.join("killed");
    let config = t.join("search.toml");
    let child = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_ferrotune"))
            .args(["search", "--config", s(&config), "--output", s(&killed), "--threads", "1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    let at_kill = loop {
        let now = if killed.join("study.jsonl").exists() { trials(&killed) } else { Vec::new() };
        let third_running = now.len() == 3 && now[2]["state"] == "running";
        if third_running || Instant::now() > deadline {
            break now;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    drop(child);
    assert!(at_kill.len() == 3 && at_kill[2]["state"] == "running", "{at_kill:?}");
    // The trial's own training died with the study.
    std::thread::sleep(Duration::from_millis(300));
    let metrics = killed.join("trials").join("002").join("run").join("metrics.jsonl");
    let size = std::fs::metadata(&metrics).map(|m| m.len()).unwrap_or(0);
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(std::fs::metadata(&metrics).map(|m| m.len()).unwrap_or(0), size, "no orphan trains on");
    let o = search(&t, &killed, &["--resume"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(trials(&killed), done);

    // Two at a time: the whole budget, each trial ended.
    let parallel = t.join("parallel");
    let o = search(&t, &parallel, &["--parallel", "2", "--threads", "2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let ended = trials(&parallel);
    assert_eq!(ended.len(), 7);
    assert!(ended.iter().all(|t| t["state"] == "complete" || t["state"] == "pruned"));
}

/// A process killed (SIGKILL) and reaped when dropped.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The number of epoch lines in a trial's `metrics.jsonl`.
fn epoch_lines(dir: &Path) -> usize {
    let text = std::fs::read_to_string(dir.join("run").join("metrics.jsonl")).unwrap();
    text.lines().filter(|l| l.contains("\"type\":\"epoch\"")).count()
}

#[test]
fn bad_study_files_and_other_journals_are_refused_naming_file_and_key() {
    let (_tmp, t) = setup();
    let cases = [
        ("learning_rate = { type = \"float\", low = 1e-5, high = 1e-3 }", "space.learning_rate: not a training option"),
        ("weight_decay = { type = \"float\", low = 0.1, high = 0.0 }", "space.weight_decay: empty range"),
        ("weight_decay = { type = \"float\", low = 0.0, high = 0.1, log = true }", "space.weight_decay: a log range"),
        ("lora_targets = { type = \"categorical\", values = [] }", "space.lora_targets: a categorical needs"),
    ];
    let config = t.join("search.toml");
    for (entry, expected) in cases {
        std::fs::write(&config, study_file(&t, entry)).unwrap();
        let o = search(&t, &t.join("bad"), &[]);
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        let message = stderr(&o);
        assert!(message.contains(&format!("{}: {expected}", s(&config))), "{message}");
    }
    std::fs::write(&config, study_file(&t, "").replace("max_len = 16", "max_len = 16\noutput = \"x\"")).unwrap();
    let o = search(&t, &t.join("bad"), &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("train.output: set by the study"), "{}", stderr(&o));

    // A journal of another study.
    std::fs::write(&config, study_file(&t, "").replace("trials = 7", "trials = 1")).unwrap();
    let out = t.join("one");
    let o = search(&t, &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = search(&t, &out, &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("--resume"), "{}", stderr(&o));
    std::fs::write(
        &config,
        study_file(&t, "").replace("trials = 7", "trials = 1").replace("high = 3e-2", "high = 1e-2"),
    )
    .unwrap();
    let o = search(&t, &out, &["--resume"]);
    assert_eq!(o.status.code(), Some(1));
    let message = stderr(&o);
    assert!(message.contains("study.jsonl") && message.contains("space.lr.high is 0.03 there, 0.01"), "{message}");
}
