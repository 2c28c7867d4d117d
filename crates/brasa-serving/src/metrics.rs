//! Serving metrics: a fixed set of families (so the exposition is always valid and
//! documented), labelled by model, version and backend, rendered in Prometheus' text format
//! (version 0.0.4) or as a JSON snapshot for `model.metrics()` in browsers.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

/// The kind of a metric family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Only goes up.
    Counter,
    /// Set to a value.
    Gauge,
    /// Observations counted into buckets.
    Histogram,
}

const LATENCY_BUCKETS: &[f64] =
    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0];

/// One metric family: its name, kind, help text, histogram buckets, and the labels every
/// series of it carries (no more, no fewer: a series without them is refused, so a family
/// documented as labelled by version cannot grow series that are not).
#[derive(Debug, Clone, Copy)]
pub struct Family {
    /// `brasa_…`.
    pub name: &'static str,
    /// Counter, gauge or histogram.
    pub kind: Kind,
    /// `# HELP` text.
    pub help: &'static str,
    /// Upper bounds of a histogram's buckets (empty otherwise).
    pub buckets: &'static [f64],
    /// Label names, sorted.
    pub labels: &'static [&'static str],
}

/// The labels of a per-model series: the model, the version that answered, the backend.
const SERIES: &[&str] = &["backend", "model", "version"];

const fn family(
    name: &'static str,
    kind: Kind,
    help: &'static str,
    buckets: &'static [f64],
    labels: &'static [&'static str],
) -> Family {
    Family { name, kind, help, buckets, labels }
}

/// Every family brasa records.
pub const FAMILIES: &[Family] = &[
    family(
        "brasa_requests_total",
        Kind::Counter,
        "Inference requests answered, by outcome (ok or an error code).",
        &[],
        &["backend", "model", "outcome", "version"],
    ),
    family(
        "brasa_request_errors_total",
        Kind::Counter,
        "Requests refused or failed, by error code.",
        &[],
        &["backend", "code", "model", "version"],
    ),
    family("brasa_inferences_total", Kind::Counter, "Rows (items) run through a model.", &[], SERIES),
    family(
        "brasa_queue_wait_seconds",
        Kind::Histogram,
        "Time a request waited in the batching queue.",
        LATENCY_BUCKETS,
        SERIES,
    ),
    family(
        "brasa_compute_seconds",
        Kind::Histogram,
        "Time of one forward pass (one batch).",
        LATENCY_BUCKETS,
        SERIES,
    ),
    family(
        "brasa_request_duration_seconds",
        Kind::Histogram,
        "Time from receiving a request to answering it.",
        LATENCY_BUCKETS,
        SERIES,
    ),
    family("brasa_batch_size", Kind::Histogram, "Rows per forward pass.", BATCH_BUCKETS, SERIES),
    family("brasa_queue_rows", Kind::Gauge, "Rows waiting in the batching queue.", &[], SERIES),
    family(
        "brasa_cache_hits_total",
        Kind::Counter,
        "Model files served from the cache.",
        &[],
        &["model", "version"],
    ),
    family(
        "brasa_cache_misses_total",
        Kind::Counter,
        "Model files that had to be downloaded.",
        &[],
        &["model", "version"],
    ),
    family(
        "brasa_fetched_bytes_total",
        Kind::Counter,
        "Bytes of model files downloaded.",
        &[],
        &["model", "version"],
    ),
    family(
        "brasa_wasm_memory_bytes",
        Kind::Gauge,
        "Linear memory of the model's wasm instance (its high-water mark: it never shrinks).",
        &[],
        SERIES,
    ),
    // A property of the platform's cache, the same for every version of the model.
    family(
        "brasa_cache_persistent",
        Kind::Gauge,
        "0 when the model cache keeps nothing (Cloudflare's Cache API on workers.dev): files are downloaded again, and a random rollout identity changes, on every cold start.",
        &[],
        &["model"],
    ),
    family(
        "brasa_model_ready",
        Kind::Gauge,
        "1 when the model version is loaded and passed its golden check.",
        &[],
        SERIES,
    ),
];

type Labels = Vec<(String, String)>;

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct Histogram {
    /// Cumulative counts per bucket bound.
    buckets: Vec<u64>,
    count: u64,
    sum: f64,
}

/// The series of every family.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    values: BTreeMap<(&'static str, Labels), f64>,
    histograms: BTreeMap<(&'static str, Labels), Histogram>,
}

fn lookup(name: &str) -> Result<&'static Family, String> {
    FAMILIES.iter().find(|f| f.name == name).ok_or_else(|| format!("unknown metric `{name}`"))
}

fn sorted(labels: &[(String, String)]) -> Labels {
    let mut labels = labels.to_vec();
    labels.sort();
    labels
}

/// `labels`, sorted, if they are exactly the family's.
fn checked(family: &Family, labels: &[(String, String)]) -> Result<Labels, String> {
    let labels = sorted(labels);
    if !labels.iter().map(|(k, _)| k.as_str()).eq(family.labels.iter().copied()) {
        let got: Vec<&str> = labels.iter().map(|(k, _)| k.as_str()).collect();
        return Err(format!(
            "{} takes the labels {}; got {}",
            family.name,
            family.labels.join(", "),
            if got.is_empty() { "none".to_owned() } else { got.join(", ") }
        ));
    }
    Ok(labels)
}

impl Metrics {
    /// Add `by` (≥ 0) to a counter.
    pub fn inc(&mut self, name: &str, labels: &[(String, String)], by: f64) -> Result<(), String> {
        let family = lookup(name)?;
        if family.kind != Kind::Counter || !by.is_finite() || by < 0.0 {
            return Err(format!("{name} is a {:?}; counters only go up by finite amounts", family.kind));
        }
        *self.values.entry((family.name, checked(family, labels)?)).or_default() += by;
        Ok(())
    }

    /// Set a gauge.
    pub fn set(&mut self, name: &str, labels: &[(String, String)], value: f64) -> Result<(), String> {
        let family = lookup(name)?;
        if family.kind != Kind::Gauge || !value.is_finite() {
            return Err(format!("{name} is a {:?}, not a gauge, or {value} is not finite", family.kind));
        }
        self.values.insert((family.name, checked(family, labels)?), value);
        Ok(())
    }

    /// Record one observation in a histogram.
    pub fn observe(&mut self, name: &str, labels: &[(String, String)], value: f64) -> Result<(), String> {
        let family = lookup(name)?;
        if family.kind != Kind::Histogram || !value.is_finite() {
            return Err(format!("{name} is a {:?}, not a histogram, or {value} is not finite", family.kind));
        }
        let bounds = family.buckets;
        let h = self
            .histograms
            .entry((family.name, checked(family, labels)?))
            .or_insert_with(|| Histogram { buckets: vec![0; bounds.len()], ..Histogram::default() });
        for (count, bound) in h.buckets.iter_mut().zip(bounds) {
            if value <= *bound {
                *count += 1;
            }
        }
        h.count += 1;
        h.sum += value;
        Ok(())
    }

    /// The value of a counter or gauge series (0 when never touched).
    pub fn value(&self, name: &str, labels: &[(String, String)]) -> f64 {
        lookup(name).ok().and_then(|f| self.values.get(&(f.name, sorted(labels))).copied()).unwrap_or(0.0)
    }

    /// Prometheus text exposition (format 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        for &Family { name, kind, help, buckets: bounds, .. } in FAMILIES {
            let kind_name = match kind {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
                Kind::Histogram => "histogram",
            };
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind_name}");
            for ((_, labels), value) in
                self.values.range((name, Vec::new())..).take_while(|((n, _), _)| *n == name)
            {
                let _ = writeln!(out, "{name}{} {}", label_text(labels, None), number(*value));
            }
            for ((_, labels), h) in
                self.histograms.range((name, Vec::new())..).take_while(|((n, _), _)| *n == name)
            {
                for (count, bound) in h.buckets.iter().zip(bounds) {
                    let _ =
                        writeln!(out, "{name}_bucket{} {count}", label_text(labels, Some(&number(*bound))));
                }
                let _ = writeln!(out, "{name}_bucket{} {}", label_text(labels, Some("+Inf")), h.count);
                let _ = writeln!(out, "{name}_sum{} {}", label_text(labels, None), number(h.sum));
                let _ = writeln!(out, "{name}_count{} {}", label_text(labels, None), h.count);
            }
        }
        out
    }

    /// Every series as JSON: `{ name: [{ labels, value } | { labels, count, sum, buckets: [[le, n]] }] }`.
    pub fn snapshot(&self) -> serde_json::Value {
        let mut out = serde_json::Map::new();
        for &Family { name, buckets: bounds, .. } in FAMILIES {
            let mut series = Vec::new();
            for ((_, labels), value) in
                self.values.range((name, Vec::new())..).take_while(|((n, _), _)| *n == name)
            {
                series.push(serde_json::json!({ "labels": label_map(labels), "value": value }));
            }
            for ((_, labels), h) in
                self.histograms.range((name, Vec::new())..).take_while(|((n, _), _)| *n == name)
            {
                let buckets: Vec<(f64, u64)> =
                    bounds.iter().copied().zip(h.buckets.iter().copied()).collect();
                series.push(serde_json::json!({ "labels": label_map(labels), "count": h.count, "sum": h.sum, "buckets": buckets }));
            }
            if !series.is_empty() {
                out.insert(name.into(), series.into());
            }
        }
        out.into()
    }
}

fn label_map(labels: &Labels) -> serde_json::Map<String, serde_json::Value> {
    labels.iter().map(|(k, v)| (k.clone(), v.clone().into())).collect()
}

fn number(v: f64) -> String {
    if v == v.trunc() && v.abs() < 1e15 { format!("{}", v as i64) } else { format!("{v}") }
}

fn label_text(labels: &Labels, le: Option<&str>) -> String {
    let mut parts: Vec<String> = labels
        .iter()
        .filter(|(k, _)| valid_label_name(k))
        .map(|(k, v)| {
            format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n"))
        })
        .collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    if parts.is_empty() { String::new() } else { format!("{{{}}}", parts.join(",")) }
}

fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name != "le"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn labels(model: &str) -> Vec<(String, String)> {
        pairs(&[("model", model), ("version", "1.0.0"), ("backend", "cpu")])
    }

    fn with(model: &str, key: &str, value: &str) -> Vec<(String, String)> {
        let mut l = labels(model);
        l.push((key.into(), value.into()));
        l
    }

    #[test]
    fn renders_prometheus_text() {
        let mut m = Metrics::default();
        m.inc("brasa_requests_total", &with("mnist", "outcome", "ok"), 2.0).unwrap();
        m.set("brasa_queue_rows", &labels("mnist"), 3.0).unwrap();
        m.observe("brasa_batch_size", &labels("mnist"), 5.0).unwrap();
        m.observe("brasa_batch_size", &labels("mnist"), 1.0).unwrap();
        m.inc("brasa_requests_total", &with("a\"b\\c", "outcome", "ok"), 1.0).unwrap();
        let text = m.render();
        assert!(text.contains("# TYPE brasa_batch_size histogram"), "{text}");
        assert!(
            text.contains(
                "brasa_requests_total{backend=\"cpu\",model=\"mnist\",outcome=\"ok\",version=\"1.0.0\"} 2\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "brasa_batch_size_bucket{backend=\"cpu\",model=\"mnist\",version=\"1.0.0\",le=\"4\"} 1\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "brasa_batch_size_bucket{backend=\"cpu\",model=\"mnist\",version=\"1.0.0\",le=\"+Inf\"} 2\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("brasa_batch_size_sum{backend=\"cpu\",model=\"mnist\",version=\"1.0.0\"} 6\n"),
            "{text}"
        );
        assert!(text.contains(r#"model="a\"b\\c""#), "{text}");
        assert_eq!(m.value("brasa_requests_total", &with("mnist", "outcome", "ok")), 2.0);
        assert_eq!(m.snapshot()["brasa_batch_size"][0]["count"], 2);
    }

    #[test]
    fn refuses_misuse() {
        let mut m = Metrics::default();
        let ok = with("m", "outcome", "ok");
        assert!(m.inc("nope", &ok, 1.0).is_err());
        assert!(m.inc("brasa_requests_total", &ok, -1.0).is_err());
        assert!(m.inc("brasa_requests_total", &ok, f64::NAN).is_err());
        assert!(m.observe("brasa_requests_total", &ok, 1.0).is_err());
        assert!(m.set("brasa_batch_size", &labels("m"), 1.0).is_err());
        assert!(m.observe("brasa_batch_size", &labels("m"), f64::INFINITY).is_err());
    }

    /// Every per-model series says which version answered (errors and latencies included),
    /// and a series without its family's labels is refused rather than recorded unlabelled.
    #[test]
    fn per_model_series_carry_the_version() {
        for f in FAMILIES {
            assert!(f.labels.windows(2).all(|w| w[0] < w[1]), "{}: labels must be sorted", f.name);
            if f.name != "brasa_cache_persistent" {
                assert!(f.labels.contains(&"version"), "{} has no version label", f.name);
            }
        }
        let mut m = Metrics::default();
        let unversioned = pairs(&[("model", "m"), ("code", "invalid_input")]);
        let err = m.inc("brasa_request_errors_total", &unversioned, 1.0).unwrap_err();
        assert!(err.contains("backend, code, model, version") && err.contains("got code, model"), "{err}");
        assert!(m.observe("brasa_request_duration_seconds", &pairs(&[("model", "m")]), 0.1).is_err());
        assert!(m.set("brasa_model_ready", &with("m", "extra", "x"), 1.0).is_err());
        assert!(m.inc("brasa_cache_hits_total", &[], 1.0).is_err());
        assert_eq!(m.render().lines().filter(|l| !l.starts_with('#')).count(), 0);
        m.inc("brasa_request_errors_total", &with("m", "code", "invalid_input"), 1.0).unwrap();
        m.inc(
            "brasa_request_errors_total",
            &pairs(&[("model", "m"), ("version", "1.1.0"), ("backend", "cpu"), ("code", "invalid_input")]),
            2.0,
        )
        .unwrap();
        let text = m.render();
        assert!(
            text.contains("brasa_request_errors_total{backend=\"cpu\",code=\"invalid_input\",model=\"m\",version=\"1.0.0\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("brasa_request_errors_total{backend=\"cpu\",code=\"invalid_input\",model=\"m\",version=\"1.1.0\"} 2\n"),
            "{text}"
        );
        m.set("brasa_cache_persistent", &pairs(&[("model", "m")]), 0.0).unwrap();
    }
}
