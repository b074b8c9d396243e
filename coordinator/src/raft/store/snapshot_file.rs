//! The snapshot file: `snapshots/current.snapshot`.
//!
//! ```text
//! vantage-snapshot 1\n
//! {"meta": <openraft SnapshotMeta>, "data_len": N, "data_crc32": C}\n
//! <N bytes of snapshot data: the versioned MeshState document>
//! ```
//!
//! Written to `current.snapshot.tmp`, fsynced, renamed over the current
//! file, and the directory fsynced, so a crash leaves either the old or the
//! new snapshot, never a torn one. The length and CRC-32 catch damage the
//! JSON parser would not (a flipped bit inside a string).

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::StoreError;
use crate::raft::types::SnapshotMeta;

const CURRENT: &str = "current.snapshot";
const TEMPORARY: &str = "current.snapshot.tmp";
const MAGIC: &[u8] = b"vantage-snapshot 1\n";

/// A snapshot as kept on disk and in memory.
#[derive(Debug, Clone)]
pub(super) struct StoredSnapshot {
    pub(super) meta: SnapshotMeta,
    pub(super) data: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    meta: SnapshotMeta,
    data_len: u64,
    data_crc32: u32,
}

/// The path of the current snapshot in `dir`.
pub(super) fn current_path(dir: &Path) -> PathBuf {
    dir.join(CURRENT)
}

/// Reads the current snapshot in `dir`, if there is one; removes a
/// temporary file left by a crash during a write.
pub(super) fn read(dir: &Path) -> Result<Option<StoredSnapshot>, StoreError> {
    let temporary = dir.join(TEMPORARY);
    match fs::remove_file(&temporary) {
        Ok(()) => {
            tracing::info!(path = %temporary.display(), "removed a snapshot left half-written by a crash")
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(source) => return Err(StoreError::ReadSnapshot { path: temporary, source }),
    }
    let path = current_path(dir);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(StoreError::ReadSnapshot { path, source }),
    };
    parse(&bytes).map(Some).map_err(|reason| StoreError::CorruptSnapshot { path, reason })
}

/// Writes `snapshot` as the current one in `dir`, durably and atomically.
pub(super) fn write(dir: &Path, snapshot: &StoredSnapshot) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    let header = Header {
        meta: snapshot.meta.clone(),
        data_len: snapshot.data.len() as u64,
        data_crc32: crc32(&snapshot.data),
    };
    let header = serde_json::to_vec(&header).map_err(io::Error::other)?;
    let temporary = dir.join(TEMPORARY);
    {
        let mut file = File::create(&temporary)?;
        file.write_all(MAGIC)?;
        file.write_all(&header)?;
        file.write_all(b"\n")?;
        file.write_all(&snapshot.data)?;
        file.sync_all()?;
    }
    fs::rename(&temporary, current_path(dir))?;
    // The rename is durable only once the directory entry is.
    File::open(dir)?.sync_all()
}

fn parse(bytes: &[u8]) -> Result<StoredSnapshot, String> {
    let rest = bytes.strip_prefix(MAGIC).ok_or("missing the vantage-snapshot 1 header")?;
    let newline = rest.iter().position(|&b| b == b'\n').ok_or("truncated header")?;
    let header: Header =
        serde_json::from_slice(&rest[..newline]).map_err(|e| format!("header does not decode: {e}"))?;
    let data = &rest[newline + 1..];
    if data.len() as u64 != header.data_len {
        return Err(format!("expected {} bytes of data, found {}", header.data_len, data.len()));
    }
    let crc = crc32(data);
    if crc != header.data_crc32 {
        return Err(format!("data checksum {crc:08x} does not match the recorded {:08x}", header.data_crc32));
    }
    Ok(StoredSnapshot { meta: header.meta, data: data.to_vec() })
}

/// CRC-32 (IEEE 802.3), bitwise: snapshots are written rarely, and this
/// avoids a dependency.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }
}
