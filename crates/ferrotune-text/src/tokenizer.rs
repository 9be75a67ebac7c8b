use std::path::Path;

use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::bert::BertProcessing;
use tokenizers::utils::truncation::{truncate_encodings, TruncationParams, TruncationStrategy};
use tokenizers::{PostProcessor, Tokenizer};

use crate::{windows_for_sentence, TextError, Window};

/// The tokenizer files a model folder may hold; saving a model copies those
/// that exist.
pub const TOKENIZER_FILES: [&str; 4] =
    ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"];

/// Token ids and segment ids of one text or text pair, special tokens
/// included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedText {
    /// Token ids.
    pub input_ids: Vec<u32>,
    /// Segment ids: 0 for the first text, 1 for the second.
    pub type_ids: Vec<u32>,
}

/// A WordPiece tokenizer used on words that are already split: each word
/// becomes one or more sub-token ids.
pub struct WordTokenizer {
    tokenizer: Tokenizer,
    /// Id of `[CLS]`.
    pub cls_id: u32,
    /// Id of `[SEP]`.
    pub sep_id: u32,
    /// Id of `[PAD]`.
    pub pad_id: u32,
    /// Id of `[UNK]`, given to words that tokenize to nothing.
    pub unk_id: u32,
}

fn load_error(path: &Path, e: impl std::fmt::Display) -> TextError {
    TextError::Load { path: path.to_path_buf(), message: e.to_string() }
}

impl WordTokenizer {
    /// Loads `tokenizer.json` from a model folder, or builds a BERT tokenizer
    /// from `vocab.txt` and `tokenizer_config.json` (`do_lower_case`).
    /// Truncation and padding settings of the file are switched off: windows
    /// are made by [`crate::windows_for_sentence`].
    pub fn load(dir: &Path) -> Result<Self, TextError> {
        let json = dir.join("tokenizer.json");
        let vocab = dir.join("vocab.txt");
        let mut tokenizer = if json.is_file() {
            Tokenizer::from_file(&json).map_err(|e| load_error(&json, e))?
        } else if vocab.is_file() {
            Self::from_vocab(dir, &vocab)?
        } else {
            return Err(TextError::NoTokenizer { dir: dir.to_path_buf() });
        };
        tokenizer.with_truncation(None).map_err(|e| load_error(&json, e))?;
        tokenizer.with_padding(None);
        let id =
            |token: &str| tokenizer.token_to_id(token).ok_or_else(|| TextError::MissingSpecialToken(token.to_string()));
        Ok(Self { cls_id: id("[CLS]")?, sep_id: id("[SEP]")?, pad_id: id("[PAD]")?, unk_id: id("[UNK]")?, tokenizer })
    }

    fn from_vocab(dir: &Path, vocab: &Path) -> Result<Tokenizer, TextError> {
        let config_path = dir.join("tokenizer_config.json");
        let lowercase = if config_path.is_file() {
            let text = std::fs::read_to_string(&config_path).map_err(|e| load_error(&config_path, e))?;
            let config: serde_json::Value = serde_json::from_str(&text).map_err(|e| load_error(&config_path, e))?;
            config.get("do_lower_case").and_then(|v| v.as_bool()).unwrap_or(true)
        } else {
            true
        };
        let path = vocab.to_str().ok_or_else(|| load_error(vocab, "path is not UTF-8"))?;
        let model =
            WordPiece::from_file(path).unk_token("[UNK]".to_string()).build().map_err(|e| load_error(vocab, e))?;
        let mut tokenizer = Tokenizer::new(model);
        tokenizer
            .with_normalizer(Some(BertNormalizer::new(true, true, None, lowercase)))
            .map_err(|e| load_error(vocab, e))?;
        tokenizer.with_pre_tokenizer(Some(BertPreTokenizer));
        let special =
            |token: &str| tokenizer.token_to_id(token).ok_or_else(|| TextError::MissingSpecialToken(token.to_string()));
        let processor = BertProcessing::new(("[SEP]".into(), special("[SEP]")?), ("[CLS]".into(), special("[CLS]")?));
        tokenizer.with_post_processor(Some(processor));
        Ok(tokenizer)
    }

    /// The sub-token ids of each word. A word that yields no sub-token (e.g.
    /// only control characters) gets `[UNK]` so that it is never dropped.
    pub fn encode_words(&self, words: &[String]) -> Result<Vec<Vec<u32>>, TextError> {
        let encoding = self.tokenizer.encode(words, false).map_err(|e| TextError::Encode(e.to_string()))?;
        let mut pieces = vec![Vec::new(); words.len()];
        for (id, word) in encoding.get_ids().iter().zip(encoding.get_word_ids()) {
            if let Some(w) = word {
                pieces[*w as usize].push(*id);
            }
        }
        for p in &mut pieces {
            if p.is_empty() {
                p.push(self.unk_id);
            }
        }
        Ok(pieces)
    }

    /// Token ids and segment ids of a text or a text pair with the model's
    /// special tokens (`[CLS] a [SEP]`, `[CLS] a [SEP] b [SEP]` with segment
    /// 1 for `b`), cut to `max_len` tokens longest-first, as `transformers`
    /// does with `truncation=True`.
    pub fn encode_text(&self, a: &str, b: Option<&str>, max_len: usize) -> Result<EncodedText, TextError> {
        let encode = |text: &str| self.tokenizer.encode(text, false).map_err(|e| TextError::Encode(e.to_string()));
        let first = encode(a)?;
        let second = b.map(encode).transpose()?;
        let added = self.tokenizer.get_post_processor().map_or(0, |p| p.added_tokens(second.is_some()));
        let params = TruncationParams {
            max_length: max_len.saturating_sub(added),
            strategy: TruncationStrategy::LongestFirst,
            ..Default::default()
        };
        let (first, second) =
            truncate_encodings(first, second, &params).map_err(|e| TextError::Encode(e.to_string()))?;
        let encoding =
            self.tokenizer.post_process(first, second, true).map_err(|e| TextError::Encode(e.to_string()))?;
        Ok(EncodedText { input_ids: encoding.get_ids().to_vec(), type_ids: encoding.get_type_ids().to_vec() })
    }

    /// The model inputs of one pre-split sentence: one window if it fits in
    /// `max_len` tokens, overlapping windows otherwise.
    pub fn windows(&self, words: &[String], max_len: usize) -> Result<Vec<Window>, TextError> {
        windows_for_sentence(&self.encode_words(words)?, max_len, self.cls_id, self.sep_id)
    }

    /// The number of token ids the tokenizer can produce (added tokens included).
    pub fn vocab_size(&self) -> usize {
        self.tokenizer.get_vocab_size(true)
    }
}

/// Copies the tokenizer files that exist in `from` into `to`, each atomically.
pub fn copy_tokenizer_files(from: &Path, to: &Path) -> std::io::Result<()> {
    for name in TOKENIZER_FILES {
        let src = from.join(name);
        if src.is_file() && from.canonicalize()? != to.canonicalize()? {
            let bytes = std::fs::read(&src)?;
            ferrotune_data::atomic::write_bytes_atomic(&to.join(name), &bytes)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab_dir(lower: bool) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let vocab = "[PAD]\n[UNK]\n[CLS]\n[SEP]\nthe\ncancer\n##ous\ncan\n,\n";
        std::fs::write(dir.path().join("vocab.txt"), vocab).unwrap();
        std::fs::write(dir.path().join("tokenizer_config.json"), format!("{{\"do_lower_case\": {lower}}}")).unwrap();
        dir
    }

    #[test]
    fn vocab_fallback_splits_words_into_pieces() {
        let dir = vocab_dir(true);
        let t = WordTokenizer::load(dir.path()).unwrap();
        let words: Vec<String> = ["The", "cancerous", "\u{0}", "x,"].map(String::from).to_vec();
        let pieces = t.encode_words(&words).unwrap();
        assert_eq!(pieces, vec![vec![4], vec![5, 6], vec![1], vec![1, 8]]);
        assert_eq!((t.cls_id, t.sep_id, t.pad_id), (2, 3, 0));
    }

    #[test]
    fn pairs_get_segment_ids_and_are_cut_longest_first() {
        let dir = vocab_dir(true);
        let t = WordTokenizer::load(dir.path()).unwrap();
        let EncodedText { input_ids: ids, type_ids: types } = t.encode_text("the cancerous", Some("can"), 32).unwrap();
        assert_eq!(ids, [2, 4, 5, 6, 3, 7, 3]);
        assert_eq!(types, [0, 0, 0, 0, 0, 1, 1]);
        let EncodedText { input_ids: ids, type_ids: types } = t.encode_text("the the the the", Some("can"), 6).unwrap();
        assert_eq!(ids, [2, 4, 4, 3, 7, 3]);
        assert_eq!(types, [0, 0, 0, 0, 1, 1]);
        let ids = t.encode_text("the can", None, 32).unwrap().input_ids;
        assert_eq!(ids, [2, 4, 7, 3]);
    }

    #[test]
    fn lower_case_follows_config() {
        let dir = vocab_dir(false);
        let t = WordTokenizer::load(dir.path()).unwrap();
        let pieces = t.encode_words(&["The".to_string()]).unwrap();
        assert_eq!(pieces, vec![vec![1]]);
    }

    #[test]
    fn missing_tokenizer_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = WordTokenizer::load(dir.path()).err().unwrap();
        assert!(err.to_string().contains("no tokenizer found"));
    }
}
