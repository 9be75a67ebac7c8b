//! `ferrotune embed` end to end on a tiny random model: JSON lines and a
//! `.npy` matrix with the same rows, stdin, a plain BERT folder that needs
//! `--pooling`, pooling and normalisation from the flags, an empty input,
//! and clear errors.

mod common;

use common::{ferrotune, json_lines, stderr};
use ferrotune_model::sentence::{PoolingMode, SentenceEncoder, SentencePooling};

const WORDS: [&str; 6] = ["lost", "card", "fever", "cough", "refund", "pin"];
const TEXTS: &str = "lost card\nI have a fever and a cough\nrefund\nchange my pin please\n";

/// A tiny random BERT (`base`) and the same encoder saved as a
/// sentence-transformers folder with mean pooling and Normalize (`model`).
fn models(dir: &std::path::Path) -> (String, String) {
    let (base, model) = (dir.join("base"), dir.join("model"));
    ferrotune_model::tiny::write_tiny_bert(&base, &WORDS, 5).unwrap();
    let pooling = SentencePooling { mode: PoolingMode::Mean, normalize: true };
    SentenceEncoder::load(&base, Some(pooling), &candle_core::Device::Cpu).unwrap().save_pretrained(&model).unwrap();
    ferrotune_text::copy_tokenizer_files(&base, &model).unwrap();
    (base.to_str().unwrap().to_string(), model.to_str().unwrap().to_string())
}

fn embeddings(lines: &[serde_json::Value]) -> Vec<Vec<f32>> {
    lines.iter().map(|l| serde_json::from_value(l["embedding"].clone()).unwrap()).collect()
}

/// The f32 rows of a `.npy` file written by `embed` (header parsed by hand).
fn npy_rows(path: &std::path::Path) -> (String, Vec<Vec<f32>>) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
    let len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = String::from_utf8(bytes[10..10 + len].to_vec()).unwrap();
    let values: Vec<f32> =
        bytes[10 + len..].chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    (header.trim_end().to_string(), values.chunks(32).map(<[f32]>::to_vec).collect())
}

#[test]
fn embeddings_as_json_lines_and_npy_agree() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (base, model) = models(t);
    let input = t.join("texts.txt");
    std::fs::write(&input, TEXTS).unwrap();
    let i = input.to_str().unwrap();

    let o = ferrotune(&["embed", "--model", &model, "--input", i, "--threads", "1"], "");
    assert!(o.status.success(), "{}", stderr(&o));
    let lines = json_lines(&o);
    let texts: Vec<&str> = lines.iter().map(|l| l["text"].as_str().unwrap()).collect();
    assert_eq!(texts, TEXTS.lines().collect::<Vec<_>>());
    let rows = embeddings(&lines);
    for row in &rows {
        assert_eq!(row.len(), 32);
        assert!((row.iter().map(|x| x * x).sum::<f32>().sqrt() - 1.0).abs() < 1e-5, "normalised");
    }

    let npy = t.join("out.npy");
    let o = ferrotune(&["embed", "--model", &model, "--output", npy.to_str().unwrap(), "--batch-size", "2"], TEXTS);
    assert!(o.status.success(), "{}", stderr(&o));
    let (header, npy_rows) = npy_rows(&npy);
    assert_eq!(header, "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 32), }");
    for (a, b) in rows.iter().zip(&npy_rows) {
        assert!(a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6), "same rows, in order, whatever the batches");
    }

    // The plain folder needs --pooling; with mean and normalisation it embeds as the saved folder does.
    let o = ferrotune(&["embed", "--model", &base, "--input", i], "");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--pooling"), "{}", stderr(&o));
    let o = ferrotune(&["embed", "--model", &base, "--input", i, "--pooling", "mean", "--normalize", "true"], "");
    assert!(o.status.success(), "{}", stderr(&o));
    let plain = embeddings(&json_lines(&o));
    assert!(rows.iter().flatten().zip(plain.iter().flatten()).all(|(x, y)| (x - y).abs() < 1e-6));
    let o = ferrotune(&["embed", "--model", &model, "--input", i, "--pooling", "max", "--normalize", "false"], "");
    let max = embeddings(&json_lines(&o));
    assert!(max.iter().any(|r| (r.iter().map(|x| x * x).sum::<f32>().sqrt() - 1.0).abs() > 1e-3), "not normalised");
    assert!(max[0] != rows[0], "another pooling");
}

#[test]
fn empty_inputs_and_bad_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (_, model) = models(t);
    let npy = t.join("empty.npy");
    let o = ferrotune(&["embed", "--model", &model, "--output", npy.to_str().unwrap()], "");
    assert!(o.status.success(), "{}", stderr(&o));
    let (header, rows) = npy_rows(&npy);
    assert!(header.contains("'shape': (0, 32)") && rows.is_empty(), "{header}");
    let o = ferrotune(&["embed", "--model", &model], "");
    assert!(o.status.success() && o.stdout.is_empty());

    let pairs = t.join("pairs.jsonl");
    std::fs::write(&pairs, "{\"text\": \"lost card\"}\n{\"text_a\": \"a\", \"text_b\": \"b\"}\n").unwrap();
    let out = t.join("out.jsonl");
    let o = ferrotune(
        &["embed", "--model", &model, "--input", pairs.to_str().unwrap(), "--output", out.to_str().unwrap()],
        "",
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("pairs.jsonl:2: embed takes single texts"), "{}", stderr(&o));
    assert!(!out.exists(), "nothing written on failure");

    std::fs::write(t.join("model/1_Pooling/config.json"), "{\"pooling_mode_lasttoken\": true}").unwrap();
    let o = ferrotune(&["embed", "--model", &model], "lost card\n");
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("1_Pooling/config.json: pooling_mode_lasttoken is not supported"), "{}", stderr(&o));
    let o = ferrotune(&["embed", "--model", t.join("nowhere").to_str().unwrap(), "--pooling", "cls"], "x\n");
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("nowhere/config.json"), "{}", stderr(&o));
}
