//! A node's event spool: every event is appended here, numbered, before it is sent, and stays
//! until the manager acknowledges it. Bounded: when the spool is over its size, the oldest
//! segment is deleted and its events counted in [`Spool::dropped`]; the manager sees the gap in
//! the numbers and counts it too.
//!
//! Layout: `DIR/id` (a random 64-bit identity, new when the spool is new, so the manager knows a
//! wiped spool restarts its numbering) and segments `DIR/<first sequence, 20 digits>.log`, one
//! event per line. The newest segment is always kept, so the numbering survives restarts.
//! Events survive a crash of the process (written before they are sent); they are not synced to
//! the disk one by one, so a power loss can lose the last second.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

/// Longest event line kept (longer ones are counted in [`Spool::oversize`] and dropped).
pub const MAX_LINE: usize = 1 << 20;

#[derive(Debug)]
struct Seg {
    first: u64,
    count: u64,
    bytes: u64,
    path: PathBuf,
}

/// The spool.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    segs: VecDeque<Seg>,
    cur: Option<BufWriter<File>>,
    next_seq: u64,
    bytes: u64,
    /// This spool's identity.
    pub id: u64,
    /// Events deleted unsent because the spool was full.
    pub dropped: u64,
    /// Event lines over [`MAX_LINE`], dropped.
    pub oversize: u64,
    /// Where the last read ended: (sequence number, segment's first, byte offset), so reading
    /// on from there seeks instead of rereading the segment.
    cursor: Option<(u64, u64, u64)>,
}

fn seg_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(format!("{first:020}.log"))
}

impl Spool {
    /// Opens (or creates) the spool in `dir`, holding at most `max_bytes` (at least 1 MiB).
    pub fn open(dir: &Path, max_bytes: u64) -> std::io::Result<Spool> {
        std::fs::create_dir_all(dir)?;
        let max_bytes = max_bytes.max(1 << 20);
        let id_path = dir.join("id");
        let id = match std::fs::read_to_string(&id_path)
            .ok()
            .and_then(|s| u64::from_str_radix(s.trim(), 16).ok())
        {
            Some(id) => id,
            None => {
                let mut b = [0u8; 8];
                ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b)
                    .map_err(|_| std::io::Error::other("no randomness"))?;
                let id = u64::from_be_bytes(b) | 1;
                std::fs::write(&id_path, format!("{id:016x}\n"))?;
                id
            }
        };
        let mut firsts: Vec<u64> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.strip_suffix(".log")?.parse().ok()
            })
            .collect();
        firsts.sort_unstable();
        let mut segs = VecDeque::new();
        let mut bytes = 0;
        for first in firsts {
            let path = seg_path(dir, first);
            let mut data = std::fs::read(&path)?;
            // A line cut by a crash is dropped.
            let keep = data.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            if keep != data.len() {
                data.truncate(keep);
                std::fs::write(&path, &data)?;
            }
            let count = data.iter().filter(|&&b| b == b'\n').count() as u64;
            bytes += data.len() as u64;
            segs.push_back(Seg {
                first,
                count,
                bytes: data.len() as u64,
                path,
            });
        }
        let next_seq = segs.back().map_or(1, |s| s.first + s.count);
        Ok(Spool {
            dir: dir.to_path_buf(),
            max_bytes,
            segment_bytes: (max_bytes / 16).clamp(64 << 10, 16 << 20),
            segs,
            cur: None,
            next_seq,
            bytes,
            id,
            dropped: 0,
            oversize: 0,
            cursor: None,
        })
    }

    /// The sequence number the next event will get.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Bytes held.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Appends one event line (without its newline). Returns its sequence number, or `None`
    /// when the line is over [`MAX_LINE`].
    pub fn append(&mut self, line: &[u8]) -> std::io::Result<Option<u64>> {
        if line.len() >= MAX_LINE {
            self.oversize += 1;
            return Ok(None);
        }
        let n = line.len() as u64 + 1;
        let need_new = match self.segs.back() {
            None => true,
            Some(s) => s.bytes + n > self.segment_bytes || self.cur.is_none() && s.bytes > 0,
        };
        if need_new {
            self.rotate()?;
        }
        let w = self
            .cur
            .as_mut()
            .ok_or_else(|| std::io::Error::other("spool closed"))?;
        w.write_all(line)?;
        w.write_all(b"\n")?;
        if let Some(s) = self.segs.back_mut() {
            s.count += 1;
            s.bytes += n;
        }
        self.bytes += n;
        let seq = self.next_seq;
        self.next_seq += 1;
        while self.bytes > self.max_bytes && self.segs.len() > 1 {
            if let Some(old) = self.segs.pop_front() {
                self.dropped += old.count;
                self.bytes -= old.bytes;
                let _ = std::fs::remove_file(&old.path);
            }
        }
        Ok(Some(seq))
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        if let Some(mut w) = self.cur.take() {
            w.flush()?;
        }
        let path = seg_path(&self.dir, self.next_seq);
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        self.segs.push_back(Seg {
            first: self.next_seq,
            count: 0,
            bytes: 0,
            path,
        });
        self.cur = Some(BufWriter::with_capacity(64 << 10, f));
        Ok(())
    }

    /// Pushes buffered lines to the file.
    pub fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.cur {
            Some(w) => w.flush(),
            None => Ok(()),
        }
    }

    /// Events from `from` on, at most about `max` bytes (at least one line): (sequence number
    /// of the first, the lines). Events already deleted are skipped: the first returned is then
    /// later than `from`. `None` when there is nothing from `from` on.
    pub fn read(&mut self, from: u64, max: usize) -> std::io::Result<Option<(u64, Vec<u8>)>> {
        if from >= self.next_seq {
            return Ok(None);
        }
        self.flush()?;
        let Some(seg) = self.segs.iter().find(|s| s.first + s.count > from) else {
            return Ok(None);
        };
        let mut f = File::open(&seg.path)?;
        let start = from.max(seg.first);
        let mut seq = seg.first;
        let mut offset = 0u64;
        if let Some((c_seq, c_first, c_off)) = self.cursor {
            if c_first == seg.first && c_seq == start {
                use std::io::Seek;
                f.seek(std::io::SeekFrom::Start(c_off))?;
                seq = c_seq;
                offset = c_off;
            }
        }
        let seg_first = seg.first;
        let mut r = BufReader::new(f);
        let mut out = Vec::new();
        let mut line = Vec::new();
        while seq < seg.first + seg.count {
            line.clear();
            if r.read_until(b'\n', &mut line)? == 0 {
                break;
            }
            if seq >= start {
                if !out.is_empty() && out.len() + line.len() > max {
                    break;
                }
                out.extend_from_slice(&line);
            }
            offset += line.len() as u64;
            seq += 1;
        }
        self.cursor = Some((seq, seg_first, offset));
        Ok((!out.is_empty()).then_some((start, out)))
    }

    /// The manager holds every event up to `upto`: deletes the segments wholly before it (the
    /// newest is kept for the numbering).
    pub fn ack(&mut self, upto: u64) {
        while self.segs.len() > 1 {
            match self.segs.front() {
                Some(s) if s.first + s.count - 1 <= upto => {
                    if let Some(old) = self.segs.pop_front() {
                        self.bytes -= old.bytes;
                        let _ = std::fs::remove_file(&old.path);
                    }
                }
                _ => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("palisade-spool-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn numbered_bounded_and_survives_reopen() {
        let d = dir("a");
        let mut s = Spool::open(&d, 1 << 20).unwrap();
        let id = s.id;
        for i in 0..100u64 {
            assert_eq!(
                s.append(format!("{{\"n\":{i}}}").as_bytes()).unwrap(),
                Some(i + 1)
            );
        }
        let (first, lines) = s.read(41, 1 << 20).unwrap().unwrap();
        assert_eq!(first, 41);
        assert!(lines.starts_with(b"{\"n\":40}\n"));
        assert_eq!(lines.iter().filter(|&&b| b == b'\n').count(), 60);
        let (_, two) = s.read(10, 20).unwrap().unwrap();
        assert_eq!(two, b"{\"n\":9}\n{\"n\":10}\n");
        assert!(s.read(101, 100).unwrap().is_none());
        // Reading on from where the last read ended (seeking) gives what one read gives.
        let mut pieces = Vec::new();
        let mut from = 1;
        while let Some((first, lines)) = s.read(from, 100).unwrap() {
            from = first + lines.iter().filter(|&&b| b == b'\n').count() as u64;
            pieces.extend(lines);
        }
        assert_eq!(pieces, s.read(1, 1 << 20).unwrap().unwrap().1);
        drop(s);
        // Reopened: same identity, numbering continues; a torn last line is dropped.
        let seg = std::fs::read_dir(&d)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "log"))
            .unwrap();
        let mut f = std::fs::OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(b"{\"torn\":").unwrap();
        let mut s = Spool::open(&d, 1 << 20).unwrap();
        assert_eq!(s.id, id);
        assert_eq!(s.next_seq(), 101);
        assert_eq!(s.append(b"{}").unwrap(), Some(101));

        // Full: the oldest segments go, counted; the total stays under the cap.
        let big = vec![b'x'; 1000];
        for _ in 0..5000 {
            s.append(&big).unwrap();
        }
        assert!(s.bytes() <= (1 << 20) + 64 * 1024, "{}", s.bytes());
        assert!(s.dropped > 3000, "{}", s.dropped);
        let (first, _) = s.read(1, 1 << 20).unwrap().unwrap();
        assert_eq!(first, s.segs[0].first);
        assert_eq!(
            s.segs.iter().map(|g| g.count).sum::<u64>() + s.dropped,
            5101
        );
        // Acknowledged segments are deleted, the newest kept.
        s.ack(s.next_seq() - 1);
        assert_eq!(s.segs.len(), 1);
        assert_eq!(s.append(&vec![b'y'; MAX_LINE]).unwrap(), None);
        assert_eq!(s.oversize, 1);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
