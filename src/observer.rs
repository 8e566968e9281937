//! Calibration observers: real data in, quantization parameters out.
