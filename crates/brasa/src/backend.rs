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
/// wgpu device. Fails with [`BrasaError::BackendUnavailable`] when the backend is not compiled
/// in or no adapter can be had.
pub async fn acquire_device(kind: BackendKind) -> Result<Device> {
    match kind {
        BackendKind::Cpu => cpu_device(),
        BackendKind::WebGpu => gpu::device().await,
    }
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
    use std::sync::Mutex;

    use burn::tensor::Device;

    use crate::error::{BrasaError, Result};

    /// burn's wgpu runtime can be initialised once per process; every model shares it.
    static DEVICE: Mutex<Option<Device>> = Mutex::new(None);

    fn cached() -> Option<Device> {
        DEVICE.lock().ok().and_then(|guard| guard.clone())
    }

    pub(super) async fn device() -> Result<Device> {
        if let Some(device) = cached() {
            return Ok(device);
        }
        // The lock is not held across the await: in wasm a second caller would deadlock.
        match Device::wgpu_options().init_async().await {
            Ok(device) => {
                if let Ok(mut guard) = DEVICE.lock() {
                    Ok(guard.get_or_insert(device).clone())
                } else {
                    Ok(device)
                }
            }
            // A concurrent caller may have initialised the runtime while we waited.
            Err(err) => cached().ok_or_else(|| BrasaError::BackendUnavailable {
                backend: "webgpu".into(),
                reason: format!("could not initialise the GPU: {err}"),
            }),
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
