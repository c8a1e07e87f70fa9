//! Devices and cohorts. Each device has a stable id, `<store>/device-id` (32 random bytes as
//! hex, created once; or given by the operator), and is in a channel entry's cohort iff
//!
//! ```text
//! u64::from_be_bytes(SHA-256(device-id "\n" name "\n" digest)[..8]) mod 100 < rollout
//! ```
//!
//! with `name` the entry's name and `digest` its manifest digest (`sha256:<hex>`). The
//! bucket (0–99) of a device for one version never changes, so a device in the cohort at 20 %
//! stays in it at 50 % and 100 %; and a new digest draws new buckets, so the same devices are
//! not always the first to take a new version.

use super::{io_err, FleetError};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Where a store keeps its device id.
pub fn device_id_path(store_root: &Path) -> PathBuf {
    store_root.join("device-id")
}

/// Whether `id` may be a device id: 1–128 characters of ASCII letters, digits, `-`, `_`, `.`,
/// not starting with `-` or `.` (an OCI tag, so a device's status can be pushed under it).
pub fn valid_device_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && !id.starts_with(['-', '.'])
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The device id of the store at `store_root`: read from `device-id`, else created (32 random
/// bytes, hex) and written atomically, so it is the same for the store's whole life.
pub fn device_id(store_root: &Path) -> Result<String, FleetError> {
    let path = device_id_path(store_root);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let id = text.trim();
            if valid_device_id(id) {
                return Ok(id.to_string());
            }
            return Err(FleetError::BadDeviceId {
                path,
                id: id.chars().take(64).collect(),
            });
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(&path)(e)),
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| FleetError::Io {
        path: path.clone(),
        source: std::io::Error::other(format!("no random source: {e}")),
    })?;
    let id = edgenlu_trust::to_hex(&bytes);
    set_device_id(store_root, &id)?;
    Ok(id)
}

/// Writes `id` as the device id of the store at `store_root` (atomically).
pub fn set_device_id(store_root: &Path, id: &str) -> Result<(), FleetError> {
    let path = device_id_path(store_root);
    if !valid_device_id(id) {
        return Err(FleetError::BadDeviceId {
            path,
            id: id.chars().take(64).collect(),
        });
    }
    edgenlu_models::atomic::write_atomic(&path, |w| writeln!(w, "{id}")).map_err(io_err(&path))
}

/// The device's bucket (0–99) for entry `name` at manifest digest `digest`.
pub fn bucket(device_id: &str, name: &str, digest: &str) -> u8 {
    let hash = Sha256::digest(format!("{device_id}\n{name}\n{digest}").as_bytes());
    let head: [u8; 8] = hash[..8].try_into().expect("8 bytes");
    (u64::from_be_bytes(head) % 100) as u8
}

/// Whether the device is in the cohort of an entry rolled out to `rollout` % of devices.
pub fn in_cohort(device_id: &str, name: &str, digest: &str, rollout: u8) -> bool {
    bucket(device_id, name, digest) < rollout
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cohorts_only_grow_and_spread_evenly() {
        let digest = format!("sha256:{}", "c".repeat(64));
        let ids: Vec<String> = (0..2000).map(|i| format!("device-{i}")).collect();
        let mut previous = 0;
        for rollout in [0u8, 1, 20, 50, 100] {
            let members: Vec<&String> = ids
                .iter()
                .filter(|id| in_cohort(id, "intents", &digest, rollout))
                .collect();
            let expected = ids.len() * rollout as usize / 100;
            assert!(
                members.len().abs_diff(expected) <= 60,
                "{rollout}%: {}",
                members.len()
            );
            assert!(members.len() >= previous);
            previous = members.len();
            for id in &ids {
                if in_cohort(id, "intents", &digest, rollout / 2) {
                    assert!(in_cohort(id, "intents", &digest, rollout));
                }
            }
        }
        // A known value: the documented hash, spelled out.
        let hash = Sha256::digest(b"device-0\nintents\nsha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc");
        let n = u64::from_be_bytes(hash[..8].try_into().unwrap());
        assert_eq!(bucket("device-0", "intents", &digest) as u64, n % 100);
    }

    #[test]
    fn device_ids_are_created_once() {
        let dir = std::env::temp_dir().join(format!("edgenlu-cohort-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let id = device_id(&dir).unwrap();
        assert_eq!(id.len(), 64);
        assert_eq!(device_id(&dir).unwrap(), id);
        set_device_id(&dir, "dev-7").unwrap();
        assert_eq!(device_id(&dir).unwrap(), "dev-7");
        assert!(set_device_id(&dir, "../x").is_err());
        assert!(set_device_id(&dir, ".hidden").is_err());
        std::fs::write(device_id_path(&dir), "bad id\n").unwrap();
        assert!(matches!(
            device_id(&dir),
            Err(FleetError::BadDeviceId { .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
