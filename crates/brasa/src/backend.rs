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
/// wgpu device; after that device was lost, a new one. Fails with [`BrasaError::BackendUnavailable`] when the backend is not compiled
/// in or no adapter can be had.
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
    use burn::tensor::wgpu::{WgpuSetup, wgpu};

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

    pub(super) async fn device() -> Result<Device> {
        if let Some(device) = live() {
            return Ok(device);
        }
        let replaced = GPUS.lock().ok().and_then(|gpus| gpus.last().map(|g| g.instance.clone()));
        // The lock is not held across the await: in wasm a second caller would deadlock.
        let acquired = match &replaced {
            None => Device::wgpu_options().init_with_setup_async().await.map_err(|e| e.to_string()),
            Some(instance) => replacement(instance).await,
        };
        match acquired {
            Ok((device, setup)) => Ok(adopt(device, &setup)),
            // A concurrent caller may have initialised the runtime while we waited.
            Err(err) => live().ok_or_else(|| BrasaError::BackendUnavailable {
                backend: "webgpu".into(),
                reason: match replaced {
                    None => format!("could not initialise the GPU: {err}"),
                    Some(_) => format!("the GPU device was lost and a new one could not be had: {err}"),
                },
            }),
        }
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
            .map_err(|e| e.to_string())?;
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
            .map_err(|e| e.to_string())?;
        let backend = adapter.get_info().backend;
        let setup = WgpuSetup { instance: instance.clone(), adapter, device, queue, backend };
        let device = Device::wgpu_options().setup(setup.clone()).init().map_err(|e| e.to_string())?;
        Ok((device, setup))
    }

    /// Record a new device and watch it for loss; a device another caller recorded while
    /// this one was being acquired wins (this one is dropped).
    fn adopt(device: Device, setup: &WgpuSetup) -> Device {
        if let Some(device) = live() {
            return device;
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
