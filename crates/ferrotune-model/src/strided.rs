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
