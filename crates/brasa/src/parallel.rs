//! Data parallelism for brasa's CPU kernels: rayon's pool with the `threads` feature (in the
//! wasm build, wasm-bindgen-rayon's Web Workers), plain loops without it. Kernels split a
//! layer into about [`parallelism`] tasks: in wasm, waking a worker costs tens of µs, more
//! than a small layer's work per output channel. A session runs the whole forward pass on the
//! pool ([`on_pool`]), so each split is a cheap join there rather than a hand-off from outside
//! and a wait (SqueezeNet b1 at 2 threads: 12 ms instead of 15). A trap on a pool thread is
//! reported by the pool's own Workers (brasa's pool helper in the wasm glue), since the thread
//! waiting for the pass is blocked.

/// How many tasks to split a layer into: rayon's threads with the `threads` feature, else 1.
pub(crate) fn parallelism() -> usize {
    #[cfg(feature = "threads")]
    return rayon::current_num_threads().max(1);
    #[cfg(not(feature = "threads"))]
    1
}

/// `f()` on rayon's pool, the calling thread waiting, with the `threads` feature and a pool of
/// more than one thread; here otherwise (and when already on the pool).
pub(crate) fn on_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    #[cfg(feature = "threads")]
    if rayon::current_thread_index().is_none() && parallelism() > 1 {
        return rayon::scope(|_| f());
    }
    f()
}

/// [`for_each_chunk`] across the pool when `split`, in order here otherwise: the steps inside
/// one image of a batch that already fills the pool, where a fork-join per step only adds
/// waits (MNIST b32 at 2 threads: a third of the pool's time was spent idle in them).
pub(crate) fn for_each_chunk_if(
    split: bool,
    data: &mut [f32],
    chunk: usize,
    f: impl Fn(usize, &mut [f32]) + Sync + Send,
) {
    if split {
        for_each_chunk(data, chunk, f);
    } else {
        for (i, c) in data.chunks_mut(chunk.max(1)).enumerate() {
            f(i, c);
        }
    }
}

/// `f(index, chunk)` for each `chunk`-long piece of `data` (the last may be shorter; none for
/// empty `data`): on
/// rayon's pool with the `threads` feature, in order otherwise.
pub(crate) fn for_each_chunk(data: &mut [f32], chunk: usize, f: impl Fn(usize, &mut [f32]) + Sync + Send) {
    // `chunks_mut(0)` panics; an empty piece of work has nothing to split.
    let chunk = chunk.max(1);
    // One piece runs here: from outside the pool, rayon would hand it to a worker and wait.
    if data.len() <= chunk {
        if !data.is_empty() {
            f(0, data);
        }
        return;
    }
    #[cfg(feature = "threads")]
    {
        use rayon::prelude::*;
        data.par_chunks_mut(chunk).enumerate().for_each(|(i, c)| f(i, c));
    }
    #[cfg(not(feature = "threads"))]
    for (i, c) in data.chunks_mut(chunk).enumerate() {
        f(i, c);
    }
}
