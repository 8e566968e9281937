//! `QLINEAR_KERNEL` is read once, when a layer is built: its builders keep
//! the kernel the variable chose. (Its own test binary: it sets the
//! variable for the whole process.)

use ndarray::array;
use qlinear::{
    Bias, DynamicActivations, DynamicLinear, FusedActivation, QuantParams, QuantRange,
    QuantizedLinear, Requantizer, KERNEL_ENV,
};

#[test]
fn the_kernel_variable_is_read_when_a_layer_is_built() {
    let p = QuantParams::new(0.5, 0).unwrap();
    std::env::set_var(KERNEL_ENV, "portable");
    let layer = QuantizedLinear::from_quantized(array![[1i8, 2]], p, Bias::None, p, p).unwrap();
    let dynamic = DynamicLinear::from_quantized(array![[1i8, 2]], p, None).unwrap();
    std::env::remove_var(KERNEL_ENV);

    let layer = layer
        .with_requantizer(Requantizer::Float32)
        .and_then(|l| l.with_fused_activation(FusedActivation::Relu))
        .and_then(|l| l.with_input_range(QuantRange::INT8_REDUCED))
        .unwrap();
    assert_eq!(layer.kernel_name(), "portable-i8i8i32");
    let dynamic = dynamic
        .with_activations(DynamicActivations::default())
        .unwrap();
    assert_eq!(dynamic.kernel_name(), "portable-i8i8i32");

    // A layer built now gets the automatic choice.
    let fresh = QuantizedLinear::from_quantized(array![[1i8]], p, Bias::None, p, p).unwrap();
    assert_eq!(fresh.kernel_name(), qlinear::kernel_name());
}
