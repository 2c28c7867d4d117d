//! Fused CPU kernels for the layers where burn-flex's general operators lose most time on
//! small CNNs (measured by `brasa-mnist`'s `layer_profile` example): a 3×3 convolution of a
//! single-channel image fused with bias, ReLU and 2×2 max-pooling, and ReLU fused with 2×2
//! max-pooling. Plain slices in, plain slices out; the inner loops run along image rows so
//! LLVM vectorises them (simd128 in the wasm build, SSE/AVX natively).

use crate::parallel::{for_each_chunk, parallelism};

/// `out[n, c, y/2, x/2] = max(0, max over the 2×2 window of (bias[c] + Σ w[c, ky, kx] ·
/// pad(norm(input))[n, y+ky, x+kx]))`, where `norm(v) = (v - mean) / std` and padding (1 on
/// every side) is zero after normalisation, as in PyTorch's `Conv2d(padding=1)` applied to a
/// normalised image.
///
/// `input`: `[batch, side, side]`; `weight`: `[channels, 3, 3]`; `bias`: `[channels]`;
/// returns `[batch, channels, side/2, side/2]`, or `None` when the shapes do not fit (sizes
/// that do not divide, a side other than 8, 16, 28 or 32): never a panic, which would abort
/// a wasm instance.
pub fn conv3x3_relu_maxpool2(
    input: &[f32],
    side: usize,
    weight: &[f32],
    bias: &[f32],
    mean: f32,
    std: f32,
) -> Option<Vec<f32>> {
    // A compile-time row length lets LLVM keep a whole output row in vector registers (2.2×
    // faster than a runtime length), so the common image sides are instantiated; others are
    // `None` and the caller keeps its general path.
    match side {
        8 => conv_rows::<8>(input, weight, bias, mean, std),
        16 => conv_rows::<16>(input, weight, bias, mean, std),
        28 => conv_rows::<28>(input, weight, bias, mean, std),
        32 => conv_rows::<32>(input, weight, bias, mean, std),
        _ => None,
    }
}

/// [`conv3x3_relu_maxpool2`] for `N × N` images.
fn conv_rows<const N: usize>(
    input: &[f32],
    weight: &[f32],
    bias: &[f32],
    mean: f32,
    std: f32,
) -> Option<Vec<f32>> {
    let channels = bias.len();
    if !N.is_multiple_of(2) || weight.len() != channels * 9 || !input.len().is_multiple_of(N * N) {
        return None;
    }
    let batch = input.len() / (N * N);
    let half = N / 2;
    let stride = N + 2;
    let mut padded = vec![0.0f32; stride * stride];
    let mut out = vec![0.0f32; batch * channels * half * half];
    let inv_std = 1.0 / std;
    for (image, out_image) in input.chunks_exact(N * N).zip(out.chunks_exact_mut(channels * half * half)) {
        for (y, row) in image.chunks_exact(N).enumerate() {
            for (d, &v) in padded[(y + 1) * stride + 1..][..N].iter_mut().zip(row) {
                *d = (v - mean) * inv_std;
            }
        }
        for (c, out_channel) in out_image.chunks_exact_mut(half * half).enumerate() {
            let w: &[f32; 9] = weight[c * 9..c * 9 + 9].try_into().ok()?;
            for py in 0..half {
                let mut rows = [[bias[c]; N]; 2];
                for (r, acc) in rows.iter_mut().enumerate() {
                    for ky in 0..3 {
                        let line = &padded[(2 * py + r + ky) * stride..][..stride];
                        for kx in 0..3 {
                            let src: &[f32; N] = line[kx..kx + N].try_into().ok()?;
                            let tap = w[ky * 3 + kx];
                            for x in 0..N {
                                acc[x] += tap * src[x];
                            }
                        }
                    }
                }
                let dst = &mut out_channel[py * half..][..half];
                for (px, d) in dst.iter_mut().enumerate() {
                    let m = larger(
                        larger(rows[0][2 * px], rows[0][2 * px + 1]),
                        larger(rows[1][2 * px], rows[1][2 * px + 1]),
                    );
                    *d = larger(m, 0.0);
                }
            }
        }
    }
    Some(out)
}

/// `out[p, y/2, x/2] = max(0, max over the 2×2 window of input[p, y, x])` for `planes`
/// planes of `side × side` (`side` even; else `None`): ReLU then max-pooling, in one pass.
pub fn relu_maxpool2(input: &[f32], side: usize) -> Option<Vec<f32>> {
    if side == 0 || !side.is_multiple_of(2) || !input.len().is_multiple_of(side * side) {
        return None;
    }
    let half = side / 2;
    let planes = input.len() / (side * side);
    let mut out = vec![0.0f32; planes * half * half];
    for (plane, dst) in input.chunks_exact(side * side).zip(out.chunks_exact_mut(half * half)) {
        for py in 0..half {
            let top = &plane[2 * py * side..][..side];
            let bottom = &plane[(2 * py + 1) * side..][..side];
            for (px, d) in dst[py * half..][..half].iter_mut().enumerate() {
                let m =
                    larger(larger(top[2 * px], top[2 * px + 1]), larger(bottom[2 * px], bottom[2 * px + 1]));
                *d = larger(m, 0.0);
            }
        }
    }
    Some(out)
}

/// `max(a, b)` as one compare-and-select. `f32::max` must ignore a NaN operand, which wasm's
/// `f32.max` does not do, so in wasm it becomes a branchy sequence that does not vectorise:
/// measured in Chromium, 17% of SqueezeNet's time went to max-pooling with it. Inputs here
/// are finite (brasa validates model inputs and weights).
#[inline(always)]
fn larger(a: f32, b: f32) -> f32 {
    if b > a { b } else { a }
}

/// Geometry of a 2-D max-pooling: kernel, strides and padding (`[top, left, bottom, right]`,
/// padded cells never win), no dilation, floor rounding (ONNX `MaxPool` without `ceil_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool2d {
    /// Window `[height, width]`.
    pub kernel: [usize; 2],
    /// Steps `[vertical, horizontal]`.
    pub strides: [usize; 2],
    /// Padding `[top, left, bottom, right]`.
    pub padding: [usize; 4],
}

impl Pool2d {
    /// Output `[height, width]` for an input plane of `[height, width]`; `None` when the
    /// window does not fit or a size is zero.
    pub fn output_size(&self, height: usize, width: usize) -> Option<[usize; 2]> {
        let [kh, kw] = self.kernel;
        let [sy, sx] = self.strides;
        let [top, left, bottom, right] = self.padding;
        if kh == 0 || kw == 0 || sy == 0 || sx == 0 || height == 0 || width == 0 {
            return None;
        }
        // A window lying wholly in the padding would yield -inf: refuse such geometry.
        if top >= kh || bottom >= kh || left >= kw || right >= kw {
            return None;
        }
        let padded_h = (height + top + bottom).checked_sub(kh)?;
        let padded_w = (width + left + right).checked_sub(kw)?;
        Some([padded_h / sy + 1, padded_w / sx + 1])
    }
}

/// Max-pooling of `planes` planes of `height × width` (NCHW with `planes = N·C`). Each output
/// row is the maximum of `kernel[0]` input rows (a vectorised pass along whole rows), then of
/// `kernel[1]` columns of that row. `None` when the geometry or lengths do not fit.
///
/// burn-flex pools through its 3-D pooling with indices: on SqueezeNet that was a quarter of
/// the native CPU time (perf), and this kernel took ~5% (natively) to 6% (Chromium).
pub fn max_pool2d(input: &[f32], height: usize, width: usize, pool: Pool2d) -> Option<Vec<f32>> {
    let [out_h, out_w] = pool.output_size(height, width)?;
    let plane = height.checked_mul(width)?;
    if !input.len().is_multiple_of(plane) {
        return None;
    }
    let planes = input.len() / plane;
    let [kh, kw] = pool.kernel;
    let [sy, sx] = pool.strides;
    let [top, left, ..] = pool.padding;
    let mut out = vec![0.0f32; planes.checked_mul(out_h * out_w)?];
    // Planes per task: one task per thread.
    let per_task = planes.div_ceil(parallelism());
    for_each_chunk(&mut out, per_task * out_h * out_w, |task, out| {
        let mut rows_max = vec![f32::NEG_INFINITY; width];
        let input = &input[task * per_task * plane..];
        for (src, dst) in input.chunks_exact(plane).zip(out.chunks_exact_mut(out_h * out_w)) {
            for (oy, dst_row) in dst.chunks_exact_mut(out_w).enumerate() {
                // Input rows of this window, clipped to the image (padding never wins).
                let first = (oy * sy).saturating_sub(top);
                let last = (oy * sy + kh).saturating_sub(top).min(height);
                rows_max.fill(f32::NEG_INFINITY);
                for row in src[first * width..last * width].chunks_exact(width) {
                    for (m, &v) in rows_max.iter_mut().zip(row) {
                        *m = larger(*m, v);
                    }
                }
                // Then across columns. The common CNN case (3 or 2 wide, stride 2, no left
                // padding, windows inside the row) in one pass the compiler can keep branch-free.
                if sx == 2 && left == 0 && (kw == 2 || kw == 3) && (out_w - 1) * 2 + kw <= width {
                    let cols = &rows_max[..(out_w - 1) * 2 + kw];
                    for (ox, d) in dst_row.iter_mut().enumerate() {
                        let pair = larger(cols[2 * ox], cols[2 * ox + 1]);
                        *d = if kw == 3 { larger(pair, cols[2 * ox + 2]) } else { pair };
                    }
                    continue;
                }
                // Otherwise one kernel column at a time: a strided pass without per-output
                // slicing, over the outputs whose window column `kx` is in the image.
                dst_row.fill(f32::NEG_INFINITY);
                for kx in 0..kw {
                    let first_ox = left.saturating_sub(kx).div_ceil(sx);
                    if first_ox >= out_w || width + left <= kx + first_ox * sx {
                        continue;
                    }
                    let count = ((width + left - kx - 1 - first_ox * sx) / sx + 1)
                        .min(out_w.saturating_sub(first_ox));
                    let src_cols = rows_max[first_ox * sx + kx - left..].iter().step_by(sx);
                    for (d, &v) in dst_row[first_ox..first_ox + count].iter_mut().zip(src_cols) {
                        *d = larger(*d, v);
                    }
                }
            }
        }
    });
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic pseudo-random sequence in [-1, 1).
    fn values(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (s >> 8) as f32 / (1 << 23) as f32 - 1.0
            })
            .collect()
    }

    fn naive_conv_relu_pool(
        input: &[f32],
        side: usize,
        weight: &[f32],
        bias: &[f32],
        mean: f32,
        std: f32,
    ) -> Vec<f32> {
        let (channels, half) = (bias.len(), side / 2);
        let batch = input.len() / (side * side);
        let at = |n: usize, y: isize, x: isize| {
            if y < 0 || x < 0 || y >= side as isize || x >= side as isize {
                0.0
            } else {
                (input[n * side * side + y as usize * side + x as usize] - mean) / std
            }
        };
        let mut out = Vec::new();
        for n in 0..batch {
            for c in 0..channels {
                for py in 0..half {
                    for px in 0..half {
                        let mut best = f32::NEG_INFINITY;
                        for (y, x) in [
                            (2 * py, 2 * px),
                            (2 * py, 2 * px + 1),
                            (2 * py + 1, 2 * px),
                            (2 * py + 1, 2 * px + 1),
                        ] {
                            let mut acc = bias[c];
                            for ky in 0..3 {
                                for kx in 0..3 {
                                    acc += weight[c * 9 + ky * 3 + kx]
                                        * at(n, y as isize + ky as isize - 1, x as isize + kx as isize - 1);
                                }
                            }
                            best = best.max(acc);
                        }
                        out.push(best.max(0.0));
                    }
                }
            }
        }
        out
    }

    #[test]
    fn fused_conv_matches_the_naive_definition() {
        for (batch, side, channels) in [(1, 28, 32), (3, 8, 5), (2, 16, 1), (1, 32, 2)] {
            let input: Vec<f32> = values(batch * side * side, 7).iter().map(|v| v.abs()).collect();
            let weight = values(channels * 9, 11);
            let bias = values(channels, 13);
            let fast = conv3x3_relu_maxpool2(&input, side, &weight, &bias, 0.13, 0.31).unwrap();
            let slow = naive_conv_relu_pool(&input, side, &weight, &bias, 0.13, 0.31);
            assert_eq!(fast.len(), slow.len());
            let worst = fast.iter().zip(&slow).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            assert!(worst < 1e-4, "batch {batch} side {side}: {worst}");
        }
    }

    fn naive_max_pool(input: &[f32], h: usize, w: usize, pool: Pool2d) -> Vec<f32> {
        let [oh, ow] = pool.output_size(h, w).unwrap();
        let mut out = Vec::new();
        for plane in input.chunks_exact(h * w) {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut m = f32::NEG_INFINITY;
                    for ky in 0..pool.kernel[0] {
                        for kx in 0..pool.kernel[1] {
                            let y = (oy * pool.strides[0] + ky) as isize - pool.padding[0] as isize;
                            let x = (ox * pool.strides[1] + kx) as isize - pool.padding[1] as isize;
                            if (0..h as isize).contains(&y) && (0..w as isize).contains(&x) {
                                m = m.max(plane[y as usize * w + x as usize]);
                            }
                        }
                    }
                    out.push(m);
                }
            }
        }
        out
    }

    #[test]
    fn max_pool_matches_the_naive_definition() {
        let cases = [
            (13, 13, Pool2d { kernel: [3, 3], strides: [2, 2], padding: [0; 4] }),
            (111, 111, Pool2d { kernel: [3, 3], strides: [2, 2], padding: [0; 4] }),
            (8, 6, Pool2d { kernel: [2, 2], strides: [2, 2], padding: [0; 4] }),
            (7, 9, Pool2d { kernel: [3, 2], strides: [1, 2], padding: [1, 1, 1, 0] }),
            (5, 5, Pool2d { kernel: [3, 3], strides: [2, 2], padding: [1, 1, 1, 1] }),
            (4, 4, Pool2d { kernel: [4, 4], strides: [1, 1], padding: [0; 4] }),
            (1, 1, Pool2d { kernel: [3, 3], strides: [1, 1], padding: [2, 2, 2, 2] }),
            (2, 3, Pool2d { kernel: [3, 3], strides: [3, 3], padding: [2, 2, 0, 2] }),
        ];
        for (h, w, pool) in cases {
            let input = values(3 * h * w, (h * w) as u32);
            let got = max_pool2d(&input, h, w, pool).unwrap();
            assert_eq!(got, naive_max_pool(&input, h, w, pool), "{h}x{w} {pool:?}");
        }
    }

    #[test]
    fn max_pool_refuses_geometry_it_cannot_pool() {
        let input = values(16, 1);
        let pool = |kernel, strides, padding| Pool2d { kernel, strides, padding };
        assert!(
            max_pool2d(&input, 4, 4, pool([5, 5], [1, 1], [0; 4])).is_none(),
            "window larger than the image"
        );
        assert!(max_pool2d(&input, 4, 4, pool([2, 2], [0, 1], [0; 4])).is_none(), "zero stride");
        assert!(
            max_pool2d(&input, 4, 4, pool([2, 2], [1, 1], [2, 0, 0, 0])).is_none(),
            "window in the padding"
        );
        assert!(max_pool2d(&input, 3, 3, pool([2, 2], [1, 1], [0; 4])).is_none(), "length not whole planes");
    }

    #[test]
    fn relu_pool_matches_the_naive_definition() {
        let input = values(2 * 3 * 6 * 6, 5);
        let out = relu_maxpool2(&input, 6).unwrap();
        assert!(relu_maxpool2(&input, 5).is_none());
        assert!(conv3x3_relu_maxpool2(&input, 7, &[0.0; 9], &[0.0], 0.0, 1.0).is_none());
        assert!(conv3x3_relu_maxpool2(&[0.0; 36], 6, &[0.0; 9], &[0.0], 0.0, 1.0).is_none());
        assert_eq!(out.len(), 2 * 3 * 9);
        for p in 0..6 {
            for py in 0..3 {
                for px in 0..3 {
                    let at = |y: usize, x: usize| input[p * 36 + y * 6 + x];
                    let want = at(2 * py, 2 * px)
                        .max(at(2 * py, 2 * px + 1))
                        .max(at(2 * py + 1, 2 * px))
                        .max(at(2 * py + 1, 2 * px + 1))
                        .max(0.0);
                    assert_eq!(out[p * 9 + py * 3 + px], want);
                }
            }
        }
    }
}
