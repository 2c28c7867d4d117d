//! Tensor operations with a brasa CPU kernel behind them. Generated model code (see
//! `brasa import-onnx`) calls these instead of burn's operator where burn-flex is slow; on
//! other backends, and for geometry the kernels do not cover, they are burn's operator.

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
}
