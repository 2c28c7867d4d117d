//! brasa's 2-D convolution for the CPU build: NCHW `f32`, any kernel size, stride, padding,
//! dilation and groups, with the bias and a following activation fused into the store.
//!
//! Two algorithms, picked per layer when the weights are packed ([`PackedConv2d::new`]):
//! - **GEMM** (every grouping but depthwise): `out[co, p] = Σ_k W[co, k] · col[k, p]` with
//!   `k = (ci, ky, kx)` and `p` an output position. The weights are packed once per load, into
//!   panels of [`MR`] output channels interleaved along `k`. The columns are one image's
//!   im2col at a time (never the batch's), written row by row of the output with one copy per
//!   row and tap; a 1×1 convolution with stride 1 reads its input in place. A
//!   register-blocked [`MR`]×[`NR`] micro-kernel multiplies a weight panel by [`NR`] columns,
//!   in BLIS's loop order (Van Zee & van de Geijn, "BLIS: A Framework for Rapidly
//!   Instantiating BLAS Functionality", 2015): a block of columns of about [`L2_BLOCK_BYTES`]
//!   outermost, so it stays in L2 while every weight panel passes over it.
//! - **Direct depthwise** (`groups == in_channels == out_channels`): one padded input plane per
//!   channel, eight outputs at a time accumulated over all taps in registers — a GEMM would
//!   have one row per group.
//!
//! In wasm the micro-kernel is written with SIMD intrinsics (LLVM's own vectorisation of the
//! plain loop was 35% slower on SqueezeNet): `f32x4.mul` and `f32x4.add`, or with relaxed SIMD
//! enabled (the `cpu-relaxed` builds) `f32x4.relaxed_madd`, a fused multiply-add where the
//! engine has FMA — results then differ from the unfused path by rounding, as XNNPACK's FMA
//! kernels' do. Natively it is plain Rust that LLVM vectorises.
//!
//! With the `threads` feature the output channels' panels, the im2col rows and the depthwise
//! channels are split across rayon's pool (in wasm, wasm-bindgen-rayon's Web Workers), one
//! fork-join per step of a layer.
//!
//! Every entry point validates its sizes and returns `None` rather than panicking: a panic
//! aborts a wasm instance.

use std::cell::RefCell;

use crate::parallel::{for_each_chunk_if, parallelism};

/// Output channels per micro-kernel tile (rows of the packed weights).
pub const MR: usize = 4;
/// Output positions per micro-kernel tile (columns of a packed input panel): two `f32x4`.
pub const NR: usize = 8;
/// Bytes of im2col columns one block may take: half of a typical 256 KiB L2, so a weight
/// panel and the outputs stay cached beside it.
const L2_BLOCK_BYTES: usize = 128 * 1024;

/// The activation applied to `conv + bias` as the result is stored.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Activation {
    /// None: `y = conv + bias`.
    Identity,
    /// `y = max(0, conv + bias)`.
    Relu,
    /// `y = min(max, max(min, conv + bias))`: ONNX `Clip`, e.g. ReLU6 with `0, 6`.
    Clip {
        /// Lower bound.
        min: f32,
        /// Upper bound.
        max: f32,
    },
    /// `y = x · min(max, max(min, x + add)) / div`, `x = conv + bias`: hard-swish as ONNX
    /// exporters spell it out (`Add`, `Clip`, `Mul`, `Div`; 3, 0, 6, 6), in that order.
    HardSwish {
        /// Added before the clip.
        add: f32,
        /// Lower bound of the clip.
        min: f32,
        /// Upper bound of the clip.
        max: f32,
        /// Divisor of the product.
        div: f32,
    },
}

impl Activation {
    /// Comparisons, not `f32::max`/`min`: those are calls to libm's `fmaxf` in wasm (its NaN
    /// rule differs from `f32.max`'s), which took 16% of SqueezeNet's time. A NaN stays NaN,
    /// as in burn's operators, so the output check still sees it.
    #[inline(always)]
    fn apply(self, v: f32) -> f32 {
        match self {
            Activation::Identity => v,
            Activation::Relu => {
                if v < 0.0 {
                    0.0
                } else {
                    v
                }
            }
            // ONNX `Clip`: max(min) first, then min(max), so `min > max` gives `max`.
            Activation::Clip { min, max } => clip(v, min, max),
            Activation::HardSwish { add, min, max, div } => v * clip(v + add, min, max) / div,
        }
    }
}

#[inline(always)]
fn clip(v: f32, min: f32, max: f32) -> f32 {
    let v = if v < min { min } else { v };
    if v > max { max } else { v }
}

/// What is applied to each `x = conv + bias` as it is stored:
/// `y = post[0] · activation(pre[0] · x + pre[1]) + post[1]`, each multiply and add rounded
/// as the ONNX `Mul` and `Add` nodes it stands for would round it. `pre` and `post` are the
/// per-layer affine steps of networks such as PP-LCNet (its "learnable affine blocks"); a
/// missing one is skipped, not applied as `1 · y + 0`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Epilogue {
    /// `[scale, shift]` before the activation.
    pub pre: Option<[f32; 2]>,
    /// The activation.
    pub activation: Activation,
    /// `[scale, shift]` after it.
    pub post: Option<[f32; 2]>,
}

impl From<Activation> for Epilogue {
    fn from(activation: Activation) -> Self {
        Epilogue { pre: None, activation, post: None }
    }
}

impl Epilogue {
    #[inline(always)]
    fn apply(self, x: f32) -> f32 {
        let x = match self.pre {
            Some([scale, shift]) => scale * x + shift,
            None => x,
        };
        let y = self.activation.apply(x);
        match self.post {
            Some([scale, shift]) => scale * y + shift,
            None => y,
        }
    }
}

/// Geometry of a 2-D convolution, as ONNX `Conv` and burn's `Conv2d` define it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv2dGeometry {
    /// Input channels (all groups).
    pub in_channels: usize,
    /// Output channels (all groups).
    pub out_channels: usize,
    /// `[height, width]` of the kernel.
    pub kernel: [usize; 2],
    /// `[vertical, horizontal]` stride.
    pub stride: [usize; 2],
    /// `[vertical, horizontal]` dilation.
    pub dilation: [usize; 2],
    /// Zero padding `[top, left, bottom, right]`.
    pub padding: [usize; 4],
    /// Groups: input and output channels are split into this many independent convolutions.
    pub groups: usize,
}

impl Conv2dGeometry {
    /// `[height, width]` of the output for an input of `height × width`, or `None` when the
    /// kernel does not fit (or the geometry is degenerate: a zero stride, dilation or size).
    pub fn output_size(&self, height: usize, width: usize) -> Option<[usize; 2]> {
        let [top, left, bottom, right] = self.padding;
        let side = |size: usize, pad: usize, kernel: usize, stride: usize, dilation: usize| {
            if stride == 0 || dilation == 0 || kernel == 0 {
                return None;
            }
            let span = dilation.checked_mul(kernel - 1)?.checked_add(1)?;
            let padded = size.checked_add(pad)?;
            Some(padded.checked_sub(span)? / stride + 1)
        };
        Some([
            side(height, top.checked_add(bottom)?, self.kernel[0], self.stride[0], self.dilation[0])?,
            side(width, left.checked_add(right)?, self.kernel[1], self.stride[1], self.dilation[1])?,
        ])
    }

    fn is_depthwise(&self) -> bool {
        self.groups > 1 && self.groups == self.in_channels && self.groups == self.out_channels
    }
}

/// Fewest multiply-adds a task of a split layer gets. About 20 µs of work in wasm, the
/// order of what waking a pool thread and joining it costs.
const MIN_TASK_WORK: usize = 1 << 18;

/// Fewest input and output channels for which a 3×3 convolution takes Winograd's algorithm:
/// its transforms cost per channel what the GEMM saves per pair of channels.
const WINOGRAD_MIN_CHANNELS: usize = 8;

/// Smallest output side for which a 3×3 convolution takes F(4×4, 3×3) rather than F(2×2, 3×3).
const WINOGRAD4_MIN_SIDE: usize = 16;

/// How a layer is computed, fixed when its weights are packed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Algorithm {
    /// im2col (or the input in place) times the packed weights.
    Gemm,
    /// One channel at a time, taps accumulated in registers.
    Depthwise,
    /// Winograd's F(2×2, 3×3) (Lavin & Gray, "Fast Algorithms for Convolutional Neural
    /// Networks", 2016): 16 multiplies per 2×2 outputs and channel pair instead of 36.
    Winograd2,
    /// Winograd's F(4×4, 3×3): 36 multiplies per 4×4 outputs instead of 144, for outputs of
    /// at least [`WINOGRAD4_MIN_SIDE`] a side (on smaller ones the last row and column of
    /// tiles are mostly padding). Its transforms have larger constants, so its rounding error
    /// is a few times F(2×2, 3×3)'s; both stay far inside the model tests' 1e-4.
    Winograd4,
}

impl Algorithm {
    fn for_geometry(g: &Conv2dGeometry, output: Option<[usize; 2]>) -> Self {
        if g.is_depthwise() {
            Algorithm::Depthwise
        } else if g.groups == 1
            && g.kernel == [3, 3]
            && g.stride == [1, 1]
            && g.dilation == [1, 1]
            && g.in_channels >= WINOGRAD_MIN_CHANNELS
            && g.out_channels >= WINOGRAD_MIN_CHANNELS
        {
            match output {
                Some([h, w]) if h >= WINOGRAD4_MIN_SIDE && w >= WINOGRAD4_MIN_SIDE => Algorithm::Winograd4,
                _ => Algorithm::Winograd2,
            }
        } else {
            Algorithm::Gemm
        }
    }
}

/// A convolution's weights packed for [`PackedConv2d::run`], made once per load.
#[derive(Debug, Clone)]
pub struct PackedConv2d {
    geometry: Conv2dGeometry,
    algorithm: Algorithm,
    /// GEMM: per group, `ceil(M / MR)` panels of `K × MR` (zero rows past `M`). Depthwise:
    /// the weights as given, `[channels, kh * kw]`. Winograd: per point `ξ` of the 4×4
    /// transform, `ceil(M / MR)` panels of `in_channels × MR` of `U = G·g·Gᵀ`.
    weights: Vec<f32>,
    bias: Vec<f32>,
}

impl PackedConv2d {
    /// Pack `weight` (`[out_channels, in_channels / groups, kh, kw]`, row-major) and `bias`
    /// (`[out_channels]`, zeros when absent) for `geometry`. `None` when the lengths do not
    /// match the geometry or the channels do not divide into the groups.
    pub fn new(geometry: Conv2dGeometry, weight: &[f32], bias: Option<&[f32]>) -> Option<Self> {
        Self::for_output(geometry, weight, bias, None)
    }

    /// [`PackedConv2d::new`], the algorithm chosen for outputs of `output` (`[height, width]`,
    /// the first input's; any size still runs): a 3×3 convolution with large outputs takes
    /// F(4×4, 3×3).
    pub fn for_output(
        geometry: Conv2dGeometry,
        weight: &[f32],
        bias: Option<&[f32]>,
        output: Option<[usize; 2]>,
    ) -> Option<Self> {
        let Conv2dGeometry { in_channels, out_channels, kernel, groups, .. } = geometry;
        if groups == 0
            || !in_channels.is_multiple_of(groups)
            || !out_channels.is_multiple_of(groups)
            || kernel.contains(&0)
            || geometry.stride.contains(&0)
            || geometry.dilation.contains(&0)
        {
            return None;
        }
        let m = out_channels / groups;
        let k = (in_channels / groups).checked_mul(kernel[0])?.checked_mul(kernel[1])?;
        if weight.len() != out_channels.checked_mul(k)? {
            return None;
        }
        let bias = match bias {
            Some(b) if b.len() == out_channels => b.to_vec(),
            Some(_) => return None,
            None => vec![0.0; out_channels],
        };
        let algorithm = Algorithm::for_geometry(&geometry, output);
        let weights = if algorithm == Algorithm::Depthwise {
            weight.to_vec()
        } else if algorithm == Algorithm::Winograd2 {
            winograd::pack_weights(weight, out_channels, in_channels, winograd::kernel2)
        } else if algorithm == Algorithm::Winograd4 {
            winograd::pack_weights(weight, out_channels, in_channels, winograd::kernel4)
        } else {
            let panels = m.div_ceil(MR);
            let mut packed = vec![0.0f32; groups * panels * k * MR];
            for g in 0..groups {
                let group = &mut packed[g * panels * k * MR..][..panels * k * MR];
                for (panel, dst) in group.chunks_exact_mut(k * MR).enumerate() {
                    for r in 0..MR.min(m - panel * MR) {
                        let row = &weight[(g * m + panel * MR + r) * k..][..k];
                        for (kk, &v) in row.iter().enumerate() {
                            dst[kk * MR + r] = v;
                        }
                    }
                }
            }
            packed
        };
        Some(PackedConv2d { geometry, algorithm, weights, bias })
    }

    /// The geometry these weights were packed for.
    pub fn geometry(&self) -> &Conv2dGeometry {
        &self.geometry
    }

    /// Convolve `input` (`[batch, in_channels, height, width]`, row-major) and apply
    /// `epilogue` (an [`Activation`] alone, or with affine steps); returns
    /// `[batch, out_channels, out_h, out_w]` (see
    /// [`Conv2dGeometry::output_size`]). `None` when `input`'s length is not a whole batch of
    /// such images or the kernel does not fit.
    pub fn run(
        &self,
        input: &[f32],
        height: usize,
        width: usize,
        epilogue: impl Into<Epilogue>,
    ) -> Option<Vec<f32>> {
        let epilogue = epilogue.into();
        let g = &self.geometry;
        let [out_h, out_w] = g.output_size(height, width)?;
        let image = g.in_channels.checked_mul(height)?.checked_mul(width)?;
        if image == 0 || !input.len().is_multiple_of(image) {
            return None;
        }
        let batch = input.len() / image;
        let out_image = g.out_channels.checked_mul(out_h)?.checked_mul(out_w)?;
        let mut out = vec![0.0f32; batch.checked_mul(out_image)?];
        if out_image == 0 {
            return Some(out);
        }
        // Images split across the pool first; each image's steps split further only when the
        // batch is too small to keep the threads busy on its own, and into no more tasks than
        // the work pays for: waking a pool thread in wasm costs more than a squeeze-excite
        // block's 1×1 convolutions take.
        let work = out_image.saturating_mul(g.in_channels / g.groups * g.kernel[0] * g.kernel[1]);
        let tasks =
            if batch < 2 * parallelism() { (work / MIN_TASK_WORK).clamp(1, parallelism()) } else { 1 };
        let shape = Shape {
            height,
            width,
            out_h,
            out_w,
            tasks,
            split_images: work.saturating_mul(batch) >= 2 * MIN_TASK_WORK,
        };
        // The store is compiled per common epilogue (a general one in the hot store loop cost
        // SqueezeNet 3–5%: its branches were not hoisted out of it), and each form is one more
        // copy of an algorithm's loops (kilobytes of wasm), so there are few: identity, ReLU and
        // clips run as a clip (to [-∞, ∞] or [0, ∞]: the same results, NaN included), and the
        // GEMM has PP-LCNet's affine, hard-swish, affine (its pointwise convolutions) too.
        // Any other epilogue runs after the convolution as a pass of its own
        // (`apply_epilogue`), over an image's output or a depthwise plane still in cache.
        let clip_bounds = match epilogue {
            Epilogue { pre: None, activation: Activation::Identity, post: None } => {
                Some((f32::NEG_INFINITY, f32::INFINITY))
            }
            Epilogue { pre: None, activation: Activation::Relu, post: None } => Some((0.0, f32::INFINITY)),
            Epilogue { pre: None, activation: Activation::Clip { min, max }, post: None } => Some((min, max)),
            _ => None,
        };
        let lcnet = match epilogue {
            Epilogue {
                pre: Some([s1, t1]),
                activation: Activation::HardSwish { add, min, max, div },
                post: Some([s2, t2]),
            } => Some(move |v: f32| {
                let x = s1 * v + t1;
                s2 * (x * clip(x + add, min, max) / div) + t2
            }),
            _ => None,
        };
        let (min, max) = clip_bounds.unwrap_or((f32::NEG_INFINITY, f32::INFINITY));
        let clip_only = move |v: f32| clip(v, min, max);
        let rest = if clip_bounds.is_some() { None } else { Some(epilogue) };
        let after = |dst: &mut [f32]| {
            if let Some(epilogue) = rest {
                apply_epilogue(dst, epilogue);
            }
        };
        match self.algorithm {
            Algorithm::Gemm => match lcnet {
                Some(store) => {
                    self.run_images(input, &mut out, shape, |src, dst| self.gemm(src, dst, shape, store))
                }
                _ => self.run_images(input, &mut out, shape, |src, dst| {
                    self.gemm(src, dst, shape, clip_only);
                    after(dst);
                }),
            },
            Algorithm::Depthwise => self.run_images(input, &mut out, shape, |src, dst| {
                self.depthwise(src, dst, shape, clip_only, rest)
            }),
            Algorithm::Winograd2 => self.run_images(input, &mut out, shape, |src, dst| {
                self.winograd::<16, 4, 2>(
                    src,
                    dst,
                    shape,
                    clip_only,
                    winograd::transform_input2,
                    winograd::transform_output2,
                );
                after(dst);
            }),
            Algorithm::Winograd4 => self.run_images(input, &mut out, shape, |src, dst| {
                self.winograd::<36, 16, 4>(
                    src,
                    dst,
                    shape,
                    clip_only,
                    winograd::transform_input4,
                    winograd::transform_output4,
                );
                after(dst);
            }),
        }
        Some(out)
    }

    /// Each image of `input` into its part of `out` by `image(src, dst)`.
    fn run_images(
        &self,
        input: &[f32],
        out: &mut [f32],
        shape: Shape,
        image: impl Fn(&[f32], &mut [f32]) + Sync + Send,
    ) {
        let g = &self.geometry;
        let size = g.in_channels * shape.height * shape.width;
        let out_image = g.out_channels * shape.out_h * shape.out_w;
        // Images in parallel (each one's own steps split further when threads are idle).
        for_each_chunk_if(shape.split_images, out, out_image, |i, dst| {
            image(&input[i * size..][..size], dst)
        });
    }

    /// One image through the packed GEMM, group by group.
    fn gemm(&self, src: &[f32], dst: &mut [f32], shape: Shape, store: impl Fn(f32) -> f32 + Copy + Sync) {
        let g = &self.geometry;
        let groups = g.groups;
        let m = g.out_channels / groups;
        let cin = g.in_channels / groups;
        let k = cin * g.kernel[0] * g.kernel[1];
        let n = shape.out_h * shape.out_w;
        let panels = n.div_ceil(NR);
        let a_panels = m.div_ceil(MR);
        // Panels of positions per cache block: the multiply walks the columns a block at a
        // time, so one block stays in L2 while every weight panel passes over it.
        let block = (L2_BLOCK_BYTES / (k * NR * 4)).clamp(1, panels);
        // A 1×1 convolution with stride 1 and no padding reads its input in place: each input
        // channel is a row of columns already (stride: the image's positions); only a last,
        // partial panel is copied (zero-padded).
        let pointwise = g.kernel == [1, 1] && g.stride == [1, 1] && g.padding == [0; 4];
        // Weight panels per task: one task per thread (one fork-join per layer: in wasm, waking
        // a worker costs tens of µs, more than many layers' whole work per panel).
        let per_task = a_panels.div_ceil(shape.tasks);
        // The image's im2col, made afresh: a buffer kept per thread would still be borrowed
        // when rayon, waiting on this image's tasks, runs another image's on the same thread.
        let mut cols = vec![0.0f32; if pointwise { k * NR } else { panels * NR * k }];
        for group in 0..groups {
            let plane = &src[group * cin * shape.height * shape.width..][..cin * shape.height * shape.width];
            let weights = &self.weights[group * a_panels * k * MR..][..a_panels * k * MR];
            let bias = &self.bias[group * m..][..m];
            let out = &mut dst[group * m * n..][..m * n];
            if !pointwise {
                // The image's im2col, `[k][panels · NR]`: one pass, split by rows of `k`.
                pack_columns(plane, cin, g, shape, 0, &mut cols);
            } else if !n.is_multiple_of(NR) {
                pack_columns(plane, cin, g, shape, panels - 1, &mut cols);
            }
            let cols: &[f32] = &cols;
            // Panel `p`'s columns: where they start, and their stride.
            let columns = |p: usize| -> (&[f32], usize) {
                let x0 = p * NR;
                match pointwise {
                    true if x0 + NR <= n => (&plane[x0..], n),
                    true => (cols, NR),
                    false => (&cols[x0..], panels * NR),
                }
            };
            // Each task owns whole panels of MR output channels: contiguous rows of `out`.
            for_each_chunk_if(shape.tasks > 1, out, per_task * MR * n, |task, rows| {
                for first in (0..panels).step_by(block) {
                    for (i, rows) in rows.chunks_mut(MR * n).enumerate() {
                        let panel = task * per_task + i;
                        let a = &weights[panel * k * MR..][..k * MR];
                        let channels = rows.len() / n;
                        for p in first..(first + block).min(panels) {
                            let (b, stride) = columns(p);
                            let acc = micro_kernel(a, b, stride);
                            let x0 = p * NR;
                            let width = NR.min(n - x0);
                            for (r, acc_row) in acc.iter().enumerate().take(channels) {
                                let bias = bias[panel * MR + r];
                                let row = &mut rows[r * n + x0..][..width];
                                for (d, &v) in row.iter_mut().zip(acc_row) {
                                    *d = store(v + bias);
                                }
                            }
                        }
                    }
                }
            });
        }
    }

    /// One image through the direct depthwise convolution. Each padded input row is stored
    /// as its `stride` phases (the columns `≡ p` mod the stride, one after another), so every
    /// tap reads its outputs' inputs contiguously at any stride: PP-LCNet's stride-2 layers
    /// ran a scalar strided loop before.
    fn depthwise(
        &self,
        src: &[f32],
        dst: &mut [f32],
        shape: Shape,
        store: impl Fn(f32) -> f32 + Copy + Sync,
        rest: Option<Epilogue>,
    ) {
        let g = &self.geometry;
        let [kh, kw] = g.kernel;
        let [sy, sx] = g.stride;
        let [dy, dx] = g.dilation;
        let [top, left, bottom, right] = g.padding;
        let (ph, pw) = (shape.height + top + bottom, shape.width + left + right);
        // Where phase `p` starts in a stored row, and where tap `kx`'s inputs start.
        let phase_start: Vec<usize> =
            (0..sx).map(|p| (0..p).map(|q| pw.saturating_sub(q).div_ceil(sx)).sum()).collect();
        let tap_start: Vec<usize> = (0..kw).map(|kx| phase_start[kx * dx % sx] + kx * dx / sx).collect();
        let plane_in = shape.height * shape.width;
        let plane_out = shape.out_h * shape.out_w;
        for_each_chunk_if(shape.tasks > 1, dst, plane_out, |c, out| {
            PLANE.with(|padded| {
                let mut padded = padded.borrow_mut();
                padded.clear();
                padded.resize(ph * pw, 0.0);
                let input = &src[c * plane_in..][..plane_in];
                for (y, row) in input.chunks_exact(shape.width).enumerate() {
                    let line = &mut padded[(y + top) * pw..][..pw];
                    if sx == 1 {
                        line[left..][..shape.width].copy_from_slice(row);
                    } else {
                        // Phase `p` holds padded columns `p, p + sx, …`: input columns from
                        // `first` on, every `sx`-th, one after another (no division per value).
                        for (p, &start) in phase_start.iter().enumerate() {
                            let first = (p + sx - left % sx) % sx;
                            let dst = &mut line[start + (first + left) / sx..];
                            for (d, &v) in dst.iter_mut().zip(row.iter().skip(first).step_by(sx)) {
                                *d = v;
                            }
                        }
                    }
                }
                let taps = &self.weights[c * kh * kw..][..kh * kw];
                let bias = self.bias[c];
                let rows = Rows { padded: &padded, pw, sy, dy, out_w: shape.out_w, bias };
                // The common kernels with their sizes known at compile time: the taps then stay
                // in registers and the loops unroll (PP-LCNet's 3×3 and 5×5: PP-OCRv4 det −7%).
                // Rows narrower than a block (rare) take the general taps only: each copy of
                // the unrolled loops is kilobytes of wasm.
                let any = AnyTaps { taps, tap_start: &tap_start, kh };
                match (kh, kw) {
                    _ if shape.out_w < 8 => rows.run_narrow(&any, out, store),
                    (3, 3) => rows.run(&FixedTaps::<3, 3>::new(taps, &tap_start), out, store),
                    (5, 5) => rows.run(&FixedTaps::<5, 5>::new(taps, &tap_start), out, store),
                    _ => rows.run(&any, out, store),
                }
                // Other epilogues over the channel's plane while it is in cache.
                if let Some(epilogue) = rest {
                    apply_epilogue(out, epilogue);
                }
            });
        });
    }
}

/// `epilogue` over `values` in place, one plain loop per form (the branches outside it).
fn apply_epilogue(values: &mut [f32], epilogue: Epilogue) {
    match epilogue {
        Epilogue {
            pre: Some([s1, t1]),
            activation: Activation::HardSwish { add, min, max, div },
            post: Some([s2, t2]),
        } => {
            for v in values {
                let x = s1 * *v + t1;
                *v = s2 * (x * clip(x + add, min, max) / div) + t2;
            }
        }
        _ => {
            for v in values {
                *v = epilogue.apply(*v);
            }
        }
    }
}

/// One depthwise channel's stored input plane (padded, each row split by stride phase) and
/// what its output rows need.
struct Rows<'a> {
    padded: &'a [f32],
    pw: usize,
    sy: usize,
    dy: usize,
    out_w: usize,
    bias: f32,
}

impl Rows<'_> {
    /// Every output row of the channel into `out`, `store` applied; rows of at least 8.
    #[inline(always)]
    fn run(&self, taps: &impl DepthwiseTaps, out: &mut [f32], store: impl Fn(f32) -> f32) {
        let out_w = self.out_w;
        for (oy, out_row) in out.chunks_exact_mut(out_w).enumerate() {
            let line = |ky: usize| &self.padded[(oy * self.sy + ky * self.dy) * self.pw..][..self.pw];
            // Eight outputs at a time kept in registers across all taps (one pass over the row
            // instead of one per tap). A row's last block ends at its end and may overlap the
            // one before (those outputs are stored twice, the same): PP-LCNet's 10- and
            // 20-wide rows had a scalar tail of a fifth of them.
            for x0 in (0..out_w - 8).step_by(8).chain([out_w - 8]) {
                let acc: [f32; 8] = taps.block(line, x0, self.bias);
                for (o, a) in out_row[x0..x0 + 8].iter_mut().zip(acc) {
                    *o = store(a);
                }
            }
        }
    }

    /// [`Rows::run`] for rows of fewer than 8 outputs: four at a time (overlapping), or one.
    fn run_narrow(&self, taps: &AnyTaps, out: &mut [f32], store: impl Fn(f32) -> f32) {
        let out_w = self.out_w;
        for (oy, out_row) in out.chunks_exact_mut(out_w).enumerate() {
            let line = |ky: usize| &self.padded[(oy * self.sy + ky * self.dy) * self.pw..][..self.pw];
            if out_w >= 4 {
                for x0 in [0, out_w - 4] {
                    let acc: [f32; 4] = taps.block(line, x0, self.bias);
                    for (o, a) in out_row[x0..x0 + 4].iter_mut().zip(acc) {
                        *o = store(a);
                    }
                }
            } else {
                for (x0, o) in out_row.iter_mut().enumerate() {
                    let [acc]: [f32; 1] = taps.block(line, x0, self.bias);
                    *o = store(acc);
                }
            }
        }
    }
}

/// A depthwise channel's taps: how `N` neighbouring outputs of a row are summed.
trait DepthwiseTaps {
    /// `bias + Σ taps · inputs` for outputs `x0..x0 + N` of the row whose input rows
    /// `line(ky)` gives; tap `(ky, kx)` reads `line(ky)[start(kx) + x0..][..N]`.
    fn block<'a, const N: usize>(&self, line: impl Fn(usize) -> &'a [f32], x0: usize, bias: f32) -> [f32; N];
}

/// Taps of a `KH × KW` kernel known at compile time.
struct FixedTaps<const KH: usize, const KW: usize> {
    taps: [[f32; KW]; KH],
    start: [usize; KW],
}

impl<const KH: usize, const KW: usize> FixedTaps<KH, KW> {
    fn new(taps: &[f32], tap_start: &[usize]) -> Self {
        FixedTaps {
            taps: std::array::from_fn(|ky| std::array::from_fn(|kx| taps[ky * KW + kx])),
            start: std::array::from_fn(|kx| tap_start[kx]),
        }
    }
}

impl<const KH: usize, const KW: usize> DepthwiseTaps for FixedTaps<KH, KW> {
    #[inline(always)]
    fn block<'a, const N: usize>(&self, line: impl Fn(usize) -> &'a [f32], x0: usize, bias: f32) -> [f32; N] {
        let mut acc = [bias; N];
        for (ky, taps) in self.taps.iter().enumerate() {
            let line = line(ky);
            for (&tap, &start) in taps.iter().zip(&self.start) {
                if let Some(src) = line[start + x0..].first_chunk::<N>() {
                    for (a, &v) in acc.iter_mut().zip(src) {
                        *a += tap * v;
                    }
                }
            }
        }
        acc
    }
}

/// Taps of any kernel size.
struct AnyTaps<'t> {
    taps: &'t [f32],
    tap_start: &'t [usize],
    kh: usize,
}

impl DepthwiseTaps for AnyTaps<'_> {
    #[inline(always)]
    fn block<'a, const N: usize>(&self, line: impl Fn(usize) -> &'a [f32], x0: usize, bias: f32) -> [f32; N] {
        let kw = self.tap_start.len();
        let mut acc = [bias; N];
        for ky in 0..self.kh {
            let line = line(ky);
            for (kx, &start) in self.tap_start.iter().enumerate() {
                let tap = self.taps[ky * kw + kx];
                if let Some(src) = line[start + x0..].first_chunk::<N>() {
                    for (a, &v) in acc.iter_mut().zip(src) {
                        *a += tap * v;
                    }
                }
            }
        }
        acc
    }
}

impl PackedConv2d {
    /// One image through Winograd's F(S×S, 3×3) as `P = (S + 2)²` GEMMs, one per point `ξ`
    /// of the transform: `M[ξ] = U[ξ] · V[ξ]`, `U` the transformed weights (`[out, in]`), `V`
    /// the transformed input tiles (`[in, tiles]`), then `Y = Aᵀ·M·A` per tile (`K = S²`
    /// outputs). The tiles cover the output in S×S steps; the `P` products of one weight panel
    /// and one panel of [`NR`] tiles are taken together so the output transform and the store
    /// follow at once, from registers and a few KiB of scratch rather than a
    /// `P × out × tiles` buffer.
    #[allow(clippy::too_many_arguments)]
    fn winograd<const P: usize, const K: usize, const S: usize>(
        &self,
        src: &[f32],
        dst: &mut [f32],
        shape: Shape,
        store: impl Fn(f32) -> f32 + Copy + Sync,
        transform_input: impl Fn(&[f32], Shape, [usize; 4], winograd::Tiles, usize, &mut [f32]) + Sync,
        transform_output: impl Fn(&[[[f32; NR]; MR]; P], usize) -> [[f32; NR]; K] + Sync,
    ) {
        let g = &self.geometry;
        let (cin, m) = (g.in_channels, g.out_channels);
        let (out_h, out_w) = (shape.out_h, shape.out_w);
        let tiles = winograd::Tiles::new(S, out_h, out_w);
        let panels = tiles.count.div_ceil(NR);
        let width = panels * NR;
        let a_panels = m.div_ceil(MR);
        // `V`, `[in][ξ][width]`: each input channel's `P` rows together, so the transform
        // splits by channel; the GEMM for one `ξ` reads rows `P · width` apart.
        let mut v = vec![0.0f32; cin * P * width];
        let plane = shape.height * shape.width;
        for_each_chunk_if(shape.tasks > 1, &mut v, P * width, |ci, rows| {
            transform_input(&src[ci * plane..][..plane], shape, g.padding, tiles, width, rows);
        });
        let v: &[f32] = &v;
        let block = (L2_BLOCK_BYTES / (P * cin * NR * 4)).clamp(1, panels);
        let per_task = a_panels.div_ceil(shape.tasks);
        let n = out_h * out_w;
        for_each_chunk_if(shape.tasks > 1, dst, per_task * MR * n, |task, rows| {
            for first in (0..panels).step_by(block) {
                for (i, rows) in rows.chunks_mut(MR * n).enumerate() {
                    let panel = task * per_task + i;
                    let channels = rows.len() / n;
                    for p in first..(first + block).min(panels) {
                        let mut products = [[[0.0f32; NR]; MR]; P];
                        for (xi, product) in products.iter_mut().enumerate() {
                            let a = &self.weights[(xi * a_panels + panel) * cin * MR..][..cin * MR];
                            *product = micro_kernel(a, &v[xi * width + p * NR..], P * width);
                        }
                        for r in 0..channels {
                            let bias = self.bias[panel * MR + r];
                            let y = transform_output(&products, r);
                            tiles.store::<S, K>(p * NR, &y, &mut rows[r * n..][..n], |v| store(v + bias));
                        }
                    }
                }
            }
        });
    }
}

/// Winograd's F(2×2, 3×3) and F(4×4, 3×3): the transforms of Lavin & Gray (2016), eq. 7–8
/// and section 4.2 (interpolation points 0, ±1, ±2, ∞):
/// - F(2×2, 3×3): `Bᵀ = [[1,0,-1,0],[0,1,1,0],[0,-1,1,0],[0,1,0,-1]]`,
///   `G = [[1,0,0],[½,½,½],[½,-½,½],[0,0,1]]`, `Aᵀ = [[1,1,1,0],[0,1,-1,-1]]`;
/// - F(4×4, 3×3): `Bᵀ = [[4,0,-5,0,1,0],[0,-4,-4,1,1,0],[0,4,-4,-1,1,0],[0,-2,-1,2,1,0],
///   [0,2,-1,-2,1,0],[0,4,0,-5,0,1]]`, `G = [[¼,0,0],[-⅙,-⅙,-⅙],[-⅙,⅙,-⅙],[1/24,1/12,⅙],
///   [1/24,-1/12,⅙],[0,0,1]]`, `Aᵀ = [[1,1,1,1,1,0],[0,1,-1,2,-2,0],[0,1,1,4,4,0],
///   [0,1,-1,8,-8,1]]`.
mod winograd {
    use super::{MR, NR, PLANE, Shape};

    /// The output's `side × side` tiles, row-major: `rows × cols` of them, `count` in all.
    #[derive(Clone, Copy)]
    pub(super) struct Tiles {
        pub rows: usize,
        pub cols: usize,
        pub count: usize,
        out_h: usize,
        out_w: usize,
    }

    impl Tiles {
        pub fn new(side: usize, out_h: usize, out_w: usize) -> Self {
            let (rows, cols) = (out_h.div_ceil(side), out_w.div_ceil(side));
            Tiles { rows, cols, count: rows * cols, out_h, out_w }
        }

        /// Tiles `first..first + NR` (those that exist) of `y` (`K = S²` outputs, row-major,
        /// one lane per tile) into `out` (one output channel's plane), `store` applied; a
        /// tile's rows or columns past the output's edge are dropped.
        #[allow(clippy::needless_range_loop)] // see `transform_output2`
        #[inline(always)]
        pub fn store<const S: usize, const K: usize>(
            &self,
            first: usize,
            y: &[[f32; NR]; K],
            out: &mut [f32],
            store: impl Fn(f32) -> f32,
        ) {
            // The epilogue over all values first (vectorised), then a tile's rows.
            let z: [[f32; NR]; K] = std::array::from_fn(|q| std::array::from_fn(|j| store(y[q][j])));
            let (mut ty, mut tx) = (first / self.cols, first % self.cols);
            let whole = self.out_w.is_multiple_of(S) && self.out_h.is_multiple_of(S);
            let w = self.out_w;
            for j in 0..NR.min(self.count.saturating_sub(first)) {
                let at = S * ty * w + S * tx;
                if whole {
                    for a in 0..S {
                        let row: [f32; S] = std::array::from_fn(|b| z[a * S + b][j]);
                        out[at + a * w..][..S].copy_from_slice(&row);
                    }
                } else {
                    let (height, width) = (S.min(self.out_h - S * ty), S.min(w - S * tx));
                    for a in 0..height {
                        for b in 0..width {
                            out[at + a * w + b] = z[a * S + b][j];
                        }
                    }
                }
                tx += 1;
                if tx == self.cols {
                    (ty, tx) = (ty + 1, 0);
                }
            }
        }
    }

    /// `G·g` along one line of a kernel, F(2×2, 3×3).
    pub(super) fn kernel2(g: [f64; 3]) -> [f64; 4] {
        [g[0], (g[0] + g[1] + g[2]) / 2.0, (g[0] - g[1] + g[2]) / 2.0, g[2]]
    }

    /// `G·g` along one line of a kernel, F(4×4, 3×3).
    pub(super) fn kernel4(g: [f64; 3]) -> [f64; 6] {
        [
            g[0] / 4.0,
            -(g[0] + g[1] + g[2]) / 6.0,
            -(g[0] - g[1] + g[2]) / 6.0,
            g[0] / 24.0 + g[1] / 12.0 + g[2] / 6.0,
            g[0] / 24.0 - g[1] / 12.0 + g[2] / 6.0,
            g[2],
        ]
    }

    /// `U = G·g·Gᵀ` of every `3×3` kernel `g` of `weight` (`[out, in, 3, 3]`), `line` being
    /// `G` applied to three values; packed as `[ξ][ceil(out / MR) panels][in][MR]` (zeros past
    /// `out`), `ξ = i·A + j`, computed in f64.
    pub(super) fn pack_weights<const A: usize>(
        weight: &[f32],
        out: usize,
        cin: usize,
        line: fn([f64; 3]) -> [f64; A],
    ) -> Vec<f32> {
        let panels = out.div_ceil(MR);
        let mut packed = vec![0.0f32; A * A * panels * cin * MR];
        for co in 0..out {
            for ci in 0..cin {
                let g: [f64; 9] = std::array::from_fn(|i| f64::from(weight[(co * cin + ci) * 9 + i]));
                // G·g (A×3), then (G·g)·Gᵀ (A×A).
                let cols: [[f64; A]; 3] = std::array::from_fn(|x| line([g[x], g[3 + x], g[6 + x]]));
                let rows: [[f64; 3]; A] = std::array::from_fn(|i| [cols[0][i], cols[1][i], cols[2][i]]);
                for (i, &row) in rows.iter().enumerate() {
                    for (j, u) in line(row).into_iter().enumerate() {
                        let xi = i * A + j;
                        packed[((xi * panels + co / MR) * cin + ci) * MR + co % MR] = u as f32;
                    }
                }
            }
        }
        packed
    }

    /// `f(padded)` with one channel (`plane`, `height × width`) zero-padded by `padding` into
    /// a `ph × pw` plane (per thread; no parallel work starts while it is borrowed): every
    /// tile then reads inside it, with no bounds to check.
    fn with_padded(
        plane: &[f32],
        shape: Shape,
        padding: [usize; 4],
        ph: usize,
        pw: usize,
        f: impl FnOnce(&[f32]),
    ) {
        let [top, left, ..] = padding;
        PLANE.with(|padded| {
            let mut padded = padded.borrow_mut();
            padded.clear();
            padded.resize(ph * pw, 0.0);
            for (y, row) in plane.chunks_exact(shape.width).enumerate().take(ph.saturating_sub(top)) {
                let len = shape.width.min(pw.saturating_sub(left));
                padded[(y + top) * pw + left..][..len].copy_from_slice(&row[..len]);
            }
            f(&padded);
        });
    }

    /// `V = Bᵀ·d·B` of every `A × A` input tile `d` of one channel (`plane`, `height ×
    /// width`, zero-padded by `padding`; tiles `A - 2` apart), into `rows`: `A²` rows of
    /// `width_v` (one per `ξ = i·A + j`), a tile per column. `four(d, x, rows, width_v, tile)`
    /// transforms four neighbouring tiles in SIMD, `one(d, x)` one tile; `d` are the `A`
    /// padded rows of a row of tiles, `x` the first tile's column.
    #[allow(clippy::too_many_arguments)]
    fn transform_input<const A: usize>(
        plane: &[f32],
        shape: Shape,
        padding: [usize; 4],
        tiles: Tiles,
        width_v: usize,
        rows: &mut [f32],
        four: impl Fn([&[f32]; A], usize, &mut [f32], usize, usize),
        one: impl Fn([&[f32]; A], usize) -> [[f32; A]; A],
    ) {
        let step = A - 2;
        let (ph, pw) = (step * tiles.rows + 2, step * tiles.cols + 2);
        with_padded(plane, shape, padding, ph, pw, |padded| {
            for ty in 0..tiles.rows {
                let d: [&[f32]; A] = std::array::from_fn(|i| &padded[(step * ty + i) * pw..][..pw]);
                let row = ty * tiles.cols;
                // Four tiles at a time where the SIMD path exists (they read inside the padded
                // rows, since `pw = step · cols + 2`); a last block ends at the row's end,
                // overlapping the one before (MNIST's rows are 7 tiles). Rows of fewer tiles,
                // and targets without SIMD, one tile at a time.
                if cfg!(all(target_arch = "wasm32", target_feature = "simd128")) && tiles.cols >= 4 {
                    for tx in (0..tiles.cols - 4).step_by(4).chain([tiles.cols - 4]) {
                        four(d, step * tx, rows, width_v, row + tx);
                    }
                    continue;
                }
                for tx in 0..tiles.cols {
                    for (i, v) in one(d, step * tx).iter().enumerate() {
                        for (j, &v) in v.iter().enumerate() {
                            rows[(i * A + j) * width_v + row + tx] = v;
                        }
                    }
                }
            }
        });
    }

    /// [`transform_input`] for F(2×2, 3×3): 4×4 tiles, 2 apart.
    pub(super) fn transform_input2(
        plane: &[f32],
        shape: Shape,
        padding: [usize; 4],
        tiles: Tiles,
        width_v: usize,
        rows: &mut [f32],
    ) {
        // Bᵀ·d, column by column, then ·B along each row.
        let one = |d: [&[f32]; 4], x: usize| -> [[f32; 4]; 4] {
            let c: [[f32; 4]; 4] = std::array::from_fn(|j| {
                let (d0, d1, d2, d3) = (d[0][x + j], d[1][x + j], d[2][x + j], d[3][x + j]);
                [d0 - d2, d1 + d2, d2 - d1, d1 - d3]
            });
            std::array::from_fn(|i| {
                let r = [c[0][i], c[1][i], c[2][i], c[3][i]];
                [r[0] - r[2], r[1] + r[2], r[2] - r[1], r[1] - r[3]]
            })
        };
        transform_input(plane, shape, padding, tiles, width_v, rows, transform_four, one);
    }

    /// The input transform of four neighbouring tiles in one row of tiles, a tile per lane:
    /// columns `x..x + 10` of the four padded rows `d`, into `rows[ξ · width_v + tile..][..4]`.
    /// The tiles' columns are stride-2 gathers: two loads and an even/odd shuffle each.
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    #[inline(always)]
    fn transform_four(d: [&[f32]; 4], x: usize, rows: &mut [f32], width_v: usize, tile: usize) {
        use core::arch::wasm32::{f32x4, f32x4_add, f32x4_sub, i32x4_shuffle, v128};
        // Four neighbouring scalars: LLVM makes one `v128.load` of them (no `unsafe` needed).
        #[inline(always)]
        fn cols(line: &[f32], x: usize) -> [v128; 4] {
            let load = |s: &[f32]| -> v128 { f32x4(s[0], s[1], s[2], s[3]) };
            let line = &line[x..x + 10];
            let (a, b, c, e) = (load(line), load(&line[4..]), load(&line[2..]), load(&line[6..]));
            [
                i32x4_shuffle::<0, 2, 4, 6>(a, b),
                i32x4_shuffle::<1, 3, 5, 7>(a, b),
                i32x4_shuffle::<0, 2, 4, 6>(c, e),
                i32x4_shuffle::<1, 3, 5, 7>(c, e),
            ]
        }
        let (d0, d1, d2, d3) = (cols(d[0], x), cols(d[1], x), cols(d[2], x), cols(d[3], x));
        let bd: [[v128; 4]; 4] = [
            std::array::from_fn(|j| f32x4_sub(d0[j], d2[j])),
            std::array::from_fn(|j| f32x4_add(d1[j], d2[j])),
            std::array::from_fn(|j| f32x4_sub(d2[j], d1[j])),
            std::array::from_fn(|j| f32x4_sub(d1[j], d3[j])),
        ];
        for (i, r) in bd.iter().enumerate() {
            let v =
                [f32x4_sub(r[0], r[2]), f32x4_add(r[1], r[2]), f32x4_sub(r[2], r[1]), f32x4_sub(r[1], r[3])];
            for (j, v) in v.into_iter().enumerate() {
                rows[(i * 4 + j) * width_v + tile..][..4].copy_from_slice(&super::lanes_of(v));
            }
        }
    }

    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    fn transform_four(_: [&[f32]; 4], _: usize, _: &mut [f32], _: usize, _: usize) {
        unreachable!("only called where simd128 is compiled in")
    }

    /// `Y = Aᵀ·M·A` for output channel `r` of a panel's 16 products (`m[ξ][r]`, one lane per
    /// tile): `[y00, y01, y10, y11]`.
    // Lane by lane, as written, is what LLVM vectorises best here: array-wise forms (and a
    // transposed store) were 10–15% slower on MNIST in V8.
    #[allow(clippy::needless_range_loop)]
    #[inline(always)]
    pub(super) fn transform_output2(m: &[[[f32; NR]; MR]; 16], r: usize) -> [[f32; NR]; 4] {
        let at = |xi: usize, j: usize| m[xi][r][j];
        let mut y = [[0.0f32; NR]; 4];
        for j in 0..NR {
            // Aᵀ·M: two rows of four.
            let s: [[f32; 4]; 2] = [
                std::array::from_fn(|c| at(c, j) + at(4 + c, j) + at(8 + c, j)),
                std::array::from_fn(|c| at(4 + c, j) - at(8 + c, j) - at(12 + c, j)),
            ];
            for (a, s) in s.iter().enumerate() {
                y[2 * a][j] = s[0] + s[1] + s[2];
                y[2 * a + 1][j] = s[1] - s[2] - s[3];
            }
        }
        y
    }

    /// Element-wise arithmetic the F(4×4, 3×3) transforms need, on one value or one `f32x4`
    /// (four tiles).
    trait Lane: Copy {
        fn add(self, other: Self) -> Self;
        fn sub(self, other: Self) -> Self;
        fn scale(self, c: f32) -> Self;
    }

    impl Lane for f32 {
        #[inline(always)]
        fn add(self, other: Self) -> Self {
            self + other
        }
        #[inline(always)]
        fn sub(self, other: Self) -> Self {
            self - other
        }
        #[inline(always)]
        fn scale(self, c: f32) -> Self {
            self * c
        }
    }

    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    impl Lane for core::arch::wasm32::v128 {
        #[inline(always)]
        fn add(self, other: Self) -> Self {
            core::arch::wasm32::f32x4_add(self, other)
        }
        #[inline(always)]
        fn sub(self, other: Self) -> Self {
            core::arch::wasm32::f32x4_sub(self, other)
        }
        #[inline(always)]
        fn scale(self, c: f32) -> Self {
            core::arch::wasm32::f32x4_mul(self, core::arch::wasm32::f32x4_splat(c))
        }
    }

    /// `Bᵀ·d` of six values, F(4×4, 3×3), with the rows' common terms shared.
    #[inline(always)]
    fn input_line<L: Lane>(d: [L; 6]) -> [L; 6] {
        let (a, b) = (d[1].add(d[2]), d[3].add(d[4]));
        let (c, e) = (d[1].sub(d[2]), d[4].sub(d[3]));
        let (f, h) = (d[4].sub(d[2]), d[1].sub(d[3]).scale(2.0));
        [
            d[0].scale(4.0).sub(d[2].scale(5.0)).add(d[4]),
            b.sub(a.scale(4.0)),
            e.add(c.scale(4.0)),
            f.sub(h),
            f.add(h),
            d[1].scale(4.0).sub(d[3].scale(5.0)).add(d[5]),
        ]
    }

    /// `Bᵀ·d·B` of one 6×6 tile `d` (rows), `ξ = i·6 + j`; plain loops (see
    /// [`transform_output4`]).
    #[allow(clippy::needless_range_loop)]
    #[inline(always)]
    fn input_tile<L: Lane>(d: [[L; 6]; 6]) -> [[L; 6]; 6] {
        let mut t = d;
        for j in 0..6 {
            let col = input_line([d[0][j], d[1][j], d[2][j], d[3][j], d[4][j], d[5][j]]);
            for i in 0..6 {
                t[i][j] = col[i];
            }
        }
        for row in t.iter_mut() {
            *row = input_line(*row);
        }
        t
    }

    /// [`transform_input`] for F(4×4, 3×3): 6×6 tiles, 4 apart.
    pub(super) fn transform_input4(
        plane: &[f32],
        shape: Shape,
        padding: [usize; 4],
        tiles: Tiles,
        width_v: usize,
        rows: &mut [f32],
    ) {
        let one = |d: [&[f32]; 6], x: usize| {
            input_tile(std::array::from_fn(|i| std::array::from_fn(|j| d[i][x + j])))
        };
        transform_input(plane, shape, padding, tiles, width_v, rows, transform_four4, one);
    }

    /// [`transform_input4`] of four neighbouring tiles, a tile per lane: columns `x..x + 18`
    /// of the six padded rows (inside, since `pw = 4 · cols + 2`). Lane `q` of column `j`
    /// is `line[x + 4q + j]`: a 4×4 transpose of four loads gives columns 0–3, and one more
    /// load (ending at `x + 18`) columns 4–5.
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    #[inline(always)]
    fn transform_four4(d: [&[f32]; 6], x: usize, rows: &mut [f32], width_v: usize, tile: usize) {
        use core::arch::wasm32::{f32x4, i32x4_shuffle, v128};
        #[inline(always)]
        fn cols(line: &[f32], x: usize) -> [v128; 6] {
            let load = |s: &[f32]| -> v128 { f32x4(s[0], s[1], s[2], s[3]) };
            let line = &line[x..x + 18];
            let (l0, l1, l2, l3, l4) =
                (load(line), load(&line[4..]), load(&line[8..]), load(&line[12..]), load(&line[14..]));
            let (t0, t1) = (i32x4_shuffle::<0, 4, 1, 5>(l0, l1), i32x4_shuffle::<0, 4, 1, 5>(l2, l3));
            let (t2, t3) = (i32x4_shuffle::<2, 6, 3, 7>(l0, l1), i32x4_shuffle::<2, 6, 3, 7>(l2, l3));
            // Columns 4 and 5: line[4 + 4q] and line[5 + 4q]; the last lanes are l4's 2 and 3.
            let (u, w) = (i32x4_shuffle::<0, 4, 1, 5>(l1, l2), i32x4_shuffle::<0, 6, 1, 7>(l3, l4));
            [
                i32x4_shuffle::<0, 1, 4, 5>(t0, t1),
                i32x4_shuffle::<2, 3, 6, 7>(t0, t1),
                i32x4_shuffle::<0, 1, 4, 5>(t2, t3),
                i32x4_shuffle::<2, 3, 6, 7>(t2, t3),
                i32x4_shuffle::<0, 1, 4, 5>(u, w),
                i32x4_shuffle::<2, 3, 6, 7>(u, w),
            ]
        }
        let v = input_tile(std::array::from_fn(|i| cols(d[i], x)));
        for (i, v) in v.iter().enumerate() {
            for (j, &v) in v.iter().enumerate() {
                rows[(i * 6 + j) * width_v + tile..][..4].copy_from_slice(&super::lanes_of(v));
            }
        }
    }

    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    fn transform_four4(_: [&[f32]; 6], _: usize, _: &mut [f32], _: usize, _: usize) {
        unreachable!("only called where simd128 is compiled in")
    }

    /// `Aᵀ·m` of six values, F(4×4, 3×3).
    #[inline(always)]
    fn output_line<L: Lane>(m: [L; 6]) -> [L; 4] {
        let (s, d) = (m[1].add(m[2]), m[1].sub(m[2]));
        let (p, q) = (m[3].add(m[4]), m[3].sub(m[4]));
        [m[0].add(s).add(p), d.add(q.scale(2.0)), s.add(p.scale(4.0)), d.add(q.scale(8.0)).add(m[5])]
    }

    /// `Y = Aᵀ·M·A` for output channel `r` of a panel's 36 products (`m[ξ][r]`, one lane per
    /// tile): the 4×4 outputs, row-major. Lane by lane with plain loops, as
    /// [`transform_output2`]: nested `array::from_fn`s were left as calls (6% of SqueezeNet).
    #[allow(clippy::needless_range_loop)]
    #[inline(always)]
    pub(super) fn transform_output4(m: &[[[f32; NR]; MR]; 36], r: usize) -> [[f32; NR]; 16] {
        let mut y = [[0.0f32; NR]; 16];
        for j in 0..NR {
            let at = |xi: usize| m[xi][r][j];
            // Aᵀ·M: four rows of six, column by column; then ·A along each row.
            let mut t = [[0.0f32; 6]; 4];
            for c in 0..6 {
                let col = output_line([at(c), at(6 + c), at(12 + c), at(18 + c), at(24 + c), at(30 + c)]);
                for a in 0..4 {
                    t[a][c] = col[a];
                }
            }
            for a in 0..4 {
                let row = output_line(t[a]);
                for b in 0..4 {
                    y[a * 4 + b][j] = row[b];
                }
            }
        }
        y
    }
}

#[derive(Clone, Copy)]
struct Shape {
    height: usize,
    width: usize,
    out_h: usize,
    out_w: usize,
    /// Tasks one image's steps split into: the pool's threads, or fewer when the batch's
    /// images already keep every thread busy or the work is small.
    tasks: usize,
    /// Whether the batch's images are split across the pool.
    split_images: bool,
}

thread_local! {
    /// One padded input plane of a depthwise convolution (per thread; no parallel work starts
    /// while it is borrowed).
    static PLANE: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// im2col of one block of positions, `[first·NR, first·NR + cols.len() / k)`, row-major:
/// `cols[kk·width + x]` is what position `first·NR + x` reads for `kk = (ci, ky, kx)` (zero
/// outside the image and past the last position). The micro-kernel reads [`NR`]-wide panels
/// of it with a stride of the block's width.
///
/// Row by row of the output: for each tap the output columns that read inside the image are
/// one range, found once per row, and with stride 1 they are one copy (per-element checks, or
/// panel-interleaved copies of at most 8 values, took 16–18% of the models' time).
fn pack_columns(plane: &[f32], cin: usize, g: &Conv2dGeometry, shape: Shape, first: usize, cols: &mut [f32]) {
    let [kh, kw] = g.kernel;
    let [sy, sx] = g.stride;
    let [dy, dx] = g.dilation;
    let [top, left, ..] = g.padding;
    let (width, out_w) = (shape.width, shape.out_w);
    let n = shape.out_h * out_w;
    let k = cin * kh * kw;
    let block = cols.len() / k;
    let start = first * NR;
    let end = (start + block).min(n);
    if start >= end {
        cols.fill(0.0);
        return;
    }
    // One task per row of `cols`: a tap of one input channel.
    for_each_chunk_if(shape.tasks > 1, cols, block, |kk, row| {
        row.fill(0.0);
        let (ci, tap) = (kk / (kh * kw), kk % (kh * kw));
        let (ky, kx) = (tap / kw, tap % kw);
        let channel = &plane[ci * shape.height * width..][..shape.height * width];
        let shift = kx * dx;
        // ox reads ix = ox·sx + shift − left: inside when 0 ≤ ix < width.
        let lo = left.saturating_sub(shift).div_ceil(sx);
        let hi = if width + left > shift { ((width + left - shift - 1) / sx + 1).min(out_w) } else { 0 };
        for oy in start / out_w..=(end - 1) / out_w {
            let Some(iy) = (oy * sy + ky * dy).checked_sub(top).filter(|&iy| iy < shape.height) else {
                continue;
            };
            // This output row's columns inside the block, then inside the image.
            let lo = lo.max((oy * out_w).max(start) - oy * out_w);
            let hi = hi.min(((oy + 1) * out_w).min(end) - oy * out_w);
            if lo >= hi {
                continue;
            }
            let dst = &mut row[oy * out_w + lo - start..][..hi - lo];
            let line = &channel[iy * width..][..width];
            let ix = lo * sx + shift - left;
            if sx == 1 {
                dst.copy_from_slice(&line[ix..ix + (hi - lo)]);
            } else {
                for (d, v) in dst.iter_mut().zip(line[ix..].iter().step_by(sx)) {
                    *d = *v;
                }
            }
        }
    });
}

/// `acc[i][j] = Σ_k a[k·MR + i] · b[k·stride + j]`: one packed weight panel times one panel of
/// columns (packed: `stride` = [`NR`]; a 1×1 convolution's input read in place: `stride` = the
/// image's positions), plain Rust that LLVM vectorises (the native build; any target without simd128).
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
#[inline(always)]
fn micro_kernel(a: &[f32], b: &[f32], stride: usize) -> [[f32; NR]; MR] {
    let mut acc = [[0.0f32; NR]; MR];
    for (a, b) in a.chunks_exact(MR).zip(b.chunks(stride)) {
        let Some(b) = b.first_chunk::<NR>() else { break };
        for i in 0..MR {
            for j in 0..NR {
                acc[i][j] += a[i] * b[j];
            }
        }
    }
    acc
}

/// [`micro_kernel`] in wasm SIMD: the [`MR`]×[`NR`] accumulators are eight `f32x4` locals.
/// With relaxed SIMD each update is one `f32x4.relaxed_madd` (a fused multiply-add where the
/// engine has FMA: x86 with FMA3, ARM64), otherwise `f32x4.mul` then `f32x4.add`.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[inline(always)]
fn micro_kernel(a: &[f32], b: &[f32], stride: usize) -> [[f32; NR]; MR] {
    use core::arch::wasm32::{f32x4, f32x4_splat, v128};
    #[cfg(target_feature = "relaxed-simd")]
    #[inline(always)]
    fn madd(a: v128, b: v128, c: v128) -> v128 {
        core::arch::wasm32::f32x4_relaxed_madd(a, b, c)
    }
    #[cfg(not(target_feature = "relaxed-simd"))]
    #[inline(always)]
    fn madd(a: v128, b: v128, c: v128) -> v128 {
        core::arch::wasm32::f32x4_add(core::arch::wasm32::f32x4_mul(a, b), c)
    }
    let zero = f32x4_splat(0.0);
    let mut acc: [[v128; 2]; MR] = [[zero; 2]; MR];
    for (a, b) in a.chunks_exact(MR).zip(b.chunks(stride)) {
        let Some(b) = b.first_chunk::<NR>() else { break };
        let lo = f32x4(b[0], b[1], b[2], b[3]);
        let hi = f32x4(b[4], b[5], b[6], b[7]);
        for i in 0..MR {
            let ai = f32x4_splat(a[i]);
            acc[i][0] = madd(ai, lo, acc[i][0]);
            acc[i][1] = madd(ai, hi, acc[i][1]);
        }
    }
    let mut out = [[0.0f32; NR]; MR];
    for (o, v) in out.iter_mut().zip(acc) {
        for (half, lanes) in o.chunks_exact_mut(4).zip(v) {
            half.copy_from_slice(&lanes_of(lanes));
        }
    }
    out
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[inline(always)]
pub(crate) fn lanes_of(v: core::arch::wasm32::v128) -> [f32; 4] {
    use core::arch::wasm32::f32x4_extract_lane;
    [
        f32x4_extract_lane::<0>(v),
        f32x4_extract_lane::<1>(v),
        f32x4_extract_lane::<2>(v),
        f32x4_extract_lane::<3>(v),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition, in f64: ONNX `Conv` (cross-correlation) with zero padding.
    fn naive(
        g: &Conv2dGeometry,
        input: &[f32],
        h: usize,
        w: usize,
        weight: &[f32],
        bias: &[f32],
    ) -> Vec<f64> {
        let [oh, ow] = g.output_size(h, w).unwrap();
        let batch = input.len() / (g.in_channels * h * w);
        let cin = g.in_channels / g.groups;
        let m = g.out_channels / g.groups;
        let mut out = vec![0.0f64; batch * g.out_channels * oh * ow];
        for n in 0..batch {
            for co in 0..g.out_channels {
                let group = co / m;
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut s = f64::from(bias[co]);
                        for ci in 0..cin {
                            for ky in 0..g.kernel[0] {
                                for kx in 0..g.kernel[1] {
                                    let iy = (oy * g.stride[0] + ky * g.dilation[0]) as isize
                                        - g.padding[0] as isize;
                                    let ix = (ox * g.stride[1] + kx * g.dilation[1]) as isize
                                        - g.padding[1] as isize;
                                    if iy < 0 || ix < 0 || iy as usize >= h || ix as usize >= w {
                                        continue;
                                    }
                                    let c = group * cin + ci;
                                    let x =
                                        input[((n * g.in_channels + c) * h + iy as usize) * w + ix as usize];
                                    let wv = weight[((co * cin + ci) * g.kernel[0] + ky) * g.kernel[1] + kx];
                                    s += f64::from(x) * f64::from(wv);
                                }
                            }
                        }
                        out[((n * g.out_channels + co) * oh + oy) * ow + ox] = s;
                    }
                }
            }
        }
        out
    }

    /// Deterministic values in [-1, 1) (a 32-bit LCG; the tests need no statistics).
    fn values(len: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        (0..len)
            .map(|_| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (s >> 8) as f32 / (1u32 << 23) as f32 - 1.0
            })
            .collect()
    }

    #[allow(clippy::too_many_arguments)]
    fn check(
        cin: usize,
        cout: usize,
        k: [usize; 2],
        s: [usize; 2],
        d: [usize; 2],
        p: [usize; 4],
        groups: usize,
        hw: [usize; 2],
        batch: usize,
    ) {
        let g = Conv2dGeometry {
            in_channels: cin,
            out_channels: cout,
            kernel: k,
            stride: s,
            dilation: d,
            padding: p,
            groups,
        };
        let [h, w] = hw;
        let input = values(batch * cin * h * w, 1);
        let weight = values(cout * cin / groups * k[0] * k[1], 2);
        let bias = values(cout, 3);
        let expect = naive(&g, &input, h, w, &weight, &bias);
        // Packed for unknown sizes, and for this output (3×3 layers with large outputs then
        // take F(4×4, 3×3)).
        let packings = [
            PackedConv2d::new(g, &weight, Some(&bias)).unwrap(),
            PackedConv2d::for_output(g, &weight, Some(&bias), g.output_size(h, w)).unwrap(),
        ];
        for packed in &packings {
            check_packed(packed, &input, [h, w], &expect, [cin, groups, k[0] * k[1]]);
        }
    }

    fn check_packed(
        packed: &PackedConv2d,
        input: &[f32],
        [h, w]: [usize; 2],
        expect: &[f64],
        [cin, groups, taps]: [usize; 3],
    ) {
        let g = packed.geometry();
        let hard_swish = Activation::HardSwish { add: 3.0, min: 0.0, max: 6.0, div: 6.0 };
        let epilogues = [
            Epilogue::from(Activation::Identity),
            Activation::Relu.into(),
            Activation::Clip { min: -0.5, max: 0.25 }.into(),
            Epilogue { pre: Some([1.5, -0.25]), activation: hard_swish, post: Some([0.75, 0.125]) },
            Epilogue { pre: Some([-2.0, 0.5]), activation: Activation::Identity, post: None },
        ];
        for epilogue in epilogues {
            let got = packed.run(input, h, w, epilogue).unwrap();
            assert_eq!(got.len(), expect.len(), "{g:?}");
            let k_len = (cin / groups * taps) as f64;
            for (i, (&y, &e)) in got.iter().zip(expect).enumerate() {
                let affine =
                    |e: f64, step: Option<[f32; 2]>| step.map_or(e, |[a, b]| f64::from(a) * e + f64::from(b));
                let e = affine(e, epilogue.pre);
                let e = match epilogue.activation {
                    Activation::Identity => e,
                    Activation::Relu => e.max(0.0),
                    Activation::Clip { min, max } => e.max(f64::from(min)).min(f64::from(max)),
                    Activation::HardSwish { add, min, max, div } => {
                        e * (e + f64::from(add)).max(f64::from(min)).min(f64::from(max)) / f64::from(div)
                    }
                };
                let e = affine(e, epilogue.post);
                // f32 accumulation of k terms of magnitude < 1: a few ulps per term at most
                // (scaled by at most 2 and squared by the hard-swish's range).
                let tolerance = 16.0 * f64::from(f32::EPSILON) * (k_len + 1.0);
                assert!(
                    (f64::from(y) - e).abs() <= tolerance,
                    "{g:?} {:?} {epilogue:?} element {i}: {y} vs {e}",
                    packed.algorithm
                );
            }
        }
    }

    #[test]
    fn matches_the_definition_on_odd_geometries() {
        // 1×1, 3×3 padded, stride 2, 7×7, dilation, asymmetric padding, groups, depthwise
        // (3×3 and 5×5, stride 1 and 2), channel counts that are no multiple of MR, widths
        // that are no multiple of NR, a batch.
        check(3, 5, [1, 1], [1, 1], [1, 1], [0; 4], 1, [7, 9], 2);
        check(4, 8, [3, 3], [1, 1], [1, 1], [1; 4], 1, [10, 13], 1);
        check(3, 6, [3, 3], [2, 2], [1, 1], [0; 4], 1, [17, 15], 3);
        check(2, 3, [7, 7], [2, 2], [1, 1], [3; 4], 1, [19, 23], 1);
        check(5, 7, [3, 3], [1, 1], [2, 2], [2; 4], 1, [11, 12], 1);
        check(3, 4, [3, 2], [1, 2], [1, 1], [1, 0, 2, 1], 1, [9, 10], 2);
        check(8, 12, [3, 3], [1, 1], [1, 1], [1; 4], 4, [9, 9], 1);
        check(6, 6, [3, 3], [1, 1], [1, 1], [1; 4], 6, [8, 11], 2);
        check(6, 6, [5, 5], [2, 2], [1, 1], [2; 4], 6, [13, 9], 1);
        check(4, 4, [3, 3], [1, 1], [2, 2], [2, 1, 0, 3], 4, [10, 7], 1);
        // Depthwise rows of 8 + 4 + 3 outputs at stride 2; stride 3 with dilation.
        check(4, 4, [3, 3], [2, 2], [1, 1], [1; 4], 4, [30, 30], 1);
        check(5, 5, [3, 3], [2, 3], [1, 2], [1, 2, 0, 1], 5, [11, 41], 2);
        check(16, 33, [1, 1], [1, 1], [1, 1], [0; 4], 1, [5, 5], 1);
        // K = 576: several cache blocks of packed columns per image (and per group).
        check(64, 5, [3, 3], [1, 1], [1, 1], [1; 4], 1, [16, 17], 2);
        check(128, 6, [3, 3], [1, 1], [1, 1], [1; 4], 2, [13, 16], 1);
        check(600, 4, [1, 1], [1, 1], [1, 1], [0; 4], 1, [9, 10], 1);
    }

    #[test]
    fn winograd_matches_the_definition() {
        let winograd = |cin, cout| {
            let g = Conv2dGeometry {
                in_channels: cin,
                out_channels: cout,
                kernel: [3, 3],
                stride: [1, 1],
                dilation: [1, 1],
                padding: [1; 4],
                groups: 1,
            };
            Algorithm::for_geometry(&g, None) == Algorithm::Winograd2
                && Algorithm::for_geometry(&g, Some([16, 20])) == Algorithm::Winograd4
                && Algorithm::for_geometry(&g, Some([15, 20])) == Algorithm::Winograd2
        };
        assert!(winograd(8, 8) && winograd(32, 64) && !winograd(4, 8) && !winograd(64, 5));
        // Even and odd output sides (a last tile half outside), no padding, asymmetric padding,
        // channels no multiple of MR, more tiles than one panel, several cache blocks of
        // tiles (K = 16 · 96), a batch, a 1×1 output.
        check(8, 8, [3, 3], [1, 1], [1, 1], [1; 4], 1, [10, 13], 1);
        check(9, 11, [3, 3], [1, 1], [1, 1], [0; 4], 1, [9, 12], 2);
        check(12, 10, [3, 3], [1, 1], [1, 1], [2, 0, 1, 3], 1, [7, 8], 1);
        check(32, 64, [3, 3], [1, 1], [1, 1], [1; 4], 1, [14, 14], 3);
        check(96, 24, [3, 3], [1, 1], [1, 1], [1; 4], 1, [40, 37], 1);
        // F(4×4, 3×3): outputs of 16 a side and more, whole tiles or not, rows of tiles that are
        // no multiple of four, padding on one side.
        check(8, 9, [3, 3], [1, 1], [1, 1], [1; 4], 1, [16, 16], 2);
        check(12, 16, [3, 3], [1, 1], [1, 1], [0, 1, 2, 0], 1, [19, 23], 1);
        check(32, 12, [3, 3], [1, 1], [1, 1], [1; 4], 1, [54, 54], 1);
        check(16, 8, [3, 3], [1, 1], [1, 1], [0; 4], 1, [3, 3], 2);
    }

    #[test]
    fn clip_follows_onnx_when_the_bounds_cross_and_relu_keeps_nan() {
        let crossed = Activation::Clip { min: 1.0, max: 0.0 };
        assert_eq!([-5.0, 0.5, 5.0].map(|v| crossed.apply(v)), [0.0; 3]);
        assert!(Activation::Relu.apply(f32::NAN).is_nan());
    }

    #[test]
    fn refuses_what_does_not_fit() {
        let g = Conv2dGeometry {
            in_channels: 2,
            out_channels: 4,
            kernel: [3, 3],
            stride: [1, 1],
            dilation: [1, 1],
            padding: [0; 4],
            groups: 1,
        };
        assert!(PackedConv2d::new(g, &[0.0; 71], None).is_none(), "weights one short");
        assert!(PackedConv2d::new(g, &[0.0; 72], Some(&[0.0; 3])).is_none(), "bias one short");
        assert!(PackedConv2d::new(Conv2dGeometry { groups: 3, ..g }, &[0.0; 72], None).is_none());
        assert!(PackedConv2d::new(Conv2dGeometry { stride: [0, 1], ..g }, &[0.0; 72], None).is_none());
        let packed = PackedConv2d::new(g, &[0.0; 72], None).unwrap();
        assert!(
            packed.run(&[0.0; 2 * 2 * 2], 2, 2, Activation::Identity).is_none(),
            "kernel larger than the image"
        );
        assert!(packed.run(&[0.0; 2 * 4 * 4 + 1], 4, 4, Activation::Identity).is_none(), "not a whole image");
        assert_eq!(packed.run(&[], 4, 4, Activation::Identity).map(|v| v.len()), Some(0), "an empty batch");
    }
}
