//! The snapshot file: `snapshots/current.snapshot`.
//!
//! ```text
//! vantage-snapshot 2\n
//! {"meta": <openraft SnapshotMeta>, "data_len": N, "data_crc32": C,
//!  "history_len": H, "history_crc32": D, "history_applied_index": I}   padded with spaces to 16 KiB
//! \n
//! <N bytes: the versioned MeshState document (JSON)>
//! <H bytes: the rollup tables' rows (raft/store/history.rs), as of log index I>
//! ```
//!
//! The same bytes are what a leader sends a follower: openraft streams the
//! file in chunks, the follower writes them into a receiving file, and
//! [`verify_copy`] checks them as they are copied into place. Nothing the
//! size of the history is ever held in memory: the mesh document is read
//! whole (it is small), the history section only through a reader.
//!
//! Written to `current.snapshot.tmp`, fsynced, renamed over the current
//! file, and the directory fsynced, so a crash leaves either the old or the
//! new snapshot, never a torn one. The header is written last, into the
//! space reserved for it, once the lengths and CRC-32s are known. Version 1
//! files (a header line, then the mesh document; no history) still read.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::history::HistoryExport;
use super::StoreError;
use crate::raft::types::SnapshotMeta;

const CURRENT: &str = "current.snapshot";
const TEMPORARY: &str = "current.snapshot.tmp";
const RECEIVING: &str = "receiving.snapshot";
const MAGIC_V1: &[u8] = b"vantage-snapshot 1\n";
const MAGIC: &[u8] = b"vantage-snapshot 2\n";
/// Room for the header: the metadata names every member's addresses,
/// a few hundred bytes each.
const HEADER_BYTES: usize = 16 * 1024;
/// The most a mesh document may be when read back (it is kilobytes to a
/// few megabytes in practice).
const MAX_MESH_BYTES: u64 = 1 << 30;

/// A snapshot file's header, parsed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Header {
    pub(super) meta: SnapshotMeta,
    data_len: u64,
    data_crc32: u32,
    #[serde(default)]
    history_len: u64,
    #[serde(default)]
    history_crc32: u32,
    /// The log index of the last rollup batch the history section holds.
    #[serde(default)]
    pub(super) history_applied_index: u64,
    /// Where the mesh document starts (not stored: known from the version).
    #[serde(skip)]
    data_offset: u64,
}

/// A snapshot read from disk: its header and mesh document.
#[derive(Debug, Clone)]
pub(super) struct LoadedSnapshot {
    pub(super) header: Header,
    pub(super) mesh: Vec<u8>,
    pub(super) path: PathBuf,
}

impl LoadedSnapshot {
    /// Its metadata.
    pub(super) fn meta(&self) -> &SnapshotMeta {
        &self.header.meta
    }
}

/// The path of the current snapshot in `dir`.
pub(super) fn current_path(dir: &Path) -> PathBuf {
    dir.join(CURRENT)
}

/// Where a snapshot from the leader is received, in `dir`.
pub(super) fn receiving_path(dir: &Path) -> PathBuf {
    dir.join(RECEIVING)
}

/// Reads and checks the current snapshot in `dir`, if there is one;
/// removes a temporary file left by a crash during a write.
pub(super) fn read(dir: &Path) -> Result<Option<LoadedSnapshot>, StoreError> {
    for leftover in [TEMPORARY, RECEIVING] {
        let path = dir.join(leftover);
        match fs::remove_file(&path) {
            Ok(()) => {
                tracing::info!(path = %path.display(), "removed a snapshot left half-written by a crash")
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(StoreError::ReadSnapshot { path, source }),
        }
    }
    let path = current_path(dir);
    let file = match File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(StoreError::ReadSnapshot { path, source }),
    };
    load(file, &path).map(Some)
}

/// Reads a snapshot file from its start: checks the header, the lengths
/// and both CRC-32s (streaming through the history section), and returns
/// the header and the mesh document.
fn load(file: File, path: &Path) -> Result<LoadedSnapshot, StoreError> {
    let corrupt = |reason: String| StoreError::CorruptSnapshot { path: path.to_path_buf(), reason };
    let io_error = |source| StoreError::ReadSnapshot { path: path.to_path_buf(), source };
    let mut input = BufReader::with_capacity(1 << 20, file);
    let header = read_header(&mut input).map_err(|e| match e.kind() {
        io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof => corrupt(e.to_string()),
        _ => io_error(e),
    })?;
    if header.data_len > MAX_MESH_BYTES {
        return Err(corrupt(format!("a mesh document of {} bytes", header.data_len)));
    }
    let mut mesh = Vec::with_capacity(header.data_len as usize);
    (&mut input).take(header.data_len).read_to_end(&mut mesh).map_err(io_error)?;
    if mesh.len() as u64 != header.data_len {
        return Err(corrupt(format!("expected {} bytes of data, found {}", header.data_len, mesh.len())));
    }
    let crc = crc32(0, &mesh);
    if crc != header.data_crc32 {
        return Err(corrupt(format!(
            "data checksum {crc:08x} does not match the recorded {:08x}",
            header.data_crc32
        )));
    }
    let (history_len, history_crc) = crc_of_rest(&mut input).map_err(io_error)?;
    if history_len != header.history_len {
        return Err(corrupt(format!(
            "expected {} bytes of history, found {history_len}",
            header.history_len
        )));
    }
    if history_crc != header.history_crc32 {
        return Err(corrupt(format!(
            "history checksum {history_crc:08x} does not match the recorded {:08x}",
            header.history_crc32
        )));
    }
    Ok(LoadedSnapshot { header, mesh, path: path.to_path_buf() })
}

/// A reader of `snapshot`'s history section (empty for version 1).
pub(super) fn history_section(snapshot: &LoadedSnapshot) -> io::Result<impl Read> {
    let mut file = File::open(&snapshot.path)?;
    file.seek(SeekFrom::Start(snapshot.header.data_offset + snapshot.header.data_len))?;
    Ok(BufReader::with_capacity(1 << 20, file.take(snapshot.header.history_len)))
}

/// Writes a new current snapshot in `dir`, durably and atomically: the
/// mesh document, then every row of `history`.
pub(super) fn write(
    dir: &Path,
    meta: &SnapshotMeta,
    mesh: &[u8],
    history: Option<&HistoryExport>,
) -> Result<Header, WriteError> {
    fs::create_dir_all(dir)?;
    let temporary = dir.join(TEMPORARY);
    let mut file = File::create(&temporary)?;
    file.write_all(MAGIC)?;
    file.write_all(&[b' '; HEADER_BYTES])?;
    file.write_all(b"\n")?;
    let data_offset = (MAGIC.len() + HEADER_BYTES + 1) as u64;
    file.write_all(mesh)?;
    let mut section = CrcWriter { inner: BufWriter::with_capacity(1 << 20, &mut file), crc: 0, len: 0 };
    let history_applied_index = match history {
        Some(export) => {
            export.write_to(&mut section)?;
            export.applied_index()
        }
        None => 0,
    };
    section.flush()?;
    let (history_len, history_crc32) = (section.len, section.crc);
    drop(section);
    let header = Header {
        meta: meta.clone(),
        data_len: mesh.len() as u64,
        data_crc32: crc32(0, mesh),
        history_len,
        history_crc32,
        history_applied_index,
        data_offset,
    };
    let text = serde_json::to_vec(&header).map_err(io::Error::other)?;
    if text.len() > HEADER_BYTES {
        return Err(io::Error::other(format!(
            "snapshot header of {} bytes exceeds {HEADER_BYTES}",
            text.len()
        ))
        .into());
    }
    file.seek(SeekFrom::Start(MAGIC.len() as u64))?;
    file.write_all(&text)?;
    file.sync_all()?;
    drop(file);
    install_file(dir, &temporary)?;
    Ok(header)
}

/// Copies a snapshot received from the leader (`source`, read from its
/// start) into `dir`'s temporary file, checks it whole, and returns it
/// loaded; the caller then imports its history and calls
/// [`install_file`] to make it current.
pub(super) fn verify_copy(
    dir: &Path,
    source: &mut impl Read,
) -> Result<(LoadedSnapshot, PathBuf), StoreError> {
    let temporary = dir.join(TEMPORARY);
    let io_error = |source| StoreError::ReadSnapshot { path: temporary.clone(), source };
    fs::create_dir_all(dir).map_err(io_error)?;
    {
        let mut file = BufWriter::with_capacity(1 << 20, File::create(&temporary).map_err(io_error)?);
        io::copy(source, &mut file).map_err(io_error)?;
        file.into_inner().map_err(|e| io_error(e.into_error()))?.sync_all().map_err(io_error)?;
    }
    let file = File::open(&temporary).map_err(io_error)?;
    let loaded = load(file, &temporary)?;
    Ok((loaded, temporary))
}

/// Renames `temporary` over the current snapshot in `dir`, durably.
pub(super) fn install_file(dir: &Path, temporary: &Path) -> io::Result<PathBuf> {
    let current = current_path(dir);
    fs::rename(temporary, &current)?;
    // The rename is durable only once the directory entry is.
    File::open(dir)?.sync_all()?;
    Ok(current)
}

/// Opens the receiving file in `dir`, empty, for the leader's chunks.
pub(super) fn create_receiving(dir: &Path) -> io::Result<File> {
    fs::create_dir_all(dir)?;
    OpenOptions::new().read(true).write(true).create(true).truncate(true).open(receiving_path(dir))
}

/// Frames a mesh document as a version 2 snapshot with no history, in
/// memory (tests build odd snapshots with it).
#[cfg(test)]
pub(super) fn frame(meta: &SnapshotMeta, mesh: &[u8]) -> Vec<u8> {
    let header = Header {
        meta: meta.clone(),
        data_len: mesh.len() as u64,
        data_crc32: crc32(0, mesh),
        history_len: 0,
        history_crc32: 0,
        history_applied_index: 0,
        data_offset: 0,
    };
    let mut text = serde_json::to_vec(&header).unwrap();
    text.resize(HEADER_BYTES, b' ');
    [MAGIC, &text, b"\n", mesh].concat()
}

/// Why a snapshot could not be written.
#[derive(Debug, thiserror::Error)]
pub(super) enum WriteError {
    /// The file system failed.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The history tables could not be read.
    #[error(transparent)]
    History(#[from] super::history::HistoryIoError),
}

fn read_header(input: &mut impl Read) -> io::Result<Header> {
    let invalid = |reason: String| io::Error::new(io::ErrorKind::InvalidData, reason);
    let mut magic = vec![0u8; MAGIC.len()];
    let got = read_up_to(input, &mut magic)?;
    let line = |input: &mut dyn Read, limit: usize| -> io::Result<Vec<u8>> {
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        loop {
            if input.read(&mut byte)? == 0 {
                return Err(invalid("truncated header".into()));
            }
            if byte[0] == b'\n' {
                return Ok(line);
            }
            if line.len() >= limit {
                return Err(invalid("header too long".into()));
            }
            line.push(byte[0]);
        }
    };
    let (text, data_offset) = if magic[..got] == *MAGIC {
        let mut text = vec![0u8; HEADER_BYTES + 1];
        input.read_exact(&mut text).map_err(|_| invalid("truncated header".into()))?;
        if text.pop() != Some(b'\n') {
            return Err(invalid("header not followed by a newline".into()));
        }
        (text, (MAGIC.len() + HEADER_BYTES + 1) as u64)
    } else if magic[..got] == *MAGIC_V1 {
        let text = line(input, HEADER_BYTES)?;
        let offset = (MAGIC_V1.len() + text.len() + 1) as u64;
        (text, offset)
    } else {
        return Err(invalid("missing the vantage-snapshot header".into()));
    };
    let mut header: Header = serde_json::from_slice(text.trim_ascii_end())
        .map_err(|e| invalid(format!("header does not decode: {e}")))?;
    header.data_offset = data_offset;
    Ok(header)
}

fn read_up_to(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match input.read(&mut buf[got..])? {
            0 => break,
            n => got += n,
        }
    }
    Ok(got)
}

fn crc_of_rest(input: &mut impl Read) -> io::Result<(u64, u32)> {
    let mut buf = vec![0u8; 1 << 16];
    let (mut len, mut crc) = (0u64, 0u32);
    loop {
        match input.read(&mut buf)? {
            0 => return Ok((len, crc)),
            n => {
                crc = crc32(crc, &buf[..n]);
                len += n as u64;
            }
        }
    }
}

/// Counts and checksums what passes through.
struct CrcWriter<W: Write> {
    inner: W,
    crc: u32,
    len: u64,
}

impl<W: Write> Write for CrcWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc = crc32(self.crc, &buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// CRC-32 (IEEE 802.3), table-driven, continuing from `crc` (0 to start):
/// snapshots are written rarely, and this avoids a dependency.
fn crc32(crc: u32, bytes: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut table = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
                k += 1;
            }
            table[i] = c;
            i += 1;
        }
        table
    };
    let mut c = !crc;
    for &byte in bytes {
        c = TABLE[((c ^ u32::from(byte)) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value_and_continues() {
        assert_eq!(crc32(0, b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(crc32(0, b"1234"), b"56789"), 0xCBF4_3926);
    }
}
