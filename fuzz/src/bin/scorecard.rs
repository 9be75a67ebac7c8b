//! AFL++ target: see `fuzz/src/targets.rs`.

#[path = "../targets.rs"]
mod targets;

fn main() {
    afl::fuzz!(|data: &[u8]| targets::scorecard(data));
}
