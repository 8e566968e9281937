//! The plain fields serde reads before a validating constructor runs, so
//! that deserializing an invalid value is a serde error with the crate's
//! message rather than a value that breaks an invariant.

use serde::Deserialize;

use crate::error::QuantError;
use crate::params::{QuantParams, QuantRange};

/// [`QuantParams`]'s fields, unchecked.
#[derive(Deserialize)]
#[serde(rename = "QuantParams")]
pub struct QuantParamsFields {
    scale: f64,
    zero_point: i32,
}

impl TryFrom<QuantParamsFields> for QuantParams {
    type Error = QuantError;

    fn try_from(f: QuantParamsFields) -> Result<QuantParams, QuantError> {
        QuantParams::new(f.scale, f.zero_point)
    }
}

/// [`QuantRange`]'s fields, unchecked.
#[derive(Deserialize)]
#[serde(rename = "QuantRange")]
pub struct QuantRangeFields {
    qmin: i32,
    qmax: i32,
}

impl TryFrom<QuantRangeFields> for QuantRange {
    type Error = QuantError;

    fn try_from(f: QuantRangeFields) -> Result<QuantRange, QuantError> {
        QuantRange::new(f.qmin, f.qmax)
    }
}
