//! numpy's legacy `RandomState` (`np.random.seed`, `uniform`), bit for bit.

use ndarray::Array2;
use rand_mt::Mt;

/// numpy's legacy generator: `np.random.seed(k)` is MT19937
/// `init_genrand(k)`.
pub struct NumpyRandom {
    mt: Mt,
}

impl NumpyRandom {
    /// `np.random.seed(seed)`.
    pub fn seed(seed: u32) -> NumpyRandom {
        NumpyRandom { mt: Mt::new(seed) }
    }

    /// `np.random.random_sample()`: 53 random bits from two 32-bit outputs,
    /// `((a >> 5)·2^26 + (b >> 6)) / 2^53`.
    pub fn random_sample(&mut self) -> f64 {
        let a = u64::from(self.mt.next_u32() >> 5);
        let b = u64::from(self.mt.next_u32() >> 6);
        (a as f64 * 67_108_864.0 + b as f64) / 9_007_199_254_740_992.0
    }

    /// `np.random.uniform(low, high, size=(rows, cols)).astype(np.float32)`:
    /// `low + (high − low)·u` in `f64`, row-major, then cast.
    pub fn uniform_f32(&mut self, low: f64, high: f64, rows: usize, cols: usize) -> Array2<f32> {
        Array2::from_shape_simple_fn((rows, cols), || {
            (low + (high - low) * self.random_sample()) as f32
        })
    }
}
