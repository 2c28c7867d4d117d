use sha2::{Digest, Sha256};

/// A client's position in `[0, 100)` for one model's channel.
///
/// Deterministic (the same client always lands in the same place, so it never flips between
/// versions) and independent across models and channels (the same 10% of clients do not get
/// every experiment). Derived from sha256 of the persisted random client id.
pub fn bucket(client_id: &str, model: &str, channel: &str) -> f64 {
    let digest = Sha256::new()
        .chain_update(client_id.as_bytes())
        .chain_update([0u8])
        .chain_update(model.as_bytes())
        .chain_update([0u8])
        .chain_update(channel.as_bytes())
        .finalize();
    let mut top = [0u8; 8];
    top.copy_from_slice(&digest[..8]);
    // 53 bits fit an f64 exactly; the result is uniform in [0, 100).
    (u64::from_be_bytes(top) >> 11) as f64 / (1u64 << 53) as f64 * 100.0
}

/// Does a client in `bucket` get a rollout at `percent`? 0 reaches nobody, 100 everybody.
pub fn in_rollout(bucket: f64, percent: f64) -> bool {
    bucket < percent
}
