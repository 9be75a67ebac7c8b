//! A padded batch of token sequences as model inputs.

use candle_core::{Device, Result, Tensor};

/// Model inputs for sequences padded to the longest one.
pub struct Batch {
    /// `[batch, len]` u32 token ids.
    pub input_ids: Tensor,
    /// `[batch, len]` u32 segment ids.
    pub token_type_ids: Tensor,
    /// `[batch, len]` f32, 1 for real tokens and 0 for padding.
    pub attention_mask: Tensor,
    /// Padded length.
    pub len: usize,
}

impl Batch {
    /// Pads `sequences` (token ids, with special tokens) to the longest with
    /// `pad_id`; all segment ids are 0.
    pub fn pad(sequences: &[&[u32]], pad_id: u32) -> Result<Self> {
        Self::pad_segments(sequences, None, pad_id)
    }

    /// Like [`Self::pad`], with the segment ids of each sequence (text pairs);
    /// `type_ids[i]` has the length of `sequences[i]`.
    pub fn pad_segments(sequences: &[&[u32]], type_ids: Option<&[&[u32]]>, pad_id: u32) -> Result<Self> {
        let len = sequences.iter().map(|s| s.len()).max().unwrap_or(0);
        let n = sequences.len();
        let mut ids = vec![pad_id; n * len];
        let mut types = vec![0u32; n * len];
        let mut mask = vec![0f32; n * len];
        for (row, seq) in sequences.iter().enumerate() {
            let span = row * len..row * len + seq.len();
            ids[span.clone()].copy_from_slice(seq);
            mask[span.clone()].fill(1.0);
            if let Some(type_ids) = type_ids {
                if type_ids[row].len() != seq.len() {
                    candle_core::bail!("row {row}: {} segment ids for {} tokens", type_ids[row].len(), seq.len());
                }
                types[span].copy_from_slice(type_ids[row]);
            }
        }
        let dev = Device::Cpu;
        Ok(Self {
            input_ids: Tensor::from_vec(ids, (n, len), &dev)?,
            token_type_ids: Tensor::from_vec(types, (n, len), &dev)?,
            attention_mask: Tensor::from_vec(mask, (n, len), &dev)?,
            len,
        })
    }
}
