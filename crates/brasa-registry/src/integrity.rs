use sha2::{Digest, Sha256};

use crate::error::{RegistryError, Result};
use crate::manifest::FileEntry;

/// Lower-case hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// The content-addressed file name of `bytes`: `sha256-<hex>.<extension>`.
pub fn content_address(bytes: &[u8], extension: &str) -> String {
    format!("sha256-{}.{extension}", sha256_hex(bytes))
}

/// Check `bytes` against a manifest entry: size first (cheap), then sha256.
pub fn verify_bytes(entry: &FileEntry, bytes: &[u8]) -> Result<()> {
    check_size(entry, bytes.len() as u64)?;
    verify_digest(entry, bytes.len() as u64, &sha256_hex(bytes))
}

/// Check a file's size and its sha256 (lower-case hex) computed elsewhere, e.g. by the
/// platform's native WebCrypto, which is far faster than hashing inside wasm.
pub fn verify_digest(entry: &FileEntry, size: u64, sha256: &str) -> Result<()> {
    check_size(entry, size)?;
    let actual = sha256.to_ascii_lowercase();
    if actual != entry.sha256 {
        return Err(RegistryError::Integrity {
            path: entry.path.clone(),
            reason: format!("sha256 is {actual}, manifest says {}", entry.sha256),
        });
    }
    Ok(())
}

fn check_size(entry: &FileEntry, size: u64) -> Result<()> {
    if size != entry.size {
        return Err(RegistryError::Integrity {
            path: entry.path.clone(),
            reason: format!("expected {} bytes, got {size}", entry.size),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(bytes: &[u8]) -> FileEntry {
        FileEntry {
            path: content_address(bytes, "bpk"),
            size: bytes.len() as u64,
            sha256: sha256_hex(bytes),
            format: "burnpack".into(),
            dtype: brasa_types::WeightsDtype::F32,
            tolerance: None,
            name: None,
        }
    }

    #[test]
    fn known_digest() {
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert!(content_address(b"abc", "bpk").starts_with("sha256-ba7816bf"));
    }

    #[test]
    fn detects_truncation_and_tampering() {
        let good = b"weights weights weights".to_vec();
        let e = entry(&good);
        assert!(verify_bytes(&e, &good).is_ok());
        assert!(matches!(verify_bytes(&e, &good[..5]), Err(RegistryError::Integrity { .. })));
        let mut tampered = good.clone();
        tampered[3] ^= 1;
        let err = verify_bytes(&e, &tampered).unwrap_err();
        assert!(err.to_string().contains("sha256"), "{err}");
    }

    #[test]
    fn digests_computed_elsewhere() {
        let good = b"weights".to_vec();
        let e = entry(&good);
        assert!(verify_digest(&e, 7, &sha256_hex(&good).to_uppercase()).is_ok());
        assert!(verify_digest(&e, 6, &sha256_hex(&good)).is_err());
        assert!(verify_digest(&e, 7, &sha256_hex(b"other")).is_err());
    }
}
