//! Triton's two extensions to the Open Inference Protocol that its tooling asks for
//! (`tritonclient`'s `get_model_config` and `get_inference_statistics`, perf_analyzer,
//! model analyzer), built from what brasa knows:
//!
//! - model configuration (`GET /v2/models/{name}[/versions/{v}]/config`): the JSON form of
//!   Triton's `ModelConfig` (`model_config.proto`) from a model's [`Signature`], the
//!   endpoint's batching policy and its version policy ([`model_config`]);
//! - statistics (`GET /v2/models[/{name}[/versions/{v}]]/stats`): per model version, counts
//!   and cumulative nanoseconds of requests and forward passes, kept by [`Statistics`] from
//!   the durations the endpoint measures, reported in Triton's `model_stats` JSON.

use std::collections::BTreeMap;

use brasa_types::{Signature, TensorSpec};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::BatchPolicy;

/// Which versions of a model an endpoint serves, as Triton's `ModelVersionPolicy` states it.
/// brasa's versions are semver strings, so `specific` lists strings where Triton has
/// integers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VersionPolicy {
    /// The newest versions a spec resolves to (a channel or a range: one at a time).
    Latest {
        /// How many are served at once.
        num_versions: u32,
    },
    /// Every version.
    All {},
    /// These versions (an exact spec: `mnist@1.0.0`).
    Specific {
        /// The versions served.
        versions: Vec<String>,
    },
}

/// `GET /v2/models/{name}/config`: Triton's `ModelConfig` as JSON, with only the fields
/// whose values brasa has: `name`, `platform` and `backend` (`brasa`), `version_policy`,
/// `max_batch_size`, `input` and `output` (`name`, `data_type`, `dims`), `instance_group`
/// (one instance on the CPU or the GPU, after `backend`: `cpu` or `webgpu`) and, when
/// requests are batched together, `dynamic_batching`.
///
/// `policy` is the endpoint's batching policy with its effective `max_batch`. It applies
/// when every input and output has the batch first ([`Signature::is_batched`]): then
/// `max_batch_size` is its `max_batch` and `dims` leave the batch out, as Triton's do;
/// otherwise (no batch, or the batch elsewhere, as in a recurrent state `[2, batch, 128]`)
/// `max_batch_size` is 0 and `dims` are whole. Variable dims are -1. `dynamic_batching`
/// (`max_queue_delay_microseconds`, and `preferred_batch_size`: a queue of `max_batch` rows
/// runs at once) is there when more than one row runs at once.
pub fn model_config(
    name: &str,
    sig: &Signature,
    policy: Option<&BatchPolicy>,
    versions: &VersionPolicy,
    backend: &str,
) -> Value {
    let batching = policy.filter(|_| sig.is_batched());
    let skip = usize::from(batching.is_some());
    let tensors = |specs: &[TensorSpec]| -> Vec<Value> {
        specs
            .iter()
            .map(|t| {
                let dims: Vec<i64> = t.dims.iter().skip(skip).map(|d| d.kserve()).collect();
                json!({ "name": t.name, "data_type": t.dtype.triton(), "dims": dims })
            })
            .collect()
    };
    let mut config = json!({
        "name": name,
        "platform": "brasa",
        "backend": "brasa",
        "version_policy": versions,
        "max_batch_size": batching.map_or(0, |p| p.max_batch),
        "input": tensors(&sig.inputs),
        "output": tensors(&sig.outputs),
        "instance_group": [{
            "name": format!("{name}_0"),
            "kind": if backend == "webgpu" { "KIND_GPU" } else { "KIND_CPU" },
            "count": 1,
        }],
    });
    if let Some(p) = batching.filter(|p| p.max_batch > 1) {
        config["dynamic_batching"] = json!({
            "preferred_batch_size": [p.max_batch],
            "max_queue_delay_microseconds": p.max_queue_delay_us,
        });
    }
    config
}

/// A count and a cumulative duration (Triton's `StatisticDuration`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Duration {
    /// How many times it was measured.
    pub count: u64,
    /// The sum of the measurements, in nanoseconds.
    pub ns: u64,
}

impl Duration {
    fn add(&mut self, ns: u64) {
        self.count += 1;
        self.ns = self.ns.saturating_add(ns);
    }
}

/// Seconds (as JS measures them) in whole nanoseconds; what is not a duration counts 0.
fn nanos(seconds: f64) -> u64 {
    if seconds.is_finite() && seconds > 0.0 { (seconds * 1e9).round().min(u64::MAX as f64) as u64 } else { 0 }
}

/// The phases of one forward pass, in seconds: assembling the batch's inputs (`input`),
/// the model's run (`infer`: the copy into wasm, the forward pass, the copy out), and
/// splitting the outputs into each request's rows (`output`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Phases {
    /// Triton's `compute_input`.
    pub input: f64,
    /// Triton's `compute_infer`.
    pub infer: f64,
    /// Triton's `compute_output`.
    pub output: f64,
}

/// One thing that happened to a model version, as the endpoint reports it. Durations are in
/// seconds, `at` in milliseconds since the epoch.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum StatsEvent {
    /// A request answered: `rows` of it (1 for a model without a batch), from arrival to
    /// answer `request`, `queue` waiting for its batch, and its batch's `phases`.
    Success {
        /// The model's name.
        model: String,
        /// The version that answered.
        version: String,
        /// Its rows (inferences).
        rows: u64,
        /// Arrival to answer.
        request: f64,
        /// Waiting in the batching queue.
        queue: f64,
        /// Of the forward pass it was part of.
        #[serde(default)]
        phases: Phases,
        /// When (ms since the epoch).
        at: f64,
    },
    /// A request refused or failed after it reached the version (bad input, overload, an
    /// error while running), `request` from arrival to answer.
    Failure {
        /// The model's name.
        model: String,
        /// The version it was for.
        version: String,
        /// Arrival to answer.
        request: f64,
        /// When (ms since the epoch).
        at: f64,
    },
    /// A forward pass of `batch` rows that succeeded (one per batch, whatever the number of
    /// requests in it).
    Execution {
        /// The model's name.
        model: String,
        /// The version that ran.
        version: String,
        /// Rows in the pass.
        batch: u64,
        /// Its phases.
        #[serde(default)]
        phases: Phases,
    },
}

/// The statistics of one batch size (Triton's `InferBatchStatistics`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
struct BatchStats {
    compute_input: Duration,
    compute_infer: Duration,
    compute_output: Duration,
}

/// The statistics of one model version since the endpoint started, as Triton keeps them:
/// request-level durations count once per request (a request is credited its batch's
/// compute phases), `batch_stats` once per forward pass.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VersionStats {
    /// The last request answered or failed, ms since the epoch (0: none yet).
    pub last_inference: u64,
    /// Rows of the requests answered.
    pub inference_count: u64,
    /// Forward passes that succeeded.
    pub execution_count: u64,
    /// Requests answered, arrival to answer.
    pub success: Duration,
    /// Requests refused or failed, arrival to answer.
    pub fail: Duration,
    /// Time answered requests waited for their batch.
    pub queue: Duration,
    /// Assembling inputs, per answered request.
    pub compute_input: Duration,
    /// The model's run, per answered request.
    pub compute_infer: Duration,
    /// Splitting outputs, per answered request.
    pub compute_output: Duration,
    batches: BTreeMap<u64, BatchStats>,
}

impl VersionStats {
    fn saw(&mut self, at_ms: f64) {
        if at_ms.is_finite() && at_ms > 0.0 {
            self.last_inference = self.last_inference.max(at_ms as u64);
        }
    }

    fn triton(&self, name: &str, version: &str) -> Value {
        let batch_stats: Vec<Value> = self
            .batches
            .iter()
            .map(|(size, b)| {
                json!({ "batch_size": size, "compute_input": b.compute_input, "compute_infer": b.compute_infer, "compute_output": b.compute_output })
            })
            .collect();
        json!({
            "name": name,
            "version": version,
            "last_inference": self.last_inference,
            "inference_count": self.inference_count,
            "execution_count": self.execution_count,
            "inference_stats": {
                "success": self.success,
                "fail": self.fail,
                "queue": self.queue,
                "compute_input": self.compute_input,
                "compute_infer": self.compute_infer,
                "compute_output": self.compute_output,
            },
            "batch_stats": batch_stats,
        })
    }
}

/// The statistics of every model version an endpoint served, by (model, version).
#[derive(Debug, Clone, Default)]
pub struct Statistics {
    versions: BTreeMap<(String, String), VersionStats>,
}

impl Statistics {
    /// Count one event.
    pub fn record(&mut self, event: StatsEvent) {
        match event {
            StatsEvent::Success { model, version, rows, request, queue, phases, at } => {
                let s = self.versions.entry((model, version)).or_default();
                s.saw(at);
                s.inference_count += rows;
                s.success.add(nanos(request));
                s.queue.add(nanos(queue));
                s.compute_input.add(nanos(phases.input));
                s.compute_infer.add(nanos(phases.infer));
                s.compute_output.add(nanos(phases.output));
            }
            StatsEvent::Failure { model, version, request, at } => {
                let s = self.versions.entry((model, version)).or_default();
                s.saw(at);
                s.fail.add(nanos(request));
            }
            StatsEvent::Execution { model, version, batch, phases } => {
                let s = self.versions.entry((model, version)).or_default();
                s.execution_count += 1;
                let b = s.batches.entry(batch).or_default();
                b.compute_input.add(nanos(phases.input));
                b.compute_infer.add(nanos(phases.infer));
                b.compute_output.add(nanos(phases.output));
            }
        }
    }

    /// The statistics of one version (`None` while nothing was recorded for it).
    pub fn get(&self, model: &str, version: &str) -> Option<&VersionStats> {
        self.versions.get(&(model.to_owned(), version.to_owned()))
    }

    /// `GET /v2/models[/{name}[/versions/{v}]]/stats`: `{ model_stats: [...] }` for each
    /// `(model, version)` of `served`, in that order; a version nothing happened to yet is
    /// reported with zeros.
    pub fn report(&self, served: &[(String, String)]) -> Value {
        let empty = VersionStats::default();
        let stats: Vec<Value> = served
            .iter()
            .map(|(model, version)| self.get(model, version).unwrap_or(&empty).triton(model, version))
            .collect();
        json!({ "model_stats": stats })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use brasa_types::{DType, Dim};

    fn two_inputs() -> Signature {
        Signature::new(
            vec![
                TensorSpec::new(
                    "features",
                    DType::Float32,
                    vec![Dim::Batch, Dim::bounded("seq", 1, 64), Dim::Fixed(4)],
                ),
                TensorSpec::new("token_ids", DType::Int64, vec![Dim::Batch, Dim::Fixed(3)]),
                TensorSpec::new("mask", DType::Bool, vec![Dim::Batch, Dim::dynamic("seq")]),
                TensorSpec::new("half", DType::Float16, vec![Dim::Batch]),
                TensorSpec::new("small", DType::Int32, vec![Dim::Batch]),
                TensorSpec::new("bytes", DType::Uint8, vec![Dim::Batch, Dim::Fixed(2)]),
            ],
            vec![
                TensorSpec::new("pooled", DType::Float32, vec![Dim::Batch, Dim::Fixed(6)]),
                TensorSpec::new("class_id", DType::Int64, vec![Dim::Batch]),
            ],
        )
    }

    const POLICY: BatchPolicy = BatchPolicy { max_batch: 8, max_queue_delay_us: 2000, max_queue_rows: 64 };

    #[test]
    fn config_of_a_batched_model_leaves_the_batch_out() {
        let latest = VersionPolicy::Latest { num_versions: 1 };
        let c = model_config("two-heads", &two_inputs(), Some(&POLICY), &latest, "cpu");
        assert_eq!(c["name"], "two-heads");
        assert_eq!(c["platform"], "brasa");
        assert_eq!(c["backend"], "brasa");
        assert_eq!(c["max_batch_size"], 8);
        assert_eq!(c["version_policy"], json!({ "latest": { "num_versions": 1 } }));
        assert_eq!(
            c["input"],
            json!([
                { "name": "features", "data_type": "TYPE_FP32", "dims": [-1, 4] },
                { "name": "token_ids", "data_type": "TYPE_INT64", "dims": [3] },
                { "name": "mask", "data_type": "TYPE_BOOL", "dims": [-1] },
                { "name": "half", "data_type": "TYPE_FP16", "dims": [] },
                { "name": "small", "data_type": "TYPE_INT32", "dims": [] },
                { "name": "bytes", "data_type": "TYPE_UINT8", "dims": [2] },
            ])
        );
        assert_eq!(
            c["output"],
            json!([
                { "name": "pooled", "data_type": "TYPE_FP32", "dims": [6] },
                { "name": "class_id", "data_type": "TYPE_INT64", "dims": [] },
            ])
        );
        assert_eq!(
            c["dynamic_batching"],
            json!({ "preferred_batch_size": [8], "max_queue_delay_microseconds": 2000 })
        );
        assert_eq!(c["instance_group"], json!([{ "name": "two-heads_0", "kind": "KIND_CPU", "count": 1 }]));
        // Only fields brasa has values for.
        let keys: Vec<&str> = c.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys.len(),
            9,
            "{keys:?}: name, platform, backend, version_policy, max_batch_size, input, output, instance_group, dynamic_batching"
        );
    }

    #[test]
    fn config_without_batching() {
        let exact = VersionPolicy::Specific { versions: vec!["1.0.0".into()] };
        // Batching off (maxBatch 1): the batch is still left out, no dynamic batching.
        let one = BatchPolicy { max_batch: 1, ..POLICY };
        let c = model_config("m", &two_inputs(), Some(&one), &exact, "webgpu");
        assert_eq!(c["max_batch_size"], 1);
        assert_eq!(c["input"][1]["dims"], json!([3]));
        assert!(c.get("dynamic_batching").is_none(), "{c}");
        assert_eq!(c["version_policy"], json!({ "specific": { "versions": ["1.0.0"] } }));
        assert_eq!(c["instance_group"][0]["kind"], "KIND_GPU");
        // A batch that is not first everywhere (a recurrent state): whole dims, -1 for the
        // batch, max_batch_size 0, whatever the policy.
        let state = Signature::new(
            vec![
                TensorSpec::new("input", DType::Float32, vec![Dim::Batch, Dim::dynamic("n")]),
                TensorSpec::new("state", DType::Float32, vec![Dim::Fixed(2), Dim::Batch, Dim::Fixed(128)]),
            ],
            vec![TensorSpec::new("output", DType::Float32, vec![Dim::Batch, Dim::Fixed(1)])],
        );
        let c = model_config("vad", &state, Some(&POLICY), &VersionPolicy::All {}, "cpu");
        assert_eq!(c["max_batch_size"], 0);
        assert_eq!(c["input"][1]["dims"], json!([2, -1, 128]));
        assert_eq!(c["output"][0]["dims"], json!([-1, 1]));
        assert!(c.get("dynamic_batching").is_none(), "{c}");
        assert_eq!(c["version_policy"], json!({ "all": {} }));
        // No policy at all: the same.
        assert_eq!(model_config("vad", &state, None, &VersionPolicy::All {}, "cpu"), c);
    }

    #[test]
    fn version_policy_reads_back() {
        for p in [
            VersionPolicy::Latest { num_versions: 2 },
            VersionPolicy::All {},
            VersionPolicy::Specific { versions: vec!["1.0.0".into(), "1.1.0".into()] },
        ] {
            assert_eq!(
                serde_json::from_value::<VersionPolicy>(serde_json::to_value(&p).unwrap()).unwrap(),
                p
            );
        }
    }

    fn event(json: Value) -> StatsEvent {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn statistics_count_per_version_as_triton_does() {
        let mut s = Statistics::default();
        let phases = json!({ "input": 0.000_001, "infer": 0.002, "output": 0.000_000_5 });
        // One forward pass of 3 rows answering two requests (2 rows and 1 row).
        s.record(event(
            json!({ "kind": "execution", "model": "m", "version": "1.0.0", "batch": 3, "phases": phases }),
        ));
        for (rows, queue) in [(2, 0.001), (1, 0.0005)] {
            s.record(event(json!({
                "kind": "success", "model": "m", "version": "1.0.0", "rows": rows,
                "request": 0.004, "queue": queue, "phases": phases, "at": 1_700_000_000_000.0,
            })));
        }
        s.record(event(json!({ "kind": "failure", "model": "m", "version": "1.0.0", "request": 0.000_25, "at": 1_700_000_000_500.0 })));
        // Another version's requests are its own.
        s.record(event(
            json!({ "kind": "failure", "model": "m", "version": "1.1.0", "request": 0.001, "at": 1.0 }),
        ));

        let v = s.get("m", "1.0.0").unwrap();
        assert_eq!(v.inference_count, 3);
        assert_eq!(v.execution_count, 1);
        assert_eq!(v.success, Duration { count: 2, ns: 8_000_000 });
        assert_eq!(v.fail, Duration { count: 1, ns: 250_000 });
        assert_eq!(v.queue, Duration { count: 2, ns: 1_500_000 });
        // Each request is credited its batch's phases.
        assert_eq!(v.compute_input, Duration { count: 2, ns: 2_000 });
        assert_eq!(v.compute_infer, Duration { count: 2, ns: 4_000_000 });
        assert_eq!(v.compute_output, Duration { count: 2, ns: 1_000 });
        assert_eq!(v.last_inference, 1_700_000_000_500);

        let served = [
            ("m".to_string(), "1.0.0".to_string()),
            ("m".to_string(), "1.1.0".to_string()),
            ("n".to_string(), "2.0.0".to_string()),
        ];
        let report = s.report(&served);
        let stats = report["model_stats"].as_array().unwrap();
        assert_eq!(stats.len(), 3);
        assert_eq!(stats[0]["name"], "m");
        assert_eq!(stats[0]["version"], "1.0.0");
        assert_eq!(stats[0]["inference_count"], 3);
        assert_eq!(stats[0]["inference_stats"]["success"], json!({ "count": 2, "ns": 8_000_000 }));
        assert_eq!(
            stats[0]["batch_stats"],
            json!([{
                "batch_size": 3,
                "compute_input": { "count": 1, "ns": 1_000 },
                "compute_infer": { "count": 1, "ns": 2_000_000 },
                "compute_output": { "count": 1, "ns": 500 },
            }])
        );
        assert_eq!(stats[1]["inference_stats"]["fail"], json!({ "count": 1, "ns": 1_000_000 }));
        assert_eq!(stats[1]["inference_count"], 0);
        // Nothing happened to `n` yet: zeros, every field there.
        assert_eq!(stats[2]["last_inference"], 0);
        assert_eq!(stats[2]["inference_stats"]["queue"], json!({ "count": 0, "ns": 0 }));
        assert_eq!(stats[2]["batch_stats"], json!([]));
        assert_eq!(s.report(&[]), json!({ "model_stats": [] }));
    }

    #[test]
    fn nonsense_durations_count_zero() {
        let mut s = Statistics::default();
        for request in [f64::NAN, -1.0, f64::INFINITY] {
            s.record(StatsEvent::Failure { model: "m".into(), version: "1".into(), request, at: f64::NAN });
        }
        let v = s.get("m", "1").unwrap();
        assert_eq!(v.fail, Duration { count: 3, ns: 0 });
        assert_eq!(v.last_inference, 0);
        assert!(serde_json::from_value::<StatsEvent>(json!({ "kind": "success", "model": "m" })).is_err());
    }
}
