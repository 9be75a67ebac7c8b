//! Replays the fuzz targets' corpora (`fuzz/corpus/<target>/`, the seeds
//! and what AFL++ kept) and the inputs of crashes once found
//! (`fuzz/regressions/<target>/`) as plain tests: every input must be
//! handled without a panic. The fuzzers themselves run outside CI
//! (`scripts/fuzz.sh`).

#[path = "../../../fuzz/src/targets.rs"]
mod targets;

use std::path::Path;

#[test]
fn every_corpus_input_is_handled_without_a_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut replayed = 0;
    for (name, target) in targets::TARGETS {
        let mut inputs = 0;
        for folder in ["corpus", "regressions"] {
            let Ok(entries) = std::fs::read_dir(root.join(folder).join(name)) else { continue };
            for entry in entries {
                let path = entry.unwrap().path();
                let data = std::fs::read(&path).unwrap();
                let outcome = std::panic::catch_unwind(|| target(&data));
                assert!(outcome.is_ok(), "{name}: {} panicked", path.display());
                inputs += 1;
            }
        }
        assert!(inputs > 0, "{name}: no corpus");
        replayed += inputs;
    }
    eprintln!("replayed {replayed} inputs");
}
