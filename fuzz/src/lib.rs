//! What brasa's fuzz targets check (each `fuzz_targets/<name>.rs` calls one function here).
//!
//! Every parser must refuse bad bytes with its typed error and never panic, and what it
//! accepts must keep the properties below. A failed assertion is a finding, as a panic is.
//! `cargo xtask fuzz` builds and runs the targets; the seeds are in `fuzz/corpus/<target>/`.

// The weight validation of `crates/brasa`, compiled as it is: the brasa crate brings all of
// burn (with wgpu, natively), which would make every fuzz build a cold burn build with
// sanitizer coverage. These two files need only burn-pack, brasa-types and thiserror.
#[path = "../../crates/brasa/src/weights.rs"]
#[allow(dead_code, missing_docs)]
mod brasa_weights;
#[path = "../../crates/brasa/src/error.rs"]
#[allow(dead_code, missing_docs)]
mod error;

/// The registry: manifests, model specs and resolution (`crates/brasa-registry`).
pub mod registry {
    use brasa_registry::{Manifest, ModelSpec, RegistryError, Selector, bucket, resolve as resolve_spec};
    use semver::VersionReq;

    /// `Manifest::from_json` on any bytes. A refusal is a manifest error with a message; a
    /// manifest it accepts serialises with `to_json` and parses back to the same value, and
    /// every channel and version in it resolves.
    pub fn manifest(data: &[u8]) {
        let Some(manifest) = parse_manifest(data) else { return };
        let json = manifest.to_json();
        match Manifest::from_json(json.as_bytes()) {
            Ok(again) => assert_eq!(again, manifest, "the manifest changed through to_json:\n{json}"),
            Err(e) => panic!("a manifest that parsed is refused after to_json: {e}\n{json}"),
        }
        let spec = |selector| ModelSpec { name: manifest.model.clone(), selector };
        for channel in manifest.channels.keys() {
            for b in [0.0, 50.0, 99.999] {
                let resolution = check_resolution(&manifest, &spec(Selector::Channel(channel.clone())), b);
                assert!(resolution.is_ok(), "channel `{channel}` does not resolve");
            }
        }
        for version in manifest.versions.keys() {
            let exact = check_resolution(&manifest, &spec(Selector::Exact(version.clone())), 0.0);
            assert_eq!(exact.ok().as_ref(), Some(version));
            let req = VersionReq::parse(&format!("={version}")).expect("=<version> is a range");
            let range = check_resolution(&manifest, &spec(Selector::Range(req)), 0.0);
            assert_eq!(range.ok().as_ref(), Some(version));
        }
    }

    /// A model spec (any UTF-8 text, as the JS fetcher passes it). A refusal is
    /// `InvalidSpec` naming the spec as given; a spec it accepts prints (`Display`) as a spec
    /// that parses back to the same value, and resolves against a real manifest as
    /// [`resolve`] requires.
    pub fn spec(data: &[u8]) {
        let Ok(text) = std::str::from_utf8(data) else { return };
        let Some(spec) = parse_spec(text) else { return };
        let shown = spec.to_string();
        match shown.parse::<ModelSpec>() {
            Ok(again) => {
                assert_eq!(again, spec, "`{text}` printed as `{shown}`, which parses to another spec")
            }
            Err(e) => panic!("`{text}` printed as `{shown}`, which does not parse: {e}"),
        }
        let mut manifest = real_manifest();
        manifest.model = spec.name.clone();
        for b in [0.0, 5.0, 50.0, 99.999] {
            let _ = check_resolution(&manifest, &spec, b);
        }
    }

    /// What the JS fetcher's `registryResolve` does with a spec and a manifest: the input is
    /// the spec, a newline, then the manifest's bytes. The client's bucket is brasa's (for a
    /// fixed client id), and the extremes 0 and 99.999.
    pub fn resolve(data: &[u8]) {
        let Some(newline) = data.iter().position(|&b| b == b'\n') else { return };
        let Ok(text) = std::str::from_utf8(&data[..newline]) else { return };
        let Some(spec) = parse_spec(text) else { return };
        let Some(manifest) = parse_manifest(&data[newline + 1..]) else { return };
        let channel = match &spec.selector {
            Selector::Channel(c) => c.as_str(),
            _ => "",
        };
        let client = bucket("fuzz-client", &spec.name, channel);
        assert!((0.0..100.0).contains(&client), "bucket {client} is outside [0, 100)");
        for b in [client, 0.0, 99.999] {
            let _ = check_resolution(&manifest, &spec, b);
        }
    }

    fn parse_manifest(data: &[u8]) -> Option<Manifest> {
        match Manifest::from_json(data) {
            Ok(m) => Some(m),
            Err(
                e @ (RegistryError::MalformedManifest(_)
                | RegistryError::InvalidManifest { .. }
                | RegistryError::UnsupportedSchema { .. }),
            ) => {
                assert!(!e.to_string().is_empty());
                None
            }
            Err(other) => panic!("Manifest::from_json gave a non-manifest error: {other:?}"),
        }
    }

    fn parse_spec(text: &str) -> Option<ModelSpec> {
        match text.parse::<ModelSpec>() {
            Ok(spec) => {
                let name_ok = (1..=64).contains(&spec.name.len())
                    && spec
                        .name
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
                assert!(name_ok, "`{text}` parsed with the name `{}`", spec.name);
                Some(spec)
            }
            Err(RegistryError::InvalidSpec { spec, reason }) => {
                assert_eq!(spec, text, "InvalidSpec names another spec than the one given");
                assert!(!reason.is_empty());
                None
            }
            Err(other) => panic!("parsing `{text}` gave a non-spec error: {other:?}"),
        }
    }

    /// Resolve and check the answer against the manifest: the version a channel (or its
    /// rollout, below its percent) names, the exact version, or the newest version in the
    /// range; an error only when there is no such version, channel or model.
    fn check_resolution(manifest: &Manifest, spec: &ModelSpec, b: f64) -> Result<semver::Version, ()> {
        let result = resolve_spec(manifest, spec, b);
        let same_model = spec.name == manifest.model;
        match (&spec.selector, result) {
            (_, Err(RegistryError::ModelMismatch { .. })) => {
                assert!(!same_model, "ModelMismatch for {spec}");
                Err(())
            }
            (_, Ok(_)) if !same_model => panic!("{spec} resolved against a manifest of `{}`", manifest.model),
            (Selector::Channel(name), Ok(r)) => {
                let channel = &manifest.channels[name];
                let (want, via) = match &channel.rollout {
                    Some(rollout) if b < rollout.percent => (&rollout.version, true),
                    _ => (&channel.version, false),
                };
                assert_eq!((&r.version, r.via_rollout), (want, via), "{spec} at bucket {b}");
                assert_eq!(r.channel.as_deref(), Some(name.as_str()));
                assert!(manifest.versions.contains_key(&r.version));
                Ok(r.version)
            }
            (Selector::Channel(name), Err(RegistryError::UnknownChannel { .. })) => {
                assert!(
                    !manifest.channels.contains_key(name),
                    "UnknownChannel for an existing channel: {spec}"
                );
                Err(())
            }
            (Selector::Exact(v), Ok(r)) => {
                assert_eq!((&r.version, r.via_rollout, r.channel.as_deref()), (v, false, None));
                assert!(manifest.versions.contains_key(v));
                Ok(r.version)
            }
            (Selector::Exact(v), Err(RegistryError::NoMatchingVersion { .. })) => {
                assert!(
                    !manifest.versions.contains_key(v),
                    "NoMatchingVersion for a published version: {spec}"
                );
                Err(())
            }
            (Selector::Range(req), Ok(r)) => {
                assert!(req.matches(&r.version) && manifest.versions.contains_key(&r.version), "{spec}");
                let newer = manifest.versions.keys().find(|v| **v > r.version && req.matches(v));
                assert!(newer.is_none(), "{spec} gave {} but {newer:?} matches too", r.version);
                Ok(r.version)
            }
            (Selector::Range(req), Err(RegistryError::NoMatchingVersion { .. })) => {
                assert!(
                    !manifest.versions.keys().any(|v| req.matches(v)),
                    "NoMatchingVersion, yet one matches: {spec}"
                );
                Err(())
            }
            (_, Err(other)) => panic!("resolving {spec} gave {other:?}"),
        }
    }

    /// A manifest like the ones `brasa registry publish` writes: stable with a staged
    /// rollout, canary, a pre-release.
    fn real_manifest() -> Manifest {
        Manifest::from_json(REAL_MANIFEST.as_bytes()).expect("the built-in manifest is valid")
    }

    const REAL_MANIFEST: &str = r#"{
      "schema": 2, "model": "mnist",
      "versions": {
        "1.0.0": {"files": [{"path": "files/sha256-8428a4d1e5c1a56b4a4e0d8ef2d0e14b7a8b7f5a1f8ad9a3c2b1e0f9d8c7b6a5.bpk", "size": 1687592,
                   "sha256": "8428a4d1e5c1a56b4a4e0d8ef2d0e14b7a8b7f5a1f8ad9a3c2b1e0f9d8c7b6a5", "format": "burnpack", "dtype": "f32"}],
                  "publishedAt": "2026-11-30T14:15:20Z", "notes": "ccexam MNISTNet"},
        "1.1.0": {"files": [{"path": "files/sha256-1111111111111111111111111111111111111111111111111111111111111111.bpk", "size": 1687808,
                   "sha256": "1111111111111111111111111111111111111111111111111111111111111111", "format": "burnpack", "dtype": "f32"}],
                  "publishedAt": "2026-11-30T14:15:21Z"},
        "2.0.0-rc.1": {"files": [{"path": "files/sha256-2222222222222222222222222222222222222222222222222222222222222222.bpk", "size": 10,
                   "sha256": "2222222222222222222222222222222222222222222222222222222222222222", "format": "burnpack", "dtype": "f32"}],
                  "publishedAt": "2026-11-30T14:15:22Z"}
      },
      "channels": {"stable": {"version": "1.0.0", "rollout": {"version": "1.1.0", "percent": 10}},
                   "canary": {"version": "2.0.0-rc.1"}},
      "history": []
    }"#;
}

/// The KServe v2 request parser (`crates/brasa-serving`), JSON and binary extension.
pub mod kserve {
    use std::sync::OnceLock;

    use brasa_serving::kserve::{ParsedInfer, RequestError, parse_infer};
    use brasa_types::{Dim, HostTensor, Limits, Signature, Values};
    use serde_json::{Value, json};

    /// Largest body the harness accepts (the endpoints' default is larger; this is enough to
    /// reach the limit paths).
    const MAX_BODY: usize = 1 << 20;

    /// A JSON request body (no binary data), parsed against each test signature.
    pub fn json(data: &[u8]) {
        for sig in signatures() {
            check(data, None, sig);
        }
    }

    /// A binary-extension request: the first 4 bytes are the `Inference-Header-Content-Length`
    /// (u32, little endian), the rest is the body (JSON, then the tensors' bytes).
    pub fn binary(data: &[u8]) {
        let Some((length, body)) = data.split_first_chunk::<4>() else { return };
        let header_length = u32::from_le_bytes(*length) as usize;
        for sig in signatures() {
            check(body, Some(header_length), sig);
        }
    }

    /// Small enough that the limit paths are reached (any other limit as it is by default).
    #[allow(clippy::needless_update)]
    fn limits() -> Limits {
        Limits { max_batch: 8, max_elements: 1 << 16, ..Limits::default() }
    }

    /// Signatures of the packages the tests serve (from their `model.json`), and one with
    /// every dtype and a dynamic dim shared by two inputs.
    fn signatures() -> &'static [Signature] {
        static SIGNATURES: OnceLock<Vec<Signature>> = OnceLock::new();
        SIGNATURES.get_or_init(|| {
            [
                // mnist
                r#"{"inputs":[{"dims":["batch",1,28,28],"dtype":"float32","name":"pixels","range":[0,1]}],"outputs":[{"dims":["batch",10],"dtype":"float32","name":"logits"},{"dims":["batch"],"dtype":"int64","name":"label"}]}"#,
                // two-heads
                r#"{"inputs":[{"dims":["batch",{"max":64,"min":1,"name":"seq"},4],"dtype":"float32","name":"features"},{"dims":["batch",3],"dtype":"int64","name":"token_ids","range":[0,15]}],"outputs":[{"dims":["batch",6],"dtype":"float32","name":"pooled"},{"dims":["batch"],"dtype":"int64","name":"class_id","range":[0,2]}]}"#,
                // ocr-det
                r#"{"inputs":[{"dims":["batch",3,"p2o.DynamicDimension.1","p2o.DynamicDimension.2"],"dtype":"float32","name":"x"}],"outputs":[{"dims":["batch",1,"p2o.DynamicDimension.4","p2o.DynamicDimension.5"],"dtype":"float32","name":"sigmoid_0.tmp_0"}]}"#,
                // silero-vad: a scalar, the batch on the second axis of `state`
                r#"{"inputs":[{"dims":["batch","sequence"],"dtype":"float32","name":"input"},{"dims":[],"dtype":"int64","name":"sr"},{"dims":[2,"batch",128],"dtype":"float32","name":"state"}],"outputs":[{"dims":["batch",1],"dtype":"float32","name":"output"},{"dims":[2,"batch",128],"dtype":"float32","name":"stateN"}]}"#,
                // a text endpoint (minilm served with a tokenizer): strings in, vectors out
                r#"{"inputs":[{"dims":["batch"],"dtype":"string","name":"text","maxBytes":64}],"outputs":[{"dims":["batch",384],"dtype":"float32","name":"embeddings"}]}"#,
                // every dtype
                r#"{"inputs":[{"dims":["batch",2],"dtype":"float32","name":"x"},{"dims":["batch",{"max":8,"min":1,"name":"seq"}],"dtype":"int64","name":"ids","range":[0,99]},{"dims":["batch","seq"],"dtype":"bool","name":"mask"},{"dims":["batch"],"dtype":"float16","name":"half"},{"dims":["batch"],"dtype":"int32","name":"small"},{"dims":["batch"],"dtype":"uint8","name":"bytes"}],"outputs":[{"dims":["batch",2],"dtype":"float32","name":"y"},{"dims":["batch"],"dtype":"int64","name":"cls"},{"dims":["batch"],"dtype":"bool","name":"ok"}]}"#,
            ]
            .iter()
            .map(|json| serde_json::from_str(json).expect("a valid signature"))
            .collect()
        })
    }

    fn check(body: &[u8], header_length: Option<usize>, sig: &Signature) {
        let limits = limits();
        match parse_infer(body, header_length, sig, &limits, MAX_BODY) {
            Ok(parsed) => {
                check_parsed(&parsed, sig, &limits);
                // The same tensors sent again, as JSON and as binary data, parse the same.
                for binary in [false, true] {
                    let (again, n) = reencode(&parsed, sig, binary);
                    let reparsed = parse_infer(&again, n, sig, &limits, usize::MAX)
                        .unwrap_or_else(|e| panic!("re-encoded request (binary: {binary}) refused: {e}"));
                    assert_eq!(reparsed, parsed, "re-encoded request (binary: {binary}) parses differently");
                }
            }
            Err(e) => check_error(&e),
        }
    }

    /// Every input present, of the declared dtype and rank, with as many values as its dims
    /// say; fixed, batch and named dims as declared and within the limits; floats finite;
    /// declared ranges kept; outputs known and asked once.
    fn check_parsed(parsed: &ParsedInfer, sig: &Signature, limits: &Limits) {
        let names: Vec<&str> = parsed.inputs.keys().map(String::as_str).collect();
        let mut want: Vec<&str> = sig.inputs.iter().map(|t| t.name.as_str()).collect();
        want.sort_unstable();
        assert_eq!(names, want, "parsed inputs are not the signature's");
        let mut elements = 0usize;
        let mut named = std::collections::BTreeMap::new();
        for spec in &sig.inputs {
            let t: &HostTensor = &parsed.inputs[&spec.name];
            assert_eq!(t.dtype(), spec.dtype, "`{}`", spec.name);
            assert_eq!(t.dims.len(), spec.dims.len(), "`{}` rank", spec.name);
            assert_eq!(
                t.element_count(),
                Some(t.values.len()),
                "`{}`: dims {:?} vs values",
                spec.name,
                t.dims
            );
            elements += t.values.len();
            for (axis, (dim, &size)) in spec.dims.iter().zip(&t.dims).enumerate() {
                match dim {
                    Dim::Fixed(n) => assert_eq!(size, *n, "`{}` axis {axis}", spec.name),
                    Dim::Batch => {
                        assert_eq!(Some(size), parsed.batch, "`{}` axis {axis} is not the batch", spec.name);
                        assert!((1..=limits.max_batch).contains(&size), "batch {size}");
                    }
                    Dim::Dynamic { name, min, max } => {
                        assert!(
                            size >= min.unwrap_or(1) && max.is_none_or(|m| size <= m),
                            "`{name}` is {size}"
                        );
                        assert_eq!(*named.entry(name.clone()).or_insert(size), size, "`{name}` disagrees");
                    }
                }
            }
            assert_eq!(t.values.first_non_finite(), None, "`{}` holds a non-finite value", spec.name);
            if let Some([lo, hi]) = spec.range {
                assert_eq!(t.values.first_outside(lo, hi), None, "`{}` outside its range", spec.name);
            }
            if let (Some(max), Values::String(texts)) = (spec.max_bytes, &t.values) {
                assert!(
                    texts.iter().all(|t| t.len() <= max),
                    "`{}` holds a string over {max} bytes",
                    spec.name
                );
            }
        }
        assert!(elements <= limits.max_elements, "{elements} elements");
        let batched = sig.inputs.iter().any(|t| t.dims.contains(&Dim::Batch));
        assert_eq!(parsed.batch.is_some(), batched);
        for (i, out) in parsed.outputs.iter().enumerate() {
            assert!(sig.output(&out.name).is_some(), "unknown output `{}`", out.name);
            assert!(parsed.outputs[..i].iter().all(|o| o.name != out.name), "`{}` twice", out.name);
        }
        assert!(!parsed.outputs.is_empty());
    }

    /// Stable codes, the status that goes with each, a message.
    fn check_error(e: &RequestError) {
        const CODES: [&str; 10] = [
            "malformed_request",
            "body_too_large",
            "unknown_input",
            "wrong_datatype",
            "wrong_shape",
            "wrong_element_count",
            "non_finite",
            "out_of_range",
            "batch_too_large",
            "unknown_output",
        ];
        let code = e.code();
        assert!(CODES.contains(&code), "unexpected code `{code}` for {e:?}");
        assert_eq!(e.status(), if code == "body_too_large" { 413 } else { 400 }, "{e:?}");
        assert!(!e.to_string().is_empty());
    }

    /// The parsed request as a client would send it again: every input as JSON `data`, or
    /// every input as binary data after the JSON (returns the body and the header length).
    fn reencode(parsed: &ParsedInfer, sig: &Signature, binary: bool) -> (Vec<u8>, Option<usize>) {
        let mut blobs = Vec::new();
        let inputs: Vec<Value> = sig
            .inputs
            .iter()
            .map(|spec| {
                let t = &parsed.inputs[&spec.name];
                let mut input = json!({ "name": spec.name, "shape": t.dims, "datatype": t.dtype().kserve() });
                if binary {
                    let bytes = t.values.to_le_bytes();
                    input["parameters"] = json!({ "binary_data_size": bytes.len() });
                    blobs.extend_from_slice(&bytes);
                } else {
                    input["data"] = match &t.values {
                        Values::Float32(v) => json!(v),
                        Values::Float16(_) => json!(t.values.to_f32()),
                        Values::Int64(v) => json!(v),
                        Values::Int32(v) => json!(v),
                        Values::Uint8(v) => json!(v),
                        Values::Bool(v) => json!(v),
                        Values::String(v) => json!(v),
                    };
                }
                input
            })
            .collect();
        let outputs: Vec<Value> = parsed
            .outputs
            .iter()
            .map(|o| json!({ "name": o.name, "parameters": { "binary_data": o.binary } }))
            .collect();
        let mut request = json!({ "inputs": inputs, "outputs": outputs });
        if let Some(id) = &parsed.id {
            request["id"] = json!(id);
        }
        let mut body = serde_json::to_vec(&request).expect("JSON");
        let n = body.len();
        body.extend_from_slice(&blobs);
        (body, binary.then_some(n))
    }
}

/// Weight validation (`crates/brasa/src/weights.rs`: burn-pack's reader, then brasa's checks).
pub mod weights {
    use burn_pack::{Bytes, DType, Reader};

    use crate::brasa_weights::{encode_weights, inspect_weights, widen_to_f32};
    use crate::error::{BrasaError, ErrorCode};
    use brasa_types::WeightsDtype;

    /// `inspect_weights` on any bytes. A refusal is an `invalid_weights` error; weights it
    /// accepts hold at least one tensor, each with the bytes its shape needs, every float
    /// finite (decoded here independently, with `half`; a q8 tensor's f32 scales finite and
    /// positive after its int8 values), and the summary counts them right. Accepted weights
    /// widen to f32 weights of the same tensors, all finite; accepted f32 weights encode as
    /// f16 and as q8, and what that writes is accepted.
    pub fn burnpack(data: &[u8]) {
        let summary = match inspect_weights(data) {
            Ok(summary) => summary,
            Err(e) => {
                assert_eq!(e.code(), ErrorCode::InvalidWeights, "{e:?}");
                assert!(
                    matches!(
                        e,
                        BrasaError::CorruptWeights(_)
                            | BrasaError::UnsupportedDtype { .. }
                            | BrasaError::NonFiniteWeights { .. }
                    ),
                    "{e:?}"
                );
                assert!(!e.to_string().is_empty());
                return;
            }
        };
        assert_eq!(summary.bytes, data.len());
        let tensors = Reader::from_bytes(Bytes::from_bytes_vec(data.to_vec()))
            .and_then(Reader::into_tensors)
            .expect("accepted weights read again");
        assert!(!tensors.is_empty());
        assert_eq!(tensors.len(), summary.tensors.len());
        let mut parameters = 0usize;
        for (tensor, (name, shape)) in tensors.into_iter().zip(&summary.tensors) {
            assert_eq!((&tensor.name, &tensor.shape.to_vec()), (name, shape));
            let dtype = tensor.dtype;
            let elements: usize = shape.iter().product();
            parameters += elements;
            let bytes = tensor.into_bytes().expect("accepted tensor bytes");
            if let DType::QFloat(scheme) = dtype {
                // Values, padding to 4 bytes, one f32 scale per block.
                let block = scheme.block_size().map(|b| b.to_dim_vec(shape.len()));
                let blocks: usize = match &block {
                    Some(b) => shape.iter().zip(b).map(|(&d, &e)| d / usize::from(e)).product(),
                    None => 1,
                };
                assert_eq!(bytes.len(), elements.next_multiple_of(4) + 4 * blocks, "`{name}`");
                let scales = &bytes[elements.next_multiple_of(4)..];
                assert!(
                    scales.chunks_exact(4).all(|c| {
                        let s = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                        s > 0.0 && (s * 127.0).is_finite()
                    }),
                    "accepted q8 tensor `{name}` has a scale that is not finite and positive"
                );
                continue;
            }
            assert_eq!(bytes.len(), elements * dtype.size(), "`{name}`");
            let finite = match dtype {
                DType::F32 => {
                    bytes.chunks_exact(4).all(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]).is_finite())
                }
                DType::F64 => {
                    bytes.chunks_exact(8).all(|c| f64::from_le_bytes(c.try_into().unwrap()).is_finite())
                }
                DType::F16 => {
                    bytes.chunks_exact(2).all(|c| half::f16::from_le_bytes([c[0], c[1]]).is_finite())
                }
                DType::BF16 => {
                    bytes.chunks_exact(2).all(|c| half::bf16::from_le_bytes([c[0], c[1]]).is_finite())
                }
                _ => true,
            };
            assert!(finite, "accepted weights: `{name}` ({dtype:?}) holds a non-finite value");
        }
        assert_eq!(parameters, summary.parameters);

        let widened = match widen_to_f32(data).expect("accepted weights widen") {
            Some(bytes) => bytes,
            None => data.to_vec(),
        };
        let again = inspect_weights(&widened).expect("widened weights are accepted");
        assert_eq!(again.dtype, WeightsDtype::F32);
        assert_eq!((&again.tensors, again.parameters), (&summary.tensors, summary.parameters));
        if summary.dtype == WeightsDtype::F32 {
            for dtype in [WeightsDtype::F16, WeightsDtype::Q8] {
                let encoded = encode_weights(data, dtype).expect("f32 weights encode");
                let s = inspect_weights(&encoded).expect("encoded weights are accepted");
                assert_eq!((&s.tensors, s.parameters), (&summary.tensors, summary.parameters));
            }
        }
    }
}
