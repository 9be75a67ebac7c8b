//! Sentence embeddings of texts: a sentence encoder with its tokenizer,
//! run on texts batched by length (as `predict` batches) into one
//! contiguous row-major matrix.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use candle_core::Device;
use ferrotune_model::lora::AdapterFolder;
use ferrotune_model::sentence::{SentenceEncoder, SentencePooling};
use ferrotune_model::{Batch, Mode, ModelError};
use ferrotune_text::{EncodedText, WordTokenizer};
use sha2::{Digest, Sha256};

use crate::{BatchLimits, InferError, RunSettings};

/// Embeddings of texts: row `i` is `data[i * dim..(i + 1) * dim]`, rows in
/// input order.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    /// The rows, one after the other.
    pub data: Vec<f32>,
    /// Coordinates per row.
    pub dim: usize,
    /// Texts longer than `max_len` tokens (cut).
    pub long_inputs: usize,
}

impl Embeddings {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.data.len().checked_div(self.dim).unwrap_or(0)
    }

    /// Whether there is no row.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }

    /// The rows in order.
    pub fn rows(&self) -> impl Iterator<Item = &[f32]> {
        self.data.chunks_exact(self.dim.max(1))
    }
}

/// A sentence-embedding model with its tokenizer, ready to embed texts.
pub struct Embedder {
    model: SentenceEncoder,
    tokenizer: WordTokenizer,
    settings: RunSettings,
    /// The weights files the embeddings depend on (the base's, then an
    /// adapter's).
    weights: Vec<PathBuf>,
    identity: OnceLock<String>,
}

impl Embedder {
    /// Loads a sentence-transformers folder (pooling and normalisation from
    /// its `modules.json` and `1_Pooling/config.json`) or a training run's
    /// `DIR/model` onto `device`.
    pub fn load(dir: &Path, settings: RunSettings, device: &Device) -> Result<Self, InferError> {
        Self::load_with_pooling(dir, None, settings, device)
    }

    /// [`Self::load`] with the pooling given (required for a plain BERT
    /// folder; overrides a sentence-transformers folder's own).
    pub fn load_with_pooling(
        dir: &Path,
        pooling: Option<SentencePooling>,
        settings: RunSettings,
        device: &Device,
    ) -> Result<Self, InferError> {
        Self::load_adapted(dir, None, pooling, settings, device)
    }

    /// [`Self::load_with_pooling`] of the base folder `dir` with the LoRA
    /// adapter folder `adapter` (PEFT's layout, `FEATURE_EXTRACTION`) on it,
    /// when given; the pooling is then the adapter folder's by default.
    pub fn load_adapted(
        dir: &Path,
        adapter: Option<&Path>,
        pooling: Option<SentencePooling>,
        settings: RunSettings,
        device: &Device,
    ) -> Result<Self, InferError> {
        settings.validate()?;
        let dir = &ferrotune_model::model_folder(dir);
        let config_path = dir.join("config.json");
        let precision = settings.precision_for(&config_path)?;
        let mut weights = vec![dir.join("model.safetensors")];
        let model = match adapter {
            Some(adapter) => {
                let adapter = AdapterFolder::read(&ferrotune_model::model_folder(adapter))?;
                weights.push(adapter.dir.join(ferrotune_model::lora::ADAPTER_WEIGHTS));
                SentenceEncoder::load_with_adapter(dir, &adapter, pooling, device)?
            }
            None => SentenceEncoder::load(dir, pooling, device)?,
        };
        let model = model.frozen()?.with_precision(precision)?;
        let tokenizer = WordTokenizer::load(dir)?;
        model.config.check_tokenizer_vocab(&config_path, tokenizer.vocab_size())?;
        let positions = model.config.max_position_embeddings;
        if settings.max_len > positions {
            return Err(InferError::MaxLenOverPositions { max_len: settings.max_len, positions });
        }
        Ok(Self { model, tokenizer, settings, weights, identity: OnceLock::new() })
    }

    /// Coordinates per embedding.
    pub fn dim(&self) -> usize {
        self.model.dim()
    }

    /// Pooling and normalisation.
    pub fn pooling(&self) -> SentencePooling {
        self.model.pooling
    }

    /// How the model runs.
    pub fn settings(&self) -> RunSettings {
        self.settings
    }

    /// `max_seq_length` of the folder's `sentence_bert_config.json`, if any
    /// (where sentence-transformers cuts inputs).
    pub fn max_seq_length(&self) -> Option<usize> {
        self.model.max_seq_length
    }

    /// A stable name of what the embeddings depend on: the SHA-256 of the
    /// weights files' bytes (the base's, then an adapter's), then the
    /// pooling (`sha256:<hex>:mean+normalize`). Computed on the first call
    /// (reading the weights once).
    pub fn identity(&self) -> Result<&str, InferError> {
        if let Some(identity) = self.identity.get() {
            return Ok(identity);
        }
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; 1 << 20];
        for path in &self.weights {
            let io_error = |source| ModelError::Io { path: path.clone(), source };
            let mut file = std::fs::File::open(path).map_err(io_error)?;
            loop {
                let n = file.read(&mut buffer).map_err(io_error)?;
                if n == 0 {
                    break;
                }
                hasher.update(&buffer[..n]);
            }
        }
        let hex: String = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
        Ok(self.identity.get_or_init(|| format!("sha256:{hex}:{}", self.model.pooling)))
    }

    /// The tokens each text costs a model call, special tokens included.
    pub fn token_counts(&self, texts: &[String]) -> Result<Vec<usize>, InferError> {
        Ok(self.encode(texts)?.iter().map(|e| e.input_ids.len()).collect())
    }

    fn encode(&self, texts: &[String]) -> Result<Vec<EncodedText>, InferError> {
        let max_len = self.settings.max_len;
        Ok(texts.iter().map(|t| self.tokenizer.encode_text(t, None, max_len)).collect::<Result<_, _>>()?)
    }

    /// The embeddings of `texts`, in order: texts cut at `max_len` tokens,
    /// sorted by length and run in batches within the settings' limits.
    pub fn embed(&self, texts: &[String]) -> Result<Embeddings, InferError> {
        let settings = &self.settings;
        embed_texts(&self.model, &self.tokenizer, texts, settings.max_len, settings.batch_limits())
    }
}

/// The embeddings of `texts` by `model` (in evaluation mode), in order:
/// texts cut at `max_len` tokens, sorted by length and run in batches
/// within `limits`. [`Embedder::embed`], and the trainer's dev pass with the
/// model being trained.
pub fn embed_texts(
    model: &SentenceEncoder,
    tokenizer: &WordTokenizer,
    texts: &[String],
    max_len: usize,
    limits: BatchLimits,
) -> Result<Embeddings, InferError> {
    let encoded: Vec<EncodedText> =
        texts.iter().map(|t| tokenizer.encode_text(t, None, max_len)).collect::<Result<_, _>>()?;
    let dim = model.dim();
    let long_inputs = encoded.iter().filter(|e| e.input_ids.len() >= max_len).count();
    let mut order: Vec<usize> = (0..encoded.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(encoded[i].input_ids.len()));
    let lengths: Vec<usize> = order.iter().map(|&i| encoded[i].input_ids.len()).collect();
    let mut data = vec![0f32; encoded.len() * dim];
    for range in limits.split(&lengths) {
        let chunk = &order[range];
        let ids: Vec<&[u32]> = chunk.iter().map(|&i| encoded[i].input_ids.as_slice()).collect();
        let batch = Batch::pad(&ids, tokenizer.pad_id)?;
        let rows = model.forward(&batch, &mut Mode::Eval)?.flatten_all()?.to_vec1::<f32>()?;
        for (&i, row) in chunk.iter().zip(rows.chunks_exact(dim)) {
            data[i * dim..(i + 1) * dim].copy_from_slice(row);
        }
    }
    Ok(Embeddings { data, dim, long_inputs })
}

#[cfg(test)]
mod tests {
    use ferrotune_model::sentence::PoolingMode;

    use super::*;

    fn tiny_sentence_model(dir: &Path, mode: PoolingMode) -> PathBuf {
        let (base, model) = (dir.join("base"), dir.join("model"));
        ferrotune_model::tiny::write_tiny_bert(&base, &["fever", "cough", "card", "lost"], 3).unwrap();
        let pooling = SentencePooling { mode, normalize: true };
        SentenceEncoder::load(&base, Some(pooling), &Device::Cpu).unwrap().save_pretrained(&model).unwrap();
        ferrotune_text::copy_tokenizer_files(&base, &model).unwrap();
        model
    }

    #[test]
    fn rows_come_back_in_input_order_whatever_the_batching() {
        let dir = tempfile::tempdir().unwrap();
        let model = tiny_sentence_model(dir.path(), PoolingMode::Mean);
        let texts: Vec<String> =
            ["fever", "lost card and a cough", "cough", "a fever with a lost card, a cough and more", "card"]
                .map(String::from)
                .to_vec();
        let one_by_one = RunSettings { batch_size: 1, ..RunSettings::default() };
        let alone = Embedder::load(&model, one_by_one, &Device::Cpu).unwrap().embed(&texts).unwrap();
        let tight = RunSettings { batch_size: 3, max_batch_tokens: 20, max_len: 8, ..RunSettings::default() };
        let embedder = Embedder::load(&model, RunSettings::default(), &Device::Cpu).unwrap();
        let batched = embedder.embed(&texts).unwrap();
        assert_eq!((batched.len(), batched.dim), (5, 32));
        for (a, b) in alone.rows().zip(batched.rows()) {
            assert!(a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-5));
        }
        for (i, text) in texts.iter().enumerate() {
            let single = embedder.embed(std::slice::from_ref(text)).unwrap();
            assert!(single.row(0).iter().zip(batched.row(i)).all(|(x, y)| (x - y).abs() < 1e-5), "row {i}");
        }
        let cut = Embedder::load(&model, tight, &Device::Cpu).unwrap().embed(&texts).unwrap();
        assert_eq!(cut.long_inputs, 2);
        assert!(embedder.embed(&[]).unwrap().is_empty());
    }

    #[test]
    fn identity_follows_the_weights_and_the_pooling() {
        let dir = tempfile::tempdir().unwrap();
        let model = tiny_sentence_model(dir.path(), PoolingMode::Mean);
        let load =
            |pooling| Embedder::load_with_pooling(&model, pooling, RunSettings::default(), &Device::Cpu).unwrap();
        let mean = load(None).identity().unwrap().to_string();
        assert!(mean.starts_with("sha256:") && mean.ends_with(":mean+normalize"), "{mean}");
        assert_eq!(load(None).identity().unwrap(), mean, "stable");
        let cls = load(Some(SentencePooling { mode: PoolingMode::Cls, normalize: true }));
        assert_ne!(cls.identity().unwrap(), mean);
        let other = dir.path().join("other");
        ferrotune_model::tiny::write_tiny_bert(&other, &["fever", "cough", "card", "lost"], 4).unwrap();
        std::fs::copy(other.join("model.safetensors"), model.join("model.safetensors")).unwrap();
        assert_ne!(load(None).identity().unwrap(), mean, "other weights");
    }
}
