//! The on-disk event spool: batches that could not reach the database wait here, in order, until it is back.
//!
//! # Format
//!
//! The spool is a directory of segment files named by a zero-padded sequence (`00000000000000000001.seg`). Records are
//! appended to the newest segment, and a new one is started once it reaches 8 MiB. A record is:
//!
//! | bytes | field                                                     |
//! |-------|-----------------------------------------------------------|
//! | 4     | magic `LTS1`                                              |
//! | 4     | payload length, u32 LE (at most 64 MiB)                   |
//! | 4     | CRC-32 of the 4 length bytes followed by the payload, LE  |
//! | n     | payload                                                   |
//!
//! The file `consumed` is the checkpoint: magic `LTC1`, segment sequence (u64 LE), byte offset (u64 LE) and the CRC-32 of
//! those 20 bytes. Every record in an older segment, and every record of that segment starting before the offset, is
//! consumed. It is replaced atomically: write `consumed.tmp`, fsync, rename, fsync the directory.
//!
//! # Guarantees
//!
//! - `append` returns once the record (and a new segment's directory entry) is fsynced; a failed append leaves nothing.
//! - `pop` returns once the checkpoint is durable, so a consumed record is not replayed after a restart. Delivery is
//!   at-least-once: a missing or corrupt checkpoint replays everything still on disk (the database deduplicates batches).
//!   On a full disk, where the checkpoint cannot be written, `pop` still consumes in memory and deletes consumed
//!   segments, so replay frees space; a restart then replays a little more.
//! - Corruption is never a panic and never an error, only real I/O failures are. `open` validates every record, skips a
//!   bad region by scanning forward for the next magic whose record validates (each region is logged and counted once in
//!   [`SpoolStats::corrupt_skipped`]) and truncates a torn or corrupt tail of the newest segment so appends continue cleanly.
//! - A segment file is deleted as soon as every record in it is consumed (or skipped as corrupt).

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use tracing::warn;

use crate::private_fs;

const MAGIC: &[u8; 4] = b"LTS1";
const HEADER: usize = 12;
const MAX_RECORD: u32 = 64 << 20;
const SEGMENT_BYTES: u64 = 8 << 20;
const CKPT_MAGIC: &[u8; 4] = b"LTC1";
const CKPT_FILE: &str = "consumed";
const CKPT_TMP: &str = "consumed.tmp";

/// An append-only, checksummed queue of opaque payloads on disk. See the module docs for the format.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    /// Oldest first. Every segment but the newest holds at least one unconsumed record.
    segments: VecDeque<Segment>,
    /// Append handle on the newest segment, when appends may continue there.
    writer: Option<File>,
    next_seq: u64,
    /// Bytes of all segment files in `segments`.
    used: u64,
    corrupt_skipped: u64,
    checkpoint_failures: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpoolStats {
    pub records: u64,
    pub bytes: u64,
    pub corrupt_skipped: u64,
    /// Pops whose checkpoint could not be made durable (see [`Spool::pop`]).
    pub checkpoint_failures: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool is full ({used} of {max} bytes)")]
    Full { used: u64, max: u64 },
    #[error("spool io: {0}")]
    Io(#[from] io::Error),
}

#[derive(Debug)]
struct Segment {
    seq: u64,
    bytes: u64,
    /// Unconsumed records, in order.
    recs: VecDeque<Rec>,
}

#[derive(Debug, Clone, Copy)]
struct Rec {
    offset: u64,
    len: u32,
}

impl Rec {
    fn end(self) -> u64 {
        self.offset + HEADER as u64 + u64::from(self.len)
    }
}

impl Spool {
    /// Open (creating the directory if needed) and scan every segment: validate all records, find the consumed checkpoint,
    /// skip torn or corrupt records (logged and counted in `corrupt_skipped`) and truncate a bad tail of the newest segment.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Spool, SpoolError> {
        Self::open_with_segment_bytes(dir, max_bytes, SEGMENT_BYTES)
    }

    /// [`Spool::open`] with a custom segment roll size (tests use small segments).
    pub(crate) fn open_with_segment_bytes(dir: &Path, max_bytes: u64, segment_bytes: u64) -> Result<Spool, SpoolError> {
        private_fs::create_dir_all(dir)?;
        let mut seqs = Vec::new();
        for entry in fs::read_dir(dir)? {
            seqs.extend(parse_seq(&entry?.file_name()));
        }
        seqs.sort_unstable();
        let ckpt = match fs::read(dir.join(CKPT_FILE)) {
            Ok(buf) => decode_checkpoint(&buf).or_else(|| {
                warn!(dir = %dir.display(), "spool checkpoint is corrupt; replaying every record on disk");
                None
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if !seqs.is_empty() {
                    warn!(dir = %dir.display(), "spool checkpoint is missing; replaying every record on disk");
                }
                None
            }
            Err(e) => return Err(e.into()),
        };
        let ckpt = if let Some(c) = ckpt {
            c
        } else {
            write_checkpoint(dir, 0, 0)?;
            (0, 0)
        };
        let mut spool = Spool {
            dir: dir.to_path_buf(),
            max_bytes,
            segment_bytes,
            segments: VecDeque::new(),
            writer: None,
            next_seq: seqs.last().copied().unwrap_or(0).max(ckpt.0).saturating_add(1),
            used: 0,
            corrupt_skipped: 0,
            checkpoint_failures: 0,
        };
        for (i, &seq) in seqs.iter().enumerate() {
            spool.load_segment(seq, i + 1 == seqs.len(), ckpt)?;
        }
        Ok(spool)
    }

    fn load_segment(&mut self, seq: u64, newest: bool, (ck_seq, ck_off): (u64, u64)) -> io::Result<()> {
        let path = seg_path(&self.dir, seq);
        if seq < ck_seq {
            return remove_file(&path);
        }
        let buf = fs::read(&path)?;
        let (recs, good_end, corrupt) = scan(&buf, &path);
        self.corrupt_skipped += corrupt;
        let recs: VecDeque<Rec> = recs.into_iter().filter(|r| seq > ck_seq || r.offset >= ck_off).collect();
        if recs.is_empty() {
            return remove_file(&path);
        }
        let mut bytes = buf.len() as u64;
        if newest {
            let file = OpenOptions::new().append(true).open(&path)?;
            if good_end < bytes {
                warn!(segment = %path.display(), from = good_end, to = bytes, "truncating the torn tail of the spool");
                file.set_len(good_end)?;
                file.sync_all()?;
                bytes = good_end;
            }
            self.writer = Some(file);
        }
        self.used += bytes;
        self.segments.push_back(Segment { seq, bytes, recs });
        Ok(())
    }

    /// Append one record and fsync it. `Err(Full)` (and nothing written) if it would take the spool past `max_bytes`.
    pub fn append(&mut self, payload: &[u8]) -> Result<(), SpoolError> {
        let len = u32::try_from(payload.len())
            .ok()
            .filter(|&l| l <= MAX_RECORD)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "spool record exceeds 64 MiB"))?;
        let need = HEADER as u64 + u64::from(len);
        if self.used.saturating_add(need) > self.max_bytes {
            return Err(SpoolError::Full { used: self.used, max: self.max_bytes });
        }
        if !matches!((&self.writer, self.segments.back()), (Some(_), Some(s)) if s.bytes < self.segment_bytes) {
            self.start_segment()?;
        }
        let (Some(file), Some(seg)) = (self.writer.as_mut(), self.segments.back_mut()) else {
            return Err(io::Error::other("spool has no open segment").into());
        };
        // The real end of file, in case an earlier failed append could not be rolled back.
        let offset = file.metadata()?.len();
        let written = file.write_all(&encode_header(len, payload)).and_then(|()| file.write_all(payload)).and_then(|()| file.sync_data());
        if let Err(e) = written {
            if let Err(t) = file.set_len(offset) {
                warn!(error = %t, "could not roll back a failed spool append; it will be skipped as corrupt");
            }
            return Err(e.into());
        }
        let end = offset + need;
        self.used += end.saturating_sub(seg.bytes);
        seg.bytes = end;
        seg.recs.push_back(Rec { offset, len });
        Ok(())
    }

    fn start_segment(&mut self) -> io::Result<()> {
        let seq = self.next_seq;
        let path = seg_path(&self.dir, seq);
        let file = private_fs::options().append(true).create_new(true).open(&path)?;
        // The name is taken now, whatever happens next: a retry must not collide with it.
        self.next_seq = seq.saturating_add(1);
        if let Err(e) = sync_dir(&self.dir) {
            if let Err(r) = remove_file(&path) {
                warn!(segment = %path.display(), error = %r, "could not remove a spool segment that failed to start");
            }
            return Err(e);
        }
        self.writer = Some(file);
        self.segments.push_back(Segment { seq, bytes: 0, recs: VecDeque::new() });
        Ok(())
    }

    /// The oldest unconsumed record, if any (does not consume it). A record that no longer validates is skipped.
    pub fn peek(&mut self) -> Result<Option<Vec<u8>>, SpoolError> {
        while let Some((seq, rec)) = self.front() {
            if let Some(payload) = self.read(seq, rec)? {
                return Ok(Some(payload));
            }
            crate::log_limited!(warn, segment = %seg_path(&self.dir, seq).display(), offset = rec.offset, "spool record changed on disk; skipping it");
            self.corrupt_skipped += 1;
            self.discard_front();
        }
        Ok(None)
    }

    /// Mark the oldest unconsumed record consumed (a no-op when there is none), deleting its segment once empty.
    ///
    /// The checkpoint is made durable first. If it cannot be written (a full
    /// disk: it needs a new file), the record is still consumed in memory and
    /// a fully consumed segment still deleted, which is what frees the disk;
    /// the failure is logged and counted in [`SpoolStats::checkpoint_failures`].
    /// Deleting a consumed segment is safe without the checkpoint, and a
    /// restart before the next good checkpoint only replays records the
    /// database already holds, which it skips by batch id.
    pub fn pop(&mut self) {
        if let Some((seq, rec)) = self.front() {
            if let Err(e) = write_checkpoint(&self.dir, seq, rec.end()) {
                self.checkpoint_failures += 1;
                crate::log_limited!(warn, dir = %self.dir.display(), error = %e, "could not write the spool checkpoint; consuming in memory");
            }
            self.discard_front();
        }
    }

    pub fn stats(&self) -> SpoolStats {
        SpoolStats {
            records: self.segments.iter().map(|s| s.recs.len() as u64).sum(),
            bytes: self.used,
            corrupt_skipped: self.corrupt_skipped,
            checkpoint_failures: self.checkpoint_failures,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.segments.iter().all(|s| s.recs.is_empty())
    }

    fn front(&self) -> Option<(u64, Rec)> {
        let seg = self.segments.front()?;
        Some((seg.seq, *seg.recs.front()?))
    }

    fn read(&self, seq: u64, rec: Rec) -> io::Result<Option<Vec<u8>>> {
        let mut file = File::open(seg_path(&self.dir, seq))?;
        file.seek(SeekFrom::Start(rec.offset))?;
        let mut buf = vec![0; HEADER + rec.len as usize];
        match file.read_exact(&mut buf) {
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            other => other?,
        }
        if record_at(&buf, 0) != Some(rec.len) {
            return Ok(None);
        }
        buf.drain(..HEADER);
        Ok(Some(buf))
    }

    /// Drop the oldest unconsumed record from memory; delete its segment file if nothing in it is left.
    fn discard_front(&mut self) {
        let Some(seg) = self.segments.front_mut() else { return };
        seg.recs.pop_front();
        if !seg.recs.is_empty() {
            return;
        }
        if self.segments.len() == 1 {
            self.writer = None;
        }
        if let Some(seg) = self.segments.pop_front() {
            self.used = self.used.saturating_sub(seg.bytes);
            // The checkpoint already covers it; a later open deletes it if this fails.
            if let Err(e) = remove_file(&seg_path(&self.dir, seg.seq)) {
                crate::log_limited!(warn, seq = seg.seq, error = %e, "could not delete a consumed spool segment");
            }
        }
    }
}

/// The payloads of the valid records in a segment's bytes, in the order a
/// replay reads them, and how many corrupt regions were skipped: what
/// [`Spool::open`] finds in a file (the fuzz target `spool_records` drives it).
pub fn decode_segment(buf: &[u8]) -> (Vec<&[u8]>, u64) {
    let (recs, _, corrupt) = scan(buf, Path::new("<memory>"));
    let payloads = recs.iter().map(|r| &buf[r.offset as usize + HEADER..r.offset as usize + HEADER + r.len as usize]).collect();
    (payloads, corrupt)
}

/// Every valid record in a segment, where the last one ends, and how many corrupt regions were skipped.
fn scan(buf: &[u8], path: &Path) -> (Vec<Rec>, u64, u64) {
    let (mut recs, mut pos, mut good_end, mut corrupt) = (Vec::new(), 0, 0, 0);
    while pos < buf.len() {
        if let Some(len) = record_at(buf, pos) {
            recs.push(Rec { offset: pos as u64, len });
            pos += HEADER + len as usize;
            good_end = pos;
            continue;
        }
        if pos == good_end {
            crate::log_limited!(warn, segment = %path.display(), offset = pos, "torn or corrupt spool record; skipping to the next valid one");
            corrupt += 1;
        }
        pos = buf[pos + 1..].windows(MAGIC.len()).position(|w| w == MAGIC).map_or(buf.len(), |i| pos + 1 + i);
    }
    (recs, good_end as u64, corrupt)
}

/// The payload length of a valid record starting at `pos`.
fn record_at(buf: &[u8], pos: usize) -> Option<u32> {
    let head = buf.get(pos..pos + HEADER)?;
    let len = u32::from_le_bytes(head[4..8].try_into().ok()?);
    if head[..4] != *MAGIC || len > MAX_RECORD {
        return None;
    }
    let payload = buf.get(pos + HEADER..pos + HEADER + len as usize)?;
    (record_crc(&head[4..8], payload) == u32::from_le_bytes(head[8..12].try_into().ok()?)).then_some(len)
}

fn record_crc(len_bytes: &[u8], payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(len_bytes);
    hasher.update(payload);
    hasher.finalize()
}

fn encode_header(len: u32, payload: &[u8]) -> [u8; HEADER] {
    let mut head = [0; HEADER];
    head[..4].copy_from_slice(MAGIC);
    head[4..8].copy_from_slice(&len.to_le_bytes());
    head[8..].copy_from_slice(&record_crc(&len.to_le_bytes(), payload).to_le_bytes());
    head
}

fn encode_checkpoint(seq: u64, offset: u64) -> [u8; 24] {
    let mut buf = [0; 24];
    buf[..4].copy_from_slice(CKPT_MAGIC);
    buf[4..12].copy_from_slice(&seq.to_le_bytes());
    buf[12..20].copy_from_slice(&offset.to_le_bytes());
    let crc = crc32fast::hash(&buf[..20]);
    buf[20..].copy_from_slice(&crc.to_le_bytes());
    buf
}

fn decode_checkpoint(buf: &[u8]) -> Option<(u64, u64)> {
    let seq = u64::from_le_bytes(buf.get(4..12)?.try_into().ok()?);
    let offset = u64::from_le_bytes(buf.get(12..20)?.try_into().ok()?);
    (encode_checkpoint(seq, offset)[..] == *buf).then_some((seq, offset))
}

fn write_checkpoint(dir: &Path, seq: u64, offset: u64) -> io::Result<()> {
    let tmp = dir.join(CKPT_TMP);
    let mut file = private_fs::create(&tmp)?;
    file.write_all(&encode_checkpoint(seq, offset))?;
    file.sync_all()?;
    fs::rename(&tmp, dir.join(CKPT_FILE))?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn remove_file(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn seg_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:020}.seg"))
}

fn parse_seq(name: &OsStr) -> Option<u64> {
    let stem = name.to_str()?.strip_suffix(".seg")?;
    if stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()) { stem.parse().ok() } else { None }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use proptest::sample::Index;
    use tempfile::tempdir;

    const REC: u64 = HEADER as u64 + 100;

    fn payload(i: usize, len: usize) -> Vec<u8> {
        (0..len).map(|j| (i * 31 + j * 7) as u8).collect()
    }

    fn append_all(spool: &mut Spool, recs: &[Vec<u8>]) {
        for r in recs {
            spool.append(r).unwrap();
        }
    }

    fn drain(spool: &mut Spool) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(p) = spool.peek().unwrap() {
            spool.pop();
            out.push(p);
        }
        out
    }

    fn segments(dir: &Path) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> =
            fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).filter(|p| parse_seq(p.file_name().unwrap()).is_some()).collect();
        v.sort();
        v
    }

    fn disk_bytes(dir: &Path) -> u64 {
        segments(dir).iter().map(|p| fs::metadata(p).unwrap().len()).sum()
    }

    /// Three 100-byte records in one segment; returns the records and the segment path.
    fn three(dir: &Path) -> (Vec<Vec<u8>>, PathBuf) {
        let recs: Vec<_> = (0..3).map(|i| payload(i, 100)).collect();
        let mut spool = Spool::open(dir, 1 << 20).unwrap();
        append_all(&mut spool, &recs);
        (recs, segments(dir).remove(0))
    }

    #[test]
    fn records_round_trip_in_order_and_segments_are_deleted() {
        let dir = tempdir().unwrap();
        let recs: Vec<_> = (0..10).map(|i| payload(i, i * 50)).collect();
        let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
        append_all(&mut spool, &recs);
        drop(spool);
        let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
        let bytes = recs.iter().map(|r| (HEADER + r.len()) as u64).sum();
        assert_eq!(spool.stats(), SpoolStats { records: 10, bytes, corrupt_skipped: 0, checkpoint_failures: 0 });
        assert_eq!(spool.peek().unwrap(), Some(recs[0].clone()));
        assert_eq!(drain(&mut spool), recs);
        assert!(spool.is_empty());
        assert!(segments(dir.path()).is_empty());
        drop(spool);
        let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
        assert!(spool.is_empty());
        assert_eq!(spool.peek().unwrap(), None);
        assert_eq!(spool.stats(), SpoolStats::default());
        assert!(segments(dir.path()).is_empty());
    }

    #[test]
    fn pop_is_durable_across_reopen() {
        let dir = tempdir().unwrap();
        let (recs, _) = three(dir.path());
        let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
        spool.pop();
        drop(spool);
        let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(spool.stats().records, 2);
        assert_eq!(spool.peek().unwrap(), Some(recs[1].clone()));
    }

    #[test]
    fn segments_roll_over_and_consumed_ones_are_deleted() {
        let dir = tempdir().unwrap();
        let recs: Vec<_> = (0..20).map(|i| payload(i, 100)).collect();
        let mut spool = Spool::open_with_segment_bytes(dir.path(), 1 << 20, 3 * REC).unwrap();
        append_all(&mut spool, &recs);
        assert_eq!(segments(dir.path()).len(), 7);
        assert_eq!(spool.stats().bytes, disk_bytes(dir.path()));
        for expected in &recs[..7] {
            assert_eq!(spool.peek().unwrap().as_ref(), Some(expected));
            spool.pop();
        }
        assert_eq!(segments(dir.path()).len(), 5);
        assert_eq!(spool.stats(), SpoolStats { records: 13, bytes: disk_bytes(dir.path()), corrupt_skipped: 0, checkpoint_failures: 0 });
        drop(spool);
        let mut spool = Spool::open_with_segment_bytes(dir.path(), 1 << 20, 3 * REC).unwrap();
        assert_eq!(drain(&mut spool), &recs[7..]);
        assert!(segments(dir.path()).is_empty());
    }

    /// Damage the tail of a three-record segment; `kept` records survive, then appends continue cleanly.
    fn check_torn_tail(kept: usize, damage: impl FnOnce(&Path)) {
        let dir = tempdir().unwrap();
        let (mut recs, seg) = three(dir.path());
        damage(&seg);
        let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(
            spool.stats(),
            SpoolStats { records: kept as u64, bytes: kept as u64 * REC, corrupt_skipped: 1, checkpoint_failures: 0 }
        );
        assert_eq!(fs::metadata(&seg).unwrap().len(), kept as u64 * REC);
        spool.append(b"after the tear").unwrap();
        drop(spool);
        let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(spool.stats().corrupt_skipped, 0);
        recs.truncate(kept);
        recs.push(b"after the tear".to_vec());
        assert_eq!(drain(&mut spool), recs);
    }

    #[test]
    fn torn_tail_mid_record_is_truncated() {
        check_torn_tail(2, |seg| OpenOptions::new().write(true).open(seg).unwrap().set_len(2 * REC + 50).unwrap());
    }

    #[test]
    fn garbage_tail_is_truncated() {
        check_torn_tail(3, |seg| {
            let mut file = OpenOptions::new().append(true).open(seg).unwrap();
            file.write_all(b"LTS1\xff\xff\xff\xffnot a record at all").unwrap();
        });
    }

    fn flip(seg: &Path, at: u64) {
        let mut bytes = fs::read(seg).unwrap();
        bytes[at as usize] ^= 0x20;
        fs::write(seg, bytes).unwrap();
    }

    #[test]
    fn corrupt_middle_record_is_skipped() {
        let dir = tempdir().unwrap();
        let (recs, seg) = three(dir.path());
        flip(&seg, REC + HEADER as u64 + 5);
        let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(spool.stats().corrupt_skipped, 1);
        assert_eq!(drain(&mut spool), vec![recs[0].clone(), recs[2].clone()]);
    }

    #[test]
    fn record_damaged_after_open_is_skipped_by_peek() {
        let dir = tempdir().unwrap();
        let (recs, seg) = three(dir.path());
        let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
        flip(&seg, HEADER as u64 + 5);
        assert_eq!(drain(&mut spool), &recs[1..]);
        assert_eq!(spool.stats().corrupt_skipped, 1);
    }

    #[test]
    fn full_spool_rejects_without_writing() {
        let dir = tempdir().unwrap();
        let recs: Vec<_> = (0..3).map(|i| payload(i, 100)).collect();
        let mut spool = Spool::open(dir.path(), 3 * REC + 50).unwrap();
        append_all(&mut spool, &recs);
        let err = spool.append(&payload(3, 100)).unwrap_err();
        assert!(matches!(err, SpoolError::Full { used, max } if used == 3 * REC && max == 3 * REC + 50), "{err}");
        assert_eq!(disk_bytes(dir.path()), 3 * REC);
        drop(spool);
        let mut spool = Spool::open(dir.path(), 3 * REC + 50).unwrap();
        assert_eq!(drain(&mut spool), recs);
    }

    /// On a full disk the checkpoint (a new file) cannot be written: popping
    /// must still free the consumed segments, and a restart replays only
    /// what the last good checkpoint did not cover (at least once, never lost).
    #[test]
    fn unwritable_checkpoint_still_frees_segments() {
        let dir = tempdir().unwrap();
        let recs: Vec<_> = (0..6).map(|i| payload(i, 100)).collect();
        let mut spool = Spool::open_with_segment_bytes(dir.path(), 10 * REC, 2 * REC).unwrap();
        append_all(&mut spool, &recs);
        assert_eq!(segments(dir.path()).len(), 3);
        spool.pop();
        // A directory where the temporary checkpoint goes: creating it fails, as on ENOSPC (and for root too).
        fs::create_dir(dir.path().join(CKPT_TMP)).unwrap();
        for _ in 0..3 {
            spool.pop();
        }
        assert_eq!(spool.stats().checkpoint_failures, 3);
        assert_eq!(segments(dir.path()).len(), 1, "two consumed segments deleted without a checkpoint");
        assert_eq!(spool.stats().bytes, 2 * REC);
        assert_eq!(disk_bytes(dir.path()), 2 * REC);
        spool.append(&payload(6, 100)).unwrap();
        drop(spool);
        fs::remove_dir(dir.path().join(CKPT_TMP)).unwrap();
        let mut spool = Spool::open_with_segment_bytes(dir.path(), 10 * REC, 2 * REC).unwrap();
        let mut expect = recs[4..].to_vec();
        expect.push(payload(6, 100));
        assert_eq!(drain(&mut spool), expect, "the last durable checkpoint was inside a deleted segment: the rest replays");
        assert_eq!(spool.stats().checkpoint_failures, 0);
    }

    #[test]
    fn corrupt_checkpoint_replays_from_the_start() {
        let dir = tempdir().unwrap();
        let (recs, _) = three(dir.path());
        let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
        spool.pop();
        spool.pop();
        drop(spool);
        fs::write(dir.path().join(CKPT_FILE), b"junk").unwrap();
        let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(drain(&mut spool), recs);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn damaged_spool_never_panics_and_returns_only_appended_records(
            recs in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..48), 1..10),
            pops in 0usize..4,
            kind in 0u8..4,
            file in any::<Index>(),
            at in any::<Index>(),
            junk in prop::collection::vec(any::<u8>(), 1..24),
        ) {
            let dir = tempdir().unwrap();
            let open = || Spool::open_with_segment_bytes(dir.path(), 1 << 20, 64).unwrap();
            let mut spool = open();
            append_all(&mut spool, &recs);
            let pops = pops.min(recs.len());
            for _ in 0..pops {
                spool.pop();
            }
            drop(spool);

            let mut files = segments(dir.path());
            files.push(dir.path().join(CKPT_FILE));
            let target = file.get(&files);
            let mut bytes = fs::read(target).unwrap();
            let i = at.index(bytes.len() + 1);
            match kind {
                0 => bytes.iter_mut().skip(i).take(1).for_each(|b| *b ^= junk[0] | 1),
                1 => bytes.truncate(i),
                2 => bytes.extend_from_slice(&junk),
                _ => bytes.iter_mut().skip(i).zip(&junk).for_each(|(b, j)| *b = *j),
            }
            fs::write(target, &bytes).unwrap();

            let is_segment = !target.ends_with(CKPT_FILE);
            let expected = if is_segment { &recs[pops..] } else { &recs[..] };
            let mut spool = open();
            let got = drain(&mut spool);
            let mut rest = expected.iter();
            for g in &got {
                prop_assert!(rest.any(|e| e == g), "record {:?} was not appended, or is out of order", g);
            }
            if is_segment && kind == 2 {
                prop_assert_eq!(&got[..], expected);
            }
            spool.append(b"after").unwrap();
            drop(spool);
            let mut spool = open();
            prop_assert_eq!(spool.stats().corrupt_skipped, 0);
            prop_assert_eq!(drain(&mut spool), vec![b"after".to_vec()]);
        }
    }
}
