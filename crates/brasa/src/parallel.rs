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
        keep_awake();
        data.par_chunks_mut(chunk).enumerate().for_each(|(i, c)| f(i, c));
    }
    #[cfg(not(feature = "threads"))]
    for (i, c) in data.chunks_mut(chunk).enumerate() {
        f(i, c);
    }
}

/// Pool threads spinning in [`keep_awake`] now, or about to.
#[cfg(feature = "threads")]
static SPINNING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Rounds without work after which a spinning thread goes back to rayon's sleep: a few
/// hundred microseconds, longer than most of a forward pass's serial steps between layers.
#[cfg(feature = "threads")]
const SPIN_ROUNDS: u32 = 4096;

/// Keeps the pool's other threads awake, looking for work, while a forward pass splits its
/// layers: rayon puts an idle thread to sleep within microseconds, and waking one in wasm
/// (`memory.atomic.notify` to a Worker) took so long that the thread that split a layer had
/// often done the other half itself by then. PP-OCRv4 det at 2 threads had one thread asleep
/// a third of the pass, mostly while the other ran convolutions. XNNPACK's pthreadpool spins
/// its threads the same way.
///
/// Each spinner is a rayon job that runs the pool's jobs as they come ([`rayon::yield_now`])
/// and ends after [`SPIN_ROUNDS`] rounds without one, so it can never wait on anything for
/// good, wherever rayon runs it (even inside a join that waits for a job it holds up).
#[cfg(feature = "threads")]
fn keep_awake() {
    use std::sync::atomic::Ordering::{AcqRel, Relaxed};
    let others = rayon::current_num_threads().saturating_sub(1);
    let owner = rayon::current_thread_index();
    if owner.is_none() {
        return;
    }
    // Reserve a spinner slot before spawning, so two threads splitting at once cannot start
    // more spinners than there are other threads.
    while SPINNING.load(Relaxed) < others {
        if SPINNING.fetch_add(1, AcqRel) >= others {
            SPINNING.fetch_sub(1, AcqRel);
            break;
        }
        rayon::spawn(move || {
            // The thread that asked runs the layer itself: it must not spin here.
            if rayon::current_thread_index() != owner {
                let mut idle = 0;
                while idle < SPIN_ROUNDS {
                    if rayon::yield_now() == Some(rayon::Yield::Executed) {
                        idle = 0;
                    } else {
                        idle += 1;
                        std::hint::spin_loop();
                    }
                }
            }
            SPINNING.fetch_sub(1, AcqRel);
        });
    }
}
