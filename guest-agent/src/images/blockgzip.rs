//! Gzip for pushed layers, compressed in fixed blocks on every core.
//!
//! A push is on the critical path of a developer's loop, and one core of deflate is slower
//! than a nearby registry takes the bytes. The output is one ordinary gzip member (every
//! decoder reads it; no multi-member stream that some readers stop after the first member
//! of): the input is cut into `BLOCK`-sized pieces, each compressed as a raw deflate stream
//! of its own that ends on a byte boundary (a sync flush; the last one finishes the stream),
//! as pigz does, and the pieces' CRCs are combined into the trailer's.
//!
//! Written here rather than with a parallel-gzip crate because the output must be the same
//! bytes for the same layer on every machine, whatever its number of cores (a layer pushed
//! twice must keep its digest), and because a block of data that does not compress (media,
//! archives, random bytes) is detected on a sample and stored as it is: deflating it in full
//! would spend a core's time to make it bigger.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};

use flate2::{Compress, Compression, FlushCompress, Status};

/// The input covered by one independently compressed piece. Larger pieces compress a little
/// better (no dictionary is carried across them); smaller ones spread over cores sooner.
pub const BLOCK: usize = 1 << 20;

/// Each sample taken to judge whether a block compresses.
const SAMPLE: usize = 16 << 10;

/// A sample that does not shrink below this share of its size (in percent) marks its block as
/// not worth compressing.
const WORTH_PERCENT: usize = 95;

/// Gzip header: no name, no time stamp (so the bytes depend only on the input), OS unknown.
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

/// A block of input to compress: its place, its bytes, and whether it ends the input.
type Job = (u64, Vec<u8>, bool);

/// One block's compressed bytes, with what the trailer needs from it.
struct Piece {
    index: u64,
    data: Vec<u8>,
    crc: u32,
    len: u64,
    last: bool,
}

/// Whether `block` is worth deflating, judged on up to three samples spread over it.
fn compresses(block: &[u8]) -> io::Result<bool> {
    if block.len() < 3 * SAMPLE {
        return Ok(true);
    }
    let step = block.len() / 3;
    let (mut taken, mut made) = (0usize, 0usize);
    let mut out = Vec::with_capacity(SAMPLE + SAMPLE / 8);
    for i in 0..3 {
        let sample = &block[i * step..i * step + SAMPLE];
        out.clear();
        deflate_into(sample, Compression::fast(), FlushCompress::Finish, &mut out)?;
        taken += sample.len();
        made += out.len();
    }
    Ok(made * 100 < taken * WORTH_PERCENT)
}

/// Deflate `input` as one raw stream (or the tail of one, when `flush` is `Sync`) into `out`.
fn deflate_into(
    input: &[u8],
    level: Compression,
    flush: FlushCompress,
    out: &mut Vec<u8>,
) -> io::Result<()> {
    let mut c = Compress::new(level, false);
    loop {
        // Stored blocks cost 5 bytes per 64 KiB; deflate's worst case is close to that.
        if out.capacity() - out.len() < 1024 {
            out.reserve(input.len() / 64 + 4096);
        }
        let done_before = c.total_in() as usize;
        let status = c
            .compress_vec(&input[done_before..], out, flush)
            .map_err(io::Error::other)?;
        let consumed = c.total_in() as usize == input.len();
        let finished = match flush {
            FlushCompress::Finish => status == Status::StreamEnd,
            // A flush is complete once it stops for want of input rather than of room.
            _ => consumed && out.len() < out.capacity(),
        };
        if finished {
            return Ok(());
        }
    }
}

fn compress_block(index: u64, block: Vec<u8>, last: bool) -> io::Result<Piece> {
    let level = if compresses(&block)? {
        Compression::fast()
    } else {
        Compression::none()
    };
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    let mut data = Vec::with_capacity(block.len() / 2 + 4096);
    deflate_into(&block, level, flush, &mut data)?;
    let mut crc = crc32fast::Hasher::new();
    crc.update(&block);
    Ok(Piece {
        index,
        data,
        crc: crc.finalize(),
        len: block.len() as u64,
        last,
    })
}

/// Fill `buf` from `r` as far as it goes; fewer bytes only at the end of the input.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Read `input` to its end in blocks and hand them out in order, marking the last one; an
/// empty input is one empty last block (a gzip stream still needs its end).
fn read_blocks(
    mut input: impl Read,
    jobs: SyncSender<Job>,
    results: SyncSender<io::Result<Piece>>,
) {
    let mut next = |buf: &mut Vec<u8>| -> io::Result<()> {
        buf.resize(BLOCK, 0);
        let n = read_full(&mut input, buf)?;
        buf.truncate(n);
        Ok(())
    };
    let mut current = Vec::new();
    if let Err(e) = next(&mut current) {
        let _ = results.send(Err(e));
        return;
    }
    for index in 0u64.. {
        let mut ahead = Vec::new();
        if !current.is_empty() {
            if let Err(e) = next(&mut ahead) {
                let _ = results.send(Err(e));
                return;
            }
        }
        let last = ahead.is_empty();
        if jobs.send((index, current, last)).is_err() || last {
            return;
        }
        current = ahead;
    }
}

/// Compress blocks until the reader is done or the results are no longer wanted. The last
/// worker to leave drops the jobs' receiver, which stops a reader waiting to hand one out.
fn work(jobs: Arc<Mutex<Receiver<Job>>>, results: SyncSender<io::Result<Piece>>) {
    loop {
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok((index, block, last)) = job else {
            return;
        };
        if results.send(compress_block(index, block, last)).is_err() {
            return;
        }
    }
}

/// Gzip `input` on `workers` threads, handing the compressed stream to `emit` in order, in
/// pieces. Returns the input's length. The bytes do not depend on `workers`.
///
/// An error from `input` or `emit` stops every thread and is returned; whatever `emit` got
/// before it is then not a whole gzip stream.
pub fn compress(
    input: impl Read + Send,
    workers: usize,
    mut emit: impl FnMut(Vec<u8>) -> io::Result<()>,
) -> io::Result<u64> {
    let workers = workers.max(1);
    let (jobs_tx, jobs_rx) = sync_channel(workers);
    let (results_tx, results_rx) = sync_channel(workers * 2);
    let jobs_rx = Arc::new(Mutex::new(jobs_rx));
    // `move`: the results' receiver is dropped when this closure returns, before the scope
    // joins the threads, so that an early return makes the workers' sends fail and ends them
    // (and, through the jobs' receiver they drop, the reader).
    std::thread::scope(move |scope| {
        let reader_results = results_tx.clone();
        scope.spawn(move || read_blocks(input, jobs_tx, reader_results));
        for _ in 0..workers {
            let (jobs_rx, results_tx) = (jobs_rx.clone(), results_tx.clone());
            scope.spawn(move || work(jobs_rx, results_tx));
        }
        drop((results_tx, jobs_rx));

        emit(HEADER.to_vec())?;
        let mut waiting: BTreeMap<u64, Piece> = BTreeMap::new();
        let (mut next, mut total) = (0u64, 0u64);
        let mut crc = crc32fast::Hasher::new();
        let mut ended = false;
        while !ended {
            let piece = match results_rx.recv() {
                Ok(r) => r?,
                Err(_) => {
                    return Err(io::Error::other(
                        "a compression thread ended before the input did",
                    ))
                }
            };
            waiting.insert(piece.index, piece);
            while let Some(piece) = waiting.remove(&next) {
                crc.combine(&crc32fast::Hasher::new_with_initial_len(
                    piece.crc, piece.len,
                ));
                total += piece.len;
                next += 1;
                ended = piece.last;
                emit(piece.data)?;
                if ended {
                    break;
                }
            }
        }
        let mut trailer = Vec::with_capacity(8);
        trailer.extend_from_slice(&crc.finalize().to_le_bytes());
        // ISIZE is the length modulo 2^32 (RFC 1952).
        trailer.extend_from_slice(&(total as u32).to_le_bytes());
        emit(trailer)?;
        Ok(total)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gzip(input: &[u8], workers: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let n = compress(input, workers, |piece| {
            out.extend_from_slice(&piece);
            Ok(())
        })
        .expect("compress");
        assert_eq!(n, input.len() as u64);
        out
    }

    fn gunzip(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(data)
            .read_to_end(&mut out)
            .expect("a valid gzip stream");
        out
    }

    fn random(len: usize, mut seed: u64) -> Vec<u8> {
        (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect()
    }

    fn text(len: usize) -> Vec<u8> {
        let line = b"drwxr-xr-x root root 4096 usr/share/doc/libc6/changelog.Debian.gz\n";
        line.iter().copied().cycle().take(len).collect()
    }

    #[test]
    fn round_trips_at_every_length_around_the_block_edges() {
        for len in [
            0,
            1,
            SAMPLE * 3 - 1,
            BLOCK - 1,
            BLOCK,
            BLOCK + 1,
            2 * BLOCK,
            3 * BLOCK + 7,
        ] {
            let mut input = text(len / 2);
            input.extend(random(len - len / 2, len as u64 + 1));
            assert_eq!(gunzip(&gzip(&input, 2)), input, "length {len}");
        }
    }

    #[test]
    fn the_bytes_do_not_depend_on_the_number_of_threads() {
        let mut input = random(2 * BLOCK + 5, 7);
        input.extend(text(2 * BLOCK));
        let one = gzip(&input, 1);
        assert_eq!(gzip(&input, 2), one);
        assert_eq!(gzip(&input, 5), one);
    }

    #[test]
    fn text_is_compressed_and_random_bytes_are_stored() {
        let t = text(4 * BLOCK);
        assert!(gzip(&t, 2).len() < t.len() / 10);
        let r = random(4 * BLOCK, 3);
        let out = gzip(&r, 2);
        // Stored blocks: 5 bytes per 64 KiB, a flush per block, header and trailer.
        assert!(out.len() >= r.len() && out.len() < r.len() + r.len() / 1000 + 64);
    }

    #[test]
    fn an_input_error_is_returned_and_ends_the_threads() {
        struct Failing(usize);
        impl Read for Failing {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0 == 0 {
                    return Err(io::Error::other("disk gone"));
                }
                let n = buf.len().min(self.0);
                self.0 -= n;
                buf[..n].fill(b'a');
                Ok(n)
            }
        }
        let err = compress(Failing(3 * BLOCK + 10), 2, |_| Ok(())).expect_err("fails");
        assert!(err.to_string().contains("disk gone"), "{err}");
        let err = compress(&text(3 * BLOCK)[..], 2, |_| {
            Err(io::Error::other("peer gone"))
        })
        .expect_err("fails");
        assert!(err.to_string().contains("peer gone"), "{err}");
    }
}
