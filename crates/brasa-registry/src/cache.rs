use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// One file in a client's model cache, as the eviction policy sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CachedFile {
    /// The cache key (content address, e.g. `sha256-<hex>`).
    pub key: String,
    /// Bytes it takes.
    pub size: u64,
    /// When it was last used, in any monotonic unit (JS: milliseconds since the epoch).
    pub last_used: f64,
}

/// Which files to evict so the cache fits `budget` bytes: least recently used first, never a
/// file in `keep` (the versions in use, and each spec's last good version, which offline
/// loads fall back to). When the kept files alone exceed the budget, everything else goes and
/// the cache stays over budget rather than breaking a running model.
pub fn plan_eviction(files: &[CachedFile], keep: &BTreeSet<String>, budget: u64) -> Vec<String> {
    let mut total: u64 = files.iter().map(|f| f.size).sum();
    let mut candidates: Vec<&CachedFile> = files.iter().filter(|f| !keep.contains(&f.key)).collect();
    // Oldest first; ties broken by key so the plan is deterministic.
    candidates.sort_by(|a, b| a.last_used.total_cmp(&b.last_used).then_with(|| a.key.cmp(&b.key)));
    let mut evict = Vec::new();
    for file in candidates {
        if total <= budget {
            break;
        }
        total -= file.size;
        evict.push(file.key.clone());
    }
    evict
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(key: &str, size: u64, last_used: f64) -> CachedFile {
        CachedFile { key: key.into(), size, last_used }
    }

    #[test]
    fn evicts_least_recently_used_until_it_fits() {
        let files = [file("a", 10, 3.0), file("b", 10, 1.0), file("c", 10, 2.0)];
        assert_eq!(plan_eviction(&files, &BTreeSet::new(), 30), Vec::<String>::new());
        assert_eq!(plan_eviction(&files, &BTreeSet::new(), 20), ["b"]);
        assert_eq!(plan_eviction(&files, &BTreeSet::new(), 5), ["b", "c", "a"]);
    }

    #[test]
    fn never_evicts_kept_files() {
        let files = [file("old", 10, 1.0), file("new", 10, 2.0)];
        let keep = BTreeSet::from(["old".to_string()]);
        assert_eq!(plan_eviction(&files, &keep, 0), ["new"]);
    }
}
