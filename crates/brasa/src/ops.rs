//! Tensor operations generated model code (see `brasa import-onnx`) calls instead of burn's
//! operator: where burn-flex is slow, a brasa CPU kernel (on other backends, and for geometry
//! the kernels do not cover, burn's operator); where a backend's operator is wrong for some
//! inputs, a form that is right on all of them ([`tanh`]).

use std::sync::{Arc, Mutex};

use burn::module::{Module, Param, ParamId};
use burn::nn::PaddingConfig2d;
use burn::nn::pool::MaxPool2dConfig;
use burn::tensor::{DType, Tensor, TensorData};

use crate::backend::is_cpu_device;
use crate::conv::{Activation, Conv2dGeometry, PackedConv2d};
use crate::kernels::{self, Pool2d};

/// burn's [`Conv2d`](burn::nn::conv::Conv2d) with brasa's CPU convolution
/// ([`crate::conv`]): the same parameters under the same names (`weight`
/// `[out_channels, in_channels / groups, kh, kw]`, `bias` `[out_channels]`), so the same
/// weight files load; `brasa import-onnx` generates it for every ONNX `Conv` with constant
/// weights. On the CPU the weights are packed once, on the first run after they are loaded,
/// and the bias and a following ReLU or clip are applied as the result is stored
/// ([`Conv2d::forward_relu`], [`Conv2d::forward_clip`]). Other backends, `Same` padding and
/// non-`f32` tensors take burn's operator.
///
/// The pack is keyed by the weight's parameter id. burn's `Module::map` (and so
/// `load_record`) keeps a module's skipped fields and may keep ids: give new weights to a
/// fresh module (`Model::init` then load, as brasa's sessions do) or a clone (a clone starts
/// with no pack), not to one that has already run.
#[derive(Module, Debug)]
pub struct Conv2d {
    /// `[out_channels, in_channels / groups, kh, kw]`.
    pub weight: Param<Tensor<4>>,
    /// `[out_channels]`.
    pub bias: Option<Param<Tensor<1>>>,
    /// `[vertical, horizontal]` stride.
    pub stride: [usize; 2],
    /// `[height, width]` of the kernel.
    pub kernel_size: [usize; 2],
    /// `[vertical, horizontal]` dilation.
    pub dilation: [usize; 2],
    /// Groups of channels convolved independently.
    pub groups: usize,
    /// The padding.
    #[module(skip)]
    pub padding: PaddingConfig2d,
    #[module(skip)]
    packed: PackCache,
}

/// The packed weights of one [`Conv2d`] and the parameter they were packed from. A clone
/// starts empty: burn clones modules to move or fork them, and a copy may get other weights.
#[derive(Debug, Default)]
struct PackCache(Mutex<Option<(ParamId, Arc<PackedConv2d>)>>);

impl Clone for PackCache {
    fn clone(&self) -> Self {
        PackCache::default()
    }
}

impl From<burn::nn::conv::Conv2d> for Conv2d {
    fn from(c: burn::nn::conv::Conv2d) -> Self {
        Conv2d {
            weight: c.weight,
            bias: c.bias,
            stride: c.stride,
            kernel_size: c.kernel_size,
            dilation: c.dilation,
            groups: c.groups,
            padding: c.padding,
            packed: PackCache::default(),
        }
    }
}

impl Conv2d {
    /// `conv(x) + bias`: `x` `[batch, in_channels, h, w]` → `[batch, out_channels, h', w']`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward_with(x, Activation::Identity)
    }

    /// `max(0, conv(x) + bias)`, in one pass on the CPU.
    pub fn forward_relu(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward_with(x, Activation::Relu)
    }

    /// `min(max, max(min, conv(x) + bias))` (ONNX `Clip`, e.g. ReLU6), in one pass on the CPU.
    pub fn forward_clip(&self, x: Tensor<4>, min: f64, max: f64) -> Tensor<4> {
        self.forward_with(x, Activation::Clip { min: min as f32, max: max as f32 })
    }

    fn forward_with(&self, x: Tensor<4>, activation: Activation) -> Tensor<4> {
        let x = match self.forward_cpu(x, activation) {
            Ok(y) => return y,
            Err(x) => x,
        };
        let y = burn::nn::conv::Conv2d {
            weight: self.weight.clone(),
            bias: self.bias.clone(),
            stride: self.stride,
            kernel_size: self.kernel_size,
            dilation: self.dilation,
            groups: self.groups,
            padding: self.padding.clone(),
        }
        .forward(x);
        match activation {
            Activation::Identity => y,
            Activation::Relu => burn::tensor::activation::relu(y),
            Activation::Clip { min, max } => y.clamp(min, max),
        }
    }

    /// brasa's kernel, or `x` back when it does not apply.
    #[allow(clippy::result_large_err, reason = "`Err` hands the input back: no error travels")]
    fn forward_cpu(&self, x: Tensor<4>, activation: Activation) -> Result<Tensor<4>, Tensor<4>> {
        let padding = match self.padding {
            PaddingConfig2d::Valid => [0; 4],
            PaddingConfig2d::Explicit(top, left, bottom, right) => [top, left, bottom, right],
            _ => return Err(x),
        };
        if !is_cpu_device(&x.device()) || x.dtype() != DType::F32 {
            return Err(x);
        }
        let [batch, channels, height, width] = x.dims();
        let [out_channels, per_group, ..] = self.weight.dims();
        let geometry = Conv2dGeometry {
            in_channels: per_group * self.groups,
            out_channels,
            kernel: self.kernel_size,
            stride: self.stride,
            dilation: self.dilation,
            padding,
            groups: self.groups,
        };
        let Some([out_h, out_w]) = geometry.output_size(height, width) else { return Err(x) };
        if channels != geometry.in_channels {
            return Err(x);
        }
        let Some(packed) = self.packed(geometry) else { return Err(x) };
        let device = x.device();
        // Moved, not cloned: a tensor nothing else holds gives its buffer without a copy.
        let data = x.into_data();
        match data.as_slice::<f32>().ok().and_then(|input| packed.run(input, height, width, activation)) {
            Some(y) => {
                Ok(Tensor::from_data(TensorData::new(y, [batch, out_channels, out_h, out_w]), &device))
            }
            None => Err(Tensor::from_data(data, &device)),
        }
    }

    /// The packed weights, packed now if these weights have not been.
    fn packed(&self, geometry: Conv2dGeometry) -> Option<Arc<PackedConv2d>> {
        let mut slot = self.packed.0.lock().ok()?;
        if let Some((id, packed)) = slot.as_ref()
            && *id == self.weight.id
            && *packed.geometry() == geometry
        {
            return Some(packed.clone());
        }
        let weight = self.weight.val().try_into_data().ok()?;
        let bias = match &self.bias {
            Some(b) => Some(b.val().try_into_data().ok()?),
            None => None,
        };
        let bias = match &bias {
            Some(b) => Some(b.as_slice::<f32>().ok()?),
            None => None,
        };
        let packed = Arc::new(PackedConv2d::new(geometry, weight.as_slice::<f32>().ok()?, bias)?);
        *slot = Some((self.weight.id, packed.clone()));
        Some(packed)
    }
}

/// 2-D max-pooling of an NCHW tensor: `kernel`, `strides`, `padding` as
/// `[top, left, bottom, right]`, no dilation, floor rounding.
pub fn max_pool2d(x: Tensor<4>, kernel: [usize; 2], strides: [usize; 2], padding: [usize; 4]) -> Tensor<4> {
    let pool = Pool2d { kernel, strides, padding };
    let x = match max_pool2d_cpu(x, pool) {
        Ok(y) => return y,
        Err(x) => x,
    };
    let [top, left, bottom, right] = padding;
    MaxPool2dConfig::new(kernel)
        .with_strides(strides)
        .with_padding(PaddingConfig2d::Explicit(top, left, bottom, right))
        .init()
        .forward(x)
}

/// brasa's kernel, or `x` back when it does not apply. `x` is moved into its data, not cloned:
/// a clone made the buffer shared, and reading it then copied it (100 MB for SqueezeNet's
/// first pooling at batch 32, a third of its peak memory).
#[allow(clippy::result_large_err, reason = "`Err` hands the input back: no error travels")]
fn max_pool2d_cpu(x: Tensor<4>, pool: Pool2d) -> Result<Tensor<4>, Tensor<4>> {
    let [batch, channels, height, width] = x.dims();
    if !is_cpu_device(&x.device()) || x.dtype() != DType::F32 {
        return Err(x);
    }
    let Some([out_h, out_w]) = pool.output_size(height, width) else { return Err(x) };
    let device = x.device();
    let data = x.into_data();
    match data.as_slice::<f32>().ok().and_then(|input| kernels::max_pool2d(input, height, width, pool)) {
        Some(y) => Ok(Tensor::from_data(TensorData::new(y, [batch, channels, out_h, out_w]), &device)),
        None => Err(Tensor::from_data(data, &device)),
    }
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
    fn conv2d_agrees_with_burns_and_repacks_new_weights() {
        use burn::nn::conv::Conv2dConfig;
        let device = Device::flex();
        let values: Vec<f32> = (0..2 * 6 * 9 * 7).map(|i| ((i * 7919) % 97) as f32 / 48.0 - 1.0).collect();
        let x = Tensor::<4>::from_data(TensorData::new(values, [2, 6, 9, 7]), &device);
        for (groups, stride, padding) in [
            (1, [1, 1], PaddingConfig2d::Explicit(1, 1, 1, 1)),
            (2, [2, 1], PaddingConfig2d::Valid),
            (6, [1, 2], PaddingConfig2d::Explicit(1, 0, 2, 1)),
        ] {
            let burns = Conv2dConfig::new([6, 6], [3, 3])
                .with_stride(stride)
                .with_padding(padding.clone())
                .with_groups(groups)
                .init(&device);
            let ours = Conv2d::from(burns.clone());
            let want = burns.forward(x.clone());
            let close = |a: Tensor<4>, b: Tensor<4>| {
                assert_eq!(a.dims(), b.dims());
                let (a, b) =
                    (a.into_data().try_to_vec::<f32>().unwrap(), b.into_data().try_to_vec::<f32>().unwrap());
                assert!(
                    a.iter().zip(&b).all(|(a, b)| (a - b).abs() <= 1e-5),
                    "groups {groups}: {a:?} vs {b:?}"
                );
            };
            close(ours.forward(x.clone()), want.clone());
            close(ours.forward_relu(x.clone()), burn::tensor::activation::relu(want.clone()));
            close(ours.forward_clip(x.clone(), -0.1, 0.2), want.clamp(-0.1, 0.2));
            // New weights under a new parameter id are packed again, not served stale.
            let other = Conv2dConfig::new([6, 6], [3, 3])
                .with_stride(stride)
                .with_padding(padding)
                .with_groups(groups)
                .init(&device);
            let reloaded = Conv2d { weight: other.weight.clone(), bias: other.bias.clone(), ..ours };
            close(reloaded.forward(x.clone()), other.forward(x.clone()));
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
