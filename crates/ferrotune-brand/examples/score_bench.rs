//! Benchmark: score 10,000 scenarios x 50 indicators (the goal is
//! under 1 s), reading the scorecard from TOML and scoring it, timed
//! separately; prints a markdown table of medians over 5 runs.
//!
//! cargo run --release -p ferrotune-brand --example score_bench [SCENARIOS] [INDICATORS]

use std::fmt::Write;
use std::time::Instant;

use ferrotune_brand::score::score;
use ferrotune_brand::Scorecard;

fn scorecard_text(scenarios: usize, indicators: usize) -> String {
    let mut text = String::from("title = \"bench\"\n[terms]\nux = 0.8\ntechnology = 1.2\nmarketing = 0.6\n");
    let per_term = indicators / 4;
    let methods = [
        "{ method = \"minmax\", min = 0, max = 100 }",
        "{ method = \"zscore\" }",
        "{ method = \"log\", max = 100000 }",
        "{ method = \"target\", target = 90, threshold = 10 }",
    ];
    for (t, term) in ["brand", "ux", "technology", "marketing"].iter().enumerate() {
        let count = if t == 3 { indicators - 3 * per_term } else { per_term };
        let _ = writeln!(text, "[{term}]\nbase = 0.1\nindicators = [");
        for i in 0..count {
            let _ = writeln!(
                text,
                "  {{ name = \"{term}_{i}\", weight = {}, normalize = {} }},",
                1.0 / count as f64,
                methods[i % methods.len()]
            );
        }
        text += "]\n";
    }
    let mut state = 12345u64;
    for s in 0..scenarios {
        let _ = write!(text, "[[scenarios]]\nname = \"s{s}\"\nvalues = {{ ");
        for (t, term) in ["brand", "ux", "technology", "marketing"].iter().enumerate() {
            let count = if t == 3 { indicators - 3 * per_term } else { per_term };
            for i in 0..count {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let _ = write!(text, "{term}_{i} = {}, ", (state >> 33) % 100);
            }
        }
        text.truncate(text.len() - 2);
        text += " }\n";
    }
    text
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let (scenarios, indicators) = (args.first().copied().unwrap_or(10_000), args.get(1).copied().unwrap_or(50));
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("bench.toml");
    std::fs::write(&path, scorecard_text(scenarios, indicators)).expect("write");
    let (mut read, mut scoring) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        let t0 = Instant::now();
        let card = Scorecard::from_file(&path, false).expect("valid scorecard");
        let t1 = Instant::now();
        let report = score(&card);
        let t2 = Instant::now();
        assert_eq!(report.scenarios.len(), scenarios);
        read.push((t1 - t0).as_secs_f64());
        scoring.push((t2 - t1).as_secs_f64());
    }
    let (r, s) = (median(read), median(scoring));
    println!("| {scenarios} scenarios x {indicators} indicators | median of 5 |");
    println!("|---|---|");
    println!("| read + validate TOML | {:.3} s |", r);
    println!("| score (normalise, terms, totals, contributions, ranks) | {:.3} s |", s);
    println!("| total | {:.3} s |", r + s);
}
