//! Buffers reused within one encoder pass, or one training step.
//!
//! Every layer of an inference pass needs the same large buffers (q, k, v;
//! the attention context; the feed-forward block's; each int8 product's
//! quantized inputs, as bytes of an `f32` buffer), and a training step's
//! backward pass needs buffers of the sizes its forward pass kept.
//! Allocated afresh they are zeroed each time (memset, or page faults),
//! though every value is overwritten before it is read. Inside a
//! [`ScratchScope`] a layer takes its buffers from a pool on the calling
//! thread and gives them back when it is done; their old values stay
//! (every `f32` is initialised, only unspecified), and the pool is freed
//! when the scope ends.

use std::cell::RefCell;

thread_local! {
    static POOL: RefCell<Option<Vec<Vec<f32>>>> = const { RefCell::new(None) };
}

/// Buffers given back inside this scope are reused until it ends (a
/// trainer holds one over its steps: each step then reuses the last one's
/// buffers).
pub struct ScratchScope {
    outermost: bool,
}

impl ScratchScope {
    /// Starts a scope on this thread (nested scopes share the outermost's pool).
    pub fn enter() -> Self {
        POOL.with(|pool| {
            let mut pool = pool.borrow_mut();
            let outermost = pool.is_none();
            if outermost {
                *pool = Some(Vec::new());
            }
            Self { outermost }
        })
    }
}

impl Drop for ScratchScope {
    fn drop(&mut self) {
        if self.outermost {
            POOL.with(|pool| pool.borrow_mut().take());
        }
    }
}

/// `len` values to be overwritten: a pooled buffer (old values) inside a
/// scope, zeros outside one.
pub(crate) fn take(len: usize) -> Vec<f32> {
    let pooled = POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        let pool = pool.as_mut()?;
        // The smallest buffer already holding `len` values, else the
        // smallest with room (whose new values are then zeroed).
        let holding = (0..pool.len()).filter(|&i| pool[i].len() >= len).min_by_key(|&i| pool[i].len());
        let best = holding
            .or_else(|| (0..pool.len()).filter(|&i| pool[i].capacity() >= len).min_by_key(|&i| pool[i].capacity()))?;
        Some(pool.swap_remove(best))
    });
    match pooled {
        Some(mut buffer) => {
            buffer.resize(len, 0.0);
            buffer
        }
        None => vec![0f32; len],
    }
}

/// The most buffers a pool keeps; past it, a buffer given back is dropped
/// (a step gives back at most what it took and a few it allocated, so the
/// pool stays near one step's working set).
const MAX_POOLED: usize = 64;

/// Gives `buffer` back for the next layer (dropped outside a scope, or
/// when the pool is full).
pub(crate) fn give_back(buffer: Vec<f32>) {
    POOL.with(|pool| {
        if let Some(pool) = pool.borrow_mut().as_mut() {
            if pool.len() < MAX_POOLED && buffer.capacity() > 0 {
                pool.push(buffer);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused_inside_a_scope_only() {
        let outside = take(4);
        assert_eq!(outside, [0.0; 4]);
        give_back(outside);
        let scope = ScratchScope::enter();
        let mut a = take(8);
        a.fill(7.0);
        let ptr = a.as_ptr();
        give_back(a);
        let b = take(6);
        assert_eq!((b.as_ptr(), b.len()), (ptr, 6), "the same buffer, shortened");
        let inner = ScratchScope::enter();
        drop(inner);
        give_back(b);
        let c = take(8);
        assert_eq!(c.as_ptr(), ptr, "an inner scope does not free the pool");
        drop(c);
        drop(scope);
        POOL.with(|pool| assert!(pool.borrow().is_none()));
    }

    #[test]
    fn a_buffer_holding_the_length_is_preferred_and_the_pool_is_bounded() {
        let _scope = ScratchScope::enter();
        let mut roomy = Vec::with_capacity(64);
        roomy.resize(2, 1.0);
        give_back(roomy);
        give_back(vec![3.0; 16]);
        assert_eq!(take(8), [3.0; 8], "the buffer already holding 8 values, not the roomier one");
        for _ in 0..2 * MAX_POOLED {
            give_back(vec![0.0; 1]);
        }
        POOL.with(|pool| assert_eq!(pool.borrow().as_ref().map(Vec::len), Some(MAX_POOLED)));
    }
}
