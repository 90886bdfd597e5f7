//! Messages paged out of memory that are not kept across a restart (transient messages, and
//! any message of a non-durable queue): per queue lane, append-only segment files under
//! `<store>/paged`.
//!
//! They are written once, read back once in order, and never looked at after a restart (the
//! directory is emptied at start), so plain files serve them far better than the store's
//! B-tree: a write is an append, a read is sequential, nothing is synced, and a segment read to
//! its end is freed by deleting its file.
//!
//! A record is: body length (u32), sequence number (u64), expiry (u64), flags (u8), then the
//! message in its stored form.

use super::Message;
use super::{decode_message, encode_message_into, EntryKey, EntryRecord, LoadedEntry, StoreError};
use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use tracing::warn;

/// A lane's segment is closed and a new one begun past this size.
const SEGMENT_BYTES: u64 = 16 * 1024 * 1024;
/// Length, sequence number, expiry and flags.
const HEADER: usize = 4 + 8 + 8 + 1;
/// Records read from a file at a time ...
const READ_AHEAD: usize = 1024;
/// ... unless their bytes reach this first (at least one record is read).
const READ_AHEAD_BYTES: usize = 4 * 1024 * 1024;
const REDELIVERED: u8 = 1;

fn io(what: &str, path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Engine(format!("{what} {}: {e}", path.display()))
}

#[derive(Debug)]
pub struct PagedFiles {
    dir: PathBuf,
    lanes: HashMap<(u64, u8), LaneFiles>,
    next_segment: u64,
}

#[derive(Debug, Default)]
struct LaneFiles {
    /// Oldest first; the last one is appended to.
    segments: VecDeque<Segment>,
    /// Where reading goes on in the first segment.
    read_offset: u64,
    /// Records up to this sequence number were dropped (a purge) and are skipped.
    skip_through: Option<u64>,
    /// Read from the files and not yet handed out.
    pending: VecDeque<LoadedEntry>,
    /// Appended to the last segment and not yet written.
    buffer: Vec<u8>,
}

#[derive(Debug)]
struct Segment {
    path: PathBuf,
    /// Bytes written or buffered.
    bytes: u64,
    /// The last sequence number it holds.
    last_seq: u64,
}

impl PagedFiles {
    /// Opens `dir`, throwing away what an earlier run left there.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        match std::fs::remove_dir_all(dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(io("cannot empty", dir, e))
            }
            _ => {}
        }
        std::fs::create_dir_all(dir).map_err(|e| io("cannot create", dir, e))?;
        Ok(Self {
            dir: dir.to_owned(),
            lanes: HashMap::new(),
            next_segment: 0,
        })
    }

    /// Appends an entry and its message to its lane (written by the next `flush`).
    pub fn append(
        &mut self,
        key: EntryKey,
        expires: u64,
        redelivered: bool,
        message: &Message,
    ) -> Result<(), StoreError> {
        let lane = self.lanes.entry((key.queue, key.lane)).or_default();
        if lane
            .segments
            .back()
            .is_none_or(|s| s.bytes >= SEGMENT_BYTES)
        {
            lane.write_out()?;
            self.next_segment += 1;
            let name = format!("{}-{}-{}.seg", key.queue, key.lane, self.next_segment);
            lane.segments.push_back(Segment {
                path: self.dir.join(name),
                bytes: 0,
                last_seq: key.seq,
            });
        }
        let start = lane.buffer.len();
        lane.buffer.extend_from_slice(&[0; 4]);
        lane.buffer.extend_from_slice(&key.seq.to_be_bytes());
        lane.buffer.extend_from_slice(&expires.to_be_bytes());
        lane.buffer.push(if redelivered { REDELIVERED } else { 0 });
        encode_message_into(&mut lane.buffer, message);
        let len = lane.buffer.len() - start;
        let body = u32::try_from(len - HEADER)
            .map_err(|_| StoreError::Engine("a paged message is over 4 GiB".into()))?;
        lane.buffer[start..start + 4].copy_from_slice(&body.to_be_bytes());
        if let Some(segment) = lane.segments.back_mut() {
            segment.bytes += len as u64;
            segment.last_seq = key.seq;
        }
        Ok(())
    }

    /// Writes every lane's appended records to its file.
    pub fn flush(&mut self) -> Result<(), StoreError> {
        let mut result = Ok(());
        for lane in self.lanes.values_mut() {
            result = result.and(lane.write_out());
        }
        result
    }

    /// The next record of a lane, if there is one and its sequence number is below `below`.
    pub fn next_below(
        &mut self,
        queue: u64,
        lane: u8,
        below: Option<u64>,
    ) -> Result<Option<LoadedEntry>, StoreError> {
        let Some(files) = self.lanes.get_mut(&(queue, lane)) else {
            return Ok(None);
        };
        if files.pending.is_empty() {
            files.read_ahead(queue, lane)?;
        }
        match files.pending.front() {
            Some((key, _, _)) if below.is_none_or(|b| key.seq < b) => Ok(files.pending.pop_front()),
            _ => Ok(None),
        }
    }

    /// Throws away the records from `first` to `last` (inclusive).
    pub fn drop_range(&mut self, first: EntryKey, last: EntryKey) -> Result<(), StoreError> {
        let lanes: Vec<(u64, u8)> = self
            .lanes
            .keys()
            .filter(|(q, l)| *q == first.queue && (first.lane..=last.lane).contains(l))
            .copied()
            .collect();
        let mut result = Ok(());
        for (queue, lane) in lanes {
            let lo = if lane == first.lane { first.seq } else { 0 };
            let hi = if lane == last.lane {
                last.seq
            } else {
                u64::MAX
            };
            if lo == 0 && hi == u64::MAX {
                if let Some(mut files) = self.lanes.remove(&(queue, lane)) {
                    files.buffer.clear();
                    result = result.and(files.remove_segments(usize::MAX));
                }
            } else if let Some(files) = self.lanes.get_mut(&(queue, lane)) {
                result = result.and(files.drop_through(lo, hi));
            }
        }
        result
    }
}

impl LaneFiles {
    fn write_out(&mut self) -> Result<(), StoreError> {
        let Some(segment) = self.segments.back() else {
            return Ok(());
        };
        if self.buffer.is_empty() {
            return Ok(());
        }
        let written = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&segment.path)
            .and_then(|mut f| f.write_all(&self.buffer));
        self.buffer.clear();
        written.map_err(|e| io("cannot write", &segment.path, e))
    }

    /// Deletes up to `n` segments from the front.
    fn remove_segments(&mut self, n: usize) -> Result<(), StoreError> {
        let mut result = Ok(());
        for _ in 0..n {
            let Some(segment) = self.segments.pop_front() else {
                break;
            };
            self.read_offset = 0;
            if let Err(e) = std::fs::remove_file(&segment.path) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    result = Err(io("cannot remove", &segment.path, e));
                }
            }
        }
        result
    }

    /// Drops the records from `lo` to `hi`: the ones read ahead at once, whole segments that
    /// end by `hi`, and the rest as they are read. Records before `lo` were read already.
    fn drop_through(&mut self, lo: u64, hi: u64) -> Result<(), StoreError> {
        self.pending.retain(|(k, _, _)| k.seq < lo || k.seq > hi);
        self.write_out()?;
        let whole = self
            .segments
            .iter()
            .take_while(|s| s.last_seq <= hi)
            .count();
        self.skip_through = Some(self.skip_through.map_or(hi, |s| s.max(hi)));
        self.remove_segments(whole)
    }

    /// Reads up to `READ_AHEAD` records into `pending`, deleting segments read to their end.
    fn read_ahead(&mut self, queue: u64, lane: u8) -> Result<(), StoreError> {
        self.write_out()?;
        let mut budget = READ_AHEAD_BYTES;
        // A segment read to its end goes at once, the one being appended to included (its
        // next append starts a new one), so a drained lane leaves no file behind.
        while let Some(segment) = self.segments.front() {
            if self.read_offset >= segment.bytes {
                self.remove_segments(1)?;
                continue;
            }
            if self.pending.len() >= READ_AHEAD || budget == 0 {
                break;
            }
            let path = segment.path.clone();
            let end = segment.bytes;
            if let Err(e) = self.read_segment(&path, end, (queue, lane), &mut budget) {
                // What cannot be read is lost; the queue learns it from reads that come back
                // short, and goes on with the next segment.
                warn!("paged messages of a queue lost: {e}");
                self.remove_segments(1)?;
                return Err(e);
            }
        }
        Ok(())
    }

    fn read_segment(
        &mut self,
        path: &Path,
        end: u64,
        (queue, lane): (u64, u8),
        budget: &mut usize,
    ) -> Result<(), StoreError> {
        let read_err = |e| io("cannot read", path, e);
        let mut file = File::open(path).map_err(read_err)?;
        file.seek(SeekFrom::Start(self.read_offset))
            .map_err(read_err)?;
        let mut reader = BufReader::with_capacity(256 * 1024, file);
        while self.pending.len() < READ_AHEAD && *budget > 0 && self.read_offset < end {
            let mut header = [0u8; HEADER];
            reader.read_exact(&mut header).map_err(read_err)?;
            let field = |at: usize| {
                let mut b = [0u8; 8];
                b.copy_from_slice(&header[at..at + 8]);
                u64::from_be_bytes(b)
            };
            let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
            let (seq, expires, flags) = (field(4), field(12), header[20]);
            let mut body = vec![0u8; len];
            reader.read_exact(&mut body).map_err(read_err)?;
            self.read_offset += (HEADER + len) as u64;
            *budget = budget.saturating_sub(HEADER + len);
            if self.skip_through.is_some_and(|s| seq <= s) {
                continue;
            }
            let key = EntryKey { queue, lane, seq };
            let record = EntryRecord::paged(expires, flags & REDELIVERED != 0);
            self.pending
                .push_back((key, record, decode_message(Bytes::from(body))));
        }
        Ok(())
    }
}

/// Up to `max` entries of a lane in sequence order, from the store's own (`stored`, read from
/// the same first sequence number, at most `max`) and the paged ones `next_paged` hands out
/// (given the bound it must stay below).
pub fn merge_lane(
    stored: Vec<LoadedEntry>,
    max: usize,
    mut next_paged: impl FnMut(Option<u64>) -> Result<Option<LoadedEntry>, StoreError>,
) -> Result<Vec<LoadedEntry>, StoreError> {
    let mut out = Vec::with_capacity(max.min(4096));
    let mut stored = stored.into_iter().peekable();
    while out.len() < max {
        let bound = stored.peek().map(|(k, _, _)| k.seq);
        match next_paged(bound)? {
            Some(paged) => out.push(paged),
            None => match stored.next() {
                Some(entry) => out.push(entry),
                None => break,
            },
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use warren_amqp::BasicProperties;

    fn message(body: &'static [u8]) -> Message {
        let props = BasicProperties::default();
        let mut raw = bytes::BytesMut::new();
        warren_amqp::encode::properties(&mut raw, &props);
        Message::from_parts(
            "".into(),
            "q".into(),
            &props,
            raw.freeze(),
            Bytes::from_static(body),
        )
    }

    fn key(lane: u8, seq: u64) -> EntryKey {
        EntryKey {
            queue: 7,
            lane,
            seq,
        }
    }

    fn drain(files: &mut PagedFiles, lane: u8) -> Vec<(u64, Bytes)> {
        let mut out = Vec::new();
        while let Some((k, _, m)) = files.next_below(7, lane, None).unwrap() {
            out.push((k.seq, m.unwrap().body));
        }
        out
    }

    fn segment_files(dir: &Path) -> usize {
        std::fs::read_dir(dir).unwrap().count()
    }

    #[test]
    fn records_come_back_in_order_and_drained_segments_are_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let paged_dir = dir.path().join("paged");
        std::fs::create_dir_all(&paged_dir).unwrap();
        std::fs::write(paged_dir.join("left-over.seg"), b"junk").unwrap();
        let mut files = PagedFiles::open(&paged_dir).unwrap();
        assert_eq!(segment_files(&paged_dir), 0, "an earlier run's files go");
        let big = vec![7u8; 1024 * 1024].leak();
        for seq in 0..40 {
            files
                .append(key(0, seq), seq, seq % 2 == 0, &message(big))
                .unwrap();
        }
        files
            .append(key(1, 3), 0, false, &message(b"other lane"))
            .unwrap();
        files.flush().unwrap();
        assert!(
            segment_files(&paged_dir) > 2,
            "40 MiB spans several segments"
        );
        let (k, r, m) = files.next_below(7, 0, None).unwrap().unwrap();
        assert_eq!(
            (k.seq, r.expires, r.redelivered, r.message),
            (0, 0, true, 0)
        );
        assert_eq!(m.unwrap().body.len(), big.len());
        assert!(files.next_below(7, 0, Some(1)).unwrap().is_none());
        let rest = drain(&mut files, 0);
        assert_eq!(rest.len(), 39);
        assert!(rest.iter().map(|(s, _)| *s).eq(1..40));
        assert_eq!(
            segment_files(&paged_dir),
            1,
            "only the other lane's file is left"
        );
        assert_eq!(
            drain(&mut files, 1),
            [(3, Bytes::from_static(b"other lane"))]
        );
        assert_eq!(segment_files(&paged_dir), 0);
    }

    #[test]
    fn a_dropped_range_is_skipped_and_later_records_stay() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = PagedFiles::open(dir.path()).unwrap();
        for seq in 0..10 {
            files.append(key(0, seq), 0, false, &message(b"m")).unwrap();
        }
        assert_eq!(files.next_below(7, 0, None).unwrap().unwrap().0.seq, 0);
        // A purge of what was queued then; 10 and 11 arrive after it.
        files.append(key(0, 10), 0, false, &message(b"m")).unwrap();
        files.drop_range(key(0, 1), key(0, 9)).unwrap();
        files.append(key(0, 11), 0, false, &message(b"m")).unwrap();
        let seqs: Vec<u64> = drain(&mut files, 0).into_iter().map(|(s, _)| s).collect();
        assert_eq!(seqs, [10, 11]);
        // Deleting the queue removes everything of it.
        files.append(key(2, 1), 0, false, &message(b"m")).unwrap();
        files.flush().unwrap();
        files.drop_range(key(0, 0), key(u8::MAX, u64::MAX)).unwrap();
        assert!(files.next_below(7, 2, None).unwrap().is_none());
        assert_eq!(segment_files(dir.path()), 0);
    }

    #[test]
    fn merging_keeps_sequence_order_and_takes_only_what_it_returns() {
        let stored: Vec<LoadedEntry> = [2, 5, 6]
            .into_iter()
            .map(|seq| {
                (
                    key(0, seq),
                    EntryRecord::from_bytes(&[0; 17]).unwrap(),
                    None,
                )
            })
            .collect();
        let mut paged: VecDeque<u64> = [1, 3, 4, 7, 8].into();
        let merged = merge_lane(stored, 6, |below| {
            Ok(match paged.front() {
                Some(&s) if below.is_none_or(|b| s < b) => {
                    paged.pop_front();
                    Some((key(0, s), EntryRecord::from_bytes(&[0; 17]).unwrap(), None))
                }
                _ => None,
            })
        })
        .unwrap();
        let seqs: Vec<u64> = merged.iter().map(|(k, _, _)| k.seq).collect();
        assert_eq!(seqs, [1, 2, 3, 4, 5, 6]);
        assert_eq!(paged, [7, 8]);
    }
}
