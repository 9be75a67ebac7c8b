//! Dropout driven by the training run's own seeded generator, so that the
//! same seed gives the same run (candle's dropout draws from a thread RNG).

use candle_core::{Result, Tensor};
use rand::RngCore;
use rand_chacha::ChaCha8Rng;

/// Whether a forward pass trains (dropout on, drawing from the generator) or
/// evaluates (dropout off).
pub enum Mode<'a> {
    /// Inference: dropout is the identity.
    Eval,
    /// Training: dropout masks come from this generator.
    Train(&'a mut ChaCha8Rng),
}

/// Inverted dropout: zeroes each element with probability `p` and scales the
/// others by `1 / (1 - p)`.
pub struct Dropout {
    p: f32,
}

impl Dropout {
    /// Dropout with probability `p`.
    pub fn new(p: f32) -> Self {
        Self { p }
    }

    /// The drop probability.
    pub fn p(&self) -> f32 {
        self.p
    }

    /// Applies the dropout in training mode, nothing otherwise.
    pub fn forward(&self, x: &Tensor, mode: &mut Mode) -> Result<Tensor> {
        let rng = match mode {
            Mode::Train(rng) if self.p > 0.0 => rng,
            _ => return Ok(x.clone()),
        };
        if self.p >= 1.0 {
            return x.zeros_like();
        }
        let threshold = (self.p as f64 * u32::MAX as f64) as u32;
        let keep = 1.0 / (1.0 - self.p);
        let mask: Vec<f32> = (0..x.elem_count()).map(|_| if rng.next_u32() < threshold { 0.0 } else { keep }).collect();
        x.mul(&Tensor::from_vec(mask, x.shape(), x.device())?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use rand::SeedableRng;

    #[test]
    fn same_seed_same_mask_and_expected_rate() {
        let x = Tensor::ones(10_000, candle_core::DType::F32, &Device::Cpu).unwrap();
        let d = Dropout::new(0.1);
        let run = |seed| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            d.forward(&x, &mut Mode::Train(&mut rng)).unwrap().to_vec1::<f32>().unwrap()
        };
        let a = run(7);
        assert_eq!(a, run(7));
        assert_ne!(a, run(8));
        let dropped = a.iter().filter(|v| **v == 0.0).count();
        assert!((800..1200).contains(&dropped), "{dropped}");
        let mean: f32 = a.iter().sum::<f32>() / a.len() as f32;
        assert!((mean - 1.0).abs() < 0.05);
        let eval = d.forward(&x, &mut Mode::Eval).unwrap();
        assert_eq!(eval.to_vec1::<f32>().unwrap(), vec![1.0; 10_000]);
    }
}
