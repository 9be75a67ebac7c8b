//! Issue 13, item 11: a real `ferrotune train` process killed with SIGKILL
//! at random moments (and as soon as a checkpoint write has begun), resumed
//! each time, ends with the model and the metrics log of an uninterrupted
//! run; in full fine-tuning and with LoRA adapters (whose checkpoints hold
//! only what trains).

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{ferrotune, stderr};
use rand::{Rng, SeedableRng};

const WORDS: [&str; 10] = ["the", "patient", "has", "fever", "and", "cough", "no", "signs", "of", "asthma"];
const SENTENCES: &str = "the\tO\npatient\tO\nhas\tO\nfever\tB-Disease\nand\tO\ncough\tB-Disease\n\n\
no\tO\nsigns\tO\nof\tO\nasthma\tB-Disease\n\n";

fn train(base: &Path, data: &Path, output: &Path, resume: bool, extra: &[&str]) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ferrotune"));
    command
        .args(["train", "--model", base.to_str().unwrap(), "--train", data.to_str().unwrap()])
        .args(["--dev", data.to_str().unwrap(), "--output", output.to_str().unwrap()])
        .args(["--epochs", "3", "--batch-size", "4", "--max-len", "16", "--seed", "5", "--lr", "5e-3"])
        .args(["--patience", "0", "--threads", "1"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if resume {
        command.arg("--resume");
    }
    command.spawn().unwrap()
}

/// The lines of `metrics.jsonl` without their timings.
fn log_without_timings(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            let map = v.as_object_mut().unwrap();
            for timing in ["seconds", "windows_per_s"] {
                map.remove(timing);
            }
            if let Some(dev) = map.get_mut("dev").and_then(|d| d.as_object_mut()) {
                dev.remove("seconds");
            }
            v
        })
        .collect()
}

fn predictions(base: &Path, run: &Path, lora: bool) -> String {
    let model = run.join("model");
    let mut args = vec!["predict", "--threads", "1"];
    match lora {
        true => args.extend(["--model", base.to_str().unwrap(), "--adapter", model.to_str().unwrap()]),
        false => args.extend(["--model", model.to_str().unwrap()]),
    }
    let o = ferrotune(&args, "the patient has fever and cough\nno signs of asthma\n");
    assert!(o.status.success(), "{}", stderr(&o));
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn sigkill_at_random_moments_then_resume_equals_an_uninterrupted_run() {
    kill_and_resume(&[]);
}

#[test]
fn a_killed_lora_run_resumes_like_an_uninterrupted_one() {
    kill_and_resume(&["--peft", "lora", "--lora-r", "4", "--lora-targets", "query,value,output.dense"]);
}

fn kill_and_resume(extra: &[&str]) {
    let lora = !extra.is_empty();
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base");
    ferrotune_model::tiny::write_tiny_bert(&base, &WORDS, 2).unwrap();
    let data = tmp.path().join("train.tsv");
    std::fs::write(&data, SENTENCES.repeat(400)).unwrap();

    let full = tmp.path().join("full");
    let started = Instant::now();
    assert!(train(&base, &data, &full, false, extra).wait().unwrap().success());
    let whole = started.elapsed();

    let killed = tmp.path().join("killed");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(13);
    let (mut kills, mut mid_checkpoint) = (0, 0);
    let mut resume = false;
    for round in 0..8 {
        let mut child = train(&base, &data, &killed, resume, extra);
        resume = true;
        let begun = Instant::now();
        // Even rounds: a random moment; odd rounds: as soon as a checkpoint
        // write has begun (its new folder exists).
        let delay = whole.mul_f64(rng.random_range(0.03..0.4));
        let new_checkpoint = killed.join("checkpoint.new");
        let finished = loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(status.success(), "round {round}: {status:?}");
                break true;
            }
            let due = if round % 2 == 1 { new_checkpoint.exists() } else { begun.elapsed() >= delay };
            if due {
                child.kill().unwrap();
                child.wait().unwrap();
                kills += 1;
                mid_checkpoint += usize::from(round % 2 == 1);
                break false;
            }
            // A checkpoint write lasts milliseconds: spin while waiting for one.
            if round % 2 == 0 {
                std::thread::sleep(Duration::from_micros(200));
            }
        };
        if finished {
            break;
        }
    }
    // Finish the run.
    assert!(train(&base, &data, &killed, true, extra).wait().unwrap().success());
    assert!(kills >= 3, "only {kills} kills landed");
    eprintln!("{kills} kills, {mid_checkpoint} during a checkpoint write; uninterrupted run {whole:?}");

    assert_eq!(log_without_timings(&killed), log_without_timings(&full));
    assert_eq!(predictions(&base, &killed, lora), predictions(&base, &full, lora));
}
