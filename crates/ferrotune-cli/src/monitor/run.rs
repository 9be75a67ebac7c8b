//! `monitor run`: the stream read on its own thread, classified in
//! batches, each batch stored, counted and tested in one transaction of the
//! store; alerts written once they are committed.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use ferrotune_data::TextInput;
use ferrotune_infer::{FineTuned, Record};
use ferrotune_monitor::{
    store_classified, BatchOutcome, Labelled, Monitor, Polarity, RedisStream, RedisStreamAddress, SourceItem, Store,
    StreamFormat, StreamReader,
};

use super::counting::CountingArgs;
use super::sinks::{SinkArgs, Sinks};
use super::{parse_seconds, stop_on_signal};
use crate::predict::InferenceArgs;
use crate::UsageError;

/// How long a batch waits for more records once it has one.
const LINGER: Duration = Duration::from_millis(100);

/// How long a Redis worker waits for new entries before checking for a stop.
const WORKER_BLOCK: Duration = Duration::from_millis(500);

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
    /// The stream: a file of JSON lines or CSV, - for stdin (JSON lines), or redis://HOST:PORT/STREAM (a
    /// worker of a consumer group: it classifies and stores; `monitor aggregate` counts). A file is read
    /// from where the store stopped.
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
    /// With a Redis input: the consumer group the workers share.
    #[arg(long, default_value = "ferrotune-monitor")]
    group: String,
    /// With a Redis input: this worker's name in the group [default: the host name and process id].
    #[arg(long)]
    consumer: Option<String>,
    /// With a Redis input: how long another worker's entry stays unacknowledged before this one claims it.
    #[arg(long, default_value = "30s", value_parser = parse_seconds)]
    claim_idle: i64,
    #[command(flatten)]
    counting: CountingArgs,
    #[command(flatten)]
    sinks: SinkArgs,
    #[command(flatten)]
    inference: InferenceArgs,
}

impl RunArgs {
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
        let model = args.inference.load(&args.model, None)?;
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

pub fn run(args: RunArgs) -> anyhow::Result<()> {
    let start = Instant::now();
    let settings = args.counting.settings()?;
    let topics = args.counting.topic_rules()?;
    let input = args.input.to_string_lossy();
    if RedisStreamAddress::is_redis(&input) {
        let address = RedisStreamAddress::parse(&input)?;
        return run_worker(&args, address, start);
    }
    let classifier = Classifier::load(&args)?;
    let mut monitor = Monitor::open(Store::open(&args.db)?, settings, topics)?;
    let mut sinks = Sinks::open(&args.sinks, monitor.store())?;
    let stop = if args.follow { Some(stop_on_signal()?) } else { None };
    let from = if args.input.as_os_str() == "-" { Default::default() } else { monitor.position() };
    let reader = StreamReader::open(&args.input, args.format(), from, stop)?;
    let (mut classified, mut total) = (0, BatchOutcome::default());
    while let Some(batch) = reader.next_batch(usize::from(args.batch_records), LINGER) {
        sinks.metrics.add_records_in(batch.len() as u64);
        sinks.metrics.set_queue_depth(reader.queued() + batch.len());
        let labels = classifier.classify(&batch)?;
        classified += labels.len();
        sinks.metrics.add_classified(labels.len() as u64);
        let outcome = monitor.ingest(&batch, &labels)?;
        sinks.write(&outcome, monitor.store())?;
        sinks.metrics.set_queue_depth(reader.queued());
        total.add(outcome);
    }
    reader.finish()?;
    if !args.follow {
        let outcome = monitor.end()?;
        sinks.write(&outcome, monitor.store())?;
        total.add(outcome);
    }
    let (rejected, alerts) = (sinks.rejects.written, sinks.alerts.written);
    sinks.finish(monitor.store())?;
    eprintln!(
        "{classified} records classified: {} stored, {} already stored; {} rejected; {} final windows, \
         {} alerts and resolutions, in {:.1} s",
        total.stored,
        total.duplicates,
        rejected,
        total.final_windows,
        alerts,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// A worker of a consumer group: classifies its share of the stream and
/// stores it, acknowledging entries once committed, until SIGINT or
/// SIGTERM. Counting happens in `monitor aggregate`.
fn run_worker(args: &RunArgs, address: RedisStreamAddress, start: Instant) -> anyhow::Result<()> {
    if args.sinks.alerts.is_some() || args.sinks.webhook.is_some() || args.follow {
        anyhow::bail!(UsageError::invalid_option(
            "input",
            "a Redis worker only classifies and stores: alerts come from `monitor aggregate`, and it always follows",
        ));
    }
    let classifier = Classifier::load(args)?;
    let mut store = Store::open(&args.db)?;
    let mut sinks = Sinks::open(&args.sinks, &store)?;
    let consumer = args.consumer.clone().unwrap_or_else(|| format!("{}-{}", host_name(), std::process::id()));
    let claim_idle = Duration::from_secs(args.claim_idle.unsigned_abs());
    let mut stream = RedisStream::connect(address, &args.group, &consumer, claim_idle)?;
    let stop = stop_on_signal()?;
    let (mut classified, mut total) = (0, BatchOutcome::default());
    while !stop.load(Ordering::Relaxed) {
        let entries = stream.next_batch(usize::from(args.batch_records), WORKER_BLOCK)?;
        let (ids, batch): (Vec<String>, Vec<SourceItem>) = entries.into_iter().unzip();
        sinks.metrics.add_records_in(batch.len() as u64);
        let labels = classifier.classify(&batch)?;
        classified += labels.len();
        sinks.metrics.add_classified(labels.len() as u64);
        let outcome = store_classified(&mut store, &batch, &labels)?;
        sinks.write(&outcome, &store)?;
        stream.ack(&ids)?;
        total.add(outcome);
    }
    let rejected = sinks.rejects.written;
    sinks.finish(&store)?;
    eprintln!(
        "{consumer}: {classified} records classified: {} stored, {} already stored; {} rejected, in {:.1} s",
        total.stored,
        total.duplicates,
        rejected,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map_or_else(|_| "worker".into(), |h| h.trim().to_string())
}
