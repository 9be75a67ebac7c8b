//! `ferrotune faq build|ask|eval` end to end on tiny random embedding
//! models: a FAQ question asked verbatim gets its own entry (cosine 1), the
//! threshold calibrated on dev hands over out-of-scope questions, and every
//! bad input (empty question, empty or repeated id, no question column,
//! another embedding model, a truncated or altered index file, an unknown
//! faq_id) is an error naming the file and the line or id, exit code 1.

mod common;

use std::path::{Path, PathBuf};

use common::{ferrotune, json_lines, stderr, write_tiny_sentence_model};

const WORDS: [&str; 12] =
    ["how", "do", "i", "open", "close", "an", "account", "card", "lost", "my", "reset", "password"];

const FAQ: &str = "id\tquestion\tanswer\n\
    f1\thow do i open an account\tUse the app.\n\
    f2\thow do i close my account\tCall us.\n\
    f3\ti lost my card\tBlock it in the app.\n\
    f4\thow do i reset my password\tClick forgot password.\n";

struct Setup {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    model: String,
}

impl Setup {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let model = dir.join("emb");
        write_tiny_sentence_model(&model, &WORDS, 4);
        Setup { dir, model: model.to_str().unwrap().to_string(), _tmp: tmp }
    }

    fn file(&self, name: &str, content: &str) -> String {
        let path = self.dir.join(name);
        std::fs::write(&path, content).unwrap();
        path.to_str().unwrap().to_string()
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).to_str().unwrap().to_string()
    }

    /// Runs `faq build` on `faq` into `index`, with extra arguments.
    fn build(&self, faq: &str, index: &str, extra: &[&str]) -> std::process::Output {
        let mut args = vec!["faq", "build", "--model", &self.model, "--faq", faq, "--output", index, "--threads", "1"];
        args.extend_from_slice(extra);
        ferrotune(&args, "")
    }
}

/// The run failed with exit code 1 and a message containing `want`.
fn fails_with(output: &std::process::Output, want: &str) {
    let err = stderr(output);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(err.contains(want), "expected {want:?} in: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn build_ask_and_eval() {
    let s = Setup::new();
    let faq = s.file("faq.tsv", FAQ);
    // Verbatim FAQ questions are right (cosine 1); the others are out of scope.
    let dev = s.file(
        "dev.tsv",
        "query\tfaq_id\nhow do i open an account\tf1\ni lost my card\tf3\nhow do i reset my password\tf4\n\
         my password\t\nopen my card\t\n",
    );
    let index = s.path("index");
    let run = s.build(&faq, &index, &["--dev", &dev, "--keys", "question+answer"]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(stderr(&run).contains("4 entries, 2 key(s) each"), "{}", stderr(&run));
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(Path::new(&index).join("manifest.json")).unwrap()).unwrap();
    let threshold = manifest["threshold"].as_f64().unwrap();
    assert!(manifest["calibration"]["reached"].as_bool().unwrap());
    assert!(threshold > 0.99, "{threshold}");

    let ask = ferrotune(&["faq", "ask", "--index", &index, "--threads", "1", "how do i close my account"], "");
    assert!(ask.status.success(), "{}", stderr(&ask));
    let answers = json_lines(&ask);
    assert_eq!(answers.len(), 1);
    let a = &answers[0];
    assert_eq!((a["faq_id"].as_str(), a["answer"].as_str()), (Some("f2"), Some("Call us.")));
    assert!(a["score"].as_f64().unwrap() > 0.999);
    assert_eq!(a["alternatives"].as_array().unwrap().len(), 3);
    assert!(a.get("intent").is_none());

    let questions = s.file("q.txt", "i lost my card\nopen my card\n");
    let ask = ferrotune(&["faq", "ask", "--index", &index, "--threads", "1", "--input", &questions], "");
    let answers = json_lines(&ask);
    assert_eq!(answers[0]["faq_id"], "f3");
    assert_eq!(answers[1]["handoff"], true, "{answers:?}");

    let (json, svg) = (s.path("report.json"), s.path("curve.svg"));
    let eval = ferrotune(
        &["faq", "eval", "--index", &index, "--questions", &dev, "--json", &json, "--svg", &svg, "--threads", "1"],
        "",
    );
    assert!(eval.status.success(), "{}", stderr(&eval));
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["report"]["accuracy"], 1.0);
    assert_eq!(report["report"]["out_of_scope"], 2);
    assert_eq!(report["report"]["out_of_scope_handed_over"], 1.0);
    assert_eq!(report["report"]["auroc_in_scope"], 1.0);
    assert!(std::fs::read_to_string(&svg).unwrap().contains("<polyline"));
}

#[test]
fn rebuilding_embeds_only_new_and_changed_entries() {
    let s = Setup::new();
    let index = s.path("index");
    let run = s.build(&s.file("faq.tsv", FAQ), &index, &[]);
    assert!(stderr(&run).contains("(4 keys embedded, 0 kept"), "{}", stderr(&run));
    // f2 reworded, f3 removed, f5 added: two keys to embed.
    let edited = "id\tquestion\tanswer\n\
        f1\thow do i open an account\tUse the app.\n\
        f2\thow do i close an account\tCall us.\n\
        f4\thow do i reset my password\tClick forgot password.\n\
        f5\ti lost my password\tReset it.\n";
    let edited = s.file("edited.tsv", edited);
    let run = s.build(&edited, &index, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(stderr(&run).contains("(2 keys embedded, 2 kept"), "{}", stderr(&run));
    let fresh = s.path("fresh");
    let run = s.build(&edited, &fresh, &[]);
    assert!(stderr(&run).contains("(4 keys embedded, 0 kept"), "{}", stderr(&run));
    let read = |dir: &str| ferrotune_data::npy::read_f32_matrix(&Path::new(dir).join("vectors.npy")).unwrap().data;
    let (kept, scratch) = (read(&index), read(&fresh));
    assert_eq!(kept.len(), scratch.len());
    assert!(kept.iter().zip(&scratch).all(|(a, b)| (a - b).abs() < 1e-5), "the vectors of a build from scratch");
    let run = s.build(&edited, &index, &["--rebuild"]);
    assert!(stderr(&run).contains("(4 keys embedded, 0 kept"), "{}", stderr(&run));
    // Another max-len: every key is embedded again.
    let run = s.build(&edited, &index, &["--max-len", "16"]);
    assert!(stderr(&run).contains("(4 keys embedded, 0 kept"), "{}", stderr(&run));
    // A damaged index is rebuilt whole, and says so.
    std::fs::write(Path::new(&index).join("ids.json"), "[]").unwrap();
    let run = s.build(&edited, &index, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(stderr(&run).contains("not reusing") && stderr(&run).contains("(4 keys embedded"), "{}", stderr(&run));
}

#[test]
fn an_hnsw_index_answers_as_the_exact_one() {
    let s = Setup::new();
    let faq = s.file("faq.tsv", FAQ);
    let (exact, graph) = (s.path("exact"), s.path("graph"));
    assert!(s.build(&faq, &exact, &[]).status.success());
    let run = s.build(&faq, &graph, &["--ann", "--ann-m", "8", "--ann-ef-search", "32"]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(stderr(&run).contains("HNSW graph (M 8, ef_construction 200, ef_search 32)"), "{}", stderr(&run));
    let manifest = std::fs::read_to_string(Path::new(&graph).join("manifest.json")).unwrap();
    let manifest: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    assert_eq!(manifest["ann"]["m"], 8);
    let questions = s.file("q.txt", "i lost my card\nhow do i close my account\nreset password\n");
    let ask = |index: &str| json_lines(&ferrotune(&["faq", "ask", "--index", index, "--input", &questions], ""));
    // The same entries in the same order; scores equal but for the order of summation.
    let ranked = |answers: Vec<serde_json::Value>| -> Vec<(String, f64)> {
        let pair = |a: &serde_json::Value| (a["faq_id"].as_str().unwrap().to_string(), a["score"].as_f64().unwrap());
        answers
            .iter()
            .flat_map(|a| std::iter::once(pair(a)).chain(a["alternatives"].as_array().unwrap().iter().map(pair)))
            .collect()
    };
    let (want, got) = (ranked(ask(&exact)), ranked(ask(&graph)));
    assert_eq!(want.len(), 12);
    for ((want_id, want_score), (got_id, got_score)) in want.iter().zip(&got) {
        assert!(want_id == got_id && (want_score - got_score).abs() < 1e-5, "{want:?}\n{got:?}");
    }
    let bad = s.build(&faq, &graph, &["--ann", "--ann-m", "1"]);
    fails_with(&bad, "m must be between 2 and 256");
    let no_ann =
        ferrotune(&["faq", "build", "--model", &s.model, "--faq", &faq, "--output", &graph, "--ann-m", "8"], "");
    assert_eq!(no_ann.status.code(), Some(2), "--ann-m needs --ann");
}

#[test]
fn bad_faq_files_name_file_line_and_id() {
    let s = Setup::new();
    let index = s.path("index");
    let header = "id\tquestion\tanswer\n";
    let faq = s.file("empty-id.tsv", &format!("{header}f1\thow do i open an account\ta\n\ti lost my card\tb\n"));
    fails_with(&s.build(&faq, &index, &[]), "empty-id.tsv:3: empty FAQ id");
    let faq = s.file("dup.tsv", &format!("{header}f1\tan account\ta\nf2\tmy card\tb\nf1\tmy password\tc\n"));
    fails_with(&s.build(&faq, &index, &[]), "dup.tsv:4: FAQ id 'f1' repeats the one on line 2");
    let faq = s.file("no-question.tsv", "id\tanswer\nf1\ta\n");
    fails_with(&s.build(&faq, &index, &[]), "no-question.tsv:1: header [\"id\", \"answer\"]: no 'question' column");
    let faq = s.file("empty-question.tsv", &format!("{header}f1\t \ta\n"));
    fails_with(&s.build(&faq, &index, &[]), "empty-question.tsv:2: FAQ id 'f1': empty question");
    assert!(!Path::new(&index).exists());
    let faq = s.file("faq.tsv", FAQ);
    let out_of_range = s.build(&faq, &index, &["--target-precision", "1.5"]);
    assert_eq!(out_of_range.status.code(), Some(2), "{}", stderr(&out_of_range));
}

#[test]
fn bad_questions_and_indexes_are_refused() {
    let s = Setup::new();
    let faq = s.file("faq.tsv", FAQ);
    let index = s.path("index");
    assert!(s.build(&faq, &index, &[]).status.success());
    let ask = |extra: &[&str]| {
        let mut args = vec!["faq", "ask", "--index", &index, "--threads", "1"];
        args.extend_from_slice(extra);
        ferrotune(&args, "")
    };
    fails_with(&ask(&[" "]), "the question is empty");
    let questions = s.file("q.txt", "i lost my card\n\n");
    fails_with(&ask(&["--input", &questions]), "q.txt:2: empty question");
    let unknown = s.file("unknown.tsv", "query\tfaq_id\ni lost my card\tf3\nmy card\tnope\n");
    let eval = ferrotune(&["faq", "eval", "--index", &index, "--questions", &unknown, "--threads", "1"], "");
    fails_with(&eval, "unknown.tsv:3: no FAQ entry has the id 'nope'");

    // Another embedding model (same layout, other weights).
    let other = s.path("other");
    write_tiny_sentence_model(Path::new(&other), &WORDS, 5);
    fails_with(&ask(&["--model", &other, "my card"]), "built with the embedding model");
    fails_with(&ask(&["--model", &other, "my card"]), &other);

    // A truncated vectors file, then an entries file altered in place.
    let vectors = Path::new(&index).join("vectors.npy");
    let bytes = std::fs::read(&vectors).unwrap();
    std::fs::write(&vectors, &bytes[..bytes.len() - 4]).unwrap();
    fails_with(&ask(&["my card"]), "vectors.npy: ");
    fails_with(&ask(&["my card"]), "(truncated or altered)");
    std::fs::write(&vectors, &bytes).unwrap();
    assert!(ask(&["my card"]).status.success());
    let entries = Path::new(&index).join("entries.jsonl");
    let text = std::fs::read_to_string(&entries).unwrap();
    std::fs::write(&entries, text.replace("Call us.", "Call me.")).unwrap();
    fails_with(&ask(&["my card"]), "entries.jsonl: its SHA-256 differs from the manifest's (altered)");
    std::fs::remove_file(Path::new(&index).join("manifest.json")).unwrap();
    fails_with(&ask(&["my card"]), "manifest.json");
}

/// An intent model hands over the questions whose intent the FAQ's `intent`
/// column does not cover, and its guess is in every answer.
#[test]
fn intent_model_hands_over_uncovered_intents() {
    use ferrotune_model::{Pooling, SequenceClassifier, SequenceHead};
    let s = Setup::new();
    let classifier = s.dir.join("intents");
    let labels: Vec<String> = ["account", "card"].map(String::from).to_vec();
    let head = SequenceHead::For {
        kind: ferrotune_data::SequenceKind::Classify,
        labels: &labels,
        pooling: Pooling::Cls,
        seed: 3,
    };
    let bert = s.dir.join("emb.bert");
    SequenceClassifier::load(&bert, head, &candle_core::Device::Cpu).unwrap().save_pretrained(&classifier).unwrap();
    ferrotune_text::copy_tokenizer_files(&bert, &classifier).unwrap();
    // Two indexes whose FAQ covers one intent each: every question is handed over by exactly one.
    let questions = "how do i open an account\ni lost my card\nreset my password\nclose my account\nmy card\n";
    let mut handoffs = Vec::new();
    for covered in &labels {
        let faq =
            s.file("faq.tsv", &format!("id\tquestion\tanswer\tintent\nf1\thow do i open an account\ta\t{covered}\n"));
        let index = s.path(&format!("index-{covered}"));
        let run = s.build(&faq, &index, &["--intent-model", classifier.to_str().unwrap()]);
        assert!(run.status.success(), "{}", stderr(&run));
        assert!(stderr(&run).contains(&format!("intents covered: {covered}")), "{}", stderr(&run));
        let ask = ferrotune(&["faq", "ask", "--index", &index, "--threads", "1"], questions);
        let answers = json_lines(&ask);
        assert_eq!(answers.len(), 5, "{}", stderr(&ask));
        for answer in &answers {
            let label = answer["intent"]["label"].as_str().unwrap();
            assert!(labels.iter().any(|l| l == label));
            assert_eq!(answer["handoff"], label != covered, "{answer}");
        }
        handoffs.push(answers.iter().map(|a| a["handoff"] == true).collect::<Vec<_>>());
    }
    assert!(handoffs[0].iter().zip(&handoffs[1]).all(|(a, b)| a != b));
}
