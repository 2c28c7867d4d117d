//! Tensor operations generated model code (see `brasa import-onnx`) calls instead of burn's
//! operator: where burn-flex is slow, a brasa CPU kernel (on other backends, and for geometry
//! the kernels do not cover, burn's operator); where a backend's operator is wrong for some
//! inputs, a form that is right on all of them ([`tanh`]).

use burn::nn::PaddingConfig2d;
use burn::nn::pool::MaxPool2dConfig;
use burn::tensor::{Tensor, TensorData};

use crate::backend::is_cpu_device;
use crate::kernels::{self, Pool2d};

/// 2-D max-pooling of an NCHW tensor: `kernel`, `strides`, `padding` as
/// `[top, left, bottom, right]`, no dilation, floor rounding.
pub fn max_pool2d(x: Tensor<4>, kernel: [usize; 2], strides: [usize; 2], padding: [usize; 4]) -> Tensor<4> {
    let pool = Pool2d { kernel, strides, padding };
    if is_cpu_device(&x.device())
        && let Some(y) = max_pool2d_cpu(&x, pool)
    {
        return y;
    }
    let [top, left, bottom, right] = padding;
    MaxPool2dConfig::new(kernel)
        .with_strides(strides)
        .with_padding(PaddingConfig2d::Explicit(top, left, bottom, right))
        .init()
        .forward(x)
}

fn max_pool2d_cpu(x: &Tensor<4>, pool: Pool2d) -> Option<Tensor<4>> {
    let [batch, channels, height, width] = x.dims();
    let [out_h, out_w] = pool.output_size(height, width)?;
    let data = x.clone().try_into_data().ok()?;
    let y = kernels::max_pool2d(data.as_slice::<f32>().ok()?, height, width, pool)?;
    Some(Tensor::from_data(TensorData::new(y, [batch, channels, out_h, out_w]), &x.device()))
}

/// Largest |x| [`tanh`] passes to the backend's `tanh`: in f32, tanh(±15) already rounds to
/// ±1 (1 − tanh 15 ≈ 1.9e-13, far below f32's epsilon), so clamping there changes no result.
pub const TANH_SATURATION: f32 = 15.0;

/// Hyperbolic tangent that saturates on every backend. WGSL's `tanh` may be computed from
/// `exp`, which overflows for |x| beyond about 44–89 and then gives NaN instead of ±1
/// (gpuweb/gpuweb#4458; measured in Chromium's SwiftShader: tanh(100) is NaN, which turned
/// silero-vad's LSTM state into NaN). On the GPU the input is clamped to
/// ±[`TANH_SATURATION`] first; on the CPU burn's own `tanh` is exact.
pub fn tanh<T: SaturatingTanh>(x: T) -> T {
    x.saturating_tanh()
}

/// What [`tanh`] takes: float tensors of any rank, and the native scalars ONNX graphs carry.
pub trait SaturatingTanh {
    /// tanh(self), never NaN for a finite input.
    fn saturating_tanh(self) -> Self;
}

impl<const D: usize> SaturatingTanh for Tensor<D> {
    fn saturating_tanh(self) -> Self {
        if is_cpu_device(&self.device()) {
            self.tanh()
        } else {
            self.clamp(-TANH_SATURATION, TANH_SATURATION).tanh()
        }
    }
}

impl SaturatingTanh for f32 {
    fn saturating_tanh(self) -> Self {
        self.tanh()
    }
}

impl SaturatingTanh for f64 {
    fn saturating_tanh(self) -> Self {
        self.tanh()
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::Device;

    use super::*;

    #[test]
    fn cpu_kernel_agrees_with_burn() {
        let device = Device::flex();
        let values: Vec<f32> = (0..2 * 3 * 11 * 9).map(|i| ((i * 7919) % 101) as f32 - 50.0).collect();
        let x = Tensor::<4>::from_data(TensorData::new(values, [2, 3, 11, 9]), &device);
        for (kernel, strides, padding) in [([3, 3], [2, 2], [0; 4]), ([2, 3], [1, 2], [1, 1, 0, 1])] {
            let ours = max_pool2d(x.clone(), kernel, strides, padding);
            let [top, left, bottom, right] = padding;
            let burns = MaxPool2dConfig::new(kernel)
                .with_strides(strides)
                .with_padding(PaddingConfig2d::Explicit(top, left, bottom, right))
                .init()
                .forward(x.clone());
            assert_eq!(ours.dims(), burns.dims());
            assert_eq!(ours.into_data(), burns.into_data());
        }
    }

    #[test]
    fn tanh_saturates_exactly_where_it_clamps() {
        // The clamp's premise: past ±15, f32 tanh is already ±1.
        assert_eq!(TANH_SATURATION.tanh(), 1.0);
        assert_eq!((-TANH_SATURATION).tanh(), -1.0);
        let device = Device::flex();
        let values = vec![-1e30f32, -100.0, -15.5, -1.0, 0.0, 0.25, 16.0, 100.0, 3e38];
        let x = Tensor::<1>::from_data(TensorData::new(values.clone(), [values.len()]), &device);
        let got = tanh(x).into_data().try_to_vec::<f32>().unwrap();
        let want: Vec<f32> = values.iter().map(|v| v.tanh()).collect();
        assert_eq!(got, want);
        assert!(got.iter().all(|v| v.is_finite()));
        assert_eq!(tanh(100.0f64), 1.0);
    }
}
