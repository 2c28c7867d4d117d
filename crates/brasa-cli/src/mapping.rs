//! How `brasa import` turns a checkpoint's tensor names into a model's parameter paths:
//! renames (regex → replacement, in order), transposes (2-D tensors whose new name matches),
//! drops (tensors the model has no place for). Pure functions over names, dtypes and shapes;
//! [`crate::import`] does the reading and writing.
//!
//! A mapping comes from a TOML file (`--map`), from flags (`--rename`, `--transpose`,
//! `--drop`), or both (the file's rules first):
//!
//! ```toml
//! # Rules run in order; each rename sees the result of the previous ones.
//! rename = [['^features\.0\.', "conv1."], ['^classifier\.(\d)\.', 'fc$1.']]
//! # 2-D tensors whose *new* name matches are transposed (PyTorch's Linear is [out, in],
//! # burn's [in, out]).
//! transpose = ['^fc\d\.weight$']
//! # Tensors whose *original* name matches are left out.
//! drop = ['num_batches_tracked$']
//! ```

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use regex::Regex;
use serde::Deserialize;

/// The element types a burnpack written by `brasa import` may hold: brasa's dtypes (one
/// definition, in `brasa-types`).
pub use brasa_types::DType as Elem;

/// One tensor of the checkpoint, as its reader describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceTensor {
    /// Its name in the checkpoint (`features.0.weight`).
    pub name: String,
    /// Its element type, or the checkpoint's name for one brasa cannot store (`float64`).
    pub dtype: std::result::Result<Elem, String>,
    /// Its shape, outermost first (empty for a scalar).
    pub shape: Vec<usize>,
}

/// A mapping's rules, as written (before compiling the regexes).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingSpec {
    /// `(regex, replacement)` pairs, applied in order (`$1`, `${name}` refer to groups).
    #[serde(default)]
    pub rename: Vec<(String, String)>,
    /// Regexes on the new name: matching 2-D tensors are transposed.
    #[serde(default)]
    pub transpose: Vec<String>,
    /// Regexes on the original name: matching tensors are left out.
    #[serde(default)]
    pub drop: Vec<String>,
}

impl MappingSpec {
    /// Parse a mapping file's text (TOML).
    pub fn from_toml(text: &str) -> Result<MappingSpec> {
        toml::from_str(text).map_err(|e| anyhow::anyhow!("{}", e.to_string().trim_end()))
    }

    /// The rules of the command line's flags: `--rename REGEX=REPLACEMENT` (split at the
    /// last `=`, so the regex may hold one but the replacement may not), `--transpose REGEX`,
    /// `--drop REGEX`.
    pub fn from_flags(renames: &[String], transposes: &[String], drops: &[String]) -> Result<MappingSpec> {
        let rename = renames
            .iter()
            .map(|rule| {
                rule.rsplit_once('=')
                    .map(|(from, to)| (from.to_string(), to.to_string()))
                    .with_context(|| format!("--rename `{rule}` is not REGEX=REPLACEMENT"))
            })
            .collect::<Result<_>>()?;
        Ok(MappingSpec { rename, transpose: transposes.to_vec(), drop: drops.to_vec() })
    }

    /// These rules followed by `other`'s.
    pub fn then(mut self, other: MappingSpec) -> MappingSpec {
        self.rename.extend(other.rename);
        self.transpose.extend(other.transpose);
        self.drop.extend(other.drop);
        self
    }

    /// Compile the regexes; an invalid one is an error naming it.
    pub fn compile(&self) -> Result<Mapping> {
        let compile = |kind: &str, pattern: &str| {
            Regex::new(pattern).with_context(|| format!("{kind} rule `{pattern}` is not a valid regex"))
        };
        Ok(Mapping {
            rename: self
                .rename
                .iter()
                .map(|(from, to)| Ok((compile("rename", from)?, to.clone())))
                .collect::<Result<_>>()?,
            transpose: self.transpose.iter().map(|p| compile("transpose", p)).collect::<Result<_>>()?,
            drop: self.drop.iter().map(|p| compile("drop", p)).collect::<Result<_>>()?,
        })
    }
}

/// Compiled rules.
#[derive(Debug, Clone)]
pub struct Mapping {
    rename: Vec<(Regex, String)>,
    transpose: Vec<Regex>,
    drop: Vec<Regex>,
}

/// What happens to one tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Its name in the checkpoint.
    pub source: String,
    /// Its name in the burnpack file: the model's parameter path.
    pub target: String,
    /// Its element type (unchanged).
    pub dtype: Elem,
    /// Its shape as written (swapped when transposed).
    pub shape: Vec<usize>,
    /// Whether its two axes are swapped.
    pub transpose: bool,
}

impl Entry {
    /// Number of elements.
    pub fn elements(&self) -> usize {
        self.shape.iter().product()
    }
}

/// The whole conversion, decided before a byte is read.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The tensors to write, by target name.
    pub entries: Vec<Entry>,
    /// The original names of the tensors left out.
    pub dropped: Vec<String>,
    /// Rules that matched no tensor (likely typos), described.
    pub unused_rules: Vec<String>,
}

impl Mapping {
    /// Decide what happens to each tensor. Every problem is reported at once, each naming its
    /// tensor: a dtype brasa cannot store, a transpose of a tensor that is not 2-D, two
    /// tensors given one name, an empty name, nothing left to write.
    pub fn plan(&self, tensors: &[SourceTensor]) -> Result<Plan> {
        let mut sorted: Vec<&SourceTensor> = tensors.iter().collect();
        sorted.sort_by(|a, b| a.name.cmp(&b.name));

        let mut problems = Vec::new();
        let mut dropped = Vec::new();
        let mut by_target: BTreeMap<String, Entry> = BTreeMap::new();
        let mut renamed = vec![false; self.rename.len()];
        let mut transposed = vec![false; self.transpose.len()];
        let mut drop_used = vec![false; self.drop.len()];

        for tensor in sorted {
            let mut drop = false;
            for (i, re) in self.drop.iter().enumerate() {
                if re.is_match(&tensor.name) {
                    drop_used[i] = true;
                    drop = true;
                }
            }
            if drop {
                dropped.push(tensor.name.clone());
                continue;
            }
            let mut target = tensor.name.clone();
            for (i, (re, to)) in self.rename.iter().enumerate() {
                if re.is_match(&target) {
                    renamed[i] = true;
                    target = re.replace_all(&target, to.as_str()).into_owned();
                }
            }
            let mut transpose = false;
            for (i, re) in self.transpose.iter().enumerate() {
                if re.is_match(&target) {
                    transposed[i] = true;
                    transpose = true;
                }
            }
            let label = if target == tensor.name {
                format!("`{target}`")
            } else {
                format!("`{}` (→ `{target}`)", tensor.name)
            };
            let dtype = match &tensor.dtype {
                Ok(dtype) => *dtype,
                Err(other) => {
                    problems.push(format!(
                        "tensor {label} is {other}; brasa stores float32, float16, int64, int32, uint8 and bool \
                         (convert it before importing, or --drop it)"
                    ));
                    continue;
                }
            };
            let mut shape = tensor.shape.clone();
            if transpose {
                if shape.len() != 2 {
                    problems.push(format!(
                        "tensor {label} has shape {shape:?}: only 2-D tensors can be transposed"
                    ));
                    continue;
                }
                shape.swap(0, 1);
            }
            if target.is_empty() {
                problems.push(format!("tensor `{}` is renamed to the empty name", tensor.name));
                continue;
            }
            if let Some(first) = by_target.get(&target) {
                problems.push(format!(
                    "tensors `{}` and `{}` are both renamed to `{target}`",
                    first.source, tensor.name
                ));
                continue;
            }
            by_target.insert(
                target.clone(),
                Entry { source: tensor.name.clone(), target, dtype, shape, transpose },
            );
        }

        if problems.is_empty() && by_target.is_empty() {
            problems.push(if tensors.is_empty() {
                "the file holds no tensors".to_string()
            } else {
                format!("every tensor ({}) is dropped: nothing to write", tensors.len())
            });
        }
        match problems.len() {
            0 => {}
            1 => bail!("{}", problems[0]),
            n => bail!("{n} problems:\n  {}", problems.join("\n  ")),
        }

        let mut unused_rules = Vec::new();
        for (i, (re, to)) in self.rename.iter().enumerate() {
            if !renamed[i] {
                unused_rules.push(format!("rename `{}` -> `{to}` matched no tensor", re.as_str()));
            }
        }
        for (i, re) in self.transpose.iter().enumerate() {
            if !transposed[i] {
                unused_rules.push(format!("transpose `{}` matched no tensor", re.as_str()));
            }
        }
        for (i, re) in self.drop.iter().enumerate() {
            if !drop_used[i] {
                unused_rules.push(format!("drop `{}` matched no tensor", re.as_str()));
            }
        }
        Ok(Plan { entries: by_target.into_values().collect(), dropped, unused_rules })
    }
}

/// Single-name views of the rules, for tests.
#[cfg(test)]
impl Mapping {
    /// A tensor's new name: every rename rule in turn, each replacing all its matches.
    pub fn rename(&self, name: &str) -> String {
        self.rename
            .iter()
            .fold(name.to_string(), |name, (re, to)| re.replace_all(&name, to.as_str()).into_owned())
    }

    /// Whether a tensor of this original name is dropped.
    pub fn drops(&self, name: &str) -> bool {
        self.drop.iter().any(|re| re.is_match(name))
    }

    /// Whether a tensor of this new name is transposed.
    pub fn transposes(&self, new_name: &str) -> bool {
        self.transpose.iter().any(|re| re.is_match(new_name))
    }
}

impl Plan {
    /// Total elements written.
    pub fn elements(&self) -> usize {
        self.entries.iter().map(Entry::elements).sum()
    }

    /// Total bytes of tensor data written.
    pub fn data_bytes(&self) -> usize {
        self.entries.iter().map(|e| e.elements() * e.dtype.byte_size()).sum()
    }

    /// The table `brasa import` prints: one line per tensor written (name, shape, dtype, and
    /// where it came from when renamed or transposed).
    pub fn table(&self) -> String {
        let width = self.entries.iter().map(|e| e.target.len()).max().unwrap_or(0).max(16);
        let shapes: Vec<String> = self.entries.iter().map(|e| format!("{:?}", e.shape)).collect();
        let shape_width = shapes.iter().map(String::len).max().unwrap_or(0);
        let mut out = String::new();
        for (entry, shape) in self.entries.iter().zip(&shapes) {
            let mut origin = Vec::new();
            if entry.source != entry.target {
                origin.push(format!("from {}", entry.source));
            }
            if entry.transpose {
                origin.push("transposed".to_string());
            }
            let line = format!(
                "{:<width$} {shape:<shape_width$} {:<7} {}",
                entry.target,
                entry.dtype,
                origin.join(", ")
            );
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// Swap the axes of a row-major `[rows, cols]` matrix of `elem_size`-byte elements.
pub fn transpose_2d(data: &[u8], rows: usize, cols: usize, elem_size: usize) -> Result<Vec<u8>> {
    let want = rows.checked_mul(cols).and_then(|n| n.checked_mul(elem_size));
    if want != Some(data.len()) {
        bail!(
            "a [{rows}, {cols}] matrix of {elem_size}-byte elements needs {want:?} bytes, not {}",
            data.len()
        );
    }
    let mut out = vec![0u8; data.len()];
    for r in 0..rows {
        for c in 0..cols {
            let from = (r * cols + c) * elem_size;
            let to = (c * rows + r) * elem_size;
            out[to..to + elem_size].copy_from_slice(&data[from..from + elem_size]);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f32_tensor(name: &str, shape: &[usize]) -> SourceTensor {
        SourceTensor { name: name.into(), dtype: Ok(Elem::Float32), shape: shape.to_vec() }
    }

    fn mnist_checkpoint() -> Vec<SourceTensor> {
        vec![
            f32_tensor("features.0.weight", &[32, 1, 3, 3]),
            f32_tensor("features.0.bias", &[32]),
            f32_tensor("features.3.weight", &[64, 32, 3, 3]),
            f32_tensor("features.3.bias", &[64]),
            f32_tensor("classifier.0.weight", &[128, 3136]),
            f32_tensor("classifier.0.bias", &[128]),
            f32_tensor("classifier.2.weight", &[10, 128]),
            f32_tensor("classifier.2.bias", &[10]),
        ]
    }

    #[test]
    fn the_mnist_mapping_file_maps_ccexam_onto_mnistnet() {
        let spec = MappingSpec::from_toml(include_str!("../../../models/mnist/import.toml")).unwrap();
        let mapping = spec.compile().unwrap();
        assert_eq!(mapping.rename("features.0.weight"), "conv1.weight");
        assert_eq!(mapping.rename("features.3.bias"), "conv2.bias");
        assert_eq!(mapping.rename("classifier.0.weight"), "fc1.weight");
        assert_eq!(mapping.rename("classifier.2.weight"), "fc2.weight");
        assert!(mapping.transposes("fc1.weight") && mapping.transposes("fc2.weight"));
        assert!(!mapping.transposes("fc1.bias") && !mapping.transposes("conv1.weight"));

        let plan = mapping.plan(&mnist_checkpoint()).unwrap();
        let got: Vec<(&str, &[usize], bool)> =
            plan.entries.iter().map(|e| (e.target.as_str(), e.shape.as_slice(), e.transpose)).collect();
        assert_eq!(
            got,
            [
                ("conv1.bias", &[32][..], false),
                ("conv1.weight", &[32, 1, 3, 3][..], false),
                ("conv2.bias", &[64][..], false),
                ("conv2.weight", &[64, 32, 3, 3][..], false),
                ("fc1.bias", &[128][..], false),
                ("fc1.weight", &[3136, 128][..], true),
                ("fc2.bias", &[10][..], false),
                ("fc2.weight", &[128, 10][..], true),
            ]
        );
        assert_eq!(plan.elements(), 421_642);
        assert_eq!(plan.data_bytes(), 421_642 * 4);
        assert!(plan.dropped.is_empty());
        assert!(plan.unused_rules.is_empty(), "{:?}", plan.unused_rules);
        let table = plan.table();
        assert!(table.contains("fc1.weight       [3136, 128]"), "{table}");
        assert!(table.contains("from classifier.0.weight, transposed"), "{table}");
    }

    #[test]
    fn the_two_heads_fixture_mapping_gives_its_parameter_paths() {
        let spec =
            MappingSpec::from_toml(include_str!("../../../tests/fixtures/two-heads/import.toml")).unwrap();
        let checkpoint = vec![
            f32_tensor("encoder.weight", &[6, 4]),
            f32_tensor("encoder.bias", &[6]),
            f32_tensor("embed.weight", &[16, 6]),
            f32_tensor("head.weight", &[3, 6]),
            f32_tensor("head.bias", &[3]),
            SourceTensor { name: "training.steps".into(), dtype: Ok(Elem::Int64), shape: vec![] },
        ];
        let plan = spec.compile().unwrap().plan(&checkpoint).unwrap();
        let got: Vec<(&str, &[usize], bool)> =
            plan.entries.iter().map(|e| (e.target.as_str(), e.shape.as_slice(), e.transpose)).collect();
        assert_eq!(
            got,
            [
                ("classifier.bias", &[3][..], false),
                ("classifier.weight", &[6, 3][..], true),
                ("feature_proj.bias", &[6][..], false),
                ("feature_proj.weight", &[4, 6][..], true),
                ("token_embed.weight", &[16, 6][..], false),
            ]
        );
        assert_eq!(plan.dropped, ["training.steps"]);
        assert!(plan.unused_rules.is_empty(), "{:?}", plan.unused_rules);
    }

    #[test]
    fn flags_parse_and_follow_the_file() {
        let file = MappingSpec::from_toml("rename = [['^a\\.', 'b.']]\ntranspose = ['w$']").unwrap();
        let flags = MappingSpec::from_flags(
            &["^b\\.(\\d)\\.=layer$1.".into(), "x=y=".into(), "^model\\.=".into()],
            &["^layer0".into()],
            &["tracked$".into()],
        )
        .unwrap();
        assert_eq!(flags.rename[1], ("x=y".to_string(), String::new()), "split at the last `=`");
        let mapping = file.then(flags).compile().unwrap();
        assert_eq!(mapping.rename("a.0.w"), "layer0.w");
        assert_eq!(mapping.rename("model.head"), "head");
        assert!(mapping.drops("bn.num_batches_tracked"));
        assert!(mapping.transposes("layer0.w"));

        assert!(
            MappingSpec::from_flags(&["no-equals".into()], &[], &[])
                .unwrap_err()
                .to_string()
                .contains("REGEX=REPLACEMENT")
        );
        let bad = MappingSpec { transpose: vec!["(".into()], ..Default::default() }.compile().unwrap_err();
        assert!(format!("{bad:#}").contains("transpose rule `(`"), "{bad:#}");
    }

    #[test]
    fn mapping_files_are_checked() {
        assert!(MappingSpec::from_toml("").unwrap() == MappingSpec::default());
        let unknown = MappingSpec::from_toml("renames = []").unwrap_err().to_string();
        assert!(unknown.contains("renames"), "{unknown}");
        assert!(MappingSpec::from_toml("rename = [['only-one']]").is_err());
        assert!(MappingSpec::from_toml("transpose = 'not a list'").is_err());
    }

    #[test]
    fn renames_chain_in_order_and_replace_every_match() {
        let spec = MappingSpec {
            rename: vec![
                ("\\.gamma$".into(), ".weight".into()),
                ("^blocks\\.(\\d+)\\.".into(), "block${1}.".into()),
                ("_".into(), "-".into()),
            ],
            ..Default::default()
        };
        let mapping = spec.compile().unwrap();
        assert_eq!(mapping.rename("blocks.12.norm_a_b.gamma"), "block12.norm-a-b.weight");
        assert_eq!(mapping.rename("untouched"), "untouched");
    }

    #[test]
    fn problems_are_errors_naming_each_tensor() {
        let spec = MappingSpec {
            rename: vec![("^(enc|encoder)\\.".into(), "encoder.".into())],
            transpose: vec!["bias$".into()],
            drop: vec![],
        };
        let mapping = spec.compile().unwrap();
        let tensors = vec![
            f32_tensor("enc.weight", &[2, 3]),
            f32_tensor("encoder.weight", &[2, 3]),
            f32_tensor("head.bias", &[3]),
            SourceTensor { name: "head.scale".into(), dtype: Err("float64".into()), shape: vec![3] },
        ];
        let err = mapping.plan(&tensors).unwrap_err().to_string();
        assert!(
            err.contains("`enc.weight` and `encoder.weight` are both renamed to `encoder.weight`"),
            "{err}"
        );
        assert!(err.contains("`head.bias` has shape [3]: only 2-D tensors can be transposed"), "{err}");
        assert!(err.contains("`head.scale` is float64"), "{err}");
        assert!(err.starts_with("3 problems:\n  "), "{err}");
        assert_eq!(err.lines().count(), 4);
    }

    #[test]
    fn drops_apply_to_original_names_before_everything_else() {
        let spec = MappingSpec {
            rename: vec![("^bn\\.".into(), "norm.".into())],
            transpose: vec![],
            drop: vec!["num_batches_tracked$".into(), "^unused\\.".into()],
        };
        let mapping = spec.compile().unwrap();
        let tensors = vec![
            f32_tensor("bn.weight", &[4]),
            // A dropped tensor may have any dtype.
            SourceTensor {
                name: "bn.num_batches_tracked".into(),
                dtype: Err("float64".into()),
                shape: vec![],
            },
        ];
        let plan = mapping.plan(&tensors).unwrap();
        assert_eq!(plan.entries.len(), 1);
        assert_eq!(plan.entries[0].target, "norm.weight");
        assert_eq!(plan.dropped, ["bn.num_batches_tracked"]);
        assert_eq!(plan.unused_rules, ["drop `^unused\\.` matched no tensor"]);

        let all = MappingSpec { drop: vec![".".into()], ..Default::default() }.compile().unwrap();
        assert!(all.plan(&tensors).unwrap_err().to_string().contains("every tensor (2) is dropped"));
        assert!(all.plan(&[]).unwrap_err().to_string().contains("no tensors"));
    }

    #[test]
    fn empty_names_are_refused() {
        let mapping = MappingSpec { rename: vec![(".*".into(), String::new())], ..Default::default() }
            .compile()
            .unwrap();
        let err = mapping.plan(&[f32_tensor("x", &[1])]).unwrap_err().to_string();
        assert!(err.contains("`x` is renamed to the empty name"), "{err}");
    }

    #[test]
    fn transpose_swaps_axes_for_any_element_size() {
        // [[1, 2, 3], [4, 5, 6]] -> [[1, 4], [2, 5], [3, 6]]
        let m: Vec<u8> = [1u16, 2, 3, 4, 5, 6].iter().flat_map(|v| v.to_le_bytes()).collect();
        let t = transpose_2d(&m, 2, 3, 2).unwrap();
        let values: Vec<u16> = t.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
        assert_eq!(values, [1, 4, 2, 5, 3, 6]);
        assert_eq!(transpose_2d(&t, 3, 2, 2).unwrap(), m, "twice is the identity");
        assert!(transpose_2d(&m, 2, 2, 2).is_err());
        assert!(transpose_2d(&[], usize::MAX, 2, 8).is_err());
        assert_eq!(transpose_2d(&[], 0, 5, 4).unwrap(), Vec::<u8>::new());
    }
}
