//! Float buffers aligned to 64 bytes, as libtorch aligns its own allocations: MKL's `sgemm_`
//! multiplies a wide matrix that starts on a cache line faster, so the host kernel keeps its
//! parameters and gradient in these rather than in a `Vec<f32>` (16-byte aligned by malloc).

use std::ops::{Deref, DerefMut};

use anyhow::{bail, Result};

/// Floats per 64-byte block.
const BLOCK: usize = 16;

/// One cache line of floats.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(64))]
struct Block([f32; BLOCK]);

/// `len` floats owned by Rust, starting on a 64-byte boundary.
#[derive(Debug, Clone)]
pub struct AlignedFloats {
    blocks: Vec<Block>,
    len: usize,
}

impl AlignedFloats {
    /// A copy of `values`, aligned; an error (never an abort) when it cannot be allocated.
    pub fn from_slice(values: &[f32]) -> Result<Self> {
        let mut blocks = Vec::new();
        let count = values.len().div_ceil(BLOCK);
        if blocks.try_reserve_exact(count).is_err() {
            bail!("cannot allocate {} floats", values.len());
        }
        blocks.resize(count, Block([0.0; BLOCK]));
        let mut buffer = Self {
            blocks,
            len: values.len(),
        };
        buffer.copy_from_slice(values);
        Ok(buffer)
    }

    /// `len` zeros, aligned.
    pub fn zeros(len: usize) -> Result<Self> {
        Self::from_slice(&vec![0.0; len])
    }
}

impl Deref for AlignedFloats {
    type Target = [f32];

    fn deref(&self) -> &[f32] {
        // SAFETY: `Block` is `repr(C)` over `[f32; BLOCK]` with no padding (64 bytes of
        // floats, aligned to 64), so the blocks are `blocks.len() * BLOCK` initialised,
        // contiguous floats, and `len` never exceeds that; the borrow of `self` keeps them
        // alive and unaliased by any `&mut`.
        unsafe { std::slice::from_raw_parts(self.blocks.as_ptr().cast::<f32>(), self.len) }
    }
}

impl DerefMut for AlignedFloats {
    fn deref_mut(&mut self) -> &mut [f32] {
        // SAFETY: as in `deref`; the exclusive borrow of `self` makes this the only view.
        unsafe { std::slice::from_raw_parts_mut(self.blocks.as_mut_ptr().cast::<f32>(), self.len) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_its_values_on_a_cache_line() -> Result<()> {
        let values: Vec<f32> = (0..37).map(|i| i as f32).collect();
        let mut buffer = AlignedFloats::from_slice(&values)?;
        assert_eq!(&buffer[..], &values[..]);
        assert_eq!(buffer.as_ptr() as usize % 64, 0);
        buffer[36] = -1.0;
        assert_eq!(buffer.len(), 37);
        assert_eq!(buffer[36], -1.0);
        assert!(AlignedFloats::zeros(0)?.is_empty());
        Ok(())
    }
}
