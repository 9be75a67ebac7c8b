//! `monitor run`: the stream read on its own thread, classified in
//! batches, each batch stored, counted and tested in one transaction of the
//! store; alerts written once they are committed.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, ValueEnum};
use ferrotune_data::TextInput;
use ferrotune_infer::{FineTuned, Record};
use ferrotune_monitor::{
    BatchOutcome, DetectorSettings, Emitted, Labelled, Monitor, MonitorSettings, Polarity, SourceItem, Store,
    StreamFormat, StreamReader, TopicRules,
};
use serde::Serialize;

use super::parse_seconds;
use crate::predict::InferenceArgs;
use crate::UsageError;

/// How long a batch waits for more records once it has one.
const LINGER: Duration = Duration::from_millis(100);

#[derive(Clone, Copy, ValueEnum)]
enum FormatArg {
    Jsonl,
    Csv,
}

#[derive(Args)]
pub struct RunArgs {
    /// Fine-tuned sentiment (sequence classification) model folder.
    #[arg(long)]
    model: PathBuf,
    /// The stream: a file of JSON lines or CSV, or - for stdin (JSON lines). A file is read from where the
    /// store stopped.
    #[arg(long)]
    input: PathBuf,
    /// The stream's format [default: csv for a .csv file, else jsonl].
    #[arg(long, value_enum)]
    format: Option<FormatArg>,
    /// Keep reading as the file grows (like `tail -f`) until SIGINT or SIGTERM; windows stay open.
    #[arg(long)]
    follow: bool,
    /// The SQLite store: records, windows, alerts, deliveries and the stream position. A run continues
    /// where the last one on the same store stopped.
    #[arg(long, default_value = "monitor.sqlite")]
    db: PathBuf,
    /// The model's negative labels, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    negative: Vec<String>,
    /// Records classified and committed together.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u16).range(1..))]
    batch_records: u16,
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
    /// Alerts and resolutions as JSON lines appended to this file [default: stdout].
    #[arg(long)]
    alerts: Option<PathBuf>,
    /// Rejected records (bad JSON, time or text; too late) as JSON lines {"line", "reason", "record"}
    /// appended to this file [default: stderr].
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

fn parse_lateness(text: &str) -> Result<i64, String> {
    if text.trim() == "0" || text.trim() == "0s" {
        return Ok(0);
    }
    parse_seconds(text)
}

impl RunArgs {
    fn settings(&self) -> anyhow::Result<MonitorSettings> {
        if !(self.alpha > 0.0 && self.alpha < 1.0) {
            anyhow::bail!(UsageError::invalid_option("alpha", "must be in (0, 1)"));
        }
        if !(self.half_life > 0.0 && self.half_life.is_finite()) {
            anyhow::bail!(UsageError::invalid_option("half_life", "must be a positive number"));
        }
        let detector = DetectorSettings {
            alpha: self.alpha,
            min_count: self.min_count,
            min_rise: self.min_rise,
            warmup: self.warmup,
            half_life: self.half_life,
            cooldown: self.cooldown,
        };
        Ok(MonitorSettings { width: self.window, lateness: self.allowed_lateness, detector })
    }

    fn format(&self) -> StreamFormat {
        match self.format {
            Some(FormatArg::Jsonl) => StreamFormat::Jsonl,
            Some(FormatArg::Csv) => StreamFormat::Csv,
            None => StreamFormat::of(&self.input),
        }
    }
}

/// A sentiment model and which of its labels are negative.
struct Classifier {
    model: FineTuned,
    polarity: Polarity,
}

impl Classifier {
    fn load(args: &RunArgs) -> anyhow::Result<Self> {
        let model = args.inference.load(&args.model)?;
        if !matches!(model.task(), ferrotune_data::Task::Sequence(ferrotune_data::SequenceKind::Classify)) {
            anyhow::bail!(
                "{}: a sentiment (text classification) model is needed, not {}",
                args.model.display(),
                model.task()
            );
        }
        let polarity = Polarity::new(&args.negative, &args.positive, model.labels())?;
        Ok(Self { model, polarity })
    }

    /// The verdict on each item whose record parsed, in order.
    fn classify(&self, items: &[SourceItem]) -> anyhow::Result<Vec<Labelled>> {
        let inputs: Vec<TextInput> =
            items.iter().filter_map(|i| i.record.as_ref().ok()).map(|r| TextInput::Text(r.text.clone())).collect();
        let outputs = self.model.run(&inputs)?;
        let labelled = outputs.records.into_iter().map(|output| {
            let Record::Classify(classified) = output else { unreachable!("a classification model gives classes") };
            let label = classified.label.as_str().map_or_else(|| classified.label.to_string(), str::to_string);
            Labelled {
                negative: self.polarity.is_negative(&label),
                negative_score: self.polarity.negative_score(&classified.scores),
                label,
            }
        });
        Ok(labelled.collect())
    }
}

/// A sink written exactly once per item: alerts, or rejected records.
/// Items are written once committed, then marked emitted in the store; a
/// restart first writes those not yet emitted. In a file, an id already
/// there counts as emitted (and a line cut short by a kill is dropped), so
/// that a file gets each item exactly once; stdout and stderr get them at
/// least once.
struct OnceSink {
    out: Box<dyn Write>,
    file: Option<File>,
    table: Emitted,
    written: usize,
}

impl OnceSink {
    fn open(path: Option<&Path>, default: Box<dyn Write>, table: Emitted, store: &Store) -> anyhow::Result<Self> {
        let (out, file): (Box<dyn Write>, _) = match path {
            Some(path) => {
                store.mark_emitted(table, last_id(path)?)?;
                let file = File::options().create(true).append(true).open(path)?;
                (Box::new(BufWriter::new(file.try_clone()?)), Some(file))
            }
            None => (default, None),
        };
        Ok(Self { out, file, table, written: 0 })
    }

    /// Writes `items` (the last with id `last`) as JSON lines.
    fn write<T: Serialize>(&mut self, items: &[T], last: i64, store: &Store) -> anyhow::Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        for item in items {
            serde_json::to_writer(&mut self.out, item)?;
            self.out.write_all(b"\n")?;
        }
        self.out.flush()?;
        if let Some(file) = &self.file {
            file.sync_data()?;
        }
        store.mark_emitted(self.table, last)?;
        self.written += items.len();
        Ok(())
    }
}

/// The highest `id` in a JSON-lines file (0 when there is none), after
/// dropping a last line cut short.
fn last_id(path: &Path) -> anyhow::Result<i64> {
    let context = || format!("{}", path.display());
    let mut bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e).with_context(context),
    };
    let whole = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    if whole < bytes.len() {
        File::options().write(true).open(path).and_then(|f| f.set_len(whole as u64)).with_context(context)?;
        bytes.truncate(whole);
    }
    let ids = bytes.split(|&b| b == b'\n').filter_map(|line| {
        let value: serde_json::Value = serde_json::from_slice(line).ok()?;
        value.get("id")?.as_i64()
    });
    Ok(ids.max().unwrap_or(0))
}

/// Alerts and rejected records.
struct Sinks {
    alerts: OnceSink,
    rejects: OnceSink,
}

impl Sinks {
    fn open(args: &RunArgs, store: &Store) -> anyhow::Result<Self> {
        let stdout = Box::new(BufWriter::new(std::io::stdout()));
        let alerts = OnceSink::open(args.alerts.as_deref(), stdout, Emitted::Alerts, store)
            .with_context(|| format!("alerts file {}", args.alerts.as_deref().unwrap_or(Path::new("-")).display()))?;
        let rejects = OnceSink::open(args.rejects.as_deref(), Box::new(std::io::stderr()), Emitted::Rejects, store)
            .with_context(|| format!("rejects file {}", args.rejects.as_deref().unwrap_or(Path::new("-")).display()))?;
        let mut sinks = Self { alerts, rejects };
        let pending = BatchOutcome {
            alerts: store.alerts(0, Some(false), None)?,
            rejects: store.unemitted_rejects()?,
            ..Default::default()
        };
        sinks.write(&pending, store)?;
        Ok(sinks)
    }

    fn write(&mut self, outcome: &BatchOutcome, store: &Store) -> anyhow::Result<()> {
        let last_reject = outcome.rejects.last().map_or(0, |r| r.id);
        self.rejects.write(&outcome.rejects, last_reject, store)?;
        let last_alert = outcome.alerts.last().map_or(0, |a| a.id);
        self.alerts.write(&outcome.alerts, last_alert, store)
    }
}

/// A flag set by SIGINT or SIGTERM (a second one kills at once).
fn stop_on_signal() -> anyhow::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(signal, 1, stop.clone())?;
        signal_hook::flag::register(signal, stop.clone())?;
    }
    Ok(stop)
}

pub fn run(args: RunArgs) -> anyhow::Result<()> {
    let start = Instant::now();
    let settings = args.settings()?;
    let topics = args.topics.as_deref().map(TopicRules::load).transpose()?;
    let classifier = Classifier::load(&args)?;
    let mut monitor = Monitor::open(Store::open(&args.db)?, settings, topics)?;
    let mut sinks = Sinks::open(&args, monitor.store())?;
    let stop = if args.follow { Some(stop_on_signal()?) } else { None };
    let from = if args.input.as_os_str() == "-" { Default::default() } else { monitor.position() };
    let reader = StreamReader::open(&args.input, args.format(), from, stop)?;
    let (mut classified, mut total) = (0, BatchOutcome::default());
    while let Some(batch) = reader.next_batch(usize::from(args.batch_records), LINGER) {
        let labels = classifier.classify(&batch)?;
        classified += labels.len();
        let outcome = monitor.ingest(&batch, &labels)?;
        sinks.write(&outcome, monitor.store())?;
        add(&mut total, outcome);
    }
    reader.finish()?;
    if !args.follow {
        let outcome = monitor.end()?;
        sinks.write(&outcome, monitor.store())?;
        add(&mut total, outcome);
    }
    eprintln!(
        "{classified} records classified: {} stored, {} already stored; {} rejected; {} final windows, \
         {} alerts and resolutions, in {:.1} s",
        total.stored,
        total.duplicates,
        sinks.rejects.written,
        total.final_windows,
        sinks.alerts.written,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Adds a batch's counts to the run's.
fn add(total: &mut BatchOutcome, batch: BatchOutcome) {
    total.stored += batch.stored;
    total.duplicates += batch.duplicates;
    total.final_windows += batch.final_windows;
}
