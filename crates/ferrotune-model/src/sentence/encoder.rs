//! A BERT encoder with a sentence pooling: one vector per text, in the
//! layout of a sentence-transformers folder.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use candle_core::{Device, Result as CandleResult, Tensor};

use super::folder::{read_sentence_folder, write_sentence_folder};
use super::SentencePooling;
use crate::bert::BertEncoder;
use crate::dropout::Mode;
use crate::lora::{AdapterFolder, LoraSettings, PeftTaskType};
use crate::quant::Precision;
use crate::{Batch, BertConfig, ModelError, ParamStore};

/// Tensors a checkpoint may carry that the encoder does not use but a
/// saved folder keeps, so that it has the names of the folder it came from.
const KEPT_UNUSED: [&str; 2] = ["pooler.dense.weight", "pooler.dense.bias"];

/// A BERT encoder and the pooling that turns its token states into one
/// embedding per text (sentence-transformers' Transformer, Pooling and
/// optional Normalize modules).
pub struct SentenceEncoder {
    /// The encoder configuration, as read from `config.json`.
    pub config: BertConfig,
    /// Pooling and normalisation.
    pub pooling: SentencePooling,
    /// `max_seq_length` of the folder's `sentence_bert_config.json`, when it
    /// has one (sentence-transformers cuts longer inputs there).
    pub max_seq_length: Option<usize>,
    /// The folder the model was loaded from.
    pub source_dir: PathBuf,
    encoder: BertEncoder,
    params: ParamStore,
}

impl SentenceEncoder {
    /// Loads a model folder (or a training run's `DIR/model`) onto `device`.
    /// The pooling is `pooling` when given, otherwise the one of the
    /// sentence-transformers files (`modules.json`, `1_Pooling/config.json`);
    /// a plain BERT folder without them needs `pooling`.
    pub fn load(dir: &Path, pooling: Option<SentencePooling>, device: &Device) -> Result<Self, ModelError> {
        let dir = &crate::model_folder(dir);
        let folder = read_sentence_folder(dir)?;
        let pooling = match (pooling, folder) {
            (Some(pooling), _) => pooling,
            (None, Some(folder)) => folder.pooling,
            (None, None) => {
                return Err(ModelError::Config {
                    path: dir.join("modules.json"),
                    message: "not a sentence-transformers folder; choose a pooling (mean, cls, max, mean_sqrt_len)"
                        .into(),
                })
            }
        };
        let config = BertConfig::load(&dir.join("config.json"))?;
        let params = ParamStore::load(&dir.join("model.safetensors"), device)?;
        crate::quant::check_names(&config, &params, dir)?;
        let max_seq_length = folder.and_then(|f| f.max_seq_length);
        Self::build(config, pooling, max_seq_length, params, dir.to_path_buf(), false)
    }

    /// Loads the base folder `base` with the LoRA adapter `adapter` on it
    /// (task type `FEATURE_EXTRACTION`); the pooling is `pooling` when
    /// given, else the adapter folder's, else the base's.
    pub fn load_with_adapter(
        base: &Path,
        adapter: &AdapterFolder,
        pooling: Option<SentencePooling>,
        device: &Device,
    ) -> Result<Self, ModelError> {
        let pooling = pooling.or(read_sentence_folder(&adapter.dir)?.map(|f| f.pooling));
        let Self { mut config, pooling, max_seq_length, source_dir, mut params, .. } =
            Self::load(base, pooling, device)?;
        adapter.apply(&source_dir, &mut config, &mut params)?;
        Self::build(config, pooling, max_seq_length, params, source_dir, false)
    }

    /// Trains new LoRA adapters from now on (see
    /// [`crate::lora::add_new_adapters`]): the encoder frozen, nothing else
    /// to train.
    pub fn with_new_lora(self, settings: &LoraSettings, seed: u64) -> Result<Self, ModelError> {
        let Self { mut config, pooling, max_seq_length, source_dir, mut params, .. } = self;
        crate::lora::add_new_adapters(&mut config, &mut params, settings, seed, &[])?;
        Self::build(config, pooling, max_seq_length, params, source_dir, false)
    }

    /// The model with its adapters folded into the base weights (see
    /// [`crate::lora::merge_into`]).
    pub fn merged(self) -> Result<Self, ModelError> {
        let Self { mut config, pooling, max_seq_length, source_dir, mut params, .. } = self;
        crate::lora::merge_into(&mut config, &mut params)?;
        Self::build(config, pooling, max_seq_length, params, source_dir, true)
    }

    /// A view of the model for inference that shares its weights but records
    /// no autograd graph (see `TokenClassifier::frozen`).
    pub fn frozen(&self) -> Result<Self, ModelError> {
        let (config, params, dir) = (self.config.clone(), self.params.clone(), self.source_dir.clone());
        Self::build(config, self.pooling, self.max_seq_length, params, dir, true)
    }

    fn build(
        config: BertConfig,
        pooling: SentencePooling,
        max_seq_length: Option<usize>,
        mut params: ParamStore,
        source_dir: PathBuf,
        frozen: bool,
    ) -> Result<Self, ModelError> {
        let used = Mutex::new(BTreeSet::new());
        let built = {
            let vb = if frozen { params.frozen_var_builder(&used) } else { params.var_builder(&used) };
            BertEncoder::new(vb, &config)
        };
        let encoder = built
            .map_err(|e| ModelError::Weights { path: source_dir.join("model.safetensors"), message: e.to_string() })?;
        let mut used = used.into_inner().expect("lock");
        used.extend(KEPT_UNUSED.iter().filter(|n| params.get(n).is_some()).map(|n| n.to_string()));
        params.retain(&used);
        Ok(Self { config, pooling, max_seq_length, source_dir, encoder, params })
    }

    /// Runs the encoder's weight matrices in `precision` (for inference on
    /// the CPU; see [`BertEncoder::set_precision`]).
    pub fn with_precision(mut self, precision: Precision) -> Result<Self, ModelError> {
        crate::quant::set_precision(&mut self.encoder, &mut self.params, precision)?;
        Ok(self)
    }

    /// Trains with `precision`'s products from now on (fp32 master weights;
    /// see [`BertEncoder::set_training_precision`]).
    pub fn with_training_precision(mut self, precision: Precision) -> Result<Self, ModelError> {
        self.encoder.set_training_precision(precision)?;
        Ok(self)
    }

    /// The trainable parameters.
    pub fn params(&self) -> &ParamStore {
        &self.params
    }

    /// The number of coordinates of an embedding (the hidden size).
    pub fn dim(&self) -> usize {
        self.config.hidden_size
    }

    /// Embeddings `[batch, dim]` of a padded batch (padding excluded from the
    /// pooling by the attention mask), differentiable in training mode.
    pub fn forward(&self, batch: &Batch, mode: &mut Mode) -> CandleResult<Tensor> {
        let hidden = self.encoder.forward(&batch.input_ids, &batch.token_type_ids, &batch.attention_mask, mode)?;
        self.pooling.apply(&hidden, &batch.attention_mask)
    }

    /// Writes a sentence-transformers folder that `SentenceTransformer(dir)`
    /// loads: `config.json` (`BertModel`), `model.safetensors` (the
    /// `BertModel` tensor names, without a `bert.` prefix), `modules.json`,
    /// `1_Pooling/config.json`, `2_Normalize/` when normalising,
    /// `sentence_bert_config.json` and `config_sentence_transformers.json`,
    /// each file atomically. Tokenizer files are the caller's
    /// (`ferrotune_text::copy_tokenizer_files`).
    ///
    /// With LoRA adapters it writes the adapter folder (PEFT's layout, task
    /// type `FEATURE_EXTRACTION`) with the sentence-transformers files.
    pub fn save_pretrained(&self, dir: &Path) -> Result<(), ModelError> {
        std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
        let encoder_json = self.config.to_encoder_json();
        match &self.config.lora {
            Some(lora) => AdapterFolder::write(
                dir,
                lora,
                PeftTaskType::FeatureExtraction,
                &[],
                &self.params,
                &encoder_json,
                &self.source_dir,
            )?,
            None => {
                let path = dir.join("config.json");
                let text = serde_json::to_string_pretty(&encoder_json).expect("JSON value serialises");
                ferrotune_data::atomic::write_bytes_atomic(&path, text.as_bytes())
                    .map_err(|e| ModelError::io(&path, e))?;
                self.params.save_canonical(&dir.join("model.safetensors"))?;
            }
        }
        let max_seq_length = self.max_seq_length.unwrap_or(self.config.max_position_embeddings.min(512));
        write_sentence_folder(dir, self.pooling, self.dim(), max_seq_length)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sentence::PoolingMode;

    const WORDS: [&str; 4] = ["fever", "cough", "card", "lost"];

    fn tiny(dir: &Path) {
        crate::tiny::write_tiny_bert(dir, &WORDS, 7).unwrap();
    }

    /// Token ids of the tiny vocabulary: [CLS] = 2, [SEP] = 3, words from 5.
    fn batch(rows: &[&[u32]]) -> Batch {
        Batch::pad(rows, 0).unwrap()
    }

    fn embed(model: &SentenceEncoder, rows: &[&[u32]]) -> Vec<Vec<f32>> {
        model.forward(&batch(rows), &mut Mode::Eval).unwrap().to_vec2().unwrap()
    }

    fn max_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
        a.iter().flatten().zip(b.iter().flatten()).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
    }

    #[test]
    fn padding_changes_no_embedding_and_normalize_gives_unit_rows() {
        let dir = tempfile::tempdir().unwrap();
        tiny(dir.path());
        let (short, long): (&[u32], &[u32]) = (&[2, 5, 6, 3], &[2, 7, 8, 5, 6, 9, 3]);
        for mode in PoolingMode::ALL {
            for normalize in [false, true] {
                let pooling = SentencePooling { mode, normalize };
                let model = SentenceEncoder::load(dir.path(), Some(pooling), &Device::Cpu).unwrap().frozen().unwrap();
                let alone = embed(&model, &[short]);
                let padded = embed(&model, &[long, short]);
                assert!(max_diff(&alone, &padded[1..]) < 1e-5, "{pooling}: padding changed the embedding");
                assert_eq!(padded[0].len(), model.dim());
                let norm = padded[0].iter().map(|x| x * x).sum::<f32>().sqrt();
                assert_eq!((norm - 1.0).abs() < 1e-5, normalize, "{pooling}: norm {norm}");
            }
        }
    }

    #[test]
    fn saved_folders_load_back_with_the_same_embeddings_and_tensor_names() {
        let dir = tempfile::tempdir().unwrap();
        let (base, saved) = (dir.path().join("base"), dir.path().join("saved"));
        tiny(&base);
        let plain = SentenceEncoder::load(&base, None, &Device::Cpu).err().expect("a plain folder needs a pooling");
        assert!(plain.to_string().contains("choose a pooling"), "{plain}");
        let pooling = SentencePooling { mode: PoolingMode::Max, normalize: true };
        let model = SentenceEncoder::load(&base, Some(pooling), &Device::Cpu).unwrap();
        model.save_pretrained(&saved).unwrap();
        let back = SentenceEncoder::load(&saved, None, &Device::Cpu).unwrap();
        assert_eq!(back.pooling, pooling);
        assert_eq!(back.max_seq_length, Some(128));
        let rows: [&[u32]; 2] = [&[2, 5, 6, 7, 3], &[2, 8, 3]];
        assert_eq!(max_diff(&embed(&model, &rows), &embed(&back, &rows)), 0.0);
        let names: Vec<String> = back.params().iter().map(|(n, _)| n.clone()).collect();
        let source: Vec<String> = model.params().iter().map(|(n, _)| n.clone()).collect();
        assert_eq!(names, source);
        assert!(names.iter().any(|n| n == "pooler.dense.weight"), "the pooler is kept");
        assert!(saved.join("2_Normalize").is_dir());
        let config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(saved.join("config.json")).unwrap()).unwrap();
        assert_eq!(config["architectures"][0], "BertModel");
    }

    #[test]
    fn training_mode_gives_gradients_to_the_encoder() {
        let dir = tempfile::tempdir().unwrap();
        tiny(dir.path());
        let pooling = SentencePooling { mode: PoolingMode::Mean, normalize: true };
        let model = SentenceEncoder::load(dir.path(), Some(pooling), &Device::Cpu).unwrap();
        let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(1);
        let out = model.forward(&batch(&[&[2, 5, 6, 3], &[2, 7, 3]]), &mut Mode::Train(&mut rng)).unwrap();
        let grads = out.narrow(1, 0, 1).unwrap().sum_all().unwrap().backward().unwrap();
        let word = model.params().get("embeddings.word_embeddings.weight").unwrap();
        assert!(grads.get(word.as_tensor()).is_some());
    }
}
