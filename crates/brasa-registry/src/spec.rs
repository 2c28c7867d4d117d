use std::fmt;
use std::str::FromStr;

use semver::{Version, VersionReq};

use crate::error::{RegistryError, Result};

/// The channel a bare model name means.
pub const DEFAULT_CHANNEL: &str = "stable";

/// What part of a model's history a spec asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// A channel: `mnist@canary` (and bare `mnist`, which means `stable`).
    Channel(String),
    /// One exact version: `mnist@1.2.0`.
    Exact(Version),
    /// The newest version in a range: `mnist@^1`, `mnist@>=1.1, <2`.
    Range(VersionReq),
}

/// A parsed model spec: `name[@channel|@version|@range]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSpec {
    /// The model's name.
    pub name: String,
    /// What to resolve.
    pub selector: Selector,
}

impl FromStr for ModelSpec {
    type Err = RegistryError;

    fn from_str(spec: &str) -> Result<Self> {
        let invalid = |reason: &str| RegistryError::InvalidSpec { spec: spec.into(), reason: reason.into() };
        let (name, rest) = match spec.split_once('@') {
            Some((name, rest)) => (name, Some(rest.trim())),
            None => (spec, None),
        };
        let name = name.trim();
        if name.is_empty()
            || name.len() > 64
            || !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        {
            return Err(invalid("the model name must be 1-64 of [a-z0-9._-]"));
        }
        let selector = match rest {
            None => Selector::Channel(DEFAULT_CHANNEL.into()),
            Some("") => return Err(invalid("nothing after `@`: name a channel, a version or a range")),
            Some(rest) => {
                if let Ok(version) = Version::parse(rest) {
                    Selector::Exact(version)
                } else if rest.starts_with(|c: char| c.is_ascii_digit() || "^~<>=*".contains(c)) {
                    Selector::Range(
                        VersionReq::parse(&x_ranges(rest))
                            .map_err(|e| invalid(&format!("bad version range: {e}")))?,
                    )
                } else if rest
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
                {
                    Selector::Channel(rest.into())
                } else {
                    return Err(invalid("expected a channel name, a version (1.2.0) or a range (^1)"));
                }
            }
        };
        Ok(ModelSpec { name: name.into(), selector })
    }
}

/// Bare partial versions as npm reads them, X-ranges: `1.0` is `1.0.x` (>=1.0.0, <1.1.0) and
/// `1` is `1.x`. The semver crate reads them as Cargo does, `1.0` as `^1.0`, which would give
/// a client that asked for `mnist@1.0` version 1.5.0. Comparators with an operator (`^1.0`,
/// `>=1.0`) and full versions are left as they are.
fn x_ranges(req: &str) -> String {
    req.split(',')
        .map(|part| {
            let part = part.trim();
            let parts: Vec<&str> = part.split('.').collect();
            let bare = parts.len() < 3
                && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
            if bare { format!("{part}.*") } else { part.to_string() }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl fmt::Display for ModelSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.selector {
            Selector::Channel(c) => write!(f, "{}@{c}", self.name),
            Selector::Exact(v) => write!(f, "{}@{v}", self.name),
            Selector::Range(r) => write!(f, "{}@{r}", self.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<ModelSpec> {
        s.parse()
    }

    #[test]
    fn parses_the_four_forms() {
        assert_eq!(parse("mnist").unwrap().selector, Selector::Channel("stable".into()));
        assert_eq!(parse("mnist@canary").unwrap().selector, Selector::Channel("canary".into()));
        assert_eq!(parse("mnist@1.2.0").unwrap().selector, Selector::Exact(Version::new(1, 2, 0)));
        assert_eq!(parse("mnist@^1").unwrap().selector, Selector::Range(VersionReq::parse("^1").unwrap()));
        assert_eq!(parse("mnist@1").unwrap().selector, Selector::Range(VersionReq::parse("1.*").unwrap()));
        assert_eq!(parse("mnist@>=1.1, <2").unwrap().to_string(), "mnist@>=1.1, <2");
    }

    /// The versions a spec's range admits, out of `candidates`.
    fn admitted(spec: &str, candidates: &[&str]) -> Vec<String> {
        let Selector::Range(req) = parse(spec).unwrap().selector else { panic!("{spec} is not a range") };
        candidates
            .iter()
            .filter(|v| req.matches(&Version::parse(v).unwrap()))
            .map(|v| v.to_string())
            .collect()
    }

    #[test]
    fn partial_versions_are_x_ranges_as_in_npm() {
        let all = ["0.1.0", "0.1.9", "0.2.0", "1.0.0", "1.0.7", "1.1.0", "1.5.0", "2.0.0"];
        assert_eq!(admitted("mnist@1.0", &all), ["1.0.0", "1.0.7"]);
        assert_eq!(admitted("mnist@1", &all), ["1.0.0", "1.0.7", "1.1.0", "1.5.0"]);
        assert_eq!(admitted("mnist@0.1", &all), ["0.1.0", "0.1.9"]);
        assert_eq!(admitted("mnist@0", &all), ["0.1.0", "0.1.9", "0.2.0"]);
        // With an operator, or in a list, each comparator as written; `^1.0` is still ^.
        assert_eq!(admitted("mnist@^1.0", &all), ["1.0.0", "1.0.7", "1.1.0", "1.5.0"]);
        assert_eq!(admitted("mnist@~1.0", &all), ["1.0.0", "1.0.7"]);
        assert_eq!(admitted("mnist@>=1.0, <1.5", &all), ["1.0.0", "1.0.7", "1.1.0"]);
        assert_eq!(admitted("mnist@1.0, <1.0.5", &all), ["1.0.0"]);
        // A full version is exact.
        assert_eq!(parse("mnist@1.0.0").unwrap().selector, Selector::Exact(Version::new(1, 0, 0)));
        // What it prints parses to the same spec (the fetcher keys its state on it).
        for spec in ["mnist@1.0", "mnist@1", "mnist@1.0, <1.0.5", "mnist@0"] {
            let parsed = parse(spec).unwrap();
            assert_eq!(parse(&parsed.to_string()).unwrap(), parsed, "{spec} -> {parsed}");
        }
        assert_eq!(parse("mnist@1.0").unwrap().to_string(), "mnist@1.0.*");
        for bad in ["mnist@1.", "mnist@01.0", "mnist@1.0,", "mnist@1..0"] {
            assert!(matches!(parse(bad), Err(RegistryError::InvalidSpec { .. })), "{bad}");
        }
    }

    #[test]
    fn refuses_nonsense() {
        for bad in
            ["", " ", "@stable", "../mnist@stable", "MNIST", "mnist@", "mnist@Canary!", "mnist@^x", "a b"]
        {
            assert!(matches!(parse(bad), Err(RegistryError::InvalidSpec { .. })), "{bad}");
        }
    }
}
