//! CPU kernels besides the convolution ([`crate::conv`]): 2-D max-pooling, where burn-flex's
//! general operator lost most time on small CNNs (measured by `brasa-mnist`'s `layer_profile`
//! example). Plain slices in, plain slices out; the inner loops run along image rows so LLVM
//! vectorises them (simd128 in the wasm build, SSE/AVX natively).

use crate::parallel::{for_each_chunk, parallelism};

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
                    let done = pool_pairs_simd(cols, dst_row, kw == 3);
                    for (ox, d) in dst_row.iter_mut().enumerate().skip(done) {
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

/// The stride-2 column step of [`max_pool2d`] four outputs at a time in wasm SIMD: output
/// `ox` is the larger of `cols[2·ox]`, `cols[2·ox + 1]` (and `cols[2·ox + 2]` when `three`),
/// an even/odd shuffle of two loads instead of a scalar gather (MNIST's two pools took 13% of
/// its time with the scalar loop). `f32x4.pmax` is [`larger`] lane by lane, NaN included.
/// Returns how many outputs it wrote; the caller does the rest.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
fn pool_pairs_simd(cols: &[f32], dst: &mut [f32], three: bool) -> usize {
    use core::arch::wasm32::{f32x4, f32x4_pmax, f32x4_replace_lane, i32x4_shuffle};
    let load = |s: &[f32]| f32x4(s[0], s[1], s[2], s[3]);
    let mut ox = 0;
    // Reads `cols[2·ox .. 2·ox + 8]`, and `cols[2·ox + 8]` for a window of three.
    while ox + 4 <= dst.len() && 2 * ox + 8 + usize::from(three) <= cols.len() {
        let (a, b) = (load(&cols[2 * ox..]), load(&cols[2 * ox + 4..]));
        let even = i32x4_shuffle::<0, 2, 4, 6>(a, b);
        let mut m = f32x4_pmax(even, i32x4_shuffle::<1, 3, 5, 7>(a, b));
        if three {
            let next = f32x4_replace_lane::<3>(i32x4_shuffle::<1, 2, 3, 3>(even, even), cols[2 * ox + 8]);
            m = f32x4_pmax(m, next);
        }
        dst[ox..ox + 4].copy_from_slice(&crate::conv::lanes_of(m));
        ox += 4;
    }
    ox
}

/// Elsewhere the scalar loop does every output.
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
fn pool_pairs_simd(_: &[f32], _: &mut [f32], _: bool) -> usize {
    0
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
}
