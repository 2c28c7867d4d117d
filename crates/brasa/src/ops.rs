//! Tensor operations generated model code (see `brasa import-onnx`) calls instead of burn's
//! operator: where burn-flex is slow, a brasa CPU kernel (on other backends, and for geometry
//! the kernels do not cover, burn's operator); where a backend's operator is wrong for some
//! inputs, a form that is right on all of them ([`tanh`]).

use std::sync::{Arc, Mutex};

use burn::module::{Module, Param, ParamId};
use burn::nn::PaddingConfig2d;
use burn::tensor::{DType, Tensor, TensorData};

use crate::backend::is_cpu_device;
use crate::conv::{Activation, Conv2dGeometry, Epilogue, PackedConv2d};
use crate::kernels::{self, Pool2d};

/// burn's [`Conv2d`](burn::nn::conv::Conv2d) with brasa's CPU convolution
/// ([`crate::conv`]): the same parameters under the same names (`weight`
/// `[out_channels, in_channels / groups, kh, kw]`, `bias` `[out_channels]`), so the same
/// weight files load; `brasa import-onnx` generates it for every ONNX `Conv` with constant
/// weights. On the CPU the weights are packed once, on the first run after they are loaded,
/// and the bias and a following ReLU or clip are applied as the result is stored
/// ([`Conv2d::forward_relu`], [`Conv2d::forward_clip`]); every padding (burn's `Same`
/// included) and float dtype (computed in `f32`) runs there. Other backends take burn's
/// operator, which a build with the CPU backend alone leaves out.
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
        self.forward_with(x, Activation::Identity, |y| y)
    }

    /// `max(0, conv(x) + bias)`, in one pass on the CPU.
    pub fn forward_relu(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward_with(x, Activation::Relu, burn::tensor::activation::relu)
    }

    /// `min(max, max(min, conv(x) + bias))` (ONNX `Clip`, e.g. ReLU6), in one pass on the CPU.
    pub fn forward_clip(&self, x: Tensor<4>, min: f64, max: f64) -> Tensor<4> {
        let (min, max) = (min as f32, max as f32);
        self.forward_with(x, Activation::Clip { min, max }, move |y| y.clamp(min, max))
    }

    /// `conv(x) + bias` followed by `epilogue`'s element-wise steps: on the CPU applied as
    /// each output is stored when they take the kernel's form (an affine step, an activation,
    /// an affine step, each optional, every constant one value: PP-LCNet's blocks), else with
    /// burn's operators after it. `brasa import-onnx` gathers such steps from the graph.
    pub fn forward_fused(&self, x: Tensor<4>, epilogue: ConvEpilogue) -> Tensor<4> {
        if is_cpu_device(&x.device())
            && let Some(form) = epilogue.kernel_form()
        {
            return match self.forward_cpu(x, form) {
                Ok(y) => y,
                Err(x) => epilogue.apply(self.forward_burn(x)),
            };
        }
        epilogue.apply(self.forward(x))
    }

    /// brasa's kernel on the CPU, else burn's operator followed by `then` (the same
    /// activation). Generic over `then`, so a build compiles only the activations its model
    /// uses (an unused `clamp` was 20 KB of the MNIST build).
    fn forward_with(
        &self,
        x: Tensor<4>,
        activation: Activation,
        then: impl FnOnce(Tensor<4>) -> Tensor<4>,
    ) -> Tensor<4> {
        match self.forward_cpu(x, activation) {
            Ok(y) => y,
            Err(x) => then(self.forward_burn(x)),
        }
    }

    /// burn's operator: other backends, and what brasa's kernel refuses (a geometry that
    /// does not fit, where burn's operator fails too).
    #[cfg(feature = "wgpu")]
    fn forward_burn(&self, x: Tensor<4>) -> Tensor<4> {
        burn::nn::conv::Conv2d {
            weight: self.weight.clone(),
            bias: self.bias.clone(),
            stride: self.stride,
            kernel_size: self.kernel_size,
            dilation: self.dilation,
            groups: self.groups,
            padding: self.padding.clone(),
        }
        .forward(x)
    }

    /// A build with the CPU backend alone leaves burn's convolution out (about 70 KB of
    /// burn-flex's, per float dtype it supports): brasa's kernel runs every convolution
    /// there, and what it refuses burn's would refuse too.
    #[cfg(not(feature = "wgpu"))]
    fn forward_burn(&self, x: Tensor<4>) -> Tensor<4> {
        panic!(
            "conv2d: an input of dims {:?} does not fit weights of dims {:?} (stride {:?}, dilation {:?}, \
             groups {}, padding {:?})",
            x.dims(),
            self.weight.dims(),
            self.stride,
            self.dilation,
            self.groups,
            self.padding
        )
    }

    /// brasa's kernel, or `x` back when it does not apply. Any float dtype runs (in `f32`,
    /// the result cast back).
    #[allow(clippy::result_large_err, reason = "`Err` hands the input back: no error travels")]
    fn forward_cpu(&self, x: Tensor<4>, epilogue: impl Into<Epilogue>) -> Result<Tensor<4>, Tensor<4>> {
        let epilogue = epilogue.into();
        if !is_cpu_device(&x.device()) {
            return Err(x);
        }
        let [batch, channels, height, width] = x.dims();
        let padding = match self.padding {
            PaddingConfig2d::Valid => [0; 4],
            PaddingConfig2d::Explicit(top, left, bottom, right) => [top, left, bottom, right],
            PaddingConfig2d::Same => {
                let (top, bottom) = same_padding(self.kernel_size[0], self.stride[0], height);
                let (left, right) = same_padding(self.kernel_size[1], self.stride[1], width);
                [top, left, bottom, right]
            }
        };
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
        let Some(packed) = self.packed(geometry, [out_h, out_w]) else { return Err(x) };
        in_f32(x, [batch, out_channels, out_h, out_w], |input| packed.run(input, height, width, epilogue))
    }

    /// The packed weights, packed now (for outputs of `output`, the first input's) if these
    /// weights have not been.
    fn packed(&self, geometry: Conv2dGeometry, output: [usize; 2]) -> Option<Arc<PackedConv2d>> {
        let mut slot = self.packed.0.lock().ok()?;
        if let Some((id, packed)) = slot.as_ref()
            && *id == self.weight.id
            && *packed.geometry() == geometry
        {
            return Some(packed.clone());
        }
        // Weights of another float dtype (f16 files) are packed in f32.
        let weight = self.weight.val().try_into_data().ok()?.convert::<f32>();
        let bias = match &self.bias {
            Some(b) => Some(b.val().try_into_data().ok()?.convert::<f32>()),
            None => None,
        };
        let bias = match &bias {
            Some(b) => Some(b.as_slice::<f32>().ok()?),
            None => None,
        };
        let packed =
            Arc::new(PackedConv2d::for_output(geometry, weight.as_slice::<f32>().ok()?, bias, Some(output))?);
        *slot = Some((self.weight.id, packed.clone()));
        Some(packed)
    }
}

/// Element-wise steps after a convolution, for [`Conv2d::forward_fused`]; each constant is a
/// tensor of one element (an ONNX initializer of shape `[1]`), broadcast as the generated
/// code broadcasts it (`[1, 1, 1, n]`).
#[derive(Debug, Clone, Default)]
pub struct ConvEpilogue {
    steps: Vec<EpilogueStep>,
}

#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant, reason = "a handful per convolution, made once per run")]
enum EpilogueStep {
    Mul(Tensor<1>),
    Add(Tensor<1>),
    Relu,
    Clip(f64, f64),
    HardSwish { add: Tensor<1>, min: f64, max: f64, div: Tensor<1> },
}

impl ConvEpilogue {
    /// No steps.
    pub fn new() -> Self {
        Self::default()
    }

    /// `y · k` (ONNX `Mul` by a constant).
    pub fn scale(mut self, k: Tensor<1>) -> Self {
        self.steps.push(EpilogueStep::Mul(k));
        self
    }

    /// `y + k` (ONNX `Add` of a constant).
    pub fn shift(mut self, k: Tensor<1>) -> Self {
        self.steps.push(EpilogueStep::Add(k));
        self
    }

    /// `max(0, y)`.
    pub fn relu(mut self) -> Self {
        self.steps.push(EpilogueStep::Relu);
        self
    }

    /// ONNX `Clip`: `min(max, max(min, y))`.
    pub fn clip(mut self, min: f64, max: f64) -> Self {
        self.steps.push(EpilogueStep::Clip(min, max));
        self
    }

    /// `y · clip(y + add, min, max) / div`: hard-swish as exporters spell it out (3, 0, 6, 6).
    pub fn hard_swish(mut self, add: Tensor<1>, min: f64, max: f64, div: Tensor<1>) -> Self {
        self.steps.push(EpilogueStep::HardSwish { add, min, max, div });
        self
    }

    /// The steps with burn's operators, as the graph would run them unfused.
    fn apply(self, mut y: Tensor<4>) -> Tensor<4> {
        let wide = |k: Tensor<1>| k.unsqueeze_dims::<4>(&[0, 1, 2]);
        for step in self.steps {
            y = match step {
                EpilogueStep::Mul(k) => y.mul(wide(k)),
                EpilogueStep::Add(k) => y.add(wide(k)),
                EpilogueStep::Relu => burn::tensor::activation::relu(y),
                EpilogueStep::Clip(min, max) => y.clamp(min, max),
                EpilogueStep::HardSwish { add, min, max, div } => {
                    let gate = y.clone().add(wide(add)).clamp(min, max);
                    y.mul(gate).div(wide(div))
                }
            };
        }
        y
    }

    /// The kernel's form of these steps (`[scale, shift]`, an activation, `[scale, shift]`,
    /// each optional), or `None` when they do not take it or a constant is not one `f32`.
    fn kernel_form(&self) -> Option<Epilogue> {
        let value = |k: &Tensor<1>| -> Option<f32> {
            let data = k.clone().into_data().convert::<f32>();
            match data.as_slice::<f32>().ok()? {
                [v] => Some(*v),
                _ => None,
            }
        };
        type Steps<'a> = std::iter::Peekable<std::slice::Iter<'a, EpilogueStep>>;
        // The next step's constant if `of` picks it (taken), `Some(None)` if it is another step.
        let take = |steps: &mut Steps, of: fn(&EpilogueStep) -> Option<&Tensor<1>>| -> Option<Option<f32>> {
            let Some(k) = steps.peek().and_then(|s| of(s)) else { return Some(None) };
            let v = value(k)?;
            steps.next();
            Some(Some(v))
        };
        let mut steps = self.steps.iter().peekable();
        let affine = |steps: &mut Steps| -> Option<Option<[f32; 2]>> {
            let scale = take(steps, |s| if let EpilogueStep::Mul(k) = s { Some(k) } else { None })?;
            let shift = take(steps, |s| if let EpilogueStep::Add(k) = s { Some(k) } else { None })?;
            Some(match (scale, shift) {
                (None, None) => None,
                (scale, shift) => Some([scale.unwrap_or(1.0), shift.unwrap_or(0.0)]),
            })
        };
        let pre = affine(&mut steps)?;
        let activation = match steps.peek() {
            Some(EpilogueStep::Relu) => Activation::Relu,
            Some(EpilogueStep::Clip(min, max)) => Activation::Clip { min: *min as f32, max: *max as f32 },
            Some(EpilogueStep::HardSwish { add, min, max, div }) => Activation::HardSwish {
                add: value(add)?,
                min: *min as f32,
                max: *max as f32,
                div: value(div)?,
            },
            _ => Activation::Identity,
        };
        if activation != Activation::Identity {
            steps.next();
        }
        let post = affine(&mut steps)?;
        match steps.next() {
            None => Some(Epilogue { pre, activation, post }),
            Some(_) => None,
        }
    }
}

/// burn's `Same` padding of one side, `(start, end)`: the total that keeps
/// `ceil(size / stride)` outputs, the odd one at the end (burn-nn 0.22's
/// `calculate_same_padding`, which, as burn does, counts the kernel undilated), so every
/// backend pads the same way.
fn same_padding(kernel: usize, stride: usize, size: usize) -> (usize, usize) {
    let out = size.div_ceil(stride.max(1));
    let total = if out > 0 { ((out - 1) * stride + kernel).saturating_sub(size) } else { 0 };
    (total / 2, total - total / 2)
}

/// 2-D max-pooling of an NCHW tensor: `kernel`, `strides`, `padding` as
/// `[top, left, bottom, right]`, no dilation, floor rounding. On the CPU brasa's kernel, for
/// any float dtype (in `f32`); elsewhere burn's operator, which a build with the CPU backend
/// alone leaves out.
pub fn max_pool2d(x: Tensor<4>, kernel: [usize; 2], strides: [usize; 2], padding: [usize; 4]) -> Tensor<4> {
    let pool = Pool2d { kernel, strides, padding };
    match max_pool2d_cpu(x, pool) {
        Ok(y) => y,
        Err(x) => max_pool2d_burn(x, pool),
    }
}

#[cfg(feature = "wgpu")]
fn max_pool2d_burn(x: Tensor<4>, pool: Pool2d) -> Tensor<4> {
    let [top, left, bottom, right] = pool.padding;
    burn::nn::pool::MaxPool2dConfig::new(pool.kernel)
        .with_strides(pool.strides)
        .with_padding(PaddingConfig2d::Explicit(top, left, bottom, right))
        .init()
        .forward(x)
}

/// What brasa's kernel refuses (a window that does not fit) burn's would refuse too.
#[cfg(not(feature = "wgpu"))]
fn max_pool2d_burn(x: Tensor<4>, pool: Pool2d) -> Tensor<4> {
    panic!(
        "max_pool2d: a window of {:?} (padding {:?}) does not fit an input of dims {:?}",
        pool.kernel,
        pool.padding,
        x.dims()
    )
}

/// brasa's kernel, or `x` back when it does not apply. `x` is moved into its data, not cloned:
/// a clone made the buffer shared, and reading it then copied it (100 MB for SqueezeNet's
/// first pooling at batch 32, a third of its peak memory).
#[allow(clippy::result_large_err, reason = "`Err` hands the input back: no error travels")]
fn max_pool2d_cpu(x: Tensor<4>, pool: Pool2d) -> Result<Tensor<4>, Tensor<4>> {
    let [batch, channels, height, width] = x.dims();
    if !is_cpu_device(&x.device()) {
        return Err(x);
    }
    let Some([out_h, out_w]) = pool.output_size(height, width) else { return Err(x) };
    in_f32(x, [batch, channels, out_h, out_w], |input| kernels::max_pool2d(input, height, width, pool))
}

/// `kernel` over `x`'s values as `f32` (another float dtype is cast there, and the result
/// back), giving a tensor of `dims` on `x`'s device; `x` back when `kernel` declines. `x` is
/// moved into its data: a tensor nothing else holds gives its buffer without a copy.
#[allow(clippy::result_large_err, reason = "`Err` hands the input back: no error travels")]
fn in_f32(
    x: Tensor<4>,
    dims: [usize; 4],
    kernel: impl FnOnce(&[f32]) -> Option<Vec<f32>>,
) -> Result<Tensor<4>, Tensor<4>> {
    let device = x.device();
    let dtype = x.dtype();
    let data = if dtype == DType::F32 { x.into_data() } else { x.cast(DType::F32).into_data() };
    let back = |t: Tensor<4>| if dtype == DType::F32 { t } else { t.cast(dtype) };
    match data.as_slice::<f32>().ok().and_then(kernel) {
        Some(y) => Ok(back(Tensor::from_data(TensorData::new(y, dims), &device))),
        None => Err(back(Tensor::from_data(data, &device))),
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
            let burns = burn::nn::pool::MaxPool2dConfig::new(kernel)
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

    /// burn's `Same` padding (asymmetric for an even kernel, by stride) and other float dtypes
    /// run in brasa's kernel, with burn's answers.
    #[test]
    fn conv2d_same_padding_and_f16_match_burns() {
        use burn::nn::conv::Conv2dConfig;
        let device = Device::flex();
        let values: Vec<f32> = (0..2 * 4 * 10 * 7).map(|i| ((i * 7919) % 89) as f32 / 44.0 - 1.0).collect();
        let x = Tensor::<4>::from_data(TensorData::new(values, [2, 4, 10, 7]), &device);
        for (kernel, stride, dilation) in
            [([3, 3], [1, 1], [1, 1]), ([4, 2], [1, 1], [1, 1]), ([3, 4], [2, 3], [1, 1])]
        {
            let burns = Conv2dConfig::new([4, 5], kernel)
                .with_stride(stride)
                .with_dilation(dilation)
                .with_padding(PaddingConfig2d::Same)
                .init(&device);
            let ours = Conv2d::from(burns.clone());
            // brasa's kernel ran, not the fallback to burn's.
            let got = ours.forward_cpu(x.clone(), Activation::Identity).expect("brasa's kernel takes `Same`");
            let want = burns.forward(x.clone());
            assert_eq!(got.dims(), want.dims(), "kernel {kernel:?} stride {stride:?}");
            let (got, want) =
                (got.into_data().try_to_vec::<f32>().unwrap(), want.into_data().try_to_vec::<f32>().unwrap());
            assert!(got.iter().zip(&want).all(|(a, b)| (a - b).abs() <= 1e-5), "{got:?} vs {want:?}");
        }
        let burns = Conv2dConfig::new([4, 3], [3, 3])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init(&device);
        let ours = Conv2d::from(burns.clone());
        let got =
            ours.forward_cpu(x.clone().cast(DType::F16), Activation::Relu).expect("brasa's kernel takes f16");
        assert_eq!(got.dtype(), DType::F16);
        let want = burn::tensor::activation::relu(burns.forward(x)).into_data().try_to_vec::<f32>().unwrap();
        let got = got.cast(DType::F32).into_data().try_to_vec::<f32>().unwrap();
        // f16 keeps 11 bits: the input's rounding dominates.
        assert!(got.iter().zip(&want).all(|(a, b)| (a - b).abs() <= 2e-2), "{got:?} vs {want:?}");
    }

    /// The steps folded into the kernel's store give what burn's operators give after the
    /// convolution; steps that do not fit the kernel's form (a constant of several values) run
    /// after it, as burn's.
    #[test]
    fn fused_epilogues_match_the_unfused_steps() {
        use burn::nn::conv::Conv2dConfig;
        let device = Device::flex();
        let values: Vec<f32> = (0..3 * 7 * 6).map(|i| ((i * 7919) % 83) as f32 / 20.0 - 2.0).collect();
        let x = Tensor::<4>::from_data(TensorData::new(values, [1, 3, 7, 6]), &device);
        let one = |v: f32| Tensor::<1>::from_data(TensorData::new(vec![v], [1]), &device);
        let burns = Conv2dConfig::new([3, 4], [3, 3])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init(&device);
        let ours = Conv2d::from(burns.clone());
        let y = burns.forward(x.clone());
        let wide = |v: f32| one(v).unsqueeze_dims::<4>(&[0, 1, 2]);
        let swish = |y: Tensor<4>| y.clone().mul(y.add(wide(3.0)).clamp(0.0, 6.0)).div(wide(6.0));
        let cases = [
            (
                ConvEpilogue::new().scale(one(1.5)).shift(one(-0.5)),
                y.clone().mul(wide(1.5)).add(wide(-0.5)),
                true,
            ),
            (
                ConvEpilogue::new()
                    .scale(one(0.5))
                    .shift(one(0.25))
                    .hard_swish(one(3.0), 0.0, 6.0, one(6.0))
                    .scale(one(2.0))
                    .shift(one(-1.0)),
                swish(y.clone().mul(wide(0.5)).add(wide(0.25))).mul(wide(2.0)).add(wide(-1.0)),
                true,
            ),
            (
                ConvEpilogue::new().shift(one(0.5)).relu(),
                burn::tensor::activation::relu(y.clone().add(wide(0.5))),
                true,
            ),
            (
                ConvEpilogue::new().clip(-1.0, 1.0).scale(one(3.0)),
                y.clone().clamp(-1.0, 1.0).mul(wide(3.0)),
                true,
            ),
            // Two activations, and a constant of one value per column: not the kernel's form.
            (ConvEpilogue::new().relu().relu(), burn::tensor::activation::relu(y.clone()), false),
            (
                ConvEpilogue::new().scale(Tensor::<1>::from_data(
                    TensorData::new(vec![1.0f32, -1.0, 2.0, 0.5, -3.0, 1.0], [6]),
                    &device,
                )),
                y.clone().mul(
                    Tensor::<1>::from_data(
                        TensorData::new(vec![1.0f32, -1.0, 2.0, 0.5, -3.0, 1.0], [6]),
                        &device,
                    )
                    .unsqueeze_dims::<4>(&[0, 1, 2]),
                ),
                false,
            ),
        ];
        for (i, (epilogue, want, fits)) in cases.into_iter().enumerate() {
            assert_eq!(epilogue.kernel_form().is_some(), fits, "case {i}");
            let got = ours.forward_fused(x.clone(), epilogue);
            assert_eq!(got.dims(), want.dims(), "case {i}");
            let (got, want) =
                (got.into_data().try_to_vec::<f32>().unwrap(), want.into_data().try_to_vec::<f32>().unwrap());
            assert!(
                got.iter().zip(&want).all(|(a, b)| (a - b).abs() <= 1e-5),
                "case {i}: {got:?} vs {want:?}"
            );
        }
    }

    #[test]
    fn same_padding_is_burns() {
        // (kernel, stride, size) → (start, end), by burn-nn 0.22's formula.
        assert_eq!(same_padding(3, 1, 10), (1, 1));
        assert_eq!(same_padding(4, 1, 10), (1, 2));
        assert_eq!(same_padding(3, 2, 7), (1, 1));
        assert_eq!(same_padding(1, 2, 8), (0, 0));
        assert_eq!(same_padding(5, 3, 0), (0, 0));
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
