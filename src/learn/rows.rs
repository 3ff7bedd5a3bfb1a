//! A row-major matrix of floats read in place, with rows a fixed distance apart: how the host
//! kernel reads its inputs and how a minibatch's columns are read out of replay rows without a
//! copy.

/// A row-major matrix read in place: `rows` rows of `cols` values, `ld` apart.
#[derive(Debug, Clone, Copy)]
pub struct Rows<'a> {
    pub(crate) data: &'a [f32],
    pub(crate) rows: usize,
    pub(crate) cols: usize,
    ld: usize,
}

impl<'a> Rows<'a> {
    /// Contiguous rows of `cols` values.
    pub fn dense(data: &'a [f32], cols: usize) -> Self {
        Self {
            data,
            rows: data.len() / cols.max(1),
            cols,
            ld: cols,
        }
    }

    /// `rows` rows of `cols` values, `ld` apart, from the start of `data`.
    pub fn strided(data: &'a [f32], rows: usize, cols: usize, ld: usize) -> Self {
        Self {
            data,
            rows,
            cols,
            ld,
        }
    }

    /// The number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The number of columns.
    pub(crate) fn cols(&self) -> usize {
        self.cols
    }

    /// Element `(row, col)`.
    pub fn at(&self, row: usize, col: usize) -> f32 {
        self.data[row * self.ld + col]
    }

    /// Row `row`'s `cols` values.
    pub(crate) fn row(&self, row: usize) -> &'a [f32] {
        &self.data[row * self.ld..][..self.cols]
    }

    /// The values and the distance between rows, as BLAS reads a matrix.
    pub(crate) fn raw(&self) -> (&'a [f32], usize) {
        (self.data, self.ld)
    }
}
