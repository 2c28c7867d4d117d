use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How a weights file stores its floating-point parameters: what `brasa quantize --dtype`
/// writes, what a registry manifest's file entry says (`"dtype"`), and what a client asks for
/// with the `dtype` load option.
///
/// Whatever the file holds, brasa's builds compute in f32: `f16` and `q8` files are widened
/// to f32 when they load, so they cost less to download, not less to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WeightsDtype {
    /// Every float tensor is IEEE binary32 (what `brasa import` writes; manifests without a
    /// dtype mean this).
    #[default]
    F32,
    /// Every float tensor is IEEE binary16: half the bytes, about 3 significant digits.
    F16,
    /// Matrices and kernels of 1,024 elements or more are int8 with one f32 scale per block
    /// of at most 64 values (burn's `Q8S` scheme); the rest stays f32. About a quarter of the
    /// bytes.
    Q8,
}

impl WeightsDtype {
    /// Every weights dtype, smallest file last.
    pub const ALL: [WeightsDtype; 3] = [WeightsDtype::F32, WeightsDtype::F16, WeightsDtype::Q8];

    /// The name manifests, the CLI and JS use.
    pub fn as_str(self) -> &'static str {
        match self {
            WeightsDtype::F32 => "f32",
            WeightsDtype::F16 => "f16",
            WeightsDtype::Q8 => "q8",
        }
    }
}

impl fmt::Display for WeightsDtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for WeightsDtype {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        WeightsDtype::ALL
            .into_iter()
            .find(|d| d.as_str() == s)
            .ok_or_else(|| format!("unknown weights dtype `{s}`: expected f32, f16 or q8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for d in WeightsDtype::ALL {
            assert_eq!(d.as_str().parse::<WeightsDtype>(), Ok(d));
            assert_eq!(serde_json::to_string(&d).unwrap(), format!("\"{d}\""));
        }
        assert!("int8".parse::<WeightsDtype>().unwrap_err().contains("f32, f16 or q8"));
        assert_eq!(WeightsDtype::default(), WeightsDtype::F32);
    }
}
