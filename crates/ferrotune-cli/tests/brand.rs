//! `ferrotune brand` through the binary: outputs, the HTML report, and bad
//! input answered with an error and exit code 1, never a panic.

use std::path::PathBuf;
use std::process::{Command, Output};

fn example() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/brand/medical-ai.toml").display().to_string()
}

fn brand(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferrotune")).arg("brand").args(args).output().unwrap()
}

#[test]
fn score_outputs_and_report() {
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("brand.html");
    let o = brand(&["score", &example(), "--json", "--report", html.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(json["scenarios"].as_array().unwrap().len(), 4);
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>") && page.matches("<svg").count() >= 3);
    assert!(
        !page.contains("http://")
            || page.matches("http://").count() == page.matches("xmlns=\"http://www.w3.org/2000/svg\"").count(),
        "the page loads nothing from elsewhere"
    );

    let o = brand(&["score", &example(), "--csv"]);
    let csv = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(csv.starts_with("scenario,rank,brand,ux,technology,marketing,total,contribution:positioning"));
    assert_eq!(csv.lines().count(), 5);

    let file = example();
    for args in [vec!["ahp"], vec!["sensitivity", "--draws", "500"], vec!["allocate", "--budget", "100000"]] {
        let html = dir.path().join(format!("{}.html", args[0]));
        let mut full = vec![args[0], file.as_str()];
        full.extend(&args[1..]);
        full.extend(["--report", html.to_str().unwrap()]);
        let o = brand(&full);
        assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
        assert!(std::fs::read_to_string(&html).unwrap().contains("<svg"));
    }
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    let cases: [(&str, &[&str], &str); 5] = [
        ("not toml [", &["score"], "bad.toml: line 1"),
        ("[terms]\nux = 1\n", &["score"], "missing field"),
        (
            "[ahp.x]\ncriteria = [\"a\", \"b\", \"c\"]\nmatrix = [[1, 9, \"1/9\"], [\"1/9\", 1, 9], [9, \"1/9\", 1]]\n",
            &["ahp"],
            "too inconsistent",
        ),
        ("", &["ahp"], "no [ahp.<name>] tables"),
        ("", &["allocate", "--budget=-5"], "--budget must be a positive number"),
    ];
    for (text, args, expected) in cases {
        std::fs::write(&bad, text).unwrap();
        let mut full: Vec<&str> = vec![args[0], bad.to_str().unwrap()];
        full.extend(&args[1..]);
        let o = brand(&full);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{full:?}: {err}");
        assert!(err.contains(expected), "{err:?} should contain {expected:?}");
        assert!(!err.contains("panicked"));
    }
    let o = brand(&["score", dir.path().join("missing.toml").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
}
