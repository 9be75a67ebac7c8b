//! `ferrotune monitor run`: classify a stream of records with a sentiment
//! model, count them in windows per topic and alert when a topic's negative
//! share (or volume) rises beyond its own baseline.

use std::io::{BufRead, BufWriter, Write};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::{Args, Subcommand};
use ferrotune_data::TextInput;
use ferrotune_infer::Record;
use ferrotune_monitor::{
    parse_duration, parse_record, score, simulate, Alert, Classified, Detector, DetectorSettings, Polarity,
    SimulationSettings, StreamRecord, TopicRules, Truth, Window, Windows,
};

use crate::predict::InferenceArgs;
use crate::UsageError;

/// The topic every record is also counted under.
const OVERALL: &str = "*";

/// Records classified per round.
const CHUNK_LINES: usize = 1024;

#[derive(Args)]
pub struct MonitorArgs {
    #[command(subcommand)]
    command: MonitorCommand,
}

#[derive(Subcommand)]
enum MonitorCommand {
    /// Classify a stream of JSON lines {"time", "text", "topic"?, "id"?, "source"?}, count it in windows
    /// per topic and write alerts as JSON lines.
    Run(RunArgs),
    /// Build a replay stream from a labelled text file, with negative bursts at known windows.
    Simulate(SimulateArgs),
    /// Score a run's alerts against a replay's bursts: recall, delay, false alerts.
    Score(ScoreArgs),
}

#[derive(Args)]
struct SimulateArgs {
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
struct ScoreArgs {
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

#[derive(Args)]
struct RunArgs {
    /// Fine-tuned sentiment (sequence classification) model folder.
    #[arg(long)]
    model: PathBuf,
    /// The stream: a JSON-lines file, or - for stdin.
    #[arg(long)]
    input: PathBuf,
    /// The model's negative labels, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    negative: Vec<String>,
    /// The model's positive labels, comma-separated (checked against the model).
    #[arg(long, value_delimiter = ',')]
    positive: Vec<String>,
    /// Topic rules: a TOML table of topic = [keywords or /regular expressions/]. Records are also
    /// counted under their own "topic" and under the overall stream "*".
    #[arg(long)]
    topics: Option<PathBuf>,
    /// Window width: 30s, 15m, 1h, 1d.
    #[arg(long, default_value = "1h", value_parser = parse_seconds)]
    window: i64,
    /// How far behind the latest record a record may arrive and still be counted.
    #[arg(long, default_value = "0s", value_parser = parse_lateness)]
    allowed_lateness: i64,
    /// Alerts and resolutions as JSON lines to this file [default: stdout].
    #[arg(long)]
    alerts: Option<PathBuf>,
    /// Rejected records (bad JSON, time or text; too late) as JSON lines {"line", "reason", "record"}
    /// [default: stderr].
    #[arg(long)]
    rejects: Option<PathBuf>,
    /// Tail probability below which a window is anomalous.
    #[arg(long, default_value_t = DetectorSettings::default().alpha)]
    alpha: f64,
    /// Records a window needs to be tested.
    #[arg(long, default_value_t = DetectorSettings::default().min_count)]
    min_count: u64,
    /// Rise of the negative share over the baseline a window needs to alarm.
    #[arg(long, default_value_t = DetectorSettings::default().min_rise)]
    min_rise: f64,
    /// Normal windows a topic needs before it is tested.
    #[arg(long, default_value_t = DetectorSettings::default().warmup)]
    warmup: u32,
    /// Windows after which a past window weighs half in the baseline.
    #[arg(long, default_value_t = DetectorSettings::default().half_life)]
    half_life: f64,
    /// Windows after an alert before another alert of the same kind.
    #[arg(long, default_value_t = DetectorSettings::default().cooldown)]
    cooldown: u32,
    #[command(flatten)]
    inference: InferenceArgs,
}

fn parse_seconds(text: &str) -> Result<i64, String> {
    parse_duration(text).map_err(|e| e.to_string())
}

fn parse_lateness(text: &str) -> Result<i64, String> {
    if text.trim() == "0" || text.trim() == "0s" {
        return Ok(0);
    }
    parse_seconds(text)
}

pub fn run(args: MonitorArgs) -> anyhow::Result<()> {
    match args.command {
        MonitorCommand::Run(args) => run_stream(args),
        MonitorCommand::Simulate(args) => run_simulate(args),
        MonitorCommand::Score(args) => run_score(args),
    }
}

/// Where rejected records go.
struct Rejects {
    out: Box<dyn Write>,
    count: usize,
}

impl Rejects {
    fn reject(&mut self, line: usize, reason: &str, record: &[u8]) -> anyhow::Result<()> {
        let record = String::from_utf8_lossy(record);
        serde_json::to_writer(&mut self.out, &serde_json::json!({ "line": line, "reason": reason, "record": record }))?;
        self.out.write_all(b"\n")?;
        self.count += 1;
        Ok(())
    }
}

/// Counts and alerts, written as they happen.
struct Pipeline {
    windows: Windows,
    detector: Detector,
    alerts: Box<dyn Write>,
    alert_count: usize,
    final_windows: usize,
}

impl Pipeline {
    fn observe(&mut self, done: Vec<Window>) -> anyhow::Result<()> {
        for window in done {
            self.final_windows += 1;
            for alert in self.detector.observe(&window) {
                self.write(&alert)?;
            }
        }
        Ok(())
    }

    fn write(&mut self, alert: &Alert) -> anyhow::Result<()> {
        serde_json::to_writer(&mut self.alerts, alert)?;
        self.alerts.write_all(b"\n")?;
        self.alerts.flush()?;
        self.alert_count += 1;
        Ok(())
    }
}

fn open_output(path: &Option<PathBuf>, default: Box<dyn Write>) -> anyhow::Result<Box<dyn Write>> {
    Ok(match path {
        Some(path) => {
            Box::new(BufWriter::new(std::fs::File::create(path).with_context(|| format!("{}", path.display()))?))
        }
        None => default,
    })
}

fn run_stream(args: RunArgs) -> anyhow::Result<()> {
    let start = Instant::now();
    if !(args.alpha > 0.0 && args.alpha < 1.0) {
        anyhow::bail!(UsageError::invalid_option("alpha", "must be in (0, 1)"));
    }
    if !(args.half_life > 0.0 && args.half_life.is_finite()) {
        anyhow::bail!(UsageError::invalid_option("half_life", "must be a positive number"));
    }
    let topics = args.topics.as_deref().map(TopicRules::load).transpose()?;
    let model = args.inference.load(&args.model)?;
    if !matches!(model.task(), ferrotune_data::Task::Sequence(ferrotune_data::SequenceKind::Classify)) {
        anyhow::bail!(
            "{}: a sentiment (text classification) model is needed, not {}",
            args.model.display(),
            model.task()
        );
    }
    let polarity = Polarity::new(&args.negative, &args.positive, model.labels())?;
    let reader: Box<dyn BufRead> = if args.input.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        let file = std::fs::File::open(&args.input).with_context(|| format!("{}", args.input.display()))?;
        Box::new(std::io::BufReader::new(file))
    };
    let settings = DetectorSettings {
        alpha: args.alpha,
        min_count: args.min_count,
        min_rise: args.min_rise,
        warmup: args.warmup,
        half_life: args.half_life,
        cooldown: args.cooldown,
    };
    let mut pipeline = Pipeline {
        windows: Windows::new(args.window, args.allowed_lateness),
        detector: Detector::new(settings),
        alerts: open_output(&args.alerts, Box::new(BufWriter::new(std::io::stdout())))?,
        alert_count: 0,
        final_windows: 0,
    };
    let mut rejects = Rejects { out: open_output(&args.rejects, Box::new(std::io::stderr()))?, count: 0 };
    let mut lines = reader.split(b'\n').enumerate();
    let mut records = 0;
    loop {
        let mut chunk: Vec<(usize, Vec<u8>, StreamRecord)> = Vec::new();
        for (index, line) in lines.by_ref() {
            let mut line = line.with_context(|| format!("reading {}", args.input.display()))?;
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match parse_record(&line) {
                Ok(record) => chunk.push((index + 1, line, record)),
                Err(reason) => rejects.reject(index + 1, &reason, &line)?,
            }
            if chunk.len() == CHUNK_LINES {
                break;
            }
        }
        if chunk.is_empty() {
            break;
        }
        let inputs: Vec<TextInput> = chunk.iter().map(|(_, _, r)| TextInput::Text(r.text.clone())).collect();
        let outputs = model.run(&inputs)?;
        for ((line, raw, record), output) in chunk.into_iter().zip(outputs.records) {
            let Record::Classify(classified) = output else { unreachable!("a classification model gives classes") };
            let label = classified.label.as_str().map_or_else(|| classified.label.to_string(), str::to_string);
            let mut names: Vec<String> = vec![OVERALL.to_string()];
            names.extend(record.topic.clone());
            if let Some(rules) = &topics {
                names.extend(rules.topics_of(&record.text).map(str::to_string));
            }
            names.sort();
            names.dedup();
            let mut accepted = true;
            for (i, topic) in names.into_iter().enumerate() {
                let item = Classified {
                    time: record.time,
                    topic,
                    label: label.clone(),
                    negative: polarity.is_negative(&label),
                    negative_score: polarity.negative_score(&classified.scores),
                    text: record.text.clone(),
                };
                match pipeline.windows.add(item) {
                    Ok(done) => pipeline.observe(done)?,
                    // Lateness depends on the time only: the first topic decides for all.
                    Err(e) if i == 0 => {
                        rejects.reject(line, &e.to_string(), &raw)?;
                        accepted = false;
                        break;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            records += usize::from(accepted);
        }
    }
    let rest = pipeline.windows.flush();
    pipeline.observe(rest)?;
    pipeline.alerts.flush()?;
    rejects.out.flush()?;
    eprintln!(
        "{records} records classified, {} rejected; {} final windows, {} alerts and resolutions, in {:.1} s",
        rejects.count,
        pipeline.final_windows,
        pipeline.alert_count,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

fn run_simulate(args: SimulateArgs) -> anyhow::Result<()> {
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
    let (records, truth) = simulate(&negatives, &others, &settings)?;
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

fn run_score(args: ScoreArgs) -> anyhow::Result<()> {
    let read = |path: &PathBuf| std::fs::read_to_string(path).with_context(|| format!("{}", path.display()));
    let truth: Truth = serde_json::from_str(&read(&args.truth)?)
        .with_context(|| format!("{}: not a truth file", args.truth.display()))?;
    let mut alerts = Vec::new();
    for (i, line) in read(&args.alerts)?.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let alert: Alert =
            serde_json::from_str(line).with_context(|| format!("{}:{}", args.alerts.display(), i + 1))?;
        alerts.push(alert);
    }
    println!("{}", serde_json::to_string_pretty(&score(&truth, &alerts, &args.topic, args.max_delay))?);
    Ok(())
}
