//! Times the phases of one training step (forward, backward, optimizer) on
//! a model folder at a given batch shape, for profiling:
//!
//! cargo run --release -p ferrotune-train --example step_timing -- models/all-MiniLM-L6-v2 16 48 5

use std::time::Instant;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use candle_core::{Device, Tensor};
use ferrotune_model::{Batch, Head, Mode, TokenClassifier};
use ferrotune_train::{AdamW, AdamWConfig};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = std::path::PathBuf::from(args.get(1).map(String::as_str).unwrap_or("models/all-MiniLM-L6-v2"));
    let batch: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(16);
    let len: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(48);
    let steps: usize = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(5);
    let labels: Vec<String> = ["O", "B-Disease", "I-Disease"].map(String::from).to_vec();
    let model = TokenClassifier::from_pretrained(&dir, Head::For { labels: &labels, seed: 1 }).unwrap();
    let mut optimizer = AdamW::new(model.params(), AdamWConfig::default());
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let ids: Vec<Vec<u32>> = (0..batch).map(|_| (0..len).map(|_| rng.random_range(1000..20000)).collect()).collect();
    let refs: Vec<&[u32]> = ids.iter().map(|v| v.as_slice()).collect();
    let inputs = Batch::pad(&refs, 0).unwrap();
    let positions = Tensor::arange(0u32, (batch * len) as u32, &Device::Cpu).unwrap();
    let targets = Tensor::from_vec(vec![1u32; batch * len], batch * len, &Device::Cpu).unwrap();
    let (mut fwd, mut bwd, mut opt) = (0f64, 0f64, 0f64);
    for step in 0..steps + 1 {
        let t0 = Instant::now();
        let logits = model.forward(&inputs, &mut Mode::Train(&mut rng)).unwrap();
        let loss = model.loss(&logits, &positions, &targets).unwrap();
        let _ = loss.to_scalar::<f32>().unwrap();
        let t1 = Instant::now();
        let grads = loss.backward().unwrap();
        let t2 = Instant::now();
        let norm = optimizer.grad_norm(&grads).unwrap();
        optimizer.step(&grads, 1e-5, 1.0 / norm.max(1.0)).unwrap();
        let t3 = Instant::now();
        if step > 0 {
            fwd += (t1 - t0).as_secs_f64();
            bwd += (t2 - t1).as_secs_f64();
            opt += (t3 - t2).as_secs_f64();
        }
    }
    let n = steps as f64;
    println!(
        "batch {batch}x{len}: forward {:.3}s backward {:.3}s optimizer {:.3}s total {:.3}s per step",
        fwd / n,
        bwd / n,
        opt / n,
        (fwd + bwd + opt) / n
    );
}
