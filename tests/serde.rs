//! The `serde` feature: every parameter and option type survives a JSON
//! round trip, and data that breaks an invariant is a serde error carrying
//! the crate's message, never an invalid value.
#![cfg(feature = "serde")]

use std::fmt::Debug;

use qlinear::{
    ConvertOptions, DynamicActivations, ElemKind, FusedActivation, Granularity, QuantError,
    QuantParams, QuantRange, Requantizer, Rounding, Scheme, WeightGranularity, WeightLayout,
    WeightParams, MIN_SCALE,
};
use serde::de::value::{Error as ValueError, MapDeserializer};
use serde::de::{DeserializeOwned, IntoDeserializer, Visitor};
use serde::{Deserialize, Serialize};

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(value: T) {
    let json = serde_json::to_string(&value).unwrap();
    let back: T = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{json}: {e}"));
    assert_eq!(back, value, "{json}");
}

#[test]
fn every_type_round_trips_through_json() {
    round_trip(QuantParams::new(0.0125, -7).unwrap());
    round_trip(QuantParams::new(MIN_SCALE, i32::MIN).unwrap());
    round_trip(QuantParams::new(f64::MAX, i32::MAX).unwrap());
    for range in [
        QuantRange::INT8,
        QuantRange::INT8_NARROW,
        QuantRange::UINT8,
        QuantRange::UINT8_REDUCED,
        QuantRange::new(i32::MIN, i32::MAX).unwrap(),
    ] {
        round_trip(range);
    }
    for scheme in [Scheme::Notebook, Scheme::Affine, Scheme::Symmetric] {
        round_trip(scheme);
    }
    for rounding in [Rounding::HalfUp, Rounding::Double, Rounding::Single] {
        round_trip(rounding);
        round_trip(Requantizer::FixedPoint(rounding));
    }
    for requantizer in [
        Requantizer::Float64,
        Requantizer::TfliteReference,
        Requantizer::Float32,
    ] {
        round_trip(requantizer);
    }
    for activation in [
        FusedActivation::None,
        FusedActivation::Relu,
        FusedActivation::Relu6,
        FusedActivation::ReluN1To1,
    ] {
        round_trip(activation);
    }
    round_trip(ElemKind::Int8);
    round_trip(ElemKind::Uint8);
    round_trip(WeightLayout::InOut);
    round_trip(WeightLayout::OutIn);
    round_trip(WeightParams::PerTensor(QuantParams::new(0.5, 3).unwrap()));
    round_trip(WeightParams::PerChannel(vec![
        QuantParams::new(0.1, 0).unwrap(),
        QuantParams::new(1e-3, -128).unwrap(),
    ]));
    round_trip(Granularity::PerTensor);
    round_trip(Granularity::PerRow);
    round_trip(WeightGranularity::PerTensor);
    round_trip(WeightGranularity::PerChannel);
    round_trip(DynamicActivations::ONNX_RUNTIME);
    round_trip(DynamicActivations {
        granularity: Granularity::PerRow,
        ..DynamicActivations::PYTORCH_X86
    });
    round_trip(ConvertOptions::default());
    round_trip(ConvertOptions {
        activation_type: ElemKind::Uint8,
        activation_scheme: Scheme::Symmetric,
        weight_granularity: WeightGranularity::PerTensor,
        weight_scheme: Scheme::Affine,
        weight_range: QuantRange::INT8,
        requantizer: Requantizer::FixedPoint(Rounding::Double),
    });
}

#[test]
fn the_json_is_what_a_config_file_would_say() {
    let p = QuantParams::new(0.5, -3).unwrap();
    assert_eq!(
        serde_json::to_string(&p).unwrap(),
        r#"{"scale":0.5,"zero_point":-3}"#
    );
    assert_eq!(
        serde_json::to_string(&QuantRange::UINT8).unwrap(),
        r#"{"qmin":0,"qmax":255}"#
    );
    assert_eq!(
        serde_json::to_string(&Requantizer::FixedPoint(Rounding::HalfUp)).unwrap(),
        r#"{"FixedPoint":"HalfUp"}"#
    );
}

#[test]
fn missing_option_fields_take_their_defaults() {
    let options: ConvertOptions = serde_json::from_str(r#"{"requantizer":"Float32"}"#).unwrap();
    assert_eq!(
        options,
        ConvertOptions {
            requantizer: Requantizer::Float32,
            ..ConvertOptions::default()
        }
    );
    let dynamic: DynamicActivations = serde_json::from_str(r#"{"granularity":"PerRow"}"#).unwrap();
    assert_eq!(
        dynamic,
        DynamicActivations {
            granularity: Granularity::PerRow,
            ..DynamicActivations::default()
        }
    );
}

/// The error of deserializing `json` as `T`, which must fail.
fn rejected<T: DeserializeOwned + Debug>(json: &str) -> String {
    match serde_json::from_str::<T>(json) {
        Ok(v) => panic!("{json} was accepted as {v:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn invalid_scales_are_rejected_with_the_crate_message() {
    for scale in ["0.0", "-0.5", "-0.0", "1e-300", "1e-39"] {
        let json = format!(r#"{{"scale":{scale},"zero_point":0}}"#);
        let message = rejected::<QuantParams>(&json);
        let expected = QuantError::InvalidScale {
            scale: scale.parse().unwrap(),
        }
        .to_string();
        assert!(message.starts_with(&expected), "{json}: {message}");
    }
    // Inside the per-channel list and the options that hold params.
    let message = rejected::<WeightParams>(
        r#"{"PerChannel":[{"scale":0.1,"zero_point":0},{"scale":-1.0,"zero_point":0}]}"#,
    );
    assert!(message.contains("scale"), "{message}");
}

#[test]
fn invalid_ranges_are_rejected_with_the_crate_message() {
    for (qmin, qmax) in [(5, 5), (127, -128), (i32::MAX, i32::MIN)] {
        let json = format!(r#"{{"qmin":{qmin},"qmax":{qmax}}}"#);
        let message = rejected::<QuantRange>(&json);
        let expected = QuantError::InvalidTargetRange { qmin, qmax }.to_string();
        assert!(message.starts_with(&expected), "{json}: {message}");
    }
    let message = rejected::<ConvertOptions>(r#"{"weight_range":{"qmin":1,"qmax":0}}"#);
    assert!(message.contains("qmin"), "{message}");
    let message = rejected::<DynamicActivations>(r#"{"range":{"qmin":0,"qmax":0}}"#);
    assert!(message.contains("qmin"), "{message}");
    // Out of i32, and missing fields: serde's own errors.
    rejected::<QuantRange>(r#"{"qmin":-2147483649,"qmax":0}"#);
    rejected::<QuantRange>(r#"{"qmin":0}"#);
    rejected::<QuantParams>(r#"{"scale":1.0}"#);
}

#[test]
fn non_finite_scales_are_rejected() {
    // JSON has no NaN or infinity; a format that does is modelled by
    // serde's own map deserializer.
    for scale in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let fields = [("scale", Number::F(scale)), ("zero_point", Number::I(0))];
        let de = MapDeserializer::<_, ValueError>::new(fields.into_iter());
        let message = QuantParams::deserialize(de).unwrap_err().to_string();
        let expected = QuantError::InvalidScale { scale }.to_string();
        assert_eq!(message, expected);
    }
    let fields = [("scale", Number::F(0.25)), ("zero_point", Number::I(-1))];
    let de = MapDeserializer::<_, ValueError>::new(fields.into_iter());
    assert_eq!(
        QuantParams::deserialize(de).unwrap(),
        QuantParams::new(0.25, -1).unwrap()
    );
}

/// A number in a format that can carry any `f64`.
#[derive(Clone, Copy)]
enum Number {
    F(f64),
    I(i64),
}

impl<'de> IntoDeserializer<'de, ValueError> for Number {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

impl<'de> serde::Deserializer<'de> for Number {
    type Error = ValueError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        match self {
            Number::F(v) => visitor.visit_f64(v),
            Number::I(v) => visitor.visit_i64(v),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}
