//! `ferrotune report` end to end on tiny random models: two NER runs that
//! differ in their learning rate, one page each and one comparing them;
//! the page's structure (charts, the kept epoch, per-type table, options);
//! every run leaves a TensorBoard event file; a bad log line is refused
//! naming the file and line (exit 1).

mod common;

use std::path::{Path, PathBuf};

use common::{ferrotune, stderr};

const WORDS: [&str; 8] = ["the", "patient", "has", "fever", "and", "cough", "no", "asthma"];
const TRAIN: &str =
    "the\tO\npatient\tO\nhas\tO\nfever\tB-Disease\nand\tO\ncough\tB-Disease\n\nno\tO\nasthma\tB-Disease\n\n";

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn train(t: &Path, name: &str, lr: &str) -> PathBuf {
    let (base, data, out) = (t.join("base"), t.join("train.tsv"), t.join(name));
    #[rustfmt::skip]
    let o = ferrotune(&["train", "--model", s(&base), "--train", s(&data), "--dev", s(&data), "--output", s(&out),
        "--epochs", "3", "--batch-size", "4", "--lr", lr, "--max-len", "16", "--threads", "1"], "");
    assert!(o.status.success(), "{}", stderr(&o));
    out
}

#[test]
fn runs_make_a_page_each_and_one_comparing_them() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    ferrotune_model::tiny::write_tiny_bert(&t.join("base"), &WORDS, 3).unwrap();
    std::fs::write(t.join("train.tsv"), TRAIN.repeat(6)).unwrap();
    let (a, b) = (train(t, "a", "0.01"), train(t, "b", "0.002"));
    for run in [&a, &b] {
        let events: Vec<_> = std::fs::read_dir(run.join("runs")).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(events.len(), 1);
        assert!(events[0].to_string_lossy().starts_with("events.out.tfevents."));
        let run_file: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap()).unwrap();
        assert_eq!(run_file["data"]["examples"], 12);
    }

    let o = ferrotune(&["report", s(&a)], "");
    assert!(o.status.success(), "{}", stderr(&o));
    let page = std::fs::read_to_string(a.join("report.html")).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>") && page.ends_with("</html>"));
    assert!(!page.contains("<script") && !page.contains("http://") && !page.contains("https://"), "self-contained");
    assert_eq!(page.matches("<svg class=\"chart\"").count(), 7, "six curves and the dev metrics");
    assert_eq!(page.matches("class=\"mark\"").count(), 1, "the kept epoch");
    for section in
        ["id=\"summary\"", "id=\"kept\"", "id=\"epochs\"", "id=\"options\"", "class=\"per_type\"", ">Disease<"]
    {
        assert!(page.contains(section), "{section}");
    }
    assert_eq!(page.matches("<tr><td>").count() - page.matches("<tr><td>Disease").count(), 3, "one row per epoch");

    let compared = t.join("compared.html");
    let o = ferrotune(&["report", s(&a), s(&b), "--output", s(&compared)], "");
    assert!(o.status.success(), "{}", stderr(&o));
    let page = std::fs::read_to_string(&compared).unwrap();
    assert!(
        page.contains("id=\"runs\"") && page.contains("<th>lr</th>") && !page.contains("<th>epochs</th><th>epochs")
    );
    assert_eq!(page.matches("class=\"mark\"").count(), 2, "each run's kept epoch");
    assert!(!page.contains("id=\"options\""));

    // A torn or foreign line is refused, naming the file and line.
    let metrics = a.join("metrics.jsonl");
    let mut text = std::fs::read_to_string(&metrics).unwrap();
    text += "{\"type\": \"step\", \"step\": \n";
    std::fs::write(&metrics, &text).unwrap();
    let o = ferrotune(&["report", s(&a)], "");
    assert_eq!(o.status.code(), Some(1));
    let lines = text.lines().count();
    assert!(stderr(&o).contains(&format!("metrics.jsonl, line {lines}")), "{}", stderr(&o));
}
