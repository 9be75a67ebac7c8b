//! `ferrotune faq build|ask|eval`: a FAQ assistant that answers questions
//! from a FAQ file and knows when to hand over to a person.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use clap::{Args, Subcommand};
use ferrotune_assistant::{build, BuildOptions, FaqAssistant, FaqIndex, Keys, OpenOptions};
use ferrotune_data::{read_faq_questions, read_inputs, DataFormat, TextInput};

use crate::predict::{parse_format, InferenceArgs};

#[derive(Args)]
pub struct FaqArgs {
    #[command(subcommand)]
    command: FaqCommand,
}

#[derive(Subcommand)]
enum FaqCommand {
    /// Embed a FAQ file into an index folder; with --dev, calibrate the hand-over threshold.
    Build(BuildArgs),
    /// Answer questions from an index, one JSON line per question.
    Ask(AskArgs),
    /// Answer labelled questions: accuracy, AUROC, coverage and precision at the threshold.
    Eval(EvalArgs),
}

#[derive(Args)]
struct BuildArgs {
    /// Sentence-embedding model folder (sentence-transformers layout, or a BERT folder).
    #[arg(long)]
    model: PathBuf,
    /// FAQ file: TSV, CSV or JSONL with id, question, answer (and optionally intent) columns.
    #[arg(long)]
    faq: PathBuf,
    /// FAQ file format: tsv, csv or jsonl [default: from the extension].
    #[arg(long, value_parser = parse_format)]
    format: Option<DataFormat>,
    /// Index folder to write (replaced whole). Where it already holds an
    /// index of the same model and max-len, entries whose text is unchanged
    /// keep their vectors: only new and changed entries are embedded.
    #[arg(long)]
    output: PathBuf,
    /// Embed every entry, even those the index at --output already has.
    #[arg(long)]
    rebuild: bool,
    #[command(flatten)]
    ann: crate::ann::AnnArgs,
    /// Labelled user questions (query, and faq_id or answer; empty for out of scope) to calibrate the
    /// hand-over threshold on.
    #[arg(long)]
    dev: Option<PathBuf>,
    /// Share of answered dev questions that must be right at the threshold.
    #[arg(long, default_value_t = 0.9)]
    target_precision: f64,
    /// Fine-tuned intent classifier: questions of an intent the FAQ does not cover are handed over.
    #[arg(long)]
    intent_model: Option<PathBuf>,
    /// What is embedded of each entry: question, or question+answer (a second key).
    #[arg(long, default_value = "question", value_parser = parse_keys)]
    keys: Keys,
    #[command(flatten)]
    inference: InferenceArgs,
}

/// Options of the commands that open an index.
#[derive(Args)]
struct OpenArgs {
    /// Index folder (from `faq build`).
    #[arg(long)]
    index: PathBuf,
    /// Embedding model to query with [default: the one the index was built with; another must be the same model].
    #[arg(long)]
    model: Option<PathBuf>,
    /// Entries given besides the best one.
    #[arg(long, default_value_t = OpenOptions::default().alternatives)]
    alternatives: usize,
    #[command(flatten)]
    inference: InferenceArgs,
}

impl OpenArgs {
    fn open(&self) -> anyhow::Result<FaqAssistant> {
        let options = OpenOptions {
            model: self.model.clone(),
            settings: self.inference.settings()?,
            alternatives: self.alternatives,
        };
        Ok(FaqAssistant::open(&self.index, &options, &self.inference.init()?)?)
    }
}

#[derive(Args)]
struct AskArgs {
    /// The question [default: one per line of --input, or of standard input].
    question: Option<String>,
    /// Questions: one per line (.txt), JSONL {"text": ...}, or a .tsv/.csv file with a text column.
    #[arg(long, conflicts_with = "question")]
    input: Option<PathBuf>,
    /// Input format: text, jsonl, tsv or csv [default: from the extension; text for stdin].
    #[arg(long, value_parser = parse_format)]
    format: Option<DataFormat>,
    #[command(flatten)]
    open: OpenArgs,
}

#[derive(Args)]
struct EvalArgs {
    /// Labelled questions: query, and faq_id or answer (empty: out of scope; rows with similar = 0 are left out).
    #[arg(long)]
    questions: PathBuf,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Also draw coverage against precision (the threshold marked) to this SVG file.
    #[arg(long)]
    svg: Option<PathBuf>,
    #[command(flatten)]
    open: OpenArgs,
}

fn parse_keys(name: &str) -> Result<Keys, String> {
    Keys::from_name(name).ok_or_else(|| format!("expected one of {}", Keys::NAMES.join(", ")))
}

pub fn run(args: FaqArgs) -> anyhow::Result<()> {
    match args.command {
        FaqCommand::Build(args) => run_build(args),
        FaqCommand::Ask(args) => run_ask(args),
        FaqCommand::Eval(args) => run_eval(args),
    }
}

fn run_build(args: BuildArgs) -> anyhow::Result<()> {
    let start = Instant::now();
    let device = args.inference.init()?;
    let options = BuildOptions {
        model: args.model,
        faq: args.faq,
        format: args.format,
        keys: args.keys,
        dev: args.dev,
        target_precision: args.target_precision,
        intent_model: args.intent_model,
        settings: args.inference.settings()?,
        alternatives: OpenOptions::default().alternatives,
        ann: args.ann.settings(),
        previous: previous_index(&args.output, args.rebuild),
    };
    let built = build(&options, &device)?;
    let index = built.assistant.index();
    index.save(&args.output)?;
    eprintln!(
        "wrote {}: {} entries, {} key(s) each, {} dimensions ({} keys embedded, {} kept from the previous index), in {:.1} s",
        args.output.display(),
        index.entries.len(),
        index.keys.per_entry(),
        index.dim,
        built.embedded,
        built.reused,
        start.elapsed().as_secs_f64()
    );
    if let Some(ann) = index.vectors.ann_settings() {
        eprintln!(
            "searched through an HNSW graph (M {}, ef_construction {}, ef_search {}), built again when the index is opened",
            ann.m, ann.ef_construction, ann.ef_search
        );
    }
    if let Some(gate) = &index.intent {
        eprintln!("intents covered: {}", gate.covered.join(", "));
    }
    if let (Some(c), Some(dev)) = (&index.calibration, &built.dev) {
        if c.reached {
            eprintln!(
                "hand-over threshold {:.4}: on dev, coverage {:.4} at precision {:.4} (target {})",
                c.threshold, c.coverage, c.precision, c.target_precision
            );
        } else {
            eprintln!(
                "no threshold reaches precision {} on dev: every question is handed over (threshold {:.4})",
                c.target_precision, c.threshold
            );
        }
        eprint!("{}", dev.report.to_table());
    }
    Ok(())
}

/// The index `faq build` replaces, to take unchanged entries' vectors
/// from; one that cannot be read is rebuilt whole (said on stderr).
fn previous_index(output: &Path, rebuild: bool) -> Option<FaqIndex> {
    if rebuild || !output.exists() {
        return None;
    }
    FaqIndex::load_exact(output).inspect_err(|e| eprintln!("not reusing {}: {e}", output.display())).ok()
}

/// Questions answered per round: bounds memory on large inputs.
const CHUNK_LINES: usize = 1024;

fn run_ask(args: AskArgs) -> anyhow::Result<()> {
    let assistant = args.open.open()?;
    let mut out = BufWriter::new(std::io::stdout().lock());
    let mut write = |questions: &[String]| -> anyhow::Result<()> {
        for answer in assistant.ask(questions)? {
            serde_json::to_writer(&mut out, &answer)?;
            out.write_all(b"\n")?;
        }
        Ok(())
    };
    if let Some(question) = args.question {
        if question.trim().is_empty() {
            anyhow::bail!("the question is empty");
        }
        write(&[question])?;
        return Ok(out.flush()?);
    }
    let mut reader = read_inputs(args.input.as_deref(), args.format)?;
    let source = reader.name().display().to_string();
    loop {
        let chunk = reader.by_ref().take(CHUNK_LINES).collect::<Result<Vec<_>, _>>()?;
        if chunk.is_empty() {
            break;
        }
        let mut questions = Vec::with_capacity(chunk.len());
        for numbered in chunk {
            match numbered.input {
                TextInput::Text(text) if !text.trim().is_empty() => questions.push(text),
                TextInput::Text(_) => anyhow::bail!("{source}:{}: empty question", numbered.line),
                _ => anyhow::bail!("{source}:{}: a question is one text (\"text\")", numbered.line),
            }
        }
        write(&questions)?;
    }
    Ok(out.flush()?)
}

fn write_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    ferrotune_data::atomic::write_bytes_atomic(path, bytes).with_context(|| format!("writing {}", path.display()))
}

fn run_eval(args: EvalArgs) -> anyhow::Result<()> {
    let assistant = args.open.open()?;
    let questions = read_faq_questions(&args.questions, None)?;
    let evaluation = assistant.evaluate(&questions, &args.questions)?;
    let index = assistant.index();
    let report = &evaluation.report;
    match index.threshold {
        Some(t) => println!("hand-over threshold {t:.4} (stored in {})", args.open.index.display()),
        None => println!("no hand-over threshold (build the index with --dev): every question is answered"),
    }
    print!("{}", report.to_table());
    if let Some(path) = &args.json {
        let json = serde_json::json!({
            "index": args.open.index, "questions": args.questions, "threshold": index.threshold,
            "calibration": index.calibration, "report": report,
        });
        write_file(path, serde_json::to_string_pretty(&json)?.as_bytes())?;
    }
    if let Some(path) = &args.svg {
        let title = format!("{} on {}", args.open.index.display(), args.questions.display());
        let svg = ferrotune_eval::coverage_svg(&title, &report.curve, index.threshold);
        write_file(path, svg.as_bytes())?;
    }
    Ok(())
}
