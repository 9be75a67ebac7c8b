//! Strided matrix views and the fp32 matrix product on `gemm` that the
//! fused layer and the bf16 products share.

/// A strided matrix operand: element `(i, j)` at `ptr + i * rs + j * cs`.
#[derive(Clone, Copy)]
pub(crate) struct Mat {
    ptr: *const f32,
    rs: isize,
    cs: isize,
}

// SAFETY: operands are only read, from buffers that outlive the parallel
// loops that share them.
unsafe impl Send for Mat {}
// SAFETY: as for Send: shared references only read.
unsafe impl Sync for Mat {}

impl Mat {
    /// Row-major rows of `width` elements starting at `data[offset]`, with
    /// `stride` elements from one row to the next.
    pub(crate) fn rows(data: &[f32], offset: usize, stride: usize) -> Self {
        assert!(offset <= data.len());
        Mat { ptr: data[offset..].as_ptr(), rs: stride as isize, cs: 1 }
    }

    /// Element `(i, j)` at `data[i * rs + j * cs]` (tests of odd strides).
    #[cfg(test)]
    pub(crate) fn strided(data: &[f32], rs: usize, cs: usize) -> Self {
        Mat { ptr: data.as_ptr(), rs: rs as isize, cs: cs as isize }
    }

    /// The transpose (a view).
    pub(crate) fn t(self) -> Self {
        Mat { ptr: self.ptr, rs: self.cs, cs: self.rs }
    }

    /// Distance between rows, in elements.
    pub(crate) fn row_stride(self) -> isize {
        self.rs
    }

    /// Distance between columns, in elements.
    pub(crate) fn col_stride(self) -> isize {
        self.cs
    }

    /// Pointer to element `(i, j)`.
    ///
    /// # Safety
    /// `(i, j)` must be inside the allocation the view was made from.
    pub(crate) unsafe fn at(self, i: usize, j: usize) -> *const f32 {
        // SAFETY: forwarded to the caller.
        unsafe { self.ptr.offset(i as isize * self.rs + j as isize * self.cs) }
    }
}

/// A destination pointer that the pool's threads write disjoint parts of.
#[derive(Clone, Copy)]
pub(crate) struct Out(pub(crate) *mut f32);
// SAFETY: each thread writes its own rows/columns only.
unsafe impl Send for Out {}
// SAFETY: as for Send: threads sharing it write disjoint parts.
unsafe impl Sync for Out {}

impl Out {
    /// The pointer (a method, so closures capture the whole `Send` wrapper).
    pub(crate) fn get(self) -> *mut f32 {
        self.0
    }
}

/// `dst (m x n, row stride dst_rs) [+]= a (m x k) · b (k x n)` in fp32.
///
/// # Safety
/// Every element that the shapes and strides reach must be inside the
/// allocations behind `dst`, `a` and `b`, and no other thread may write the
/// part of `dst` reached.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn matmul_f32(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    dst_rs: usize,
    accumulate: bool,
    a: Mat,
    b: Mat,
    threads: usize,
) {
    let parallelism = if threads > 1 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
    // SAFETY: forwarded to the caller.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            dst_rs as isize,
            accumulate,
            a.ptr,
            a.cs,
            a.rs,
            b.ptr,
            b.cs,
            b.rs,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// `out (m x n) = a (m x k) · bᵀ` in fp32, for row-major `a` (`m` rows of
/// `k`) and `b` (`n` rows of `k`): the dot product of every row of `a` with
/// every row of `b` (e.g. queries against a matrix of embeddings), on up to
/// `threads` threads of the global pool.
///
/// # Panics
/// When a slice's length does not match its shape.
pub fn matmul_abt(a: &[f32], b: &[f32], k: usize, out: &mut [f32], threads: usize) {
    assert!(k > 0 && a.len().is_multiple_of(k) && b.len().is_multiple_of(k), "rows of {k} values");
    let (m, n) = (a.len() / k, b.len() / k);
    assert_eq!(out.len(), m * n, "an output of m x n values");
    if m == 0 || n == 0 {
        return;
    }
    // SAFETY: `a` is m x k and `b` n x k row-major (checked above), so `bᵀ`
    // is the k x n view with row stride 1 and column stride k; `out` holds
    // m x n values with row stride n and is borrowed mutably, so no other
    // thread writes it.
    unsafe { matmul_f32(m, n, k, out.as_mut_ptr(), n, false, Mat::rows(a, 0, k), Mat::rows(b, 0, k).t(), threads) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matmul_abt_is_every_dot_product() {
        let (m, n, k) = (3, 5, 7);
        let a: Vec<f32> = (0..m * k).map(|i| ((i * 37) % 11) as f32 - 5.0).collect();
        let b: Vec<f32> = (0..n * k).map(|i| ((i * 13) % 7) as f32 * 0.5 - 1.0).collect();
        for threads in [1, 2] {
            let mut out = vec![f32::NAN; m * n];
            matmul_abt(&a, &b, k, &mut out, threads);
            for i in 0..m {
                for j in 0..n {
                    let dot: f32 = (0..k).map(|x| a[i * k + x] * b[j * k + x]).sum();
                    assert!((out[i * n + j] - dot).abs() < 1e-4, "({i}, {j})");
                }
            }
        }
        matmul_abt(&[], &b, k, &mut [], 1);
    }
}
