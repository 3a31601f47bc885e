//! Streams over a hijacked connection (attach, exec start): stdin up, stdout/stderr down,
//! docker's detach keys, raw mode, resize on SIGWINCH, signal forwarding and `wait`.
//!
//! The two directions run on plain threads with blocking reads, as docker's goroutines
//! do: stdin may be a terminal that never becomes readable for a cancellable future, and
//! a thread blocked in `read(0)` costs nothing when the command exits under it.

use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use anyhow::Result;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use super::api::{query, seg, Api, Body, Hijacked};
use super::term::{self, RawMode};
use crate::SkiffError;

/// Ctrl-P Ctrl-Q, docker's default detach sequence.
const DEFAULT_ESCAPE: [u8; 2] = [16, 17];

pub struct StreamConfig {
    pub tty: bool,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub detach_keys: Option<String>,
}

/// How a stream ended.
#[derive(Debug, PartialEq)]
pub enum Ended {
    Done,
    Detached,
    Failed(String),
}

enum Event {
    OutputDone(Result<(), String>),
    InputDone,
    Detached,
}

/// A running attachment; `next` says how it ended, `close` lets go of the connection.
pub struct Streaming {
    rx: mpsc::UnboundedReceiver<Event>,
    raw: RawMode,
    conn: UnixStream,
    has_output: bool,
}

/// docker's `term.ToBytes`: "ctrl-p,ctrl-q", "a,b", "ctrl-@", "DEL"…
pub fn detach_key_bytes(keys: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    for key in keys.split(',') {
        if key.len() == 1 {
            out.push(key.as_bytes()[0]);
            continue;
        }
        if key == "DEL" {
            out.push(127);
            continue;
        }
        let code = key
            .strip_prefix("ctrl-")
            .filter(|k| k.len() == 1)
            .and_then(|k| {
                let c = k.as_bytes()[0];
                match c {
                    b'a'..=b'z' => Some(c - b'a' + 1),
                    b'@' => Some(0),
                    b'[' => Some(27),
                    b'\\' => Some(28),
                    b']' => Some(29),
                    b'^' => Some(30),
                    b'_' => Some(31),
                    _ => None,
                }
            });
        match code {
            Some(c) => out.push(c),
            None => return Err(format!("Unknown character: '{key}'")),
        }
    }
    Ok(out)
}

/// Watches stdin for the detach sequence: bytes that could start it are held back until
/// the sequence completes (detach) or breaks (they are sent after all).
pub struct EscapeProxy {
    keys: Vec<u8>,
    pos: usize,
}

impl EscapeProxy {
    pub fn new(keys: Vec<u8>) -> Self {
        EscapeProxy { keys, pos: 0 }
    }

    /// What to forward of `data`, and whether the sequence completed.
    pub fn feed(&mut self, data: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::with_capacity(data.len());
        if self.keys.is_empty() {
            out.extend_from_slice(data);
            return (out, false);
        }
        for &b in data {
            if b == self.keys[self.pos] {
                self.pos += 1;
                if self.pos == self.keys.len() {
                    return (out, true);
                }
                continue;
            }
            // A broken sequence: release what was held, then see if this byte starts anew.
            out.extend_from_slice(&self.keys[..self.pos]);
            self.pos = 0;
            if b == self.keys[0] {
                self.pos = 1;
                if self.keys.len() == 1 {
                    return (out, true);
                }
            } else {
                out.push(b);
            }
        }
        (out, false)
    }
}

/// docker's multiplexed stream: frames of `[stream, 0, 0, 0, len u32 BE]` + payload.
#[derive(Default)]
pub struct Demuxer {
    header: Vec<u8>,
    stream: u8,
    left: usize,
    syserr: Vec<u8>,
}

impl Demuxer {
    /// Hand each payload piece to `sink(stream, bytes)`; stream 3 (the daemon's own error)
    /// and unknown streams end the copy with docker's messages.
    pub fn feed(
        &mut self,
        mut data: &[u8],
        sink: &mut dyn FnMut(u8, &[u8]) -> std::io::Result<()>,
    ) -> Result<(), String> {
        while !data.is_empty() {
            if self.left == 0 {
                let need = 8 - self.header.len();
                let take = need.min(data.len());
                self.header.extend_from_slice(&data[..take]);
                data = &data[take..];
                if self.header.len() < 8 {
                    break;
                }
                self.stream = self.header[0];
                self.left = u32::from_be_bytes([
                    self.header[4],
                    self.header[5],
                    self.header[6],
                    self.header[7],
                ]) as usize;
                self.header.clear();
                if self.stream > 3 {
                    return Err(format!("Unrecognized input header: {}", self.stream));
                }
                continue;
            }
            let take = self.left.min(data.len());
            let piece = &data[..take];
            data = &data[take..];
            self.left -= take;
            if self.stream == 3 {
                self.syserr.extend_from_slice(piece);
                if self.left == 0 {
                    return Err(format!(
                        "error from daemon in stream: {}",
                        String::from_utf8_lossy(&self.syserr)
                    ));
                }
                continue;
            }
            sink(self.stream, piece).map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

fn write_out(fd: u8, data: &[u8]) -> std::io::Result<()> {
    if fd == 2 {
        let mut e = std::io::stderr().lock();
        e.write_all(data)?;
        e.flush()
    } else {
        let mut o = std::io::stdout().lock();
        o.write_all(data)?;
        o.flush()
    }
}

/// Start copying between the hijacked connection and our stdio.
pub fn start(h: Hijacked, cfg: &StreamConfig) -> Result<Streaming> {
    let keys = match &cfg.detach_keys {
        Some(k) if !k.is_empty() => detach_key_bytes(k).unwrap_or_else(|e| {
            eprintln!("WARNING: invalid detach escape keys, using default: {e}");
            DEFAULT_ESCAPE.to_vec()
        }),
        _ => DEFAULT_ESCAPE.to_vec(),
    };
    let raw = if cfg.tty && cfg.stdin {
        RawMode::enable().map_err(|e| {
            SkiffError::new(format!(
                "unable to setup input stream: unable to set IO streams as raw terminal: {e}"
            ))
        })?
    } else {
        RawMode::disabled()
    };
    let (tx, rx) = mpsc::unbounded_channel();
    let has_output = cfg.stdout || cfg.stderr;
    let keep = h.conn.try_clone()?;

    if has_output {
        let conn = h.conn.try_clone()?;
        let leftover = h.leftover;
        let tty = cfg.tty;
        let raw = raw.clone();
        let tx = tx.clone();
        std::thread::spawn(move || {
            let r = pump_output(conn, leftover, tty);
            // Restore as soon as the output ends, so whatever we print next looks normal.
            if tty {
                raw.restore();
            }
            // The receiver is gone only when the session is over already.
            let _ = tx.send(Event::OutputDone(r));
        });
    }

    let conn = h.conn;
    if cfg.stdin {
        let tty = cfg.tty;
        let raw = raw.clone();
        std::thread::spawn(move || {
            let ev = pump_input(&conn, tty, keys);
            raw.restore();
            if matches!(ev, Event::InputDone) {
                // Half-close: the container sees EOF on its stdin; its output still comes.
                // Best effort: a connection already closed needs no half-close.
                let _ = conn.shutdown(Shutdown::Write);
            }
            // The receiver is gone only when the session is over already.
            let _ = tx.send(ev);
        });
    } else {
        // Nothing to send: say so at once, as docker does.
        // Best effort, as above: nothing is lost when the connection is closed already.
        let _ = conn.shutdown(Shutdown::Write);
        let _ = tx.send(Event::InputDone);
    }

    Ok(Streaming {
        rx,
        raw,
        conn: keep,
        has_output,
    })
}

fn pump_output(mut conn: UnixStream, leftover: Vec<u8>, tty: bool) -> Result<(), String> {
    let mut demux = Demuxer::default();
    let mut sink = |fd: u8, data: &[u8]| write_out(if fd == 2 { 2 } else { 1 }, data);
    let mut handle = |data: &[u8], demux: &mut Demuxer| -> Result<(), String> {
        if tty {
            write_out(1, data).map_err(|e| e.to_string())
        } else {
            demux.feed(data, &mut sink)
        }
    };
    if !leftover.is_empty() {
        handle(&leftover, &mut demux)?;
    }
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match conn.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => handle(&buf[..n], &mut demux)?,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            // Our own shutdown at the end of a command lands here too.
            Err(_) => return Ok(()),
        }
    }
}

fn pump_input(mut conn: &UnixStream, tty: bool, keys: Vec<u8>) -> Event {
    let mut proxy = EscapeProxy::new(if tty { keys } else { Vec::new() });
    let mut stdin = std::io::stdin();
    let mut buf = vec![0u8; 32 << 10];
    loop {
        let n = match stdin.read(&mut buf) {
            Ok(0) => return Event::InputDone,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return Event::InputDone,
        };
        let (out, escaped) = proxy.feed(&buf[..n]);
        if !out.is_empty() && conn.write_all(&out).is_err() {
            return Event::InputDone;
        }
        if escaped {
            return Event::Detached;
        }
    }
}

impl Streaming {
    /// How the stream ended: the output finished (or failed), the user detached, or the
    /// input finished while no output was attached. Cancel-safe.
    pub async fn next(&mut self) -> Ended {
        loop {
            match self.rx.recv().await {
                Some(Event::OutputDone(Ok(()))) => return Ended::Done,
                Some(Event::OutputDone(Err(e))) => return Ended::Failed(e),
                Some(Event::Detached) => return Ended::Detached,
                Some(Event::InputDone) => {
                    if !self.has_output {
                        return Ended::Done;
                    }
                }
                None => return Ended::Done,
            }
        }
    }

    pub fn restore_terminal(&self) {
        self.raw.restore();
    }

    /// Restore the terminal and drop the connection.
    pub fn close(self) {
        // Closing on the way out: the peer may have closed first, which is fine.
        let _ = self.conn.shutdown(Shutdown::Both);
    }
}

impl Drop for Streaming {
    // Whatever way a command leaves (an error, a panic), the terminal is given back.
    fn drop(&mut self) {
        self.raw.restore();
    }
}

/// Where a resize goes.
#[derive(Clone, Copy)]
pub enum ResizeTarget {
    Container,
    Exec,
}

async fn resize(api: &Api, target: ResizeTarget, id: &str, h: u16, w: u16) -> Result<()> {
    if h == 0 && w == 0 {
        return Ok(());
    }
    let base = match target {
        ResizeTarget::Container => format!("/containers/{}/resize", seg(id)),
        ResizeTarget::Exec => format!("/exec/{}/resize", seg(id)),
    };
    let q = query(&[("h", h.to_string()), ("w", w.to_string())]);
    api.call("POST", &format!("{base}{q}"), Body::None)
        .await
        .map(|_| ())
}

/// docker's MonitorTtySize: the size now (retried for a while, as a fresh container may
/// not be ready for it), then again on every SIGWINCH.
pub fn monitor_size(
    api: &Api,
    target: ResizeTarget,
    id: &str,
    first: Option<(u16, u16)>,
) -> tokio::task::JoinHandle<()> {
    let api = api.clone();
    let id = id.to_string();
    tokio::spawn(async move {
        if let Some((h, w)) = first {
            // Resizing is best effort, as docker's: a container that exited has no tty.
            let _ = resize(&api, target, &id, h, w).await;
        }
        let (h, w) = term::size();
        if resize(&api, target, &id, h, w).await.is_err() {
            let mut ok = false;
            for retry in 0..10u64 {
                tokio::time::sleep(Duration::from_millis((retry + 1) * 10)).await;
                let (h, w) = term::size();
                if resize(&api, target, &id, h, w).await.is_ok() {
                    ok = true;
                    break;
                }
            }
            if !ok {
                eprint!("failed to resize tty, using default size\r\n");
            }
        }
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut winch) = signal(SignalKind::window_change()) else {
            return;
        };
        while winch.recv().await.is_some() {
            let (h, w) = term::size();
            let _ = resize(&api, target, &id, h, w).await;
        }
    })
}

/// The signals docker's sig-proxy hands on to the container (all but those that make no
/// sense to forward: SIGCHLD, SIGPIPE, SIGWINCH, and those that stop or kill us outright).
const PROXIED: [(i32, &str); 8] = [
    (libc::SIGHUP, "HUP"),
    (libc::SIGINT, "INT"),
    (libc::SIGQUIT, "QUIT"),
    (libc::SIGUSR1, "USR1"),
    (libc::SIGUSR2, "USR2"),
    (libc::SIGTERM, "TERM"),
    (libc::SIGALRM, "ALRM"),
    (libc::SIGCONT, "CONT"),
];

/// Forward the signals we receive to the container (`POST /containers/{id}/kill?signal=`).
pub struct SignalProxy {
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl SignalProxy {
    pub fn start(api: &Api, id: &str) -> SignalProxy {
        use tokio::signal::unix::{signal, SignalKind};
        let mut tasks = Vec::new();
        for (num, name) in PROXIED {
            let Ok(mut stream) = signal(SignalKind::from_raw(num)) else {
                continue;
            };
            let api = api.clone();
            let target = format!(
                "/containers/{}/kill{}",
                seg(id),
                query(&[("signal", name.to_string())])
            );
            tasks.push(tokio::spawn(async move {
                while stream.recv().await.is_some() {
                    // A signal for a container that just exited fails; docker ignores it too.
                    let _ = api.call("POST", &target, Body::None).await;
                }
            }));
        }
        SignalProxy { tasks }
    }
}

impl Drop for SignalProxy {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The outcome of `POST /containers/{id}/wait`.
#[derive(Debug)]
pub enum WaitOutcome {
    /// `{"StatusCode": N, "Error": null}`
    Exited(i64),
    /// `{"Error": {"Message": …}}`: the engine could not wait.
    WaitError(String),
    /// The request itself failed (no such container, lost connection).
    Failed(anyhow::Error),
}

pub struct Waiter {
    rx: oneshot::Receiver<WaitOutcome>,
}

impl Waiter {
    /// Register a wait before the container starts, as docker does (the engine answers
    /// the head once the waiter is in place; the body comes when the condition is met).
    pub async fn register(api: &Api, id: &str, condition: Option<&str>) -> Waiter {
        let (head_tx, head_rx) = oneshot::channel::<()>();
        let (tx, rx) = oneshot::channel();
        let api = api.clone();
        let q = match condition {
            Some(c) => query(&[("condition", c.to_string())]),
            None => String::new(),
        };
        let target = format!("/containers/{}/wait{q}", seg(id));
        tokio::spawn(async move {
            let outcome = async {
                let resp = api.request("POST", &target, Body::None).await;
                // Nobody waits for the head any more after the timeout below: fine.
                let _ = head_tx.send(());
                let resp = resp?;
                if resp.status >= 400 {
                    return Err(resp.into_error().await);
                }
                resp.json().await
            }
            .await;
            // The waiter may have been dropped (the session ended another way).
            let _ = tx.send(match outcome {
                Ok(v) => parse_wait(&v),
                Err(e) => WaitOutcome::Failed(e),
            });
        });
        // An engine that holds the head back until the exit must not hang us.
        // Either answer (head sent, or timed out) lets us go on; the outcome comes by `rx`.
        let _ = tokio::time::timeout(Duration::from_secs(2), head_rx).await;
        Waiter { rx }
    }

    pub async fn outcome(self) -> WaitOutcome {
        self.rx.await.unwrap_or_else(|_| {
            WaitOutcome::Failed(SkiffError::new("skiff: lost the wait for the container").into())
        })
    }
}

pub fn parse_wait(v: &Value) -> WaitOutcome {
    let code = v.get("StatusCode").and_then(Value::as_i64).unwrap_or(0);
    match v
        .get("Error")
        .and_then(|e| e.get("Message"))
        .and_then(Value::as_str)
    {
        Some(m) if !m.is_empty() => WaitOutcome::WaitError(m.to_string()),
        _ => WaitOutcome::Exited(code),
    }
}

/// An exit status as the process's exit code (Go's os.Exit keeps the low byte).
pub fn exit_code(status: i64) -> u8 {
    (status & 0xff) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_keys_parse_like_moby_term() {
        assert_eq!(detach_key_bytes("ctrl-p,ctrl-q").unwrap(), vec![16, 17]);
        assert_eq!(
            detach_key_bytes("ctrl-@,a,DEL").unwrap(),
            vec![0, b'a', 127]
        );
        assert_eq!(detach_key_bytes("ctrl-\\").unwrap(), vec![28]);
        assert!(detach_key_bytes("ctrl-1").is_err());
        assert!(detach_key_bytes("xy").is_err());
    }

    #[test]
    fn escape_sequence_is_held_back_and_detected() {
        let mut p = EscapeProxy::new(vec![16, 17]);
        assert_eq!(p.feed(b"ab"), (b"ab".to_vec(), false));
        // A lone ctrl-p is withheld until we know what follows.
        assert_eq!(p.feed(&[16]), (vec![], false));
        assert_eq!(p.feed(b"x"), (vec![16, b'x'], false));
        // Split across reads.
        assert_eq!(p.feed(&[b'z', 16]), (vec![b'z'], false));
        assert_eq!(p.feed(&[17, b'q']), (vec![], true));
        // A repeated first key restarts the sequence.
        let mut p = EscapeProxy::new(vec![16, 17]);
        assert_eq!(p.feed(&[16, 16, 17]), (vec![16], true));
        // No keys: everything passes.
        let mut p = EscapeProxy::new(vec![]);
        assert_eq!(p.feed(&[16, 17]), (vec![16, 17], false));
    }

    #[test]
    fn multiplexed_frames_split_anywhere() {
        let mut frames = vec![1u8, 0, 0, 0, 0, 0, 0, 3];
        frames.extend_from_slice(b"hi\n");
        frames.extend_from_slice(&[2, 0, 0, 0, 0, 0, 0, 4]);
        frames.extend_from_slice(b"err\n");
        for split in 0..frames.len() {
            let mut d = Demuxer::default();
            let mut got: Vec<(u8, Vec<u8>)> = Vec::new();
            let mut sink = |s: u8, b: &[u8]| {
                match got.last_mut() {
                    Some((ls, v)) if *ls == s => v.extend_from_slice(b),
                    _ => got.push((s, b.to_vec())),
                }
                Ok(())
            };
            d.feed(&frames[..split], &mut sink).unwrap();
            d.feed(&frames[split..], &mut sink).unwrap();
            assert_eq!(
                got,
                vec![(1, b"hi\n".to_vec()), (2, b"err\n".to_vec())],
                "split at {split}"
            );
        }
        let mut d = Demuxer::default();
        let mut sink = |_: u8, _: &[u8]| Ok(());
        let mut bad = vec![3u8, 0, 0, 0, 0, 0, 0, 4];
        bad.extend_from_slice(b"oops");
        assert_eq!(
            d.feed(&bad, &mut sink),
            Err("error from daemon in stream: oops".into())
        );
        let mut d = Demuxer::default();
        assert_eq!(
            d.feed(&[9, 0, 0, 0, 0, 0, 0, 0], &mut sink),
            Err("Unrecognized input header: 9".into())
        );
    }

    #[test]
    fn wait_bodies() {
        let v: Value = serde_json::from_str(r#"{"Error":null,"StatusCode":3}"#).unwrap();
        assert!(matches!(parse_wait(&v), WaitOutcome::Exited(3)));
        let v: Value =
            serde_json::from_str(r#"{"Error":{"Message":"boom"},"StatusCode":-1}"#).unwrap();
        assert!(matches!(parse_wait(&v), WaitOutcome::WaitError(m) if m == "boom"));
        assert_eq!(exit_code(-1), 255);
        assert_eq!(exit_code(137), 137);
        assert_eq!(exit_code(256), 0);
    }
}
