//! `ferrotune embed`: sentence embeddings of texts, as JSON lines
//! `{"text", "embedding"}` or a float32 `.npy` matrix.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use clap::parser::ValueSource;
use clap::{ArgMatches, Args};
use ferrotune_data::npy::NpyWriter;
use ferrotune_data::{read_inputs, DataFormat, NumberedInput, TextInput};
use ferrotune_infer::{Embedder, Embeddings};
use ferrotune_model::sentence::{read_sentence_folder, PoolingMode, SentencePooling};

use crate::predict::{parse_format, InferenceArgs};
use crate::UsageError;

#[derive(Args)]
pub struct EmbedArgs {
    /// Sentence-transformers folder (pooling and normalisation from its
    /// modules), a plain BERT folder (with --pooling) or a training run's folder
    /// (with --adapter: the base).
    #[arg(long, required_unless_present = "adapter")]
    model: Option<PathBuf>,
    /// Input: one text per line (.txt), JSONL {"text": ...} / {"tokens": [...]},
    /// or a .tsv/.csv file with a header [default: stdin].
    #[arg(long)]
    input: Option<PathBuf>,
    /// Input format: text, jsonl, tsv or csv [default: from the extension; text for stdin].
    #[arg(long, value_parser = parse_format)]
    format: Option<DataFormat>,
    /// Output: JSON lines {"text", "embedding"}, or a float32 matrix (one
    /// row per text, in order) when the name ends in .npy [default: JSON
    /// lines on stdout]. Files are written atomically.
    #[arg(long)]
    output: Option<PathBuf>,
    #[command(flatten)]
    adapter: crate::predict::AdapterArg,
    #[command(flatten)]
    pooling: PoolingArgs,
    /// Maximum tokens per text, longer texts are cut [default: max_seq_length
    /// of sentence_bert_config.json, else 128]. Other options as `predict`.
    #[command(flatten)]
    inference: InferenceArgs,
}

/// How token states become one sentence embedding: the flags shared by
/// every command that embeds (`embed`, `eval --task retrieval`).
#[derive(Args)]
pub struct PoolingArgs {
    /// Pooling of the token states [default: the folder's 1_Pooling/config.json;
    /// required for a plain BERT folder].
    #[arg(long, value_enum)]
    pooling: Option<PoolingMode>,
    /// Scale each embedding to unit length: true or false [default: whether
    /// the folder has a Normalize module; false for a plain BERT folder].
    #[arg(long)]
    normalize: Option<bool>,
}

impl PoolingArgs {
    /// The embedder of `model` these flags ask for: pooling and
    /// normalisation from the flags or the folder, `--max-len` from the flag
    /// or the folder's `max_seq_length` (`matches`: the subcommand's).
    /// With `adapter`, `model` is the base it runs on and the adapter
    /// folder's sentence-transformers files come first.
    pub fn load(
        &self,
        model: &Path,
        adapter: Option<&Path>,
        inference: &InferenceArgs,
        matches: &ArgMatches,
    ) -> anyhow::Result<Embedder> {
        let dir = ferrotune_model::model_folder(model);
        let folder = match adapter.map(ferrotune_model::model_folder) {
            Some(adapter_dir) => read_sentence_folder(&adapter_dir)?.or(read_sentence_folder(&dir)?),
            None => read_sentence_folder(&dir)?,
        };
        let mode = match (self.pooling, folder) {
            (Some(mode), _) => mode,
            (None, Some(folder)) => folder.pooling.mode,
            (None, None) => {
                let message = format!("{}: not a sentence-transformers folder (no modules.json)", dir.display());
                let usage = format!("--pooling (mean, cls, max, mean_sqrt_len) is required: {message}");
                return Err(UsageError(usage).into());
            }
        };
        let normalize = self.normalize.or(folder.map(|f| f.pooling.normalize)).unwrap_or(false);
        let mut settings = inference.settings()?;
        let max_len_given = matches.value_source("max_len") == Some(ValueSource::CommandLine);
        if let Some(max_seq_length) = folder.and_then(|f| f.max_seq_length).filter(|_| !max_len_given) {
            settings.max_len = max_seq_length;
            settings.max_batch_tokens = settings.max_batch_tokens.max(max_seq_length);
        }
        let device = inference.init()?;
        let pooling = Some(SentencePooling { mode, normalize });
        let embedder = Embedder::load_adapted(&dir, adapter, pooling, settings, &device)?;
        crate::runtime::return_freed_memory();
        Ok(embedder)
    }
}

/// Texts embedded per round: bounds memory on large inputs while giving the
/// length sort enough texts to make batches of similar lengths.
const CHUNK_LINES: usize = 8192;

#[derive(serde::Serialize)]
struct Line<'a> {
    text: &'a str,
    embedding: &'a [f32],
}

/// Where embeddings go.
enum Sink<W: Write + std::io::Seek> {
    Lines(Box<dyn Write>),
    Npy(NpyWriter<W>),
}

impl<W: Write + std::io::Seek> Sink<W> {
    fn write(&mut self, texts: &[String], embeddings: &Embeddings) -> anyhow::Result<()> {
        match self {
            Sink::Lines(out) => {
                for (text, embedding) in texts.iter().zip(embeddings.rows()) {
                    serde_json::to_writer(&mut *out, &Line { text, embedding })?;
                    out.write_all(b"\n")?;
                }
            }
            Sink::Npy(out) => out.write_rows(&embeddings.data)?,
        }
        Ok(())
    }
}

/// Runs `ferrotune embed`.
pub fn run(args: EmbedArgs, matches: &ArgMatches) -> anyhow::Result<()> {
    let start = Instant::now();
    let dir = args.adapter.model_or_base(args.model.as_deref())?;
    let embedder = args.pooling.load(&dir, args.adapter.adapter.as_deref(), &args.inference, matches)?;
    let load_s = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let (count, long_inputs) = match &args.output {
        None => embed_all(&args, &embedder, Sink::<std::fs::File>::Lines(Box::new(BufWriter::new(std::io::stdout()))))?,
        Some(path) => write_file(path, |file| {
            let npy = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("npy"));
            let sink = if npy {
                Sink::Npy(NpyWriter::new(file, embedder.dim())?)
            } else {
                Sink::Lines(Box::new(BufWriter::new(file)))
            };
            embed_all(&args, &embedder, sink)
        })?,
    };
    if long_inputs > 0 {
        eprintln!("{long_inputs} texts longer than max-len {} were cut", embedder.settings().max_len);
    }
    let seconds = start.elapsed().as_secs_f64();
    eprintln!(
        "embedded {count} texts in {seconds:.2} s ({:.1}/s); model loaded in {load_s:.2} s",
        count as f64 / seconds.max(1e-9)
    );
    Ok(())
}

/// Writes `path` atomically through `write`, keeping `write`'s own error.
fn write_file<T>(path: &Path, write: impl FnOnce(std::fs::File) -> anyhow::Result<T>) -> anyhow::Result<T> {
    let (mut result, mut failure) = (None, None);
    let written = ferrotune_data::atomic::write_atomic(path, |tmp| {
        let file = std::fs::File::create(tmp)?;
        match write(file) {
            Ok(value) => result = Some(value),
            Err(e) => failure = Some(e),
        }
        match failure {
            Some(_) => Err(std::io::Error::other("not written")),
            None => Ok(()),
        }
    });
    if let Some(e) = failure {
        return Err(e);
    }
    written.with_context(|| path.display().to_string())?;
    Ok(result.expect("written"))
}

/// Reads the inputs chunk by chunk, embeds and writes them; returns the
/// number of texts and of texts that were cut.
fn embed_all<W: Write + std::io::Seek>(
    args: &EmbedArgs,
    embedder: &Embedder,
    mut sink: Sink<W>,
) -> anyhow::Result<(usize, usize)> {
    let mut reader = read_inputs(args.input.as_deref(), args.format).map_err(|e| match e {
        e @ ferrotune_data::DataError::UnsupportedFormat { .. } if args.format.is_some() => {
            anyhow::Error::from(UsageError(format!("--format: {e}")))
        }
        e => e.into(),
    })?;
    let source = reader.name().display().to_string();
    let (mut count, mut long_inputs) = (0, 0);
    loop {
        let chunk: Vec<NumberedInput> = reader.by_ref().take(CHUNK_LINES).collect::<Result<_, _>>()?;
        if chunk.is_empty() {
            break;
        }
        let texts = chunk
            .iter()
            .map(|n| match &n.input {
                TextInput::Text(text) => Ok(text.clone()),
                TextInput::Words(words) => Ok(words.join(" ")),
                TextInput::Pair(..) => Err(anyhow::anyhow!("{source}:{}: embed takes single texts, not pairs", n.line)),
            })
            .collect::<anyhow::Result<Vec<String>>>()?;
        let embeddings = embedder.embed(&texts)?;
        sink.write(&texts, &embeddings)?;
        count += texts.len();
        long_inputs += embeddings.long_inputs;
    }
    match sink {
        Sink::Lines(mut out) => out.flush()?,
        Sink::Npy(out) => drop(out.finish()?),
    }
    Ok((count, long_inputs))
}
