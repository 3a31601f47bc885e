//! A container's output log: every chunk the container wrote, with its stream and time.
//!
//! Why not docker's json-file format: JSON strings cannot carry arbitrary bytes (Go replaces
//! invalid UTF-8), and our attach streams are read back from this same log, so a binary
//! `cat` through `run` must arrive byte for byte. Each record is
//! `[stream u8][unix nanos i64 LE][len u32 LE][bytes]`; a record cut short by a crash is
//! simply not there yet for readers (they stop at the last whole record).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

pub const HEADER: usize = 13;
/// Largest chunk stored as one record: a reader never needs more than this in memory.
pub const MAX_CHUNK: usize = 64 << 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout = 1,
    Stderr = 2,
}

impl Stream {
    fn from_byte(b: u8) -> Option<Self> {
        match b {
            1 => Some(Stream::Stdout),
            2 => Some(Stream::Stderr),
            _ => None,
        }
    }
}

pub struct Record {
    pub stream: Stream,
    pub nanos: i64,
    pub data: Vec<u8>,
}

impl Record {
    /// docker's `-t` timestamp (RFC 3339 with nanoseconds, UTC).
    pub fn timestamp(&self) -> String {
        let secs = self.nanos.div_euclid(1_000_000_000);
        let nsec = self.nanos.rem_euclid(1_000_000_000) as u32;
        chrono::DateTime::from_timestamp(secs, nsec)
            .unwrap_or_default()
            .format("%Y-%m-%dT%H:%M:%S%.9fZ")
            .to_string()
    }
}

pub fn now_nanos() -> i64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    d.as_nanos() as i64
}

/// Appends records; one write(2) per record so concurrent writers never interleave bytes.
pub struct LogWriter {
    file: File,
    buf: Vec<u8>,
}

impl LogWriter {
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(Self {
            file,
            buf: Vec::with_capacity(HEADER + MAX_CHUNK),
        })
    }

    pub fn write(&mut self, stream: Stream, data: &[u8]) -> io::Result<()> {
        let nanos = now_nanos();
        for chunk in data.chunks(MAX_CHUNK) {
            self.buf.clear();
            self.buf.push(stream as u8);
            self.buf.extend_from_slice(&nanos.to_le_bytes());
            self.buf
                .extend_from_slice(&(chunk.len() as u32).to_le_bytes());
            self.buf.extend_from_slice(chunk);
            self.file.write_all(&self.buf)?;
        }
        Ok(())
    }
}

/// Reads records from an offset; `next` returns None at the end of the whole records.
pub struct LogReader {
    file: File,
    pub offset: u64,
}

impl LogReader {
    pub fn open(path: &Path, offset: u64) -> io::Result<Self> {
        let mut file = File::open(path)?;
        file.seek(SeekFrom::Start(offset))?;
        Ok(Self { file, offset })
    }

    pub fn next_record(&mut self) -> io::Result<Option<Record>> {
        let mut head = [0u8; HEADER];
        if !self.read_full(&mut head)? {
            return Ok(None);
        }
        let len = u32::from_le_bytes([head[9], head[10], head[11], head[12]]) as usize;
        let Some(stream) = Stream::from_byte(head[0]) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("corrupt log record at offset {}", self.offset),
            ));
        };
        if len > MAX_CHUNK {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("corrupt log record length {len} at offset {}", self.offset),
            ));
        }
        let mut data = vec![0u8; len];
        if !self.read_full(&mut data)? {
            // The writer has not finished this record: come back for it later.
            self.file.seek(SeekFrom::Start(self.offset))?;
            return Ok(None);
        }
        let mut nanos = [0u8; 8];
        nanos.copy_from_slice(&head[1..9]);
        self.offset += (HEADER + len) as u64;
        Ok(Some(Record {
            stream,
            nanos: i64::from_le_bytes(nanos),
            data,
        }))
    }

    /// Fill `buf` completely, or rewind to the record start and say so.
    fn read_full(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        let mut got = 0;
        while got < buf.len() {
            let n = self.file.read(&mut buf[got..])?;
            if n == 0 {
                self.file.seek(SeekFrom::Start(self.offset))?;
                return Ok(false);
            }
            got += n;
        }
        Ok(true)
    }
}

/// Where the last `n` lines start (docker's `--tail`): the record holding the first of them,
/// and how many of its bytes belong to the line before. One write may hold many lines, and a
/// line may span writes: lines are counted, not records.
pub fn tail_start(path: &Path, lines: usize) -> io::Result<(u64, usize)> {
    if lines == 0 {
        return std::fs::metadata(path).map(|m| (m.len(), 0));
    }
    let mut reader = LogReader::open(path, 0)?;
    let mut starts: std::collections::VecDeque<(u64, usize)> = std::collections::VecDeque::new();
    let mut line_start = true;
    loop {
        let at = reader.offset;
        let Some(rec) = reader.next_record()? else {
            break;
        };
        let mut push = |skip: usize| {
            starts.push_back((at, skip));
            if starts.len() > lines {
                starts.pop_front();
            }
        };
        if line_start && !rec.data.is_empty() {
            push(0);
        }
        for (i, b) in rec.data.iter().enumerate() {
            if *b == b'\n' && i + 1 < rec.data.len() {
                push(i + 1);
            }
        }
        if !rec.data.is_empty() {
            line_start = rec.data.last() == Some(&b'\n');
        }
    }
    Ok(starts.front().copied().unwrap_or((reader.offset, 0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_binary_and_partial_tail() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log");
        let mut w = LogWriter::open(&p).unwrap();
        w.write(Stream::Stdout, b"a\n").unwrap();
        w.write(Stream::Stderr, &[0xff, 0, 0xfe]).unwrap();
        // A torn record (crash mid-write) is invisible, not an error.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .unwrap()
            .write_all(&[1, 0, 0])
            .unwrap();
        let mut r = LogReader::open(&p, 0).unwrap();
        let a = r.next_record().unwrap().unwrap();
        assert_eq!((a.stream, a.data.as_slice()), (Stream::Stdout, &b"a\n"[..]));
        let b = r.next_record().unwrap().unwrap();
        assert_eq!(
            (b.stream, b.data.as_slice()),
            (Stream::Stderr, &[0xff, 0, 0xfe][..])
        );
        assert!(r.next_record().unwrap().is_none());
        assert!(r.next_record().unwrap().is_none());
    }

    #[test]
    fn tail_counts_lines_not_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log");
        let mut w = LogWriter::open(&p).unwrap();
        for chunk in ["1\n", "2", "2\n", "3\n"] {
            w.write(Stream::Stdout, chunk.as_bytes()).unwrap();
        }
        let collect = |(off, skip): (u64, usize)| {
            let mut r = LogReader::open(&p, off).unwrap();
            let mut s = Vec::new();
            let mut skip = skip;
            while let Some(rec) = r.next_record().unwrap() {
                s.extend(&rec.data[skip..]);
                skip = 0;
            }
            String::from_utf8(s).unwrap()
        };
        assert_eq!(collect(tail_start(&p, 2).unwrap()), "22\n3\n");
        assert_eq!(collect(tail_start(&p, 10).unwrap()), "1\n22\n3\n");
        assert_eq!(collect(tail_start(&p, 0).unwrap()), "");
        // One write of many lines, the last one unfinished.
        w.write(Stream::Stdout, b"4\n5\n6").unwrap();
        assert_eq!(collect(tail_start(&p, 1).unwrap()), "6");
        assert_eq!(collect(tail_start(&p, 2).unwrap()), "5\n6");
        assert_eq!(collect(tail_start(&p, 4).unwrap()), "3\n4\n5\n6");
        w.write(Stream::Stdout, b"\n").unwrap();
        assert_eq!(collect(tail_start(&p, 1).unwrap()), "6\n");
    }
}
