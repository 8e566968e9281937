//! Calibration observers: real data in, quantization parameters out.
//!
//! An observer watches calibration batches (a layer's activations, or its
//! weights; `f32`, or any [`Real`] type converted to `f32` first) and
//! summarises them into a real range `[min, max]`; a
//! [`Scheme`] then turns that range into [`QuantParams`] for a target
//! [`QuantRange`], exactly as [`Scheme::params`] does for a range given by
//! hand.
//!
//! | observer                        | keeps                          | range            |
//! |---------------------------------|--------------------------------|------------------|
//! | [`MinMaxObserver`]              | running min and max            | (30)             |
//! | [`MovingAverageMinMaxObserver`] | averaged batch min and max     | (31)             |
//! | [`PerChannelMinMaxObserver`]    | one min and max per channel    | (32)             |
//! | [`HistogramObserver`]           | a histogram (2048 bins)        | (33)–(36)        |
//! | [`PercentileObserver`]          | the same histogram             | (33), (34), (37) |
//!
//! # The arithmetic
//!
//! Over the finite values `x_i` of batch `t`:
//!
//! ```text
//! (30) min_t = min(min_{t−1}, min_i x_i)        max_t = max(max_{t−1}, max_i x_i)
//! (31) min_1 = min_i x_i                        min_t = (1 − c)·min_{t−1} + c·min_i x_i
//!      (the same for max; c = 0.01 by default, PyTorch's averaging constant;
//!      PyTorch writes min_{t−1} + c·(min_i x_i − min_{t−1}), equal in exact
//!      arithmetic, but in floating point that form can cancel to min > max)
//! (32) min[j] = min_i W[i, j]                   max[j] = max_i W[i, j]
//!      (channel j = output column of W: p×n; across batches (30), or (31) per channel)
//! ```
//!
//! The histogram observers keep `B` bins over the exact observed `[lo, hi]`.
//! When a batch extends `[lo, hi]` to `[lo', hi']`, the old counts are
//! spread over the new bins in proportion to overlap, as if the values were
//! uniform within each old bin (the new bins are never narrower than the old
//! ones, so an old bin feeds at most two new bins; counts become fractional,
//! their sum stays the number of values). Constant data (`w = 0`) sits in
//! bin 0 and moves whole to the new bin of `lo`:
//!
//! ```text
//! (33) w = (hi − lo)/B                          bin(x) = min(floor((x − lo)/w), B − 1)
//! (34) n'[j] = Σ_i n[i] · |[lo + i·w, lo + (i+1)·w) ∩ [lo' + j·w', lo' + (j+1)·w')| / w
//! ```
//!
//! [`HistogramObserver`] chooses the clipping range that minimises the
//! expected squared error of quantizing the histogram: values outside
//! `[lo_a, hi_b]` are clipped to its ends, values inside are rounded to a
//! step `s`, whose error is uniform with variance `s²/12`. With `m_i` the
//! centre of bin `i`, `N` the number of levels minus one (`qmax − qmin`),
//! and candidate ends on bin edges, `lo_a = lo + a·w`, `hi_b = lo + (b+1)·w`:
//!
//! ```text
//! (35) E(a, b) = Σ_{i<a} n_i·((m_i − lo_a)² + w²/12)      clipped below
//!              + Σ_{i>b} n_i·((m_i − hi_b)² + w²/12)      clipped above
//!              + (Σ_{a≤i≤b} n_i) · s²/12                  rounded, s = (hi_b − lo_a)/N
//! (36) [min', max'] = [lo_a, hi_b] at (a, b) = argmin_{0 ≤ a ≤ b < B} E(a, b)
//! ```
//!
//! [`PercentileObserver`] clips to percentiles instead, reading the
//! cumulative distribution off the same histogram with the values of a bin
//! spread uniformly over it:
//!
//! ```text
//! (37) F(x) = (Σ_{i<k} n_i + n_k·(x − lo − k·w)/w) / Σ_i n_i   (x in bin k)
//!      min' = F⁻¹(p_lo/100)                     max' = F⁻¹(p_hi/100)
//! ```
//!
//! # Edge cases, the same for every observer
//!
//! - **Non-finite values** (NaN, ±∞) are ignored and counted
//!   ([`Observer::skipped`]); they never reach a min, a max or a histogram.
//!   A batch of nothing but NaN is a no-op apart from that count.
//! - **An empty batch** is a no-op.
//! - **Nothing observed yet** (no finite value so far): [`Observer::range`]
//!   and [`Observer::params`] return [`QuantError::NothingObserved`].
//! - **Constant data** gives `min == max`. Every [`Scheme`] widens it to
//!   include 0, so the constant is an end of the range and quantizes
//!   exactly; all zeros give scale 1 and zero point 0.
//! - **One-sided data** (all positive or all negative) is reported as is;
//!   [`Scheme::Affine`] then widens the range to include 0, so the zero
//!   point lands on `qmin` or `qmax` and real 0 stays exact.
//!
//! # The trait
//!
//! [`Observer`] is object safe: its required method takes a slice
//! ([`Observer::observe_slice`]), so observers of different kinds can live
//! in one `Vec<Box<dyn Observer>>`. The generic [`Observer::observe`] takes
//! any `ndarray` array of any dimension and layout; it is available on
//! concrete observer types (it needs `Self: Sized`). Every observer treats a
//! call as one batch and ignores the order of values within it. The
//! per-channel observer needs the 2-D shape, so it has its own trait,
//! [`ChannelObserver`], built the same way: an object-safe `f32` method
//! ([`ChannelObserver::observe_channels`]) and a generic one
//! ([`ChannelObserver::observe`]).
//!
//! ```
//! use ndarray::array;
//! use qlinear::{HistogramObserver, MinMaxObserver, Observer, QuantRange, Scheme};
//!
//! let mut observers: Vec<Box<dyn Observer>> =
//!     vec![Box::new(MinMaxObserver::new()), Box::new(HistogramObserver::new())];
//! for batch in [array![0.5f32, -1.0, 2.0], array![1.5f32, f32::NAN, -0.25]] {
//!     for o in observers.iter_mut() {
//!         o.observe_slice(batch.as_slice().unwrap());
//!     }
//! }
//! for o in &observers {
//!     let p = o.params(Scheme::Affine, QuantRange::INT8)?;
//!     assert!(p.scale > 0.0);
//!     assert_eq!((o.count(), o.skipped()), (5, 1));
//! }
//! # Ok::<(), qlinear::QuantError>(())
//! ```

use ndarray::{ArrayBase, ArrayView2, Data, Dimension, Ix2};

use crate::alloc::try_map;
use crate::error::QuantError;
use crate::params::{QuantParams, QuantRange, Scheme};
use crate::real::{as_f32_slice, as_f32_view, Real};

mod histogram;
mod histogram_observer;
mod minmax;
mod moving_average;
mod per_channel;
mod percentile;

pub use histogram::Histogram;
pub use histogram_observer::HistogramObserver;
pub use minmax::MinMaxObserver;
pub use moving_average::MovingAverageMinMaxObserver;
pub use per_channel::PerChannelMinMaxObserver;
pub use percentile::PercentileObserver;

/// Something that watches calibration data and derives a real range, and
/// from it quantization parameters, for one tensor.
pub trait Observer {
    /// Records one batch of values. Non-finite values are skipped and
    /// counted; an empty batch is a no-op.
    fn observe_slice(&mut self, values: &[f32]);

    /// Records one batch given as an array of any dimension and layout, as
    /// one call to [`Observer::observe_slice`] (a non-contiguous array is
    /// copied into a temporary buffer first). Any [`Real`] values: each is
    /// converted to `f32` first (into a temporary buffer, unless `x` is
    /// `f32` and contiguous).
    ///
    /// # Panics
    ///
    /// If a copy is needed and cannot be allocated (a broadcast view of
    /// 2^62 elements would need 2^64 bytes): a batch whose copy fits in
    /// memory never panics.
    ///
    /// ```
    /// use ndarray::{array, s};
    /// use qlinear::{MinMaxObserver, Observer};
    ///
    /// let x = array![[1.0f32, -2.0, 3.0], [4.0, 5.0, -6.0]];
    /// let mut o = MinMaxObserver::new();
    /// o.observe(&x.slice(s![.., ..2]));
    /// assert_eq!(o.range()?, (-2.0, 5.0));
    /// # Ok::<(), qlinear::QuantError>(())
    /// ```
    fn observe<S, D>(&mut self, x: &ArrayBase<S, D>)
    where
        S: Data,
        S::Elem: Real,
        D: Dimension,
        Self: Sized,
    {
        let contiguous = x.as_slice_memory_order();
        if let Some(values) = contiguous.and_then(as_f32_slice) {
            return self.observe_slice(values);
        }
        let mut values = Vec::new();
        if values.try_reserve_exact(x.len()).is_err() {
            panic!(
                "Observer::observe: a copy of {} values as f32 cannot be allocated; \
                 observe it in parts",
                x.len()
            );
        }
        // In memory order where there is one, as the f32 slice would be.
        match contiguous {
            Some(all) => values.extend(all.iter().map(|&v| v.to_f32_nearest())),
            None => values.extend(x.iter().map(|&v| v.to_f32_nearest())),
        }
        self.observe_slice(&values);
    }

    /// The real range `[min, max]` the observer settles on, for an 8-bit
    /// target where the choice depends on the number of levels.
    /// [`QuantError::NothingObserved`] before any finite value was seen.
    fn range(&self) -> Result<(f64, f64), QuantError>;

    /// Parameters for the observed data under `scheme`, onto `target`:
    /// [`Scheme::params`] of [`Observer::range`] unless the observer knows
    /// better (the histogram observer searches its range for `target`'s
    /// number of levels).
    fn params(&self, scheme: Scheme, target: QuantRange) -> Result<QuantParams, QuantError> {
        let (min, max) = self.range()?;
        scheme.params(min, max, target)
    }

    /// Number of finite values observed so far.
    fn count(&self) -> u64;

    /// Number of non-finite values (NaN, ±∞) skipped so far.
    fn skipped(&self) -> u64;
}

/// An [`Observer`] of one range per channel (per output feature of a
/// weight matrix): the same questions, one answer per channel.
///
/// ```
/// use ndarray::array;
/// use qlinear::{ChannelObserver, PerChannelMinMaxObserver, QuantRange, Scheme};
///
/// fn weight_params(o: &mut impl ChannelObserver) -> Result<Vec<f64>, qlinear::QuantError> {
///     o.observe_channels(array![[0.5f32, -4.0], [-0.25, 2.0]].view())?;
///     Ok(o.params(Scheme::Symmetric, QuantRange::INT8_NARROW)?.iter().map(|p| p.scale).collect())
/// }
/// assert_eq!(weight_params(&mut PerChannelMinMaxObserver::new())?, vec![0.5 / 127.0, 4.0 / 127.0]);
/// # Ok::<(), qlinear::QuantError>(())
/// ```
pub trait ChannelObserver {
    /// Records one batch, a 2-D array whose channels run along the
    /// observer's axis. Errors if its number of channels differs from
    /// earlier batches'.
    fn observe_channels(&mut self, w: ArrayView2<'_, f32>) -> Result<(), QuantError>;

    /// [`observe_channels`](Self::observe_channels) of any [`Real`] 2-D
    /// array, each value converted to `f32` first (`f32` views are passed
    /// on as they are; other types are converted into a temporary array,
    /// [`QuantError::TooLarge`] if it cannot be allocated).
    ///
    /// ```
    /// use ndarray::array;
    /// use qlinear::{ChannelObserver, PerChannelMinMaxObserver};
    ///
    /// fn ranges(o: &mut impl ChannelObserver) -> Result<Vec<(f64, f64)>, qlinear::QuantError> {
    ///     o.observe(&array![[0.5f64, 1e300], [-0.25, 2.0]])?;
    ///     o.ranges()
    /// }
    /// assert_eq!(ranges(&mut PerChannelMinMaxObserver::new())?, vec![(-0.25, 0.5), (2.0, 2.0)]);
    /// # Ok::<(), qlinear::QuantError>(())
    /// ```
    fn observe<S>(&mut self, w: &ArrayBase<S, Ix2>) -> Result<(), QuantError>
    where
        S: Data,
        S::Elem: Real,
        Self: Sized,
    {
        match as_f32_view(w.view()) {
            Some(w) => self.observe_channels(w),
            None => {
                let w = try_map("f32 copy of the batch", w, |v| v.to_f32_nearest())?;
                self.observe_channels(w.view())
            }
        }
    }

    /// The range `[min, max]` of every channel, in channel order.
    /// [`QuantError::NothingObserved`] until every channel has seen a
    /// finite value.
    fn ranges(&self) -> Result<Vec<(f64, f64)>, QuantError>;

    /// One parameter set per channel: [`Scheme::params`] of each channel's
    /// range, onto `target`.
    fn params(&self, scheme: Scheme, target: QuantRange) -> Result<Vec<QuantParams>, QuantError> {
        self.ranges()?
            .into_iter()
            .map(|(min, max)| scheme.params(min, max, target))
            .collect()
    }

    /// Number of finite values observed so far, over all channels.
    fn count(&self) -> u64;

    /// Number of non-finite values (NaN, ±∞) skipped so far.
    fn skipped(&self) -> u64;
}

/// The finite extremes of one batch, with how many values were and were
/// not finite.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct BatchStats {
    /// Smallest finite value; `+∞` when there is none.
    pub(crate) min: f32,
    /// Largest finite value; `−∞` when there is none.
    pub(crate) max: f32,
    /// Number of finite values.
    pub(crate) finite: u64,
    /// Number of NaN and infinite values.
    pub(crate) skipped: u64,
}

impl BatchStats {
    /// Nothing seen.
    pub(crate) const EMPTY: BatchStats = BatchStats {
        min: f32::INFINITY,
        max: f32::NEG_INFINITY,
        finite: 0,
        skipped: 0,
    };

    /// Adds one value.
    #[inline]
    pub(crate) fn push(&mut self, v: f32) {
        if v.is_finite() {
            self.min = self.min.min(v);
            self.max = self.max.max(v);
            self.finite += 1;
        } else {
            self.skipped += 1;
        }
    }

    /// The extremes in `f64` (exact), or `None` without a finite value.
    pub(crate) fn bounds(&self) -> Option<(f64, f64)> {
        (self.finite > 0).then(|| (f64::from(self.min), f64::from(self.max)))
    }
}

/// The statistics of one batch.
pub(crate) fn scan(values: &[f32]) -> BatchStats {
    let mut stats = BatchStats::EMPTY;
    for &v in values {
        stats.push(v);
    }
    stats
}

/// The smallest and largest of `values` when every one is finite, else
/// the index of the first that is not; `(+∞, −∞)` when there are none.
/// Equals [`scan`]'s bounds on finite data (with a zero as +0), in one
/// pass the compiler vectorizes: dynamic quantization needs it on every
/// call, where `scan`'s per-value branch costs several nanoseconds an
/// element.
#[inline(always)] // into `Stamped::vectorized`
pub(crate) fn finite_extremes(values: &[f32]) -> Result<(f32, f32), usize> {
    const LANES: usize = 16;
    let mut lo = [f32::INFINITY; LANES];
    let mut hi = [f32::NEG_INFINITY; LANES];
    // `v·0` is ±0 for a finite `v` and NaN otherwise; the sum stays NaN.
    let mut poison = [0.0f32; LANES];
    let mut push = |l: usize, v: f32| {
        lo[l] = if v < lo[l] { v } else { lo[l] };
        hi[l] = if v > hi[l] { v } else { hi[l] };
        poison[l] += v * 0.0;
    };
    let chunks = values.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (l, &v) in chunk.iter().enumerate() {
            push(l, v);
        }
    }
    for (l, &v) in tail.iter().enumerate() {
        push(l, v);
    }
    if poison.iter().any(|p| p.is_nan()) {
        // Some value is not finite, so `position` finds one.
        return Err(values.iter().position(|v| !v.is_finite()).unwrap_or(0));
    }
    let lo = lo.iter().fold(f32::INFINITY, |a, &b| a.min(b));
    let hi = hi.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    // `+ 0.0` turns −0 into +0, so that the result does not depend on
    // which zero came first, however `values` is split.
    Ok((lo + 0.0, hi + 0.0))
}

/// `c` must be a valid averaging constant for (31).
pub(crate) fn check_averaging_constant(c: f64) -> Result<(), QuantError> {
    if (0.0..=1.0).contains(&c) {
        Ok(())
    } else {
        Err(QuantError::InvalidConfig {
            what: "the averaging constant must lie in [0, 1] (PyTorch's default is 0.01)",
            value: c,
        })
    }
}

/// Most bins a histogram may have: 32× PyTorch's 2048, and small enough
/// that the least-error search, O(bins²) at worst, stays in seconds.
pub const MAX_BINS: usize = 1 << 16;

/// A histogram needs at least one bin, and at most [`MAX_BINS`].
pub(crate) fn check_bins(bins: usize) -> Result<(), QuantError> {
    if (1..=MAX_BINS).contains(&bins) {
        Ok(())
    } else {
        Err(QuantError::InvalidConfig {
            what: "a histogram needs between 1 and MAX_BINS (65 536) bins",
            value: bins as f64,
        })
    }
}

/// One step of (31) for a `(min, max)` pair, written as the convex
/// combination `(1 − c)·old + c·new`: equal to (31) in exact arithmetic,
/// and in floating point it keeps `min ≤ max` (rounding is monotone) and
/// gives exactly `new` for `c = 1`, where `old + c·(new − old)` can cancel
/// (`old = 1e38`, `new = 5` gives 0).
pub(crate) fn moving_average(old: (f64, f64), new: (f64, f64), c: f64) -> (f64, f64) {
    let keep = 1.0 - c;
    (keep * old.0 + c * new.0, keep * old.1 + c * new.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_skips_and_counts_non_finite_values() {
        let s = scan(&[f32::NAN, 2.0, f32::INFINITY, -1.0, f32::NEG_INFINITY]);
        assert_eq!((s.min, s.max, s.finite, s.skipped), (-1.0, 2.0, 2, 3));
        assert_eq!(s.bounds(), Some((-1.0, 2.0)));
        let s = scan(&[f32::NAN]);
        assert_eq!((s.finite, s.skipped, s.bounds()), (0, 1, None));
        assert_eq!(scan(&[]), BatchStats::EMPTY);
    }

    /// Against `scan` on finite data of every length up to nine chunks
    /// (so every tail of every unrolled loop), with the extremes in every
    /// position; the index of the first non-finite value when there are
    /// some. Compiled plainly and for every kernel's instruction set.
    #[test]
    fn finite_extremes_agree_with_scan() {
        let kernels = crate::gemm::KernelChoice::available();
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let each = |values: &[f32]| {
            let plain = finite_extremes(values);
            for k in &kernels {
                let got = k.vectorized(|| finite_extremes(values));
                assert_eq!(got, plain, "{} on {values:?}", k.name());
            }
            plain
        };
        assert_eq!(each(&[]), Ok((f32::INFINITY, f32::NEG_INFINITY)));
        for len in 1..=144 {
            for _ in 0..8 {
                let mut values: Vec<f32> = (0..len)
                    .map(|_| (next() % 2001) as f32 / 7.0 - 140.0)
                    .collect();
                let at = next() as usize % len;
                values[at] = [f32::MAX, f32::MIN, 1e-40, -0.0][next() as usize % 4];
                let stats = scan(&values);
                assert_eq!(each(&values), Ok((stats.min, stats.max)));
                let mut with_bad = values.clone();
                let first = next() as usize % len;
                with_bad[first] = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY][first % 3];
                for later in with_bad.iter_mut().skip(first + 1) {
                    if next() % 4 == 0 {
                        *later = f32::NAN;
                    }
                }
                assert_eq!(each(&with_bad), Err(first), "{with_bad:?}");
            }
        }
    }
}
