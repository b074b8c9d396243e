//! The loss-free result spool: every result gets a sequence number and stays
//! here until the coordinator acknowledges it.
//!
//! - **Sequence numbers** rise by one per record and continue across
//!   restarts. With a spool directory they are recovered from disk; a
//!   durable *lease* (`issued_below` in the meta file, extended 65,536 at a
//!   time) guarantees a number is never issued twice even after a crash that
//!   lost unsynced records — a crash leaves a gap, never a reuse, because the
//!   coordinator de-duplicates by (probe, sequence). A clean [`Spool::close`]
//!   leaves no gap. Without a directory numbers start at
//!   [`SpoolConfig::min_first_seq`] (the agent passes wall-clock microseconds
//!   so they still rise across restarts).
//! - **Unacknowledged records** are kept in memory, in order, for
//!   [`Spool::unacked`] (resend after reconnecting, with the timestamps the
//!   payload carries) and, with a directory, appended to segment files.
//!   [`Spool::ack`] drops records up to a sequence number and deletes sealed
//!   segments whose every record is acknowledged.
//! - **On disk**: segment files `<first seq, 20 digits>.seg`, an 8-byte
//!   header, then frames `[len u32 LE][crc32c u32 LE][seq u64 LE][payload]`
//!   (`len` counts seq and payload, the CRC covers them). Each record is
//!   written to the file (`write(2)`) as it is pushed, so a *process* crash
//!   loses nothing pushed.
//! - **Group commit**: `fdatasync` runs at the first push or
//!   [`Spool::sync_if_due`] once [`SpoolConfig::sync_interval`] (default
//!   100 ms) has passed since the oldest unsynced record was written, or once
//!   [`SpoolConfig::sync_every_records`] (default 500) records are unsynced,
//!   and always when a segment is sealed or the spool closed. A *machine*
//!   crash (power, kernel) therefore loses at most the records of one window:
//!   fewer than `sync_every_records`, pushed within the last `sync_interval`
//!   — provided the owner calls `sync_if_due` at least every `sync_interval`
//!   (the agent's 100 ms send tick does). [`SpoolStats::durable_through`] says
//!   how far the disk is known to hold.
//! - **Recovery** ([`Spool::open`]) reads every segment in order; a torn or
//!   corrupt record (short, bad length, CRC mismatch, sequence out of order)
//!   ends that segment: the file is truncated there with a warning, never a
//!   panic. Acknowledgements are persisted (in the meta file) whenever a
//!   segment is deleted, at most a second apart otherwise, and on close, so
//!   after a crash the last second's acknowledged records may come back and
//!   be resent: at-least-once, and the coordinator de-duplicates.
//! - **Bounded**: at most [`SpoolConfig::max_records`] records and
//!   [`SpoolConfig::max_bytes`] encoded bytes wait. When a new record does not
//!   fit, the *oldest* are dropped and counted in [`SpoolStats::lost_total`]:
//!   pushing never blocks and never fails for lack of room, so the scheduler
//!   keeps measuring through a long coordinator outage and the newest results
//!   survive. Disk use is the waiting bytes plus at most two segments of
//!   acknowledged records (the partly acknowledged oldest one and the active
//!   one).
//!
//! The spool is synchronous (`std::fs`); the agent owns it from one task and
//! calls it between awaits (pushes are a `write(2)`, syncs are batched).
//! A disk error is returned, never hidden: per the design, a storage error is
//! the caller's to escalate.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::time::Instant;

/// Why the spool failed.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// A file operation in the spool directory failed.
    #[error("spool {op} {path}: {source}")]
    Io {
        /// What was being done (`write`, `fsync`, `open`, …).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// The meta file exists but cannot be read; sequence numbers cannot be
    /// continued safely.
    #[error("spool meta file {path} is corrupt ({reason}); move the spool directory aside to start afresh (the coordinator will see sequence numbers restart)")]
    CorruptMeta {
        /// The meta file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// One record is larger than the spool may hold.
    #[error("record of {size} bytes exceeds the spool's limit of {max} bytes")]
    RecordTooLarge {
        /// The encoded size.
        size: u64,
        /// The limit (`max_bytes`, or the 64 MiB frame limit).
        max: u64,
    },
    /// The payload could not be encoded.
    #[error("encoding a spool record: {reason}")]
    Encode {
        /// The codec's error.
        reason: String,
    },
    /// A configuration value is out of range.
    #[error("spool config: {field} {reason}")]
    Config {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
}

/// How records are turned into bytes and back. The agent will use the
/// protobuf `CheckResult` from `vantage_proto::pb`; [`JsonCodec`] serves any
/// serde type meanwhile.
pub trait SpoolCodec {
    /// The record type.
    type Item;

    /// Appends the encoding of `item` to `out`.
    fn encode(item: &Self::Item, out: &mut Vec<u8>) -> Result<(), String>;

    /// Decodes one record.
    fn decode(bytes: &[u8]) -> Result<Self::Item, String>;
}

/// Records as JSON, via serde.
#[derive(Debug)]
pub struct JsonCodec<T>(PhantomData<fn() -> T>);

impl<T: Serialize + DeserializeOwned> SpoolCodec for JsonCodec<T> {
    type Item = T;

    fn encode(item: &T, out: &mut Vec<u8>) -> Result<(), String> {
        serde_json::to_writer(out, item).map_err(|e| e.to_string())
    }

    fn decode(bytes: &[u8]) -> Result<T, String> {
        serde_json::from_slice(bytes).map_err(|e| e.to_string())
    }
}

/// Records that are already bytes (e.g. encoded protobuf messages).
#[derive(Debug)]
pub struct BytesCodec;

impl SpoolCodec for BytesCodec {
    type Item = Vec<u8>;

    fn encode(item: &Vec<u8>, out: &mut Vec<u8>) -> Result<(), String> {
        out.extend_from_slice(item);
        Ok(())
    }

    fn decode(bytes: &[u8]) -> Result<Vec<u8>, String> {
        Ok(bytes.to_vec())
    }
}

/// How the spool is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolConfig {
    /// Where segments live; `None` keeps records in memory only (a restart
    /// loses what was not acknowledged).
    pub dir: Option<PathBuf>,
    /// At most this many records wait; beyond, the oldest are dropped.
    pub max_records: usize,
    /// At most this many encoded bytes (frames) wait; beyond, the oldest are
    /// dropped.
    pub max_bytes: u64,
    /// A segment is sealed and a new one started once it reaches this size.
    pub segment_bytes: u64,
    /// Group commit: sync at most this long after the first unsynced record.
    pub sync_interval: Duration,
    /// Group commit: sync once this many records are unsynced.
    pub sync_every_records: u64,
    /// The first sequence number is at least this (and at least 1).
    pub min_first_seq: u64,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        Self {
            dir: None,
            max_records: 1_000_000,
            max_bytes: 256 << 20,
            segment_bytes: 16 << 20,
            sync_interval: Duration::from_millis(100),
            sync_every_records: 500,
            min_first_seq: 1,
        }
    }
}

impl SpoolConfig {
    /// Checks the values' ranges.
    pub fn validate(&self) -> Result<(), SpoolError> {
        let bad = |field, reason| Err(SpoolError::Config { field, reason });
        if self.max_records == 0 {
            return bad("max_records", "must be at least 1");
        }
        if self.max_bytes == 0 {
            return bad("max_bytes", "must be at least 1");
        }
        if self.segment_bytes < 4096 {
            return bad("segment_bytes", "must be at least 4096");
        }
        if self.sync_every_records == 0 {
            return bad("sync_every_records", "must be at least 1");
        }
        Ok(())
    }
}

/// One waiting record.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Unacked<'a, T> {
    /// Its sequence number.
    pub seq: u64,
    /// The record.
    pub item: &'a T,
}

/// The spool's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SpoolStats {
    /// The sequence number the next record gets.
    pub next_seq: u64,
    /// Records waiting for acknowledgement.
    pub pending_records: u64,
    /// Their encoded size.
    pub pending_bytes: u64,
    /// Every record up to here is acknowledged or dropped.
    pub done_through: u64,
    /// Records dropped unacknowledged (size bound, or undecodable on
    /// recovery), since this process opened the spool.
    pub lost_total: u64,
    /// Every record up to here is on disk and synced (0 without a
    /// directory).
    pub durable_through: u64,
    /// Segment files on disk.
    pub segments: u64,
    /// `fdatasync` calls on segments.
    pub syncs_total: u64,
}

/// What [`Spool::open`] found on disk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Unacknowledged records read back.
    pub records: u64,
    /// Segments read.
    pub segments: u64,
    /// Bytes cut from torn or corrupt tails.
    pub truncated_bytes: u64,
    /// Records whose frame was sound but whose payload did not decode
    /// (dropped, counted as lost).
    pub undecodable: u64,
}

/// The result spool. See the module documentation for its guarantees.
#[derive(Debug)]
pub struct Spool<C: SpoolCodec> {
    config: SpoolConfig,
    pending: VecDeque<Pending<C::Item>>,
    pending_bytes: u64,
    next_seq: u64,
    done_through: u64,
    lost_total: u64,
    disk: Option<Disk>,
    recovery: Recovery,
    frame: Vec<u8>,
}

impl<C: SpoolCodec> Spool<C> {
    /// Opens the spool: with a directory, creates it if needed and recovers
    /// its unacknowledged records; without one, starts empty.
    pub fn open(config: SpoolConfig) -> Result<Self, SpoolError> {
        config.validate()?;
        let mut spool = Spool {
            pending: VecDeque::new(),
            pending_bytes: 0,
            next_seq: config.min_first_seq.max(1),
            done_through: config.min_first_seq.max(1) - 1,
            lost_total: 0,
            disk: None,
            recovery: Recovery::default(),
            frame: Vec::new(),
            config,
        };
        if let Some(dir) = spool.config.dir.clone() {
            spool.recover(&dir)?;
        }
        Ok(spool)
    }

    /// Adds a record and returns its sequence number. Drops the oldest
    /// records when the bound is reached (counted in
    /// [`SpoolStats::lost_total`]). With a directory, the record is written
    /// to the active segment before this returns and synced by the group
    /// commit policy.
    ///
    /// On a disk error the record is not kept, its sequence number is not
    /// reused (a gap), and the next push starts a new segment.
    pub fn push(&mut self, item: C::Item) -> Result<u64, SpoolError> {
        let seq = self.next_seq;
        self.encode_frame(seq, &item)?;
        let size = self.frame.len() as u64;
        if size > self.config.max_bytes {
            return Err(SpoolError::RecordTooLarge { size, max: self.config.max_bytes });
        }
        if let Some(disk) = &mut self.disk {
            if seq >= disk.issued_below {
                disk.write_meta(self.done_through, seq + SEQ_LEASE)?;
            }
        }
        // Room for this one (`size <= max_bytes` and `max_records >= 1`).
        self.shed(self.config.max_records - 1, self.config.max_bytes - size);
        self.next_seq += 1;
        if let Some(disk) = &mut self.disk {
            disk.append(seq, &self.frame, self.config.segment_bytes)?;
        }
        self.pending.push_back(Pending { seq, size: size as u32, item });
        self.pending_bytes += size;
        if let Some(disk) = &mut self.disk {
            if disk.unsynced_records >= self.config.sync_every_records
                || disk.first_unsynced_at.is_some_and(|t| t.elapsed() >= self.config.sync_interval)
            {
                disk.sync()?;
            }
        }
        self.trim_segments()?;
        Ok(seq)
    }

    /// Acknowledges every record up to and including `up_to_seq`: drops them
    /// from memory and deletes segments left with nothing unacknowledged.
    /// Acknowledging what is already acknowledged, or beyond what was
    /// issued, is harmless (clamped).
    pub fn ack(&mut self, up_to_seq: u64) -> Result<(), SpoolError> {
        let up_to = up_to_seq.min(self.next_seq - 1);
        if up_to <= self.done_through {
            return Ok(());
        }
        while self.pending.front().is_some_and(|p| p.seq <= up_to) {
            if let Some(p) = self.pending.pop_front() {
                self.pending_bytes -= u64::from(p.size);
            }
        }
        self.done_through = up_to;
        self.trim_segments()
    }

    /// The waiting records, oldest first.
    pub fn unacked(&self) -> impl Iterator<Item = Unacked<'_, C::Item>> {
        self.pending.iter().map(|p| Unacked { seq: p.seq, item: &p.item })
    }

    /// The waiting records numbered above `seq` (those not yet sent, when
    /// `seq` is the last one sent), oldest first.
    pub fn unacked_after(&self, seq: u64) -> impl Iterator<Item = Unacked<'_, C::Item>> {
        let start = self.pending.partition_point(|p| p.seq <= seq);
        self.pending.range(start..).map(|p| Unacked { seq: p.seq, item: &p.item })
    }

    /// Syncs the active segment if the group-commit interval has passed
    /// since its first unsynced record. Call at least every
    /// [`SpoolConfig::sync_interval`].
    pub fn sync_if_due(&mut self) -> Result<(), SpoolError> {
        match &mut self.disk {
            Some(disk)
                if disk.first_unsynced_at.is_some_and(|t| t.elapsed() >= self.config.sync_interval) =>
            {
                disk.sync()
            }
            _ => Ok(()),
        }
    }

    /// Syncs the active segment now.
    pub fn sync(&mut self) -> Result<(), SpoolError> {
        match &mut self.disk {
            Some(disk) => disk.sync(),
            None => Ok(()),
        }
    }

    /// The counters.
    pub fn stats(&self) -> SpoolStats {
        let (durable_through, segments, syncs_total) = match &self.disk {
            Some(d) => (d.durable_through, d.segment_count(), d.syncs_total),
            None => (0, 0, 0),
        };
        SpoolStats {
            next_seq: self.next_seq,
            pending_records: self.pending.len() as u64,
            pending_bytes: self.pending_bytes,
            done_through: self.done_through,
            lost_total: self.lost_total,
            durable_through,
            segments,
            syncs_total,
        }
    }

    /// What opening found on disk.
    pub fn recovery(&self) -> &Recovery {
        &self.recovery
    }

    /// Syncs, and records the acknowledgements and the exact next sequence
    /// number, so reopening resends nothing acknowledged and leaves no gap.
    /// Dropping the spool does the same, logging instead of returning errors.
    pub fn close(mut self) -> Result<(), SpoolError> {
        self.close_disk()
    }

    fn close_disk(&mut self) -> Result<(), SpoolError> {
        let Some(mut disk) = self.disk.take() else { return Ok(()) };
        disk.sync()?;
        disk.write_meta(self.done_through, self.next_seq)
    }

    fn encode_frame(&mut self, seq: u64, item: &C::Item) -> Result<(), SpoolError> {
        self.frame.clear();
        self.frame.extend_from_slice(&[0; FRAME_HEADER]);
        self.frame.extend_from_slice(&seq.to_le_bytes());
        C::encode(item, &mut self.frame).map_err(|reason| SpoolError::Encode { reason })?;
        let body_len = self.frame.len() - FRAME_HEADER;
        if body_len > MAX_FRAME_BODY {
            return Err(SpoolError::RecordTooLarge {
                size: self.frame.len() as u64,
                max: MAX_FRAME_BODY as u64,
            });
        }
        let crc = crc32c(&self.frame[FRAME_HEADER..]);
        self.frame[0..4].copy_from_slice(&(body_len as u32).to_le_bytes());
        self.frame[4..8].copy_from_slice(&crc.to_le_bytes());
        Ok(())
    }

    /// Drops the oldest records until at most `max_records` of at most
    /// `max_bytes` wait, counting them as lost.
    fn shed(&mut self, max_records: usize, max_bytes: u64) {
        let mut dropped = 0u64;
        while self.pending.len() > max_records || self.pending_bytes > max_bytes {
            let Some(p) = self.pending.pop_front() else { break };
            self.pending_bytes -= u64::from(p.size);
            self.done_through = p.seq;
            dropped += 1;
        }
        if dropped > 0 {
            self.lost_total += dropped;
            tracing::warn!(
                dropped,
                lost_total = self.lost_total,
                max_records = self.config.max_records,
                max_bytes = self.config.max_bytes,
                "spool full; oldest unacknowledged results dropped"
            );
        }
    }

    /// Deletes sealed segments with nothing left unacknowledged, after
    /// recording the acknowledgements in the meta file (so a deleted
    /// segment's sequence numbers are never forgotten). The active segment
    /// stays until it is full, even when all acknowledged: deleting and
    /// recreating it at every acknowledgement would cost several fsyncs each
    /// time. Without a deletion, acknowledgements still reach the meta file
    /// at most [`META_ACK_INTERVAL`] apart, which bounds what a crash resends.
    fn trim_segments(&mut self) -> Result<(), SpoolError> {
        let done = self.done_through;
        let Some(disk) = &mut self.disk else { return Ok(()) };
        let issued_below = disk.issued_below;
        if disk.closed.front().is_none_or(|s| s.last_seq > done) {
            if done > disk.meta_done_through && disk.meta_written_at.elapsed() >= META_ACK_INTERVAL {
                disk.write_meta(done, issued_below)?;
            }
            return Ok(());
        }
        disk.write_meta(done, issued_below)?;
        while disk.closed.front().is_some_and(|s| s.last_seq <= done) {
            if let Some(segment) = disk.closed.pop_front() {
                fs::remove_file(&segment.path).map_err(|e| io_error("remove", &segment.path, e))?;
            }
        }
        Ok(())
    }

    /// Reads the directory back: meta, then every segment in order.
    fn recover(&mut self, dir: &Path) -> Result<(), SpoolError> {
        fs::create_dir_all(dir).map_err(|e| io_error("create", dir, e))?;
        let meta = read_meta(dir)?;
        self.done_through = self.done_through.max(meta.done_through);
        let mut last_seq = self.done_through;
        let mut highest_on_disk = 0;
        let mut closed = VecDeque::new();
        for (first_seq, path) in list_segments(dir)? {
            let bytes = fs::read(&path).map_err(|e| io_error("read", &path, e))?;
            if bytes.len() < SEGMENT_HEADER.len() || bytes[..SEGMENT_HEADER.len()] != SEGMENT_HEADER[..] {
                tracing::warn!(path = %path.display(), len = bytes.len(), "spool segment has no valid header; set aside as .corrupt");
                let aside = path.with_extension("corrupt");
                fs::rename(&path, &aside).map_err(|e| io_error("rename", &path, e))?;
                self.recovery.truncated_bytes += bytes.len() as u64;
                continue;
            }
            let scan = scan_frames(&bytes[SEGMENT_HEADER.len()..], first_seq.max(highest_on_disk + 1));
            let valid_len = SEGMENT_HEADER.len() + scan.valid_len;
            if let Some(reason) = &scan.stopped {
                let cut = bytes.len() - valid_len;
                tracing::warn!(path = %path.display(), offset = valid_len, cut_bytes = cut, reason = %reason, "spool segment has a torn or corrupt record; truncating it there");
                truncate(&path, valid_len as u64)?;
                self.recovery.truncated_bytes += cut as u64;
            }
            self.recovery.segments += 1;
            let mut seg_last = first_seq - 1;
            for frame in &scan.frames {
                seg_last = frame.seq;
                highest_on_disk = frame.seq;
                if frame.seq <= self.done_through {
                    continue;
                }
                let payload = &bytes[SEGMENT_HEADER.len() + frame.payload.start..][..frame.payload.len()];
                match C::decode(payload) {
                    Ok(item) => {
                        let size = (FRAME_HEADER + 8 + payload.len()) as u64;
                        self.pending.push_back(Pending { seq: frame.seq, size: size as u32, item });
                        self.pending_bytes += size;
                        self.recovery.records += 1;
                    }
                    Err(error) => {
                        tracing::warn!(path = %path.display(), seq = frame.seq, %error, "spool record does not decode; dropped");
                        self.recovery.undecodable += 1;
                        self.lost_total += 1;
                    }
                }
            }
            last_seq = last_seq.max(seg_last);
            closed.push_back(SegmentInfo { path, last_seq: seg_last });
        }
        self.next_seq = self.next_seq.max(meta.issued_below).max(last_seq + 1);
        let mut disk = Disk {
            dir: dir.to_path_buf(),
            closed,
            active: None,
            issued_below: 0,
            meta_done_through: 0,
            meta_written_at: Instant::now(),
            unsynced_records: 0,
            first_unsynced_at: None,
            durable_through: last_seq,
            syncs_total: 0,
        };
        // The lease is on disk before any number is issued.
        disk.write_meta(self.done_through, self.next_seq + SEQ_LEASE)?;
        self.disk = Some(disk);
        // The bound may have shrunk since the records were written.
        self.shed(self.config.max_records, self.config.max_bytes);
        tracing::info!(
            dir = %dir.display(),
            records = self.recovery.records,
            segments = self.recovery.segments,
            next_seq = self.next_seq,
            "spool recovered"
        );
        self.trim_segments()
    }
}

impl<C: SpoolCodec> Drop for Spool<C> {
    fn drop(&mut self) {
        if let Err(error) = self.close_disk() {
            tracing::warn!(%error, "closing the spool");
        }
    }
}

/// Acknowledgements are written to the meta file at most this often when no
/// segment is deleted.
const META_ACK_INTERVAL: Duration = Duration::from_secs(1);
/// Sequence numbers reserved at a time by the meta file's lease.
const SEQ_LEASE: u64 = 65_536;
/// `[len u32][crc u32]` before each frame body.
const FRAME_HEADER: usize = 8;
/// The largest frame body accepted, written or read.
const MAX_FRAME_BODY: usize = 64 << 20;
/// The first bytes of every segment file (format version 1).
const SEGMENT_HEADER: [u8; 8] = *b"VSPOOL\x00\x01";
const META_FILE: &str = "spool.meta";
const META_MAGIC: [u8; 8] = *b"VSPMETA1";
const META_LEN: usize = 8 + 8 + 8 + 4;

#[derive(Debug)]
struct Pending<T> {
    seq: u64,
    size: u32,
    item: T,
}

#[derive(Debug)]
struct SegmentInfo {
    path: PathBuf,
    /// The first sequence number (from the file name) minus one while empty.
    last_seq: u64,
}

#[derive(Debug)]
struct ActiveSegment {
    file: File,
    info: SegmentInfo,
    len: u64,
    records: u64,
}

#[derive(Debug)]
struct Disk {
    dir: PathBuf,
    /// Sealed segments, oldest first.
    closed: VecDeque<SegmentInfo>,
    active: Option<ActiveSegment>,
    /// The durable lease: no number at or above this has been issued.
    issued_below: u64,
    /// What the meta file says is done, and when it was last written.
    meta_done_through: u64,
    meta_written_at: Instant,
    unsynced_records: u64,
    first_unsynced_at: Option<Instant>,
    durable_through: u64,
    syncs_total: u64,
}

impl Disk {
    fn segment_count(&self) -> u64 {
        self.closed.len() as u64 + u64::from(self.active.is_some())
    }

    /// Writes `frame` (record `seq`) to the active segment, starting a new
    /// segment when there is none or it is full.
    fn append(&mut self, seq: u64, frame: &[u8], segment_bytes: u64) -> Result<(), SpoolError> {
        if self.active.as_ref().is_some_and(|a| a.len >= segment_bytes) {
            self.seal()?;
        }
        if self.active.is_none() {
            self.active = Some(self.create_segment(seq)?);
        }
        let Some(active) = &mut self.active else { return Ok(()) };
        if let Err(e) = active.file.write_all(frame) {
            // The file may now end in a torn frame; recovery will cut it.
            // Nothing more goes into it.
            let path = active.info.path.clone();
            if let Some(active) = self.active.take() {
                self.closed.push_back(active.info);
            }
            return Err(io_error("write", &path, e));
        }
        active.len += frame.len() as u64;
        active.records += 1;
        active.info.last_seq = seq;
        self.unsynced_records += 1;
        self.first_unsynced_at.get_or_insert_with(Instant::now);
        Ok(())
    }

    fn create_segment(&mut self, first_seq: u64) -> Result<ActiveSegment, SpoolError> {
        let path = self.dir.join(format!("{first_seq:020}.seg"));
        let mut file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .map_err(|e| io_error("create", &path, e))?;
        file.write_all(&SEGMENT_HEADER).map_err(|e| io_error("write", &path, e))?;
        // The new name must survive a crash along with the data synced into it.
        sync_dir(&self.dir)?;
        let info = SegmentInfo { path, last_seq: first_seq - 1 };
        Ok(ActiveSegment { file, info, len: SEGMENT_HEADER.len() as u64, records: 0 })
    }

    /// Syncs and closes the active segment.
    fn seal(&mut self) -> Result<(), SpoolError> {
        self.sync()?;
        if let Some(active) = self.active.take() {
            self.closed.push_back(active.info);
        }
        Ok(())
    }

    fn sync(&mut self) -> Result<(), SpoolError> {
        let Some(active) = &mut self.active else { return Ok(()) };
        if self.unsynced_records == 0 {
            return Ok(());
        }
        active.file.sync_data().map_err(|e| io_error("fsync", &active.info.path, e))?;
        self.unsynced_records = 0;
        self.first_unsynced_at = None;
        self.durable_through = active.info.last_seq;
        self.syncs_total += 1;
        Ok(())
    }

    /// Replaces the meta file atomically and durably: write a temporary
    /// file, sync it, rename it over the old one, sync the directory.
    fn write_meta(&mut self, done_through: u64, issued_below: u64) -> Result<(), SpoolError> {
        let mut bytes = Vec::with_capacity(META_LEN);
        bytes.extend_from_slice(&META_MAGIC);
        bytes.extend_from_slice(&done_through.to_le_bytes());
        bytes.extend_from_slice(&issued_below.to_le_bytes());
        let crc = crc32c(&bytes);
        bytes.extend_from_slice(&crc.to_le_bytes());
        let tmp = self.dir.join(format!("{META_FILE}.tmp"));
        let path = self.dir.join(META_FILE);
        let mut file = File::create(&tmp).map_err(|e| io_error("create", &tmp, e))?;
        file.write_all(&bytes).map_err(|e| io_error("write", &tmp, e))?;
        file.sync_all().map_err(|e| io_error("fsync", &tmp, e))?;
        fs::rename(&tmp, &path).map_err(|e| io_error("rename", &tmp, e))?;
        sync_dir(&self.dir)?;
        self.issued_below = issued_below;
        self.meta_done_through = done_through;
        self.meta_written_at = Instant::now();
        Ok(())
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Meta {
    done_through: u64,
    issued_below: u64,
}

fn read_meta(dir: &Path) -> Result<Meta, SpoolError> {
    let path = dir.join(META_FILE);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Meta::default()),
        Err(e) => return Err(io_error("read", &path, e)),
    };
    let corrupt = |reason: &str| SpoolError::CorruptMeta { path: path.clone(), reason: reason.to_string() };
    if bytes.len() != META_LEN || bytes[..8] != META_MAGIC[..] {
        return Err(corrupt("wrong length or magic"));
    }
    let word = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap_or_default());
    let crc = u32::from_le_bytes(bytes[24..28].try_into().unwrap_or_default());
    if crc32c(&bytes[..24]) != crc {
        return Err(corrupt("checksum mismatch"));
    }
    Ok(Meta { done_through: word(8), issued_below: word(16) })
}

/// Segment files in order of their first sequence number.
fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, SpoolError> {
    let mut segments = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| io_error("list", dir, e))? {
        let entry = entry.map_err(|e| io_error("list", dir, e))?;
        let path = entry.path();
        let first_seq = path
            .extension()
            .filter(|ext| *ext == "seg")
            .and_then(|_| path.file_stem()?.to_str()?.parse::<u64>().ok())
            .filter(|seq| *seq >= 1);
        if let Some(first_seq) = first_seq {
            segments.push((first_seq, path));
        }
    }
    segments.sort();
    Ok(segments)
}

/// A sound frame found by [`scan_frames`].
#[derive(Debug, Clone, PartialEq, Eq)]
struct Frame {
    seq: u64,
    /// Where its payload is, relative to the scanned bytes.
    payload: std::ops::Range<usize>,
}

#[derive(Debug, Default, PartialEq, Eq)]
struct Scan {
    frames: Vec<Frame>,
    /// Bytes up to the end of the last sound frame.
    valid_len: usize,
    /// Why scanning stopped before the end, if it did.
    stopped: Option<String>,
}

/// Reads frames until the end or the first one that is torn or corrupt.
/// Sequence numbers must be at least `min_seq` and strictly rising.
fn scan_frames(bytes: &[u8], min_seq: u64) -> Scan {
    let mut scan = Scan::default();
    let mut at = 0;
    let mut next_min = min_seq;
    while at < bytes.len() {
        let rest = &bytes[at..];
        if rest.len() < FRAME_HEADER + 8 {
            scan.stopped = Some(format!("{} trailing bytes, shorter than a frame header", rest.len()));
            break;
        }
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
        if !(8..=MAX_FRAME_BODY).contains(&len) {
            scan.stopped = Some(format!("frame length {len} out of range"));
            break;
        }
        if rest.len() < FRAME_HEADER + len {
            scan.stopped = Some(format!("frame of {len} bytes cut short at {}", rest.len() - FRAME_HEADER));
            break;
        }
        let body = &rest[FRAME_HEADER..FRAME_HEADER + len];
        if crc32c(body) != crc {
            scan.stopped = Some("checksum mismatch".to_string());
            break;
        }
        let seq = u64::from_le_bytes(body[..8].try_into().unwrap_or_default());
        if seq < next_min {
            scan.stopped = Some(format!("sequence {seq} out of order (expected at least {next_min})"));
            break;
        }
        let payload_start = at + FRAME_HEADER + 8;
        scan.frames.push(Frame { seq, payload: payload_start..at + FRAME_HEADER + len });
        next_min = seq + 1;
        at += FRAME_HEADER + len;
        scan.valid_len = at;
    }
    scan
}

fn truncate(path: &Path, len: u64) -> Result<(), SpoolError> {
    let file = OpenOptions::new().write(true).open(path).map_err(|e| io_error("open", path, e))?;
    file.set_len(len).map_err(|e| io_error("truncate", path, e))?;
    file.sync_all().map_err(|e| io_error("fsync", path, e))
}

fn sync_dir(dir: &Path) -> Result<(), SpoolError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io_error("fsync", dir, e))
}

fn io_error(op: &'static str, path: &Path, source: io::Error) -> SpoolError {
    SpoolError::Io { op, path: path.to_path_buf(), source }
}

/// CRC-32C (Castagnoli), as in iSCSI, ext4 and most log formats.
fn crc32c(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc = CRC32C_TABLE[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

const CRC32C_TABLE: [u32; 256] = crc32c_table();

const fn crc32c_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0x82F6_3B78 } else { crc >> 1 };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{SystemTime, UNIX_EPOCH};

    use serde::Deserialize;

    use super::*;

    /// A result-like record: which endpoint, which round, when it started.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Rec {
        endpoint_id: u64,
        round: u64,
        started_at: SystemTime,
    }

    fn rec(round: u64) -> Rec {
        Rec {
            endpoint_id: 7,
            round,
            started_at: UNIX_EPOCH + Duration::from_millis(1_700_000_000_000 + round * 10_000),
        }
    }

    type TestSpool = Spool<JsonCodec<Rec>>;

    /// A fresh directory under the system's temporary directory, removed
    /// when dropped.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> Self {
            static N: AtomicU64 = AtomicU64::new(0);
            let path = std::env::temp_dir().join(format!(
                "vantage-spool-test-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = fs::remove_dir_all(&path);
            Self(path)
        }

        fn config(&self) -> SpoolConfig {
            SpoolConfig { dir: Some(self.0.clone()), ..SpoolConfig::default() }
        }

        fn segments(&self) -> Vec<PathBuf> {
            list_segments(&self.0).unwrap().into_iter().map(|(_, p)| p).collect()
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn seqs(spool: &TestSpool) -> Vec<u64> {
        spool.unacked().map(|u| u.seq).collect()
    }

    fn rounds(spool: &TestSpool) -> Vec<u64> {
        spool.unacked().map(|u| u.item.round).collect()
    }

    /// Simulates a crash: the spool is neither closed nor dropped.
    fn crash(spool: TestSpool) {
        std::mem::forget(spool);
    }

    #[test]
    fn sequence_numbers_start_at_one_and_rise_by_one() {
        let mut spool = TestSpool::open(SpoolConfig::default()).unwrap();
        for round in 0..5 {
            assert_eq!(spool.push(rec(round)).unwrap(), round + 1);
        }
        assert_eq!(seqs(&spool), [1, 2, 3, 4, 5]);
        assert_eq!(spool.stats().next_seq, 6);
        let floor = TestSpool::open(SpoolConfig { min_first_seq: 1_000, ..SpoolConfig::default() }).unwrap();
        assert_eq!(floor.stats().next_seq, 1_000);
    }

    #[test]
    fn ack_drops_records_up_to_the_sequence_number() {
        let mut spool = TestSpool::open(SpoolConfig::default()).unwrap();
        for round in 0..10 {
            spool.push(rec(round)).unwrap();
        }
        spool.ack(4).unwrap();
        assert_eq!(seqs(&spool), [5, 6, 7, 8, 9, 10]);
        spool.ack(2).unwrap(); // behind: harmless
        assert_eq!(seqs(&spool), [5, 6, 7, 8, 9, 10]);
        assert_eq!(spool.unacked_after(7).map(|u| u.seq).collect::<Vec<_>>(), [8, 9, 10]);
        spool.ack(1_000).unwrap(); // beyond what was issued: clamped
        assert_eq!(seqs(&spool), Vec::<u64>::new());
        let stats = spool.stats();
        assert_eq!((stats.done_through, stats.pending_bytes, stats.next_seq), (10, 0, 11));
        assert_eq!(spool.push(rec(10)).unwrap(), 11, "numbers go on after acks");
    }

    #[test]
    fn unacked_records_come_back_in_order_after_a_restart_and_numbers_continue() {
        let dir = TempDir::new();
        let mut spool = TestSpool::open(dir.config()).unwrap();
        for round in 0..20 {
            spool.push(rec(round)).unwrap();
        }
        spool.ack(5).unwrap();
        spool.close().unwrap();

        let mut spool = TestSpool::open(dir.config()).unwrap();
        assert_eq!(seqs(&spool), (6..=20).collect::<Vec<_>>(), "acknowledged records do not come back");
        let items: Vec<Rec> = spool.unacked().map(|u| u.item.clone()).collect();
        assert_eq!(items, (5..20).map(rec).collect::<Vec<_>>(), "with their original timestamps");
        assert_eq!(spool.recovery().records, 15);
        assert_eq!(spool.push(rec(20)).unwrap(), 21, "a clean close leaves no gap");
        drop(spool); // dropping closes too

        let spool = TestSpool::open(dir.config()).unwrap();
        assert_eq!(seqs(&spool).last(), Some(&21));
        assert_eq!(spool.stats().next_seq, 22);
    }

    #[test]
    fn after_a_crash_every_written_record_returns_and_no_number_is_reused() {
        let dir = TempDir::new();
        let mut spool = TestSpool::open(dir.config()).unwrap();
        for round in 0..10 {
            spool.push(rec(round)).unwrap();
        }
        crash(spool);
        let mut spool = TestSpool::open(dir.config()).unwrap();
        assert_eq!(seqs(&spool), (1..=10).collect::<Vec<_>>(), "written records survive a process crash");
        let next = spool.push(rec(10)).unwrap();
        assert!(next > 10, "the lease skips numbers that may have been sent: {next}");
        assert_eq!(next, 1 + SEQ_LEASE, "the gap is the lease");
        assert_eq!(seqs(&spool).last(), Some(&next));
    }

    #[test]
    fn a_torn_tail_is_cut_with_a_warning_and_earlier_records_kept() {
        let dir = TempDir::new();
        let mut spool = TestSpool::open(dir.config()).unwrap();
        for round in 0..5 {
            spool.push(rec(round)).unwrap();
        }
        crash(spool);
        let segment = dir.segments().pop().unwrap();
        let good_len = fs::metadata(&segment).unwrap().len();
        // Half a frame, as a crash in the middle of write(2) leaves it.
        let mut frame = Vec::new();
        frame.extend_from_slice(&100u32.to_le_bytes());
        frame.extend_from_slice(&[0xAB; 30]);
        OpenOptions::new().append(true).open(&segment).unwrap().write_all(&frame).unwrap();

        let mut spool = TestSpool::open(dir.config()).unwrap();
        assert_eq!(rounds(&spool), [0, 1, 2, 3, 4]);
        assert_eq!(spool.recovery().truncated_bytes, frame.len() as u64);
        assert_eq!(fs::metadata(&segment).unwrap().len(), good_len, "the file is cut back");
        spool.push(rec(5)).unwrap();
        spool.close().unwrap();
        let spool = TestSpool::open(dir.config()).unwrap();
        assert_eq!(rounds(&spool), [0, 1, 2, 3, 4, 5]);
        assert_eq!(spool.recovery().truncated_bytes, 0);
    }

    #[test]
    fn a_corrupt_record_ends_its_segment_there() {
        let dir = TempDir::new();
        let mut spool = TestSpool::open(dir.config()).unwrap();
        for round in 0..5 {
            spool.push(rec(round)).unwrap();
        }
        spool.close().unwrap();
        let segment = dir.segments().pop().unwrap();
        let mut bytes = fs::read(&segment).unwrap();
        let len = bytes.len();
        bytes[len - 3] ^= 0xFF; // inside the last record's payload
        fs::write(&segment, &bytes).unwrap();

        let spool = TestSpool::open(dir.config()).unwrap();
        assert_eq!(rounds(&spool), [0, 1, 2, 3]);
        assert!(spool.recovery().truncated_bytes > 0);
        assert!(spool.stats().next_seq > 5, "the cut record's number is not reused");

        // Garbage instead of a segment header is set aside, not trusted.
        drop(spool);
        let bogus = dir.0.join(format!("{:020}.seg", 900_000));
        fs::write(&bogus, b"not a segment").unwrap();
        let spool = TestSpool::open(dir.config()).unwrap();
        assert_eq!(rounds(&spool), [0, 1, 2, 3]);
        assert!(!bogus.exists());
        assert!(bogus.with_extension("corrupt").exists());
    }

    #[test]
    fn scanning_stops_at_each_kind_of_damage() {
        let frame = |seq: u64, payload: &[u8]| {
            let mut body = seq.to_le_bytes().to_vec();
            body.extend_from_slice(payload);
            let mut f = (body.len() as u32).to_le_bytes().to_vec();
            f.extend_from_slice(&crc32c(&body).to_le_bytes());
            f.extend_from_slice(&body);
            f
        };
        let good = [frame(1, b"a"), frame(2, b"bb")].concat();
        let whole = scan_frames(&good, 1);
        assert_eq!(whole.frames.iter().map(|f| f.seq).collect::<Vec<_>>(), [1, 2]);
        assert_eq!((whole.valid_len, whole.stopped.is_none()), (good.len(), true));
        assert_eq!(&good[whole.frames[1].payload.clone()], b"bb");

        let cases: [(&str, Vec<u8>); 5] = [
            ("short header", [good.clone(), vec![1, 2, 3]].concat()),
            ("cut short", [good.clone(), frame(3, b"ccc")[..14].to_vec()].concat()),
            ("bad length", [good.clone(), vec![0xFF; 20]].concat()),
            ("out of order", [good.clone(), frame(2, b"again")].concat()),
            ("checksum", {
                let mut bad = frame(3, b"ccc");
                bad[10] ^= 1;
                [good.clone(), bad].concat()
            }),
        ];
        for (what, bytes) in cases {
            let scan = scan_frames(&bytes, 1);
            assert_eq!(scan.frames.len(), 2, "{what}");
            assert_eq!(scan.valid_len, good.len(), "{what}");
            assert!(scan.stopped.is_some(), "{what}");
        }
        assert!(scan_frames(&good, 2).frames.is_empty(), "below the segment's first number");
    }

    #[test]
    fn a_full_spool_drops_the_oldest_and_counts_the_loss() {
        let config = SpoolConfig { max_records: 3, ..SpoolConfig::default() };
        let mut spool = TestSpool::open(config).unwrap();
        for round in 0..5 {
            spool.push(rec(round)).unwrap();
        }
        assert_eq!(rounds(&spool), [2, 3, 4], "the newest survive");
        assert_eq!(spool.stats().lost_total, 2);
        assert_eq!(spool.stats().done_through, 2);

        let size = {
            let mut probe = TestSpool::open(SpoolConfig::default()).unwrap();
            probe.push(rec(0)).unwrap();
            probe.stats().pending_bytes
        };
        let config = SpoolConfig { max_bytes: size * 2 + size / 2, ..SpoolConfig::default() };
        let mut spool = TestSpool::open(config).unwrap();
        for round in 0..4 {
            spool.push(rec(round)).unwrap();
        }
        assert_eq!(rounds(&spool), [2, 3]);
        assert_eq!(spool.stats().lost_total, 2);
        assert!(spool.stats().pending_bytes <= size * 2 + size / 2);

        let tiny = SpoolConfig { max_bytes: 10, ..SpoolConfig::default() };
        let mut spool = TestSpool::open(tiny).unwrap();
        assert!(matches!(spool.push(rec(0)), Err(SpoolError::RecordTooLarge { max: 10, .. })));
    }

    #[test]
    fn the_bound_holds_on_disk_and_across_a_restart() {
        let dir = TempDir::new();
        let config = SpoolConfig { max_records: 50, segment_bytes: 4096, ..dir.config() };
        let mut spool = TestSpool::open(config.clone()).unwrap();
        for round in 0..500 {
            spool.push(rec(round)).unwrap();
        }
        assert_eq!(spool.stats().lost_total, 450);
        assert!(spool.stats().segments <= 3, "dropped records' segments are deleted: {:?}", spool.stats());
        crash(spool);
        let spool = TestSpool::open(SpoolConfig { max_records: 20, ..config }).unwrap();
        assert_eq!(rounds(&spool), (480..500).collect::<Vec<_>>());
        assert!(spool.stats().lost_total >= 30);
    }

    #[test]
    fn fully_acknowledged_segments_are_deleted() {
        let dir = TempDir::new();
        let config = SpoolConfig { segment_bytes: 4096, ..dir.config() };
        let mut spool = TestSpool::open(config.clone()).unwrap();
        for round in 0..200 {
            spool.push(rec(round)).unwrap();
        }
        let before = dir.segments();
        assert!(before.len() >= 4, "{before:?}");
        assert_eq!(spool.stats().segments, before.len() as u64);
        // Acknowledge everything in the first two segments and part of the third.
        let third_first: u64 = before[2].file_stem().unwrap().to_str().unwrap().parse().unwrap();
        spool.ack(third_first + 1).unwrap();
        assert_eq!(dir.segments(), before[2..].to_vec());
        crash(spool);
        // The acknowledgement was recorded before the deletion.
        let mut spool = TestSpool::open(config.clone()).unwrap();
        assert_eq!(seqs(&spool).first(), Some(&(third_first + 2)));
        // Recovered segments are all sealed, so every one of them goes.
        spool.ack(200).unwrap();
        assert!(dir.segments().is_empty(), "{:?}", dir.segments());
        let next = spool.push(rec(200)).unwrap();
        assert!(next > 200);
        spool.close().unwrap();
        let spool = TestSpool::open(config).unwrap();
        assert_eq!(seqs(&spool), [next], "numbers survive even with every older segment gone");
        drop(spool);

        // A fully acknowledged active segment stays (no file churn per ack)
        // until it fills up; its records do not come back after a close.
        let mut spool = TestSpool::open(dir.config()).unwrap();
        let last = spool.push(rec(201)).unwrap();
        spool.ack(last).unwrap();
        assert_eq!(dir.segments().len(), 1);
        spool.close().unwrap();
        let spool = TestSpool::open(dir.config()).unwrap();
        assert_eq!(seqs(&spool), Vec::<u64>::new());
        assert!(dir.segments().is_empty(), "deleted on reopen: {:?}", dir.segments());
    }

    #[test]
    fn group_commit_syncs_every_n_records_or_when_the_interval_passes() {
        let dir = TempDir::new();
        let config =
            SpoolConfig { sync_every_records: 10, sync_interval: Duration::from_secs(3600), ..dir.config() };
        let mut spool = TestSpool::open(config).unwrap();
        for round in 0..25 {
            spool.push(rec(round)).unwrap();
        }
        assert_eq!(spool.stats().syncs_total, 2);
        assert_eq!(spool.stats().durable_through, 20);
        spool.sync_if_due().unwrap();
        assert_eq!(spool.stats().syncs_total, 2, "the interval has not passed");
        spool.sync().unwrap();
        assert_eq!(spool.stats().durable_through, 25);

        let config = SpoolConfig { sync_every_records: 1_000, sync_interval: Duration::ZERO, ..dir.config() };
        drop(spool);
        let mut spool = TestSpool::open(config).unwrap();
        let seq = spool.push(rec(25)).unwrap();
        assert_eq!(spool.stats().durable_through, seq, "an elapsed interval syncs on push");
    }

    #[tokio::test(start_paused = true)]
    async fn the_sync_interval_is_measured_on_the_monotonic_clock() {
        let dir = TempDir::new();
        let config = SpoolConfig {
            sync_every_records: 1_000,
            sync_interval: Duration::from_millis(100),
            ..dir.config()
        };
        let mut spool = TestSpool::open(config).unwrap();
        spool.push(rec(0)).unwrap();
        spool.push(rec(1)).unwrap();
        tokio::time::advance(Duration::from_millis(99)).await;
        spool.sync_if_due().unwrap();
        assert_eq!(spool.stats().durable_through, 0);
        tokio::time::advance(Duration::from_millis(1)).await;
        spool.sync_if_due().unwrap();
        assert_eq!(spool.stats().durable_through, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn acknowledgements_reach_disk_within_a_second_without_segment_deletions() {
        let dir = TempDir::new();
        let mut spool = TestSpool::open(dir.config()).unwrap();
        for round in 0..10 {
            spool.push(rec(round)).unwrap();
        }
        spool.ack(3).unwrap(); // too soon after opening to write the meta file
        tokio::time::advance(META_ACK_INTERVAL).await;
        spool.ack(6).unwrap();
        spool.ack(8).unwrap(); // too soon after the last write
        crash(spool);
        let spool = TestSpool::open(dir.config()).unwrap();
        assert_eq!(seqs(&spool), [7, 8, 9, 10], "at-least-once: 7 and 8 are resent, 1 to 6 are not");
    }

    #[test]
    fn a_corrupt_meta_file_is_refused_with_advice() {
        let dir = TempDir::new();
        let mut spool = TestSpool::open(dir.config()).unwrap();
        spool.push(rec(0)).unwrap();
        spool.close().unwrap();
        fs::write(dir.0.join(META_FILE), b"garbage").unwrap();
        let error = TestSpool::open(dir.config()).unwrap_err();
        assert!(matches!(error, SpoolError::CorruptMeta { .. }));
        assert!(error.to_string().contains("move the spool directory aside"), "{error}");
    }

    #[test]
    fn bad_configs_are_refused_naming_the_field() {
        for (config, field) in [
            (SpoolConfig { max_records: 0, ..SpoolConfig::default() }, "max_records"),
            (SpoolConfig { max_bytes: 0, ..SpoolConfig::default() }, "max_bytes"),
            (SpoolConfig { segment_bytes: 100, ..SpoolConfig::default() }, "segment_bytes"),
            (SpoolConfig { sync_every_records: 0, ..SpoolConfig::default() }, "sync_every_records"),
        ] {
            let error = TestSpool::open(config).unwrap_err();
            assert!(matches!(error, SpoolError::Config { field: f, .. } if f == field), "{error}");
        }
    }

    #[test]
    fn crc32c_matches_the_standard_check_value() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(b""), 0);
    }

    #[test]
    fn bytes_records_round_trip() {
        let dir = TempDir::new();
        let config = SpoolConfig { dir: Some(dir.0.clone()), ..SpoolConfig::default() };
        let mut spool = Spool::<BytesCodec>::open(config.clone()).unwrap();
        spool.push(vec![1, 2, 3]).unwrap();
        spool.push(Vec::new()).unwrap();
        spool.close().unwrap();
        let spool = Spool::<BytesCodec>::open(config).unwrap();
        let items: Vec<Vec<u8>> = spool.unacked().map(|u| u.item.clone()).collect();
        assert_eq!(items, [vec![1, 2, 3], vec![]]);
    }
}
