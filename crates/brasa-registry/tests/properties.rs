//! Property tests of version resolution, rollout bucketing and cache eviction.

use std::collections::{BTreeMap, BTreeSet};

use brasa_registry::{
    CachedFile, Channel, FileEntry, Manifest, ModelSpec, Rollout, Selector, VersionEntry, bucket, in_rollout,
    plan_eviction, resolve,
};
use proptest::prelude::*;
use semver::{Version, VersionReq};

fn entry() -> VersionEntry {
    VersionEntry {
        files: vec![FileEntry {
            path: format!("files/sha256-{}.bpk", "0".repeat(64)),
            size: 1,
            sha256: "0".repeat(64),
            format: "burnpack".into(),
            dtype: brasa_types::WeightsDtype::F32,
            tolerance: None,
            name: None,
        }],
        signature: None,
        golden: None,
        published_at: "2026-11-25T00:00:00Z".into(),
        notes: String::new(),
        builds: Default::default(),
        package: None,
    }
}

fn manifest_with(versions: &[Version]) -> Manifest {
    let mut m = Manifest::new("mnist");
    m.versions = versions.iter().map(|v| (v.clone(), entry())).collect::<BTreeMap<_, _>>();
    m
}

fn version() -> impl Strategy<Value = Version> {
    (0u64..4, 0u64..4, 0u64..4, proptest::option::weighted(0.2, 0u64..3)).prop_map(|(a, b, c, pre)| {
        let mut v = Version::new(a, b, c);
        if let Some(n) = pre {
            v.pre = semver::Prerelease::new(&format!("rc.{n}")).unwrap();
        }
        v
    })
}

fn range() -> impl Strategy<Value = VersionReq> {
    (prop::sample::select(vec!["^", "~", ">=", "<", "=", ""]), 0u64..4, 0u64..4)
        .prop_map(|(op, a, b)| VersionReq::parse(&format!("{op}{a}.{b}")).unwrap())
}

proptest! {
    /// A range resolves to the newest published version it matches, or to none when none does.
    #[test]
    fn ranges_resolve_to_the_newest_match(versions in prop::collection::vec(version(), 1..12), req in range()) {
        let m = manifest_with(&versions);
        let spec = ModelSpec { name: "mnist".into(), selector: Selector::Range(req.clone()) };
        let newest = versions.iter().filter(|v| req.matches(v)).max();
        match (resolve(&m, &spec, 0.0), newest) {
            (Ok(r), Some(best)) => {
                prop_assert_eq!(&r.version, best);
                prop_assert!(req.matches(&r.version));
                prop_assert!(r.channel.is_none());
            }
            (Err(_), None) => {}
            (got, want) => prop_assert!(false, "resolve gave {:?}, expected {:?}", got, want),
        }
    }

    /// Exact versions resolve iff published.
    #[test]
    fn exact_versions_resolve_iff_published(versions in prop::collection::vec(version(), 1..8), wanted in version()) {
        let m = manifest_with(&versions);
        let spec = ModelSpec { name: "mnist".into(), selector: Selector::Exact(wanted.clone()) };
        prop_assert_eq!(resolve(&m, &spec, 50.0).is_ok(), versions.contains(&wanted));
    }

    /// Parsing a spec's display form gives the spec back.
    #[test]
    fn specs_round_trip(channel in "[a-z][a-z0-9-]{0,10}", v in version()) {
        for text in [format!("mnist@{channel}"), format!("mnist@{v}")] {
            let spec: ModelSpec = text.parse().unwrap();
            prop_assert_eq!(spec.to_string(), text);
        }
    }

    /// Buckets are deterministic, in [0, 100), and a channel's rollout follows them exactly.
    #[test]
    fn rollout_follows_the_bucket(id in "[0-9a-f]{32}", percent in 0.0f64..=100.0) {
        let b = bucket(&id, "mnist", "stable");
        prop_assert_eq!(b, bucket(&id, "mnist", "stable"));
        prop_assert!((0.0..100.0).contains(&b));
        let mut m = manifest_with(&[Version::new(1, 0, 0), Version::new(2, 0, 0)]);
        m.channels.insert("stable".into(), Channel {
            version: Version::new(1, 0, 0),
            rollout: Some(Rollout { version: Version::new(2, 0, 0), percent }),
        });
        let r = resolve(&m, &"mnist@stable".parse().unwrap(), b).unwrap();
        prop_assert_eq!(r.via_rollout, in_rollout(b, percent));
        prop_assert_eq!(r.version.major, if r.via_rollout { 2 } else { 1 });
    }

    /// Eviction never touches kept files, fits the budget whenever the kept files do, evicts
    /// nothing it need not, and always takes the least recently used first.
    #[test]
    fn eviction_is_lru_and_spares_kept_files(
        files in prop::collection::vec((1u64..1000, 0u32..50, any::<bool>()), 0..20),
        budget in 0u64..10_000,
    ) {
        let keep: BTreeSet<String> =
            files.iter().enumerate().filter(|(_, (_, _, kept))| *kept).map(|(i, _)| format!("f{i}")).collect();
        let files: Vec<CachedFile> = files.iter().enumerate()
            .map(|(i, (size, used, _))| CachedFile { key: format!("f{i}"), size: *size, last_used: f64::from(*used) })
            .collect();
        let evicted = plan_eviction(&files, &keep, budget);
        let evicted_set: BTreeSet<&String> = evicted.iter().collect();
        prop_assert!(evicted.iter().all(|k| !keep.contains(k)));
        let size = |pred: &dyn Fn(&CachedFile) -> bool| files.iter().filter(|f| pred(f)).map(|f| f.size).sum::<u64>();
        let remaining = size(&|f| !evicted_set.contains(&f.key));
        let kept = size(&|f| keep.contains(&f.key));
        if kept <= budget {
            prop_assert!(remaining <= budget);
        }
        // Minimal: without the last (most recent) eviction, the cache would not have fit.
        if let Some(last) = evicted.last() {
            let last_size = files.iter().find(|f| &f.key == last).unwrap().size;
            prop_assert!(remaining + last_size > budget);
        }
        // LRU: every evicted file is no newer than every surviving unkept one.
        let newest_evicted = files.iter().filter(|f| evicted_set.contains(&f.key)).map(|f| f.last_used).fold(f64::MIN, f64::max);
        prop_assert!(files.iter().filter(|f| !evicted_set.contains(&f.key) && !keep.contains(&f.key)).all(|f| f.last_used >= newest_evicted));
    }
}

/// Over many clients, the share inside a rollout matches its percent.
#[test]
fn rollout_share_matches_percent() {
    let ids: Vec<String> = (0..20_000).map(|i| format!("client-{i:08x}")).collect();
    for percent in [0.0, 1.0, 10.0, 25.0, 50.0, 90.0, 100.0] {
        let inside = ids.iter().filter(|id| in_rollout(bucket(id, "mnist", "stable"), percent)).count();
        let share = inside as f64 / ids.len() as f64 * 100.0;
        assert!((share - percent).abs() < 1.0, "{percent}%: got {share:.2}%");
    }
    // Independent across channels: being in one channel's 10% says little about another's.
    let both = ids
        .iter()
        .filter(|id| {
            in_rollout(bucket(id, "mnist", "stable"), 10.0) && in_rollout(bucket(id, "mnist", "canary"), 10.0)
        })
        .count() as f64
        / ids.len() as f64
        * 100.0;
    assert!((both - 1.0).abs() < 0.5, "overlap {both:.2}% (independent: 1%)");
}

#[test]
fn channels_and_errors() {
    let mut m = manifest_with(&[Version::new(1, 0, 0), Version::new(1, 1, 0)]);
    m.channels.insert("stable".into(), Channel { version: Version::new(1, 0, 0), rollout: None });
    m.channels.insert("canary".into(), Channel { version: Version::new(1, 1, 0), rollout: None });
    let stable = resolve(&m, &"mnist".parse().unwrap(), 3.0).unwrap();
    assert_eq!((stable.version, stable.channel.as_deref()), (Version::new(1, 0, 0), Some("stable")));
    assert_eq!(resolve(&m, &"mnist@canary".parse().unwrap(), 3.0).unwrap().version, Version::new(1, 1, 0));
    let err = resolve(&m, &"mnist@beta".parse().unwrap(), 3.0).unwrap_err();
    assert!(err.to_string().contains("has no channel `beta`; it has: canary, stable"), "{err}");
    let err = resolve(&m, &"mnist@^2".parse().unwrap(), 3.0).unwrap_err();
    assert!(err.to_string().contains("published: 1.0.0, 1.1.0"), "{err}");
    assert!(resolve(&m, &"other".parse().unwrap(), 3.0).is_err());
}
