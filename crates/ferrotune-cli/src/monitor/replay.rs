//! `monitor simulate` and `monitor score`: a labelled set replayed as a
//! stream with negative bursts at known windows, and a run's alerts scored
//! against them.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use ferrotune_monitor::{Alert, SimulationSettings, Truth, OVERALL};

use super::parse_seconds;

#[derive(Args)]
pub struct SimulateArgs {
    /// Labelled texts (TSV, CSV or JSONL with text and label), e.g. a test set.
    #[arg(long)]
    data: PathBuf,
    /// The labels that are negative, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    negative: Vec<String>,
    /// The stream to write (JSON lines {"time", "text", "label", "id"}).
    #[arg(long)]
    output: PathBuf,
    /// The ground truth to write (settings and bursts, JSON).
    #[arg(long)]
    truth: PathBuf,
    /// Windows in the stream.
    #[arg(long, default_value_t = 500)]
    windows: usize,
    /// Records per window.
    #[arg(long, default_value_t = 50)]
    volume: usize,
    /// Window width: 30s, 15m, 1h, 1d.
    #[arg(long, default_value = "1h", value_parser = parse_seconds)]
    window: i64,
    /// Start of the stream, Unix seconds.
    #[arg(long, default_value_t = 1_767_225_600)]
    start: i64,
    /// Negative share outside the bursts [default: the data's].
    #[arg(long)]
    base_share: Option<f64>,
    /// Bursts injected.
    #[arg(long, default_value_t = 20)]
    bursts: usize,
    /// Rise of the negative share during a burst.
    #[arg(long, default_value_t = 0.2)]
    burst_rise: f64,
    /// Windows a burst lasts.
    #[arg(long, default_value_t = 2)]
    burst_windows: usize,
    /// Seed of every draw.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

#[derive(Args)]
pub struct ScoreArgs {
    /// The truth written by `monitor simulate`.
    #[arg(long)]
    truth: PathBuf,
    /// The alerts written by `monitor run` on that stream.
    #[arg(long)]
    alerts: PathBuf,
    /// The topic whose alerts are scored.
    #[arg(long, default_value = OVERALL)]
    topic: String,
    /// Windows after a burst's start within which its alert counts.
    #[arg(long, default_value_t = 2)]
    max_delay: usize,
}

pub fn simulate(args: SimulateArgs) -> anyhow::Result<()> {
    let examples = ferrotune_data::read_texts(&args.data, true)?;
    let (mut negatives, mut others) = (Vec::new(), Vec::new());
    for example in examples {
        let label = example.label.clone().unwrap_or_default();
        let pool = if args.negative.contains(&label) { &mut negatives } else { &mut others };
        pool.push((example.text_a, label));
    }
    if negatives.is_empty() {
        let names = args.negative.join(", ");
        anyhow::bail!("{}: no text is labelled {names}", args.data.display());
    }
    let data_share = negatives.len() as f64 / (negatives.len() + others.len()) as f64;
    let settings = SimulationSettings {
        windows: args.windows,
        volume: args.volume,
        width: args.window,
        start_time: args.start,
        base_share: args.base_share.unwrap_or(data_share),
        bursts: args.bursts,
        burst_rise: args.burst_rise,
        burst_windows: args.burst_windows,
        seed: args.seed,
    };
    let (records, truth) = ferrotune_monitor::simulate(&negatives, &others, &settings)?;
    let mut stream = Vec::new();
    for record in &records {
        serde_json::to_writer(&mut stream, record)?;
        stream.push(b'\n');
    }
    let write = |path: &PathBuf, bytes: &[u8]| {
        ferrotune_data::atomic::write_bytes_atomic(path, bytes).with_context(|| format!("writing {}", path.display()))
    };
    write(&args.output, &stream)?;
    write(&args.truth, &serde_json::to_vec_pretty(&truth)?)?;
    eprintln!(
        "{} records over {} windows, negative share {:.3} outside {} bursts of {} windows at +{:.2}",
        records.len(),
        settings.windows,
        settings.base_share,
        truth.bursts.len(),
        settings.burst_windows,
        settings.burst_rise
    );
    Ok(())
}

pub fn score(args: ScoreArgs) -> anyhow::Result<()> {
    let read = |path: &PathBuf| std::fs::read_to_string(path).with_context(|| format!("{}", path.display()));
    let truth: Truth = serde_json::from_str(&read(&args.truth)?)
        .with_context(|| format!("{}: not a truth file", args.truth.display()))?;
    let mut alerts = Vec::new();
    for (i, line) in read(&args.alerts)?.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let alert: Alert =
            serde_json::from_str(line).with_context(|| format!("{}:{}", args.alerts.display(), i + 1))?;
        alerts.push(alert);
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&ferrotune_monitor::score(&truth, &alerts, &args.topic, args.max_delay))?
    );
    Ok(())
}
