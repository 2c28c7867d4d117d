use std::fmt;
use std::str::FromStr;

use burn::tensor::Device;

use crate::error::{BrasaError, Result};

/// A backend a model can run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BackendKind {
    /// burn-flex on the CPU (SIMD128 in wasm).
    Cpu,
    /// burn's wgpu backend: WebGPU in browsers and Deno, Vulkan/Metal/DX12 natively.
    WebGpu,
}

impl BackendKind {
    /// The name JS callers use: `"cpu"` or `"webgpu"`.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Cpu => "cpu",
            BackendKind::WebGpu => "webgpu",
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the caller asked for: a specific backend or the best available one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum BackendPreference {
    /// WebGPU when present, else CPU.
    #[default]
    Auto,
    /// CPU only.
    Cpu,
    /// WebGPU only; an error where there is none.
    WebGpu,
}

impl FromStr for BackendPreference {
    type Err = BrasaError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(BackendPreference::Auto),
            "cpu" => Ok(BackendPreference::Cpu),
            "webgpu" => Ok(BackendPreference::WebGpu),
            other => Err(BrasaError::BackendUnavailable {
                backend: other.to_string(),
                reason: "unknown backend name; use 'auto', 'webgpu' or 'cpu'".into(),
            }),
        }
    }
}

/// The backends compiled into this build, best first.
pub fn compiled_backends() -> Vec<BackendKind> {
    let mut kinds = Vec::new();
    if cfg!(feature = "wgpu") {
        kinds.push(BackendKind::WebGpu);
    }
    if cfg!(feature = "flex") {
        kinds.push(BackendKind::Cpu);
    }
    kinds
}

/// Get a ready device for `kind`: the CPU device, or the (once initialised, then shared)
/// wgpu device; after that device was lost, a new one: one per loss, which callers asking at
/// the same time share. Fails with [`BrasaError::BackendUnavailable`] when the backend is not
/// compiled in or no device can be had (its reason names the cause: `requestDevice() failed:
/// OperationError: …`).
pub async fn acquire_device(kind: BackendKind) -> Result<Device> {
    match kind {
        BackendKind::Cpu => cpu_device(),
        BackendKind::WebGpu => gpu::device().await,
    }
}

/// The id of the GPU device models load onto now (1, then one more per replacement); `None`
/// before the first WebGPU load, and in builds without wgpu. A model keeps the device it was
/// loaded on: read this right after its load to know which.
pub fn gpu_device_id() -> Option<u32> {
    gpu::current_id()
}

/// Why GPU device `id` was lost (`"Destroyed: …"`, `"Unknown: …"`, as the browser's
/// `GPUDevice.lost` says), or `None` while it works. Models on a lost device fail every run;
/// the next [`acquire_device`] gets a new device. Loss is watched in browsers (wasm) only.
pub fn gpu_device_lost_reason(id: u32) -> Option<String> {
    gpu::lost_reason(id)
}

/// Resolves with the reason once GPU device `id` is lost; never for a device that is not.
pub fn gpu_device_lost(id: u32) -> impl std::future::Future<Output = String> {
    gpu::lost_future(id)
}

#[cfg(feature = "flex")]
fn cpu_device() -> Result<Device> {
    Ok(Device::flex())
}

/// Is `device` brasa's CPU device (burn-flex)? Model crates use it to take CPU-only paths
/// (the fused kernels of [`crate::kernels`]); always false in builds without the CPU backend.
pub fn is_cpu_device(device: &Device) -> bool {
    #[cfg(feature = "flex")]
    return *device == Device::flex();
    #[cfg(not(feature = "flex"))]
    {
        let _ = device;
        false
    }
}

#[cfg(not(feature = "flex"))]
fn cpu_device() -> Result<Device> {
    Err(BrasaError::BackendUnavailable {
        backend: "cpu".into(),
        reason: "this build has no CPU backend (it is the WebGPU build)".into(),
    })
}

#[cfg(feature = "wgpu")]
mod gpu {
    use std::future::Future;
    use std::sync::{Arc, Mutex};
    use std::task::{Poll, Waker};

    use burn::tensor::Device;
    use burn::tensor::wgpu::{WgpuInitError, WgpuSetup, wgpu};

    use crate::error::{BrasaError, Result};

    /// Whether one device was lost, and the futures waiting to hear it.
    #[derive(Default)]
    struct Watch {
        reason: Option<String>,
        wakers: Vec<Waker>,
    }

    struct Gpu {
        id: u32,
        device: Device,
        watch: Arc<Mutex<Watch>>,
        /// The wgpu instance it came from: a replacement device comes from it too.
        instance: wgpu::Instance,
    }

    /// Every device acquired so far, oldest first; the last one is where models load. burn's
    /// wgpu runtime of the default device can be initialised once per process; a lost
    /// device is replaced by a new runtime (registered as an existing setup), never reused.
    static GPUS: Mutex<Vec<Gpu>> = Mutex::new(Vec::new());

    fn lost(watch: &Mutex<Watch>) -> bool {
        watch.lock().map(|w| w.reason.is_some()).unwrap_or(true)
    }

    /// The current device, unless it was lost.
    fn live() -> Option<Device> {
        let gpus = GPUS.lock().ok()?;
        gpus.last().filter(|g| !lost(&g.watch)).map(|g| g.device.clone())
    }

    /// One acquisition of a device, and the callers waiting for its outcome.
    #[derive(Default)]
    struct Pending {
        /// `Some` once the acquisition ended: the device, or why there is none.
        outcome: Option<std::result::Result<Device, String>>,
        /// The caller acquiring it was dropped before it finished: the waiters start again.
        abandoned: bool,
        wakers: Vec<Waker>,
    }

    /// The acquisition under way, if any. Callers that find no live device together (every
    /// model on a device that was just lost) wait for this one instead of each requesting a
    /// device of its own, which would stay alive, unwatched and unused.
    static ACQUIRING: Mutex<Option<Arc<Mutex<Pending>>>> = Mutex::new(None);

    /// The caller acquiring a device: tells the waiters how it ended, also when it is dropped
    /// before the end.
    struct Acquirer(Arc<Mutex<Pending>>);

    impl Acquirer {
        fn finish(&self, outcome: Option<std::result::Result<Device, String>>) {
            if let Ok(mut slot) = ACQUIRING.lock()
                && slot.as_ref().is_some_and(|p| Arc::ptr_eq(p, &self.0))
            {
                *slot = None;
            }
            if let Ok(mut pending) = self.0.lock()
                && pending.outcome.is_none()
                && !pending.abandoned
            {
                match outcome {
                    Some(outcome) => pending.outcome = Some(outcome),
                    None => pending.abandoned = true,
                }
                pending.wakers.drain(..).for_each(Waker::wake);
            }
        }
    }

    impl Drop for Acquirer {
        fn drop(&mut self) {
            self.finish(None);
        }
    }

    /// The outcome of `pending`; `None` when it was abandoned.
    fn outcome_of(
        pending: &Mutex<Pending>,
    ) -> impl Future<Output = Option<std::result::Result<Device, String>>> + '_ {
        std::future::poll_fn(move |cx| {
            let Ok(mut p) = pending.lock() else { return Poll::Ready(None) };
            if let Some(outcome) = &p.outcome {
                return Poll::Ready(Some(outcome.clone()));
            }
            if p.abandoned {
                return Poll::Ready(None);
            }
            p.wakers.push(cx.waker().clone());
            Poll::Pending
        })
    }

    pub(super) async fn device() -> Result<Device> {
        let unavailable =
            |reason: String| BrasaError::BackendUnavailable { backend: "webgpu".into(), reason };
        loop {
            if let Some(device) = live() {
                return Ok(device);
            }
            // The lock is never held across an await: in wasm a second caller would deadlock.
            let (pending, mine) = {
                let mut slot =
                    ACQUIRING.lock().map_err(|_| unavailable("the GPU state is poisoned".into()))?;
                match &*slot {
                    Some(pending) => (pending.clone(), false),
                    None => {
                        let pending = Arc::new(Mutex::new(Pending::default()));
                        *slot = Some(pending.clone());
                        (pending, true)
                    }
                }
            };
            if mine {
                let acquirer = Acquirer(pending);
                let outcome = acquire().await;
                acquirer.finish(Some(outcome.clone()));
                return outcome.map_err(unavailable);
            }
            if let Some(outcome) = outcome_of(&pending).await {
                return outcome.map_err(unavailable);
            }
        }
    }

    /// Acquire a device: the first one as burn's wgpu runtime, or after the last was lost a
    /// new one from the same wgpu instance. The error is the cause, for a person.
    async fn acquire() -> std::result::Result<Device, String> {
        let replaced = GPUS.lock().ok().and_then(|gpus| gpus.last().map(|g| g.instance.clone()));
        let (device, setup) = match &replaced {
            None => Device::wgpu_options().init_with_setup_async().await.map_err(|e| match e {
                WgpuInitError::RequestDevice { message } => {
                    format!("requestDevice() failed: {}", readable(&message))
                }
                other => readable(&other.to_string()),
            })?,
            Some(instance) => replacement(instance).await?,
        };
        Ok(adopt(device, &setup))
    }

    /// wgpu words a browser's error as the `JsValue`'s debug form (`JsValue(OperationError:
    /// message\nstack)`): keep its first line, `OperationError: message`.
    fn readable(text: &str) -> String {
        let Some(at) = text.find("JsValue(") else { return text.to_string() };
        let inner = &text[at + "JsValue(".len()..];
        let inner = inner.strip_suffix(')').unwrap_or(inner);
        format!("{}{}", &text[..at], inner.lines().next().unwrap_or_default().trim_end())
    }

    /// A new device after the last was lost: the adapter and device cubecl would request
    /// (every feature but mappable primary buffers, the adapter's limits), as a new runtime.
    async fn replacement(instance: &wgpu::Instance) -> std::result::Result<(Device, WgpuSetup), String> {
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                ..Default::default()
            })
            .await
            .map_err(|e| format!("requestAdapter() failed: {}", readable(&e.to_string())))?;
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: None,
                required_features: adapter.features().difference(wgpu::Features::MAPPABLE_PRIMARY_BUFFERS),
                required_limits: adapter.limits(),
                memory_hints: wgpu::MemoryHints::MemoryUsage,
                trace: wgpu::Trace::Off,
                experimental_features: wgpu::ExperimentalFeatures::disabled(),
            })
            .await
            .map_err(|e| format!("requestDevice() failed: {}", readable(&e.to_string())))?;
        let backend = adapter.get_info().backend;
        let setup = WgpuSetup { instance: instance.clone(), adapter, device, queue, backend };
        match Device::wgpu_options().setup(setup.clone()).init() {
            Ok(device) => Ok((device, setup)),
            Err(e) => {
                // Nobody will use it: give it back to the browser now.
                setup.device.destroy();
                Err(format!("the new device could not be set up: {}", readable(&e.to_string())))
            }
        }
    }

    /// Record a new device and watch it for loss. Only the one acquisition under way calls it;
    /// should a live device be recorded all the same, the new one is destroyed, unused.
    fn adopt(device: Device, setup: &WgpuSetup) -> Device {
        if let Some(live) = live() {
            setup.device.destroy();
            return live;
        }
        let watch = Arc::new(Mutex::new(Watch::default()));
        // In browsers wgpu chains one handler per call on `GPUDevice.lost`; natively a call
        // would replace the one cubecl installed to poison the device, so only on the web.
        #[cfg(target_family = "wasm")]
        {
            let watch = watch.clone();
            setup.device.set_device_lost_callback(move |reason, message| {
                if let Ok(mut w) = watch.lock() {
                    w.reason = Some(format!("{reason:?}: {message}"));
                    w.wakers.drain(..).for_each(Waker::wake);
                }
            });
        }
        let Ok(mut gpus) = GPUS.lock() else { return device };
        let id = gpus.last().map_or(1, |g| g.id + 1);
        gpus.push(Gpu { id, device: device.clone(), watch, instance: setup.instance.clone() });
        device
    }

    fn watch_of(id: u32) -> Option<Arc<Mutex<Watch>>> {
        GPUS.lock().ok()?.iter().find(|g| g.id == id).map(|g| g.watch.clone())
    }

    pub(super) fn current_id() -> Option<u32> {
        GPUS.lock().ok()?.last().map(|g| g.id)
    }

    pub(super) fn lost_reason(id: u32) -> Option<String> {
        watch_of(id)?.lock().ok()?.reason.clone()
    }

    pub(super) fn lost_future(id: u32) -> impl Future<Output = String> {
        let watch = watch_of(id);
        std::future::poll_fn(move |cx| {
            let Some(watch) = &watch else { return Poll::Pending };
            let Ok(mut w) = watch.lock() else { return Poll::Pending };
            match &w.reason {
                Some(reason) => Poll::Ready(reason.clone()),
                None => {
                    w.wakers.push(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
    }
    #[cfg(test)]
    mod tests {
        #[test]
        fn browser_errors_read_as_their_first_line() {
            assert_eq!(
                super::readable("JsValue(OperationError: no device\nrequestDevice@https://x/y.js:1:2)"),
                "OperationError: no device"
            );
            assert_eq!(
                super::readable("JsValue(OperationError: no device\nundefined)"),
                "OperationError: no device"
            );
            assert_eq!(
                super::readable("Requested features are not available"),
                "Requested features are not available"
            );
        }
    }
}

#[cfg(not(feature = "wgpu"))]
mod gpu {
    use burn::tensor::Device;

    use crate::error::{BrasaError, Result};

    pub(super) async fn device() -> Result<Device> {
        Err(BrasaError::BackendUnavailable {
            backend: "webgpu".into(),
            reason: "this build has no WebGPU backend (it is the CPU build)".into(),
        })
    }

    pub(super) fn current_id() -> Option<u32> {
        None
    }

    pub(super) fn lost_reason(_id: u32) -> Option<String> {
        None
    }

    pub(super) fn lost_future(_id: u32) -> impl std::future::Future<Output = String> {
        std::future::pending()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_backend_names() {
        assert_eq!("auto".parse::<BackendPreference>(), Ok(BackendPreference::Auto));
        assert_eq!("cpu".parse::<BackendPreference>(), Ok(BackendPreference::Cpu));
        assert_eq!("webgpu".parse::<BackendPreference>(), Ok(BackendPreference::WebGpu));
        let err = "gpu".parse::<BackendPreference>().unwrap_err();
        assert_eq!(err.code(), crate::ErrorCode::BackendUnavailable);
        assert!(err.to_string().contains("'auto', 'webgpu' or 'cpu'"));
    }
}
