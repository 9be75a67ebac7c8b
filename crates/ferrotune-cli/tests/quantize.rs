//! `ferrotune quantize` end to end on a tiny random model: int8 and bf16
//! folders that every command loads, a refused drop, and clear errors for a
//! precision that does not match the folder, a truncated weights file and a
//! `quantization_config` naming a tensor that does not exist.

mod common;

use common::{ferrotune, json_lines, stderr};

const WORDS: [&str; 10] = ["the", "patient", "has", "fever", "and", "cough", "no", "signs", "of", "asthma"];
const TRAIN: &str = "the\tO\npatient\tO\nhas\tO\nfever\tB-Disease\nand\tO\ncough\tB-Disease\n\n\
no\tO\nsigns\tO\nof\tO\nasthma\tB-Disease\n\n";

#[test]
fn quantized_folders_load_everywhere_and_bad_ones_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let base = t.join("base");
    ferrotune_model::tiny::write_tiny_bert(&base, &WORDS, 2).unwrap();
    let data = t.join("train.tsv");
    std::fs::write(&data, TRAIN.repeat(8)).unwrap();
    let (model, d) = (t.join("model"), data.to_str().unwrap());
    let b = base.to_str().unwrap();
    let m = model.to_str().unwrap();
    let o = ferrotune(
        &[
            "train",
            "--model",
            b,
            "--train",
            d,
            "--output",
            m,
            "--epochs",
            "2",
            "--lr",
            "0.005",
            "--max-len",
            "16",
            "--threads",
            "1",
        ],
        "",
    );
    assert!(o.status.success(), "{}", stderr(&o));

    for precision in ["int8", "bf16"] {
        let out = t.join(precision);
        let q = out.to_str().unwrap();
        let o = ferrotune(
            &[
                "quantize",
                "--model",
                m,
                "--output",
                q,
                "--precision",
                precision,
                "--check",
                d,
                "--max-drop",
                "100",
                "--threads",
                "1",
            ],
            "",
        );
        assert!(o.status.success(), "{}", stderr(&o));
        let config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
        assert_eq!(config["quantization_config"]["precision"], precision);
        assert_eq!(
            config["quantization_config"]["weights"].as_array().unwrap().len(),
            2 * 6 + 1,
            "6 matrices x 2 layers + embeddings"
        );
        let fp32 = std::fs::metadata(model.join("model/model.safetensors")).unwrap().len();
        assert!(std::fs::metadata(out.join("model.safetensors")).unwrap().len() < fp32);
        let e = ferrotune(&["eval", "--model", q, "--data", d, "--threads", "1"], "");
        assert!(e.status.success() && String::from_utf8_lossy(&e.stdout).contains("micro avg"), "{}", stderr(&e));
        let p = ferrotune(&["predict", "--model", q, "--threads", "1"], "the patient has fever\n");
        assert_eq!(json_lines(&p).len(), 1, "{}", stderr(&p));
        let other = if precision == "int8" { "bf16" } else { "int8" };
        let e = ferrotune(&["eval", "--model", q, "--data", d, "--precision", other], "");
        assert_eq!(e.status.code(), Some(1));
        assert!(stderr(&e).contains(&format!("config.json: the model is quantized to {precision}")), "{}", stderr(&e));
    }

    // A drop larger than allowed writes nothing.
    let refused = t.join("refused");
    let o = ferrotune(
        &["quantize", "--model", m, "--output", refused.to_str().unwrap(), "--check", d, "--max-drop", "-1"],
        "",
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(!refused.exists());

    // A truncated weights file and a config naming a tensor that is not there.
    let int8 = t.join("int8");
    let weights = std::fs::read(int8.join("model.safetensors")).unwrap();
    std::fs::write(int8.join("model.safetensors"), &weights[..weights.len() / 2]).unwrap();
    let e = ferrotune(&["eval", "--model", int8.to_str().unwrap(), "--data", d], "");
    assert_eq!(e.status.code(), Some(1));
    assert!(stderr(&e).contains("int8/model.safetensors"), "{}", stderr(&e));
    assert!(!stderr(&e).contains("panicked"));
    let bf16 = t.join("bf16");
    let config_path = bf16.join("config.json");
    let config = std::fs::read_to_string(&config_path)
        .unwrap()
        .replace("layer.1.output.dense.weight", "layer.9.output.dense.weight");
    std::fs::write(&config_path, config).unwrap();
    let e = ferrotune(&["eval", "--model", bf16.to_str().unwrap(), "--data", d], "");
    assert_eq!(e.status.code(), Some(1));
    assert!(
        stderr(&e).contains("config.json: quantization_config names 'bert.encoder.layer.9.output.dense.weight'"),
        "{}",
        stderr(&e)
    );

    // A matrix kept in fp32 loads; a kept name that is not there is refused too.
    let kept = t.join("kept");
    let k = kept.to_str().unwrap();
    let o = ferrotune(&["quantize", "--model", m, "--output", k, "--keep-fp32", "layer.1.output.dense"], "");
    assert!(o.status.success(), "{}", stderr(&o));
    let e = ferrotune(&["eval", "--model", k, "--data", d, "--threads", "1"], "");
    assert!(e.status.success(), "{}", stderr(&e));
    let config_path = kept.join("config.json");
    let config = std::fs::read_to_string(&config_path).unwrap();
    let json: serde_json::Value = serde_json::from_str(&config).unwrap();
    assert_eq!(
        json["quantization_config"]["kept_fp32"],
        serde_json::json!(["bert.encoder.layer.1.output.dense.weight"])
    );
    std::fs::write(&config_path, config.replace("layer.1.output.dense.weight", "layer.9.output.dense.weight")).unwrap();
    let e = ferrotune(&["eval", "--model", k, "--data", d], "");
    assert_eq!(e.status.code(), Some(1));
    assert!(
        stderr(&e).contains("config.json: quantization_config names 'bert.encoder.layer.9.output.dense.weight'"),
        "{}",
        stderr(&e)
    );
}
