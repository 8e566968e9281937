//! One min and max per channel of a weight matrix, equation (32).

use ndarray::{ArrayBase, ArrayView2, Axis, Data, Ix2};

use super::{check_averaging_constant, BatchStats, ChannelObserver};
use crate::alloc::try_filled;
use crate::error::QuantError;
use crate::params::{QuantParams, QuantRange, Scheme};
use crate::real::Real;

/// Per-channel min and max of a 2-D array, equation (32): one range, and
/// one [`QuantParams`], per channel.
///
/// The crate's layers hold `W` as `p×n` (inputs × outputs), and a weight
/// channel is an **output column**, so the default channel axis is 1
/// ([`PerChannelMinMaxObserver::new`]), matching PyTorch's per-channel
/// weights (`ch_axis = 0` of its `out × in` layout). Per-channel weights
/// keep a narrow column from being quantized with the step of a wide one.
///
/// Across batches the bounds of each channel follow (30), or (31) after
/// [`PerChannelMinMaxObserver::with_averaging_constant`]. The first batch
/// with any elements fixes the number of channels; a later batch with a
/// different number is refused. Non-finite values are skipped and counted.
///
/// ```
/// use ndarray::array;
/// use qlinear::{PerChannelMinMaxObserver, QuantRange, Scheme};
///
/// // W: 3 inputs × 2 outputs; the second column is 100 times wider.
/// let w = array![[0.5f32, -50.0], [-0.25, 20.0], [0.1, 100.0]];
/// let mut o = PerChannelMinMaxObserver::new();
/// o.observe(&w)?;
/// assert_eq!(o.ranges()?, vec![(-0.25, 0.5), (-50.0, 100.0)]);
/// let p = o.params(Scheme::Symmetric, QuantRange::INT8_NARROW)?;
/// assert_eq!(p[0].scale, 0.5 / 127.0);
/// assert_eq!(p[1].scale, 100.0 / 127.0);
/// # Ok::<(), qlinear::QuantError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct PerChannelMinMaxObserver {
    axis: Axis,
    averaging_constant: Option<f64>,
    bounds: Vec<Option<(f64, f64)>>,
    channels: Option<usize>,
    count: u64,
    skipped: u64,
}

impl PerChannelMinMaxObserver {
    /// An observer over output columns (axis 1 of a `p×n` weight matrix),
    /// with running min and max.
    pub fn new() -> PerChannelMinMaxObserver {
        PerChannelMinMaxObserver {
            axis: Axis(1),
            averaging_constant: None,
            bounds: Vec::new(),
            channels: None,
            count: 0,
            skipped: 0,
        }
    }

    /// An observer whose channels run along `axis`: `Axis(1)` for columns
    /// (the crate's layers), `Axis(0)` for rows (a `n×p`, PyTorch-layout
    /// weight).
    ///
    /// Errors if `axis` is not 0 or 1.
    pub fn with_axis(axis: Axis) -> Result<PerChannelMinMaxObserver, QuantError> {
        if axis.index() >= 2 {
            return Err(QuantError::InvalidConfig {
                what: "the channel axis of a 2-D weight matrix must be 0 or 1",
                value: axis.index() as f64,
            });
        }
        Ok(PerChannelMinMaxObserver {
            axis,
            ..PerChannelMinMaxObserver::new()
        })
    }

    /// This observer with each channel's bounds averaged over batches by
    /// (31) with constant `c`, instead of the running (30).
    ///
    /// Errors if `c` is not in `[0, 1]` (NaN included).
    pub fn with_averaging_constant(
        mut self,
        c: f64,
    ) -> Result<PerChannelMinMaxObserver, QuantError> {
        check_averaging_constant(c)?;
        self.averaging_constant = Some(c);
        Ok(self)
    }

    /// The axis the channels run along.
    pub fn axis(&self) -> Axis {
        self.axis
    }

    /// Number of channels, once a batch with elements has fixed it.
    pub fn channels(&self) -> Option<usize> {
        self.channels
    }

    /// Records one batch. An array without elements is a no-op; otherwise
    /// its number of channels (its length along [`Self::axis`]) must match
    /// earlier batches, or [`QuantError::LengthMismatch`] is returned and
    /// nothing is recorded. Any [`Real`] values: each is converted to `f32`
    /// first (an `f64` beyond `f32` is an infinity, skipped and counted).
    pub fn observe<S>(&mut self, w: &ArrayBase<S, Ix2>) -> Result<(), QuantError>
    where
        S: Data,
        S::Elem: Real,
    {
        if w.is_empty() {
            return Ok(());
        }
        let channels = w.len_of(self.axis);
        let mut batch = try_filled("per-channel statistics", &[channels], BatchStats::EMPTY)?;
        match self.channels {
            Some(expected) if expected != channels => {
                return Err(QuantError::LengthMismatch {
                    what: "per-channel observer batch",
                    expected,
                    found: channels,
                })
            }
            Some(_) => {}
            None => {
                self.bounds = try_filled("per-channel ranges", &[channels], None)?;
                self.channels = Some(channels);
            }
        }
        let by_column = self.axis.index() == 1;
        for ((i, j), &v) in w.indexed_iter() {
            batch[if by_column { j } else { i }].push(v.to_f32_nearest());
        }
        for (stats, bounds) in batch.iter().zip(self.bounds.iter_mut()) {
            self.skipped += stats.skipped;
            self.count += stats.finite;
            let Some((lo, hi)) = stats.bounds() else {
                continue;
            };
            *bounds = Some(match (*bounds, self.averaging_constant) {
                (None, _) => (lo, hi),
                (Some((min, max)), None) => (min.min(lo), max.max(hi)),
                (Some(old), Some(c)) => super::moving_average(old, (lo, hi), c),
            });
        }
        Ok(())
    }

    /// The range `[min, max]` of every channel, in channel order.
    /// [`QuantError::NothingObserved`] until every channel has seen a finite
    /// value.
    pub fn ranges(&self) -> Result<Vec<(f64, f64)>, QuantError> {
        let nothing = QuantError::NothingObserved {
            observer: "PerChannelMinMaxObserver",
        };
        if self.channels.is_none() {
            return Err(nothing);
        }
        self.bounds
            .iter()
            .map(|b| b.ok_or_else(|| nothing.clone()))
            .collect()
    }

    /// One parameter set per channel: [`Scheme::params`] of each channel's
    /// range, onto `target`.
    pub fn params(
        &self,
        scheme: Scheme,
        target: QuantRange,
    ) -> Result<Vec<QuantParams>, QuantError> {
        self.ranges()?
            .into_iter()
            .map(|(min, max)| scheme.params(min, max, target))
            .collect()
    }

    /// Number of finite values observed so far, over all channels.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Number of non-finite values (NaN, ±∞) skipped so far.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }
}

impl ChannelObserver for PerChannelMinMaxObserver {
    fn observe_channels(&mut self, w: ArrayView2<'_, f32>) -> Result<(), QuantError> {
        PerChannelMinMaxObserver::observe(self, &w)
    }

    /// The inherent [`PerChannelMinMaxObserver::observe`]: no copy for any
    /// type.
    fn observe<S>(&mut self, w: &ArrayBase<S, Ix2>) -> Result<(), QuantError>
    where
        S: Data,
        S::Elem: Real,
    {
        PerChannelMinMaxObserver::observe(self, w)
    }

    fn ranges(&self) -> Result<Vec<(f64, f64)>, QuantError> {
        PerChannelMinMaxObserver::ranges(self)
    }

    fn params(&self, scheme: Scheme, target: QuantRange) -> Result<Vec<QuantParams>, QuantError> {
        PerChannelMinMaxObserver::params(self, scheme, target)
    }

    fn count(&self) -> u64 {
        self.count
    }

    fn skipped(&self) -> u64 {
        self.skipped
    }
}

impl Default for PerChannelMinMaxObserver {
    fn default() -> Self {
        PerChannelMinMaxObserver::new()
    }
}
