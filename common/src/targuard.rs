//! A `Read` adapter that bounds a tar stream's extension headers before the `tar` crate sees
//! them.
//!
//! The `tar` crate (0.4) reads a GNU long name (`L`), long link (`K`) or PAX (`x`) entry whole
//! into memory, however large its header says it is: a few MB of gzip declaring a 1.5 GiB PAX
//! header made the engine allocate 1.6 GiB. [`TarGuard`] sits between the stream and the
//! `tar` crate, follows the archive block by block exactly as the crate will read it, and fails
//! as soon as such an entry (or a PAX global header, `g`) declares more than
//! [`MAX_EXTENSION_HEADER`] bytes, before any of those bytes are handed on.
//!
//! It parses headers with the `tar` crate's own field readers (sizes in octal or GNU base-256,
//! the checksum, the PAX `size` record that overrides the next entry's size, GNU sparse
//! extension blocks), so the two cannot disagree on where the next header starts: a guard that
//! lost step with the reader could be walked past a hostile header.
//!
//! It reads ahead of its reader by at most one 512-byte block, and never past the end-of-archive
//! block: whatever follows the archive is left in the inner reader, byte for byte, for callers
//! that hash or drain it.

use std::fmt;
use std::io::{self, Read};

/// The largest long name, long link or PAX header accepted. GNU tar and docker's archives stay
/// far below it (a PAX header with a few xattrs is a few KiB).
pub const MAX_EXTENSION_HEADER: u64 = 1 << 20;

const BLOCK: usize = 512;
/// Where `isextended` sits in a GNU sparse extension block (after 21 sparse records).
const EXT_IS_EXTENDED: usize = 504;

/// An extension header over the limit, refused before its content was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderTooLarge {
    /// The entry's own name field (an extension header names its own entry, e.g.
    /// `././@LongLink` or `PaxHeaders.0/file`), lossily decoded.
    pub entry: String,
    /// What the entry is: "GNU long name", "PAX header", …
    pub kind: &'static str,
    /// The size its header declares.
    pub size: u64,
}

impl fmt::Display for HeaderTooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "entry '{}' declares a {}-byte {}, over the 1 MiB limit",
            self.entry.escape_debug(),
            self.size,
            self.kind
        )
    }
}

impl std::error::Error for HeaderTooLarge {}

impl HeaderTooLarge {
    /// The refusal inside an I/O error that came through the `tar` crate, if it is one.
    pub fn find(err: &io::Error) -> Option<&HeaderTooLarge> {
        err.get_ref()?.downcast_ref::<HeaderTooLarge>()
    }
}

/// What the next bytes of the stream are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// A header block.
    Header,
    /// A GNU sparse extension block; `data` (padded) follows the last one.
    SparseExt { data: u64 },
    /// An entry's content and its padding; the first `capture` bytes are a PAX header's
    /// records, kept to learn the `size` it sets for the next entry.
    Data { left: u64, capture: u64 },
    /// Past the end-of-archive block: the `tar` crate reads no further headers.
    Done,
}

/// See the module documentation. Wrap the stream in it and give it to `tar::Archive::new`.
pub struct TarGuard<R> {
    inner: R,
    state: State,
    /// The block being read or handed on; `have` bytes of it read, `given` handed on.
    block: [u8; BLOCK],
    have: usize,
    given: usize,
    /// What the block in `block` is followed by, once all of it is handed on.
    after_block: State,
    /// The records of the PAX header being read (at most `MAX_EXTENSION_HEADER` bytes).
    pax: Vec<u8>,
    /// The `size` record of the last PAX header, for the next entry that is not an extension.
    pax_size: Option<u64>,
    /// Once the guard has failed it keeps failing: the block it refused is never handed on.
    failed: Option<Failure>,
}

#[derive(Debug, Clone)]
enum Failure {
    TooLarge(HeaderTooLarge),
    Damaged(String),
}

impl Failure {
    fn to_error(&self) -> io::Error {
        match self {
            Failure::TooLarge(h) => io::Error::new(io::ErrorKind::InvalidData, h.clone()),
            Failure::Damaged(msg) => io::Error::new(io::ErrorKind::InvalidData, msg.clone()),
        }
    }
}

impl<R: Read> TarGuard<R> {
    pub fn new(inner: R) -> Self {
        TarGuard {
            inner,
            state: State::Header,
            block: [0; BLOCK],
            have: 0,
            given: 0,
            after_block: State::Header,
            pax: Vec::new(),
            pax_size: None,
            failed: None,
        }
    }

    pub fn into_inner(self) -> R {
        self.inner
    }

    /// Read one whole block into `block` (fewer bytes only at the end of the stream).
    fn fill_block(&mut self) -> io::Result<()> {
        while self.have < BLOCK {
            match self.inner.read(&mut self.block[self.have..]) {
                Ok(0) => break,
                Ok(n) => self.have += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Decide what follows the header now in `block`, refusing what must not be read.
    fn inspect_header(&mut self) -> Result<State, Failure> {
        let damaged = |e: io::Error| Failure::Damaged(e.to_string());
        if self.block.iter().all(|b| *b == 0) {
            return Ok(State::Done);
        }
        let mut header = tar::Header::new_old();
        header.as_mut_bytes().copy_from_slice(&self.block);
        // The sum the `tar` crate checks (the checksum field counted as spaces).
        let sum = self.block[..148]
            .iter()
            .chain(&self.block[156..])
            .fold(0u32, |a, b| a + u32::from(*b))
            + 8 * 32;
        if header.cksum().map_err(damaged)? != sum {
            return Err(Failure::Damaged("archive header checksum mismatch".into()));
        }
        let kind = header.entry_type();
        let recognized = header.as_gnu().is_some() || header.as_ustar().is_some();
        let extension = match kind {
            tar::EntryType::GNULongName => Some("GNU long name"),
            tar::EntryType::GNULongLink => Some("GNU long link name"),
            tar::EntryType::XHeader => Some("PAX header"),
            tar::EntryType::XGlobalHeader => Some("PAX global header"),
            _ => None,
        };
        let mut size = header.entry_size().map_err(damaged)?;
        if let Some(what) = extension {
            if size > MAX_EXTENSION_HEADER {
                return Err(Failure::TooLarge(HeaderTooLarge {
                    entry: String::from_utf8_lossy(&header.path_bytes()).into_owned(),
                    kind: what,
                    size,
                }));
            }
        } else if let Some(pax) = self.pax_size {
            // As the `tar` crate: a PAX `size` overrides the size of the entry it describes.
            size = pax;
        }
        // The `tar` crate buffers these three (when the header is GNU or ustar) and applies
        // them to the next entry; any other entry consumes a pending PAX header.
        let buffered = recognized
            && matches!(
                kind,
                tar::EntryType::GNULongName | tar::EntryType::GNULongLink | tar::EntryType::XHeader
            );
        if !buffered {
            self.pax_size = None;
        }
        let capture = if recognized && kind == tar::EntryType::XHeader {
            self.pax.clear();
            self.pax_size = None;
            size
        } else {
            0
        };
        let padded = size
            .checked_add(BLOCK as u64 - 1)
            .map(|s| s & !(BLOCK as u64 - 1))
            .ok_or_else(|| Failure::Damaged("size overflow".into()))?;
        let sparse_ext = kind == tar::EntryType::GNUSparse
            && header.as_gnu().is_some_and(|gnu| gnu.is_extended());
        Ok(if sparse_ext {
            State::SparseExt { data: padded }
        } else {
            State::Data {
                left: padded,
                capture,
            }
        })
    }

    /// A PAX header is complete: remember its `size`, read as the `tar` crate reads it.
    fn finish_pax(&mut self) {
        self.pax_size = None;
        for ext in tar::PaxExtensions::new(&self.pax) {
            let Ok(ext) = ext else { break };
            if ext.key() != Ok("size") {
                continue;
            }
            self.pax_size = ext.value().ok().and_then(|v| v.parse().ok());
            break;
        }
        self.pax = Vec::new();
    }
}

impl<R: Read> Read for TarGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if let Some(failure) = &self.failed {
            return Err(failure.to_error());
        }
        loop {
            if self.given < self.have {
                let n = buf.len().min(self.have - self.given);
                buf[..n].copy_from_slice(&self.block[self.given..self.given + n]);
                self.given += n;
                if self.given == self.have {
                    self.have = 0;
                    self.given = 0;
                    self.state = self.after_block;
                }
                return Ok(n);
            }
            match self.state {
                State::Done => return self.inner.read(buf),
                State::Data { left: 0, .. } => self.state = State::Header,
                State::Data { left, capture } => {
                    let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    let n = self.inner.read(&mut buf[..want])?;
                    if n == 0 {
                        // Cut short: the `tar` crate reports it.
                        return Ok(0);
                    }
                    let kept = (capture as usize).min(n);
                    self.pax.extend_from_slice(&buf[..kept]);
                    self.state = State::Data {
                        left: left - n as u64,
                        capture: capture - kept as u64,
                    };
                    if capture > 0 && kept as u64 == capture {
                        self.finish_pax();
                    }
                    return Ok(n);
                }
                State::Header | State::SparseExt { .. } => {
                    self.fill_block()?;
                    if self.have == 0 {
                        return Ok(0);
                    }
                    self.after_block = if self.have < BLOCK {
                        // A short last block: handed on as it is, the `tar` crate refuses it.
                        State::Done
                    } else {
                        match self.state {
                            State::SparseExt { data } if self.block[EXT_IS_EXTENDED] == 1 => {
                                State::SparseExt { data }
                            }
                            State::SparseExt { data } => State::Data {
                                left: data,
                                capture: 0,
                            },
                            _ => match self.inspect_header() {
                                Ok(next) => next,
                                Err(failure) => {
                                    let err = failure.to_error();
                                    self.failed = Some(failure);
                                    return Err(err);
                                }
                            },
                        }
                    };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that serves `prefix`, then zeros for ever, counting what it served: a guard
    /// that read an oversized header's content would show up as a large `served`.
    struct Counting<'a> {
        prefix: &'a [u8],
        pos: usize,
        served: usize,
    }

    impl Read for Counting<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let rest = &self.prefix[self.pos.min(self.prefix.len())..];
            let n = if rest.is_empty() {
                // Zeros for ever: only a reader that trusts the header would keep going.
                buf.fill(0);
                buf.len()
            } else {
                let n = rest.len().min(buf.len());
                buf[..n].copy_from_slice(&rest[..n]);
                n
            };
            self.pos += n;
            self.served += n;
            Ok(n)
        }
    }

    fn header(kind: tar::EntryType, name: &[u8], size: u64) -> tar::Header {
        let mut h = tar::Header::new_ustar();
        h.as_ustar_mut().expect("ustar").name[..name.len()].copy_from_slice(name);
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(0o644);
        h.set_cksum();
        h
    }

    const HUGE: u64 = 1536 << 20;

    /// A PAX header's records: "LEN key=value\n", LEN counting the whole record.
    fn pax_records(records: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (key, value) in records {
            let rest = key.len() + value.len() + 3;
            let mut len = rest + 1;
            while len != rest + len.to_string().len() {
                len = rest + len.to_string().len();
            }
            out.extend_from_slice(format!("{len} {key}=").as_bytes());
            out.extend_from_slice(value);
            out.push(b'\n');
        }
        out
    }

    fn append_pax(b: &mut tar::Builder<Vec<u8>>, records: &[(&str, &[u8])]) {
        let data = pax_records(records);
        let h = header(
            tar::EntryType::XHeader,
            b"PaxHeaders.0/entry",
            data.len() as u64,
        );
        b.append(&h, &data[..]).expect("pax");
    }

    #[test]
    fn an_oversized_pax_header_fails_before_its_content_is_read() {
        let h = header(tar::EntryType::XHeader, b"x", HUGE);
        let mut src = Counting {
            prefix: h.as_bytes(),
            pos: 0,
            served: 0,
        };
        let mut archive = tar::Archive::new(TarGuard::new(&mut src));
        let err = match archive.entries().expect("entries").next() {
            Some(Err(e)) => e,
            other => panic!("expected a refusal, got {:?}", other.map(|r| r.is_ok())),
        };
        assert_eq!(
            err.to_string(),
            "entry 'x' declares a 1610612736-byte PAX header, over the 1 MiB limit"
        );
        let refusal = HeaderTooLarge::find(&err).expect("a HeaderTooLarge");
        assert_eq!(refusal.size, HUGE);
        drop(archive);
        assert_eq!(src.served, BLOCK, "only the header was read");
    }

    /// Each extension type, octal and base-256 sizes, with only a few KiB behind the header:
    /// the refusal comes from the header, not from an end of stream after reading.
    #[test]
    fn every_extension_kind_is_bounded_in_both_size_encodings() {
        for (kind, what) in [
            (tar::EntryType::GNULongName, "GNU long name"),
            (tar::EntryType::GNULongLink, "GNU long link name"),
            (tar::EntryType::XHeader, "PAX header"),
            (tar::EntryType::XGlobalHeader, "PAX global header"),
        ] {
            for size in [MAX_EXTENSION_HEADER + 1, HUGE, 1 << 40] {
                let mut h = header(kind, b"././@LongLink", size);
                if size == 1 << 40 {
                    // Octal has 11 digits, 8 GiB at most: GNU writes bigger sizes in base-256.
                    let field = &mut h.as_old_mut().size;
                    field.fill(0);
                    field[0] = 0x80;
                    field[4..].copy_from_slice(&size.to_be_bytes());
                    h.set_cksum();
                    assert_eq!(h.entry_size().expect("size"), size);
                }
                let mut stream = h.as_bytes().to_vec();
                stream.extend(vec![b'a'; 4096]);
                let mut archive = tar::Archive::new(TarGuard::new(&stream[..]));
                let err = archive
                    .entries()
                    .expect("entries")
                    .next()
                    .expect("an item")
                    .err()
                    .expect("refused");
                let msg = err.to_string();
                assert!(
                    msg.contains(&format!("declares a {size}-byte {what}, over the 1 MiB")),
                    "{msg}"
                );
                assert!(msg.contains("'././@LongLink'"), "{msg}");
            }
        }
    }

    /// A PAX header of exactly the limit passes; one byte more does not.
    #[test]
    fn the_limit_itself_is_allowed() {
        let record = |len: usize| {
            // "LEN comment=...\n" with LEN counting the whole record.
            let body_len = len - "1048576 comment=\n".len();
            let rec = format!("{len} comment={}\n", "c".repeat(body_len));
            assert_eq!(rec.len(), len);
            rec.into_bytes()
        };
        let mut b = tar::Builder::new(Vec::new());
        let pax = record(MAX_EXTENSION_HEADER as usize);
        let mut h = header(tar::EntryType::XHeader, b"pax", pax.len() as u64);
        b.append(&h, &pax[..]).expect("append");
        h = header(tar::EntryType::Regular, b"file", 3);
        b.append(&h, &b"abc"[..]).expect("append");
        let stream = b.into_inner().expect("tar");
        let mut archive = tar::Archive::new(TarGuard::new(&stream[..]));
        let names: Vec<String> = archive
            .entries()
            .expect("entries")
            .map(|e| {
                let e = e.expect("entry");
                String::from_utf8_lossy(&e.path_bytes()).into_owned()
            })
            .collect();
        assert_eq!(names, ["file"]);
    }

    /// What a normal archive holds passes through unchanged: long names and link targets
    /// (GNU `L`/`K`), PAX headers with xattrs and a `size`, a sparse file, and whatever
    /// follows the end of the archive.
    #[test]
    fn normal_archives_pass_byte_for_byte() {
        let long = format!("{}/file", "d".repeat(150));
        let target = format!("{}/target", "t".repeat(120));
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_size(5);
        b.append_data(&mut h, &long, &b"hello"[..]).expect("long");
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, "link", &target).expect("link");
        append_pax(
            &mut b,
            &[
                ("SCHILY.xattr.user.test", b"value"),
                ("path", long.as_bytes()),
            ],
        );
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o600);
        h.set_size(2);
        b.append_data(&mut h, "short", &b"xy"[..])
            .expect("pax file");
        // A PAX `size` that overrides the header's (the header says 0).
        append_pax(&mut b, &[("size", b"1000")]);
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o600);
        h.set_size(0);
        h.set_path("sized").expect("path");
        h.set_cksum();
        b.append(&h, &[9u8; 1000][..]).expect("sized");
        let mut stream = b.into_inner().expect("tar");
        // Hidden behind the PAX size: a block that would be a huge 'x' header if the guard
        // took the header's size of 0.
        let hidden = header(tar::EntryType::XHeader, b"hidden", HUGE);
        let at = stream.len() - 1024 - 1024;
        stream[at..at + BLOCK].copy_from_slice(hidden.as_bytes());
        stream.extend_from_slice(b"after the end marker");

        let mut guarded = TarGuard::new(&stream[..]);
        let mut out = Vec::new();
        guarded.read_to_end(&mut out).expect("read");
        assert_eq!(out, stream);

        let mut archive = tar::Archive::new(TarGuard::new(&stream[..]));
        let mut seen = Vec::new();
        for e in archive.entries().expect("entries") {
            let mut e = e.expect("entry");
            let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
            let xattr = e
                .pax_extensions()
                .expect("pax")
                .map(|exts| exts.flatten().any(|x| x.key_bytes().starts_with(b"SCHILY")));
            let mut data = Vec::new();
            e.read_to_end(&mut data).expect("data");
            seen.push((name, data.len(), xattr == Some(true)));
        }
        assert_eq!(
            seen,
            [
                (long.clone(), 5, false),
                ("link".into(), 0, false),
                (long, 2, true),
                ("sized".into(), 1000, false),
            ]
        );
        let mut rest = String::new();
        archive
            .into_inner()
            .into_inner()
            .read_to_string(&mut rest)
            .expect("rest");
        assert!(rest.ends_with("after the end marker"), "{rest:?}");
    }

    /// GNU sparse files with extension blocks: the blocks are followed, not taken for headers.
    #[test]
    fn sparse_extension_blocks_are_followed() {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::GNUSparse);
        h.set_path("sparse").expect("path");
        h.set_mode(0o644);
        h.set_size(512);
        {
            let gnu = h.as_gnu_mut().expect("gnu");
            gnu.set_is_extended(true);
            gnu.set_real_size(4096);
        }
        h.set_cksum();
        // Read as a header, the extension block would fail its checksum.
        let mut ext = tar::GnuExtSparseHeader::new();
        ext.sparse[0].set_offset(3584);
        ext.sparse[0].set_length(512);
        let mut stream = h.as_bytes().to_vec();
        stream.extend_from_slice(ext.as_bytes());
        stream.extend(vec![5u8; 512]);
        stream.extend(vec![0u8; 1024]);
        let mut archive = tar::Archive::new(TarGuard::new(&stream[..]));
        let mut entries = archive.entries().expect("entries");
        let mut e = entries.next().expect("one").expect("sparse entry");
        let mut data = Vec::new();
        e.read_to_end(&mut data).expect("data");
        assert_eq!(data.len(), 4096);
        assert!(data[3584..].iter().all(|b| *b == 5));
        assert!(entries.next().is_none());
    }

    #[test]
    fn a_damaged_header_is_refused() {
        let mut h = header(tar::EntryType::Regular, b"f", 1);
        h.as_mut_bytes()[0] = b'g';
        let mut stream = h.as_bytes().to_vec();
        stream.extend(vec![0u8; 1536]);
        let mut out = Vec::new();
        let err = TarGuard::new(&stream[..])
            .read_to_end(&mut out)
            .expect_err("bad checksum");
        assert!(err.to_string().contains("checksum"), "{err}");
    }
}
