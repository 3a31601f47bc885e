//! skiff's one client of the Docker Engine API: HTTP/1.1 spoken by hand over the agent's
//! unix socket, for every command.
//!
//! Why this and not bollard (which the image commands used to go through): bollard's
//! `wait_container` turns a non-zero exit code into an error; its client timeout covers the
//! whole request, which would cut `wait`, `logs -f` and a long pull short; its attach/exec
//! helpers hide the hijacked connection, so we could neither half-close it when stdin ends
//! nor read it from a plain thread while the terminal is in raw mode; its typed models drop
//! or rename fields `inspect` must print as the engine sent them; it has no `POST /auth`; and
//! the docker CLI's exact queries (filters in their map form, sorted keys) are what the agent
//! is checked against. With one client, an engine error reads the same from every command
//! (`Response::into_error`) and every `--filter` flag is parsed once (`Filters`). A request
//! writer and a response-head parser are all it takes.

use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use crate::SkiffError;

/// The API version the agent announces (and the docker CLI negotiates to); every request
/// goes to `/v{API_VERSION}/…`.
pub const API_VERSION: &str = "1.47";
/// Response heads larger than this are not from our agent.
const MAX_HEAD: usize = 64 << 10;

#[derive(Clone)]
pub struct Api {
    socket: PathBuf,
}

/// A request body.
pub enum Body<'a> {
    None,
    Json(&'a Value),
    /// Streamed with chunked transfer encoding, as the docker CLI uploads archives.
    Stream(tokio::sync::mpsc::Receiver<Vec<u8>>),
}

impl Api {
    pub fn new(socket: PathBuf) -> Self {
        Api { socket }
    }

    async fn connect(&self) -> Result<UnixStream> {
        UnixStream::connect(&self.socket).await.map_err(|e| {
            SkiffError::new(format!(
                "skiff: cannot connect to the skiff agent at unix://{}: {e}",
                self.socket.display()
            ))
            .into()
        })
    }

    fn head(method: &str, target: &str, extra: &str) -> String {
        format!(
            "{method} /v{API_VERSION}{target} HTTP/1.1\r\nHost: skiff\r\nUser-Agent: skiff/{}\r\n{extra}\r\n",
            env!("CARGO_PKG_VERSION")
        )
    }

    /// Send a request; the response comes back once its head has arrived.
    pub async fn request(&self, method: &str, target: &str, body: Body<'_>) -> Result<Response> {
        self.request_with(method, target, &[], body).await
    }

    /// `request` with headers of its own (`X-Registry-Auth` for a pull).
    pub async fn request_with(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, String)],
        body: Body<'_>,
    ) -> Result<Response> {
        let mut conn = self.connect().await?;
        let mut own = String::new();
        for (k, v) in headers {
            if v.contains(['\r', '\n']) {
                return Err(SkiffError::new(format!("skiff: invalid {k} header value")).into());
            }
            own.push_str(&format!("{k}: {v}\r\n"));
        }
        match body {
            Body::None => {
                // As the Go client: an empty body is announced on requests that may have one.
                let extra = if method == "GET" || method == "HEAD" {
                    format!("{own}Connection: close\r\n")
                } else {
                    format!("{own}Connection: close\r\nContent-Length: 0\r\n")
                };
                let head = Self::head(method, target, &extra);
                conn.write_all(head.as_bytes()).await?;
            }
            Body::Json(v) => {
                let mut data = serde_json::to_vec(v)?;
                data.push(b'\n');
                let head = Self::head(
                    method,
                    target,
                    &format!(
                        "{own}Connection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
                        data.len()
                    ),
                );
                let mut all = head.into_bytes();
                all.extend_from_slice(&data);
                conn.write_all(&all).await?;
            }
            Body::Stream(mut rx) => {
                let head = Self::head(
                    method,
                    target,
                    &format!("{own}Connection: close\r\nContent-Type: application/x-tar\r\nTransfer-Encoding: chunked\r\n"),
                );
                conn.write_all(head.as_bytes()).await?;
                // An agent that refuses the request early answers before the body is done;
                // read that answer instead of failing on the broken pipe.
                let (rd, mut wr) = conn.into_split();
                let mut reader = BufReader::with_capacity(64 << 10, rd);
                loop {
                    tokio::select! {
                        chunk = rx.recv() => {
                            let Some(chunk) = chunk else {
                                // A failed end-of-body write is the agent having answered
                                // already; reading its head below tells what happened.
                                let _ = wr.write_all(b"0\r\n\r\n").await;
                                break;
                            };
                            if chunk.is_empty() { continue; }
                            let frame = format!("{:x}\r\n", chunk.len());
                            let ok = wr.write_all(frame.as_bytes()).await.is_ok()
                                && wr.write_all(&chunk).await.is_ok()
                                && wr.write_all(b"\r\n").await.is_ok();
                            if !ok { break; }
                        }
                        // Only peeks (cancel-safe): the head is read once we stop sending.
                        _ = reader.fill_buf() => break,
                    }
                }
                let head = read_head(&mut reader).await?;
                drop(rx);
                let leftover = reader.buffer().to_vec();
                let conn = reader
                    .into_inner()
                    .reunite(wr)
                    .map_err(|e| anyhow::anyhow!(e))?;
                return Ok(Response::new(head, method, conn, leftover));
            }
        }
        let mut reader = BufReader::with_capacity(64 << 10, conn);
        let head = read_head(&mut reader).await?;
        let leftover = reader.buffer().to_vec();
        let conn = reader.into_inner();
        Ok(Response::new(head, method, conn, leftover))
    }

    /// A request whose error status becomes docker's "Error response from daemon: …".
    pub async fn call(&self, method: &str, target: &str, body: Body<'_>) -> Result<Response> {
        self.call_with(method, target, &[], body).await
    }

    /// `call` with headers of its own.
    pub async fn call_with(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, String)],
        body: Body<'_>,
    ) -> Result<Response> {
        let resp = self.request_with(method, target, headers, body).await?;
        if resp.status >= 400 {
            return Err(resp.into_error().await);
        }
        Ok(resp)
    }

    /// A request whose JSON answer is wanted.
    pub async fn json(&self, method: &str, target: &str, body: Body<'_>) -> Result<Value> {
        self.call(method, target, body).await?.json().await
    }

    /// `POST …` with `Connection: Upgrade` / `Upgrade: tcp`: the attach and exec-start
    /// protocol. Returns the raw connection (a std socket, to be driven from threads) and
    /// whatever the agent sent after the head.
    pub async fn hijack(&self, target: &str, body: Option<&Value>) -> Result<Hijacked> {
        let mut conn = self.connect().await?;
        let data = match body {
            Some(v) => {
                let mut d = serde_json::to_vec(v)?;
                d.push(b'\n');
                d
            }
            None => Vec::new(),
        };
        let ctype = if body.is_some() {
            "application/json"
        } else {
            "text/plain"
        };
        let head = Self::head(
            "POST",
            target,
            &format!(
                "Connection: Upgrade\r\nUpgrade: tcp\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n",
                data.len()
            ),
        );
        let mut all = head.into_bytes();
        all.extend_from_slice(&data);
        conn.write_all(&all).await?;
        let mut reader = BufReader::with_capacity(64 << 10, conn);
        let head = read_head(&mut reader).await?;
        let leftover = reader.buffer().to_vec();
        let conn = reader.into_inner();
        // Old daemons answer 200 and stream right after the head; dockerd answers 101.
        if head.status != 101 && head.status != 200 {
            let resp = Response::new(head, "POST", conn, leftover);
            return Err(resp.into_error().await);
        }
        let std = conn.into_std()?;
        std.set_nonblocking(false)?;
        Ok(Hijacked {
            conn: std,
            leftover,
        })
    }
}

/// A connection taken over for raw streams after a `101 UPGRADED`.
pub struct Hijacked {
    pub conn: StdUnixStream,
    pub leftover: Vec<u8>,
}

pub struct Head {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
}

impl Head {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

async fn read_head<R: tokio::io::AsyncBufRead + Unpin>(r: &mut R) -> Result<Head> {
    let mut raw = Vec::new();
    loop {
        let before = raw.len();
        let n = r.read_until(b'\n', &mut raw).await?;
        if n == 0 {
            return Err(SkiffError::new(
                "skiff: the agent closed the connection without answering",
            )
            .into());
        }
        if raw.len() > MAX_HEAD {
            return Err(SkiffError::new("skiff: oversized response head from the agent").into());
        }
        let line = &raw[before..];
        if (line == b"\r\n" || line == b"\n") && before > 0 {
            break;
        }
    }
    parse_head(&raw).ok_or_else(|| {
        SkiffError::new(format!(
            "skiff: malformed response from the agent: {:?}",
            String::from_utf8_lossy(&raw[..raw.len().min(200)])
        ))
        .into()
    })
}

/// Parse an HTTP/1.x response head (status line and headers, up to the blank line).
pub fn parse_head(raw: &[u8]) -> Option<Head> {
    let text = std::str::from_utf8(raw).ok()?;
    let mut lines = text.split('\n').map(|l| l.trim_end_matches('\r'));
    let status_line = lines.next()?;
    let mut parts = status_line.splitn(3, ' ');
    let proto = parts.next()?;
    if !proto.starts_with("HTTP/1.") {
        return None;
    }
    let status: u16 = parts.next()?.parse().ok()?;
    let reason = parts.next().unwrap_or("").to_string();
    let mut headers = Vec::new();
    for l in lines {
        if l.is_empty() {
            break;
        }
        let (k, v) = l.split_once(':')?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    Some(Head {
        status,
        reason,
        headers,
    })
}

enum Framing {
    Length(u64),
    Chunked { left: u64, done: bool },
    UntilClose,
    Empty,
}

/// A response whose body is read as it arrives.
pub struct Response {
    pub status: u16,
    pub head: Head,
    reader: BufReader<ChainRead>,
    framing: Framing,
    /// Body bytes read past the last line `json_line` returned.
    pending: Vec<u8>,
}

/// The bytes already buffered behind the head, then the socket.
struct ChainRead {
    pre: Vec<u8>,
    pos: usize,
    conn: UnixStream,
}

impl tokio::io::AsyncRead for ChainRead {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if self.pos < self.pre.len() {
            let n = (self.pre.len() - self.pos).min(buf.remaining());
            let start = self.pos;
            buf.put_slice(&self.pre[start..start + n]);
            self.pos += n;
            return std::task::Poll::Ready(Ok(()));
        }
        std::pin::Pin::new(&mut self.conn).poll_read(cx, buf)
    }
}

impl Response {
    fn new(head: Head, method: &str, conn: UnixStream, leftover: Vec<u8>) -> Self {
        let framing = if method == "HEAD" || head.status == 204 || head.status == 304 {
            Framing::Empty
        } else if head
            .header("Transfer-Encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
        {
            Framing::Chunked {
                left: 0,
                done: false,
            }
        } else if let Some(n) = head
            .header("Content-Length")
            .and_then(|v| v.parse::<u64>().ok())
        {
            Framing::Length(n)
        } else {
            Framing::UntilClose
        };
        Response {
            status: head.status,
            head,
            reader: BufReader::with_capacity(
                256 << 10,
                ChainRead {
                    pre: leftover,
                    pos: 0,
                    conn,
                },
            ),
            framing,
            pending: Vec::new(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.header(name)
    }

    /// The next piece of the body, `None` at its end.
    pub async fn chunk(&mut self) -> Result<Option<Vec<u8>>> {
        const MAX: usize = 1 << 20;
        loop {
            match &mut self.framing {
                Framing::Empty => return Ok(None),
                Framing::Length(0) => return Ok(None),
                Framing::Length(left) => {
                    let want = (*left).min(MAX as u64) as usize;
                    let mut buf = vec![0u8; want];
                    let n = self.reader.read(&mut buf).await?;
                    if n == 0 {
                        return Err(truncated());
                    }
                    *left -= n as u64;
                    buf.truncate(n);
                    return Ok(Some(buf));
                }
                Framing::UntilClose => {
                    let mut buf = vec![0u8; 256 << 10];
                    let n = self.reader.read(&mut buf).await?;
                    if n == 0 {
                        return Ok(None);
                    }
                    buf.truncate(n);
                    return Ok(Some(buf));
                }
                Framing::Chunked { done: true, .. } => return Ok(None),
                Framing::Chunked { left, done } => {
                    if *left == 0 {
                        let mut line = Vec::new();
                        if self.reader.read_until(b'\n', &mut line).await? == 0 {
                            return Err(truncated());
                        }
                        let text = String::from_utf8_lossy(&line);
                        let size = text.trim().split(';').next().unwrap_or("").trim();
                        let size = u64::from_str_radix(size, 16).map_err(|_| {
                            anyhow::anyhow!("bad chunk size from the agent: {:?}", text.trim())
                        })?;
                        if size == 0 {
                            // Trailers, then the final blank line.
                            loop {
                                line.clear();
                                let n = self.reader.read_until(b'\n', &mut line).await?;
                                if n == 0 || line == b"\r\n" || line == b"\n" {
                                    break;
                                }
                            }
                            *done = true;
                            return Ok(None);
                        }
                        *left = size;
                        continue;
                    }
                    let want = (*left).min(MAX as u64) as usize;
                    let mut buf = vec![0u8; want];
                    let n = self.reader.read(&mut buf).await?;
                    if n == 0 {
                        return Err(truncated());
                    }
                    *left -= n as u64;
                    buf.truncate(n);
                    if *left == 0 {
                        let mut crlf = Vec::new();
                        self.reader.read_until(b'\n', &mut crlf).await?;
                    }
                    return Ok(Some(buf));
                }
            }
        }
    }

    /// The next message of a JSON-lines stream (pull progress), as soon as it has arrived;
    /// `None` at the end of the body. Blank lines are skipped.
    pub async fn json_line(&mut self) -> Result<Option<Value>> {
        loop {
            if let Some(i) = self.pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=i).collect();
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return parse_json(&line).map(Some);
            }
            match self.chunk().await? {
                Some(c) => self.pending.extend_from_slice(&c),
                None if self.pending.iter().all(u8::is_ascii_whitespace) => return Ok(None),
                None => {
                    let rest = std::mem::take(&mut self.pending);
                    return parse_json(&rest).map(Some);
                }
            }
        }
    }

    pub async fn bytes(mut self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(c) = self.chunk().await? {
            out.extend_from_slice(&c);
        }
        Ok(out)
    }

    pub async fn json(self) -> Result<Value> {
        let body = self.bytes().await?;
        if body.iter().all(|b| b.is_ascii_whitespace()) {
            return Ok(Value::Null);
        }
        parse_json(&body)
    }

    /// docker's "Error response from daemon: …" for an error status (exit 1); the status
    /// stays readable through `status_of`.
    pub async fn into_error(self) -> anyhow::Error {
        let status = self.status;
        let reason = self.head.reason.clone();
        let body = tokio::time::timeout(Duration::from_secs(10), self.bytes())
            .await
            .ok()
            .and_then(|r| r.ok())
            .unwrap_or_default();
        let message = format!(
            "Error response from daemon: {}",
            error_message(status, &reason, &body)
        );
        anyhow::Error::new(SkiffError::daemon(message.clone()))
            .context(ApiStatus { status, message })
    }
}

fn parse_json(body: &[u8]) -> Result<Value> {
    serde_json::from_slice(body).map_err(|e| {
        SkiffError::new(format!("skiff: unreadable answer from the agent: {e}")).into()
    })
}

fn truncated() -> anyhow::Error {
    SkiffError::new("skiff: the agent closed the connection in the middle of an answer").into()
}

/// The engine's `{"message": …}`, or the body as text, or what docker says for neither.
pub fn error_message(status: u16, reason: &str, body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        if let Some(m) = v.get("message").and_then(Value::as_str) {
            if !m.trim().is_empty() {
                return m.trim().to_string();
            }
        }
    }
    let text = String::from_utf8_lossy(body).trim().to_string();
    if !text.is_empty() {
        return text;
    }
    format!("request returned {status} {reason} for API route, check if the server supports the requested API version")
}

/// The status of an engine error made by `into_error`.
#[derive(Debug)]
pub struct ApiStatus {
    pub status: u16,
    pub message: String,
}

impl std::fmt::Display for ApiStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

pub fn status_of(e: &anyhow::Error) -> Option<u16> {
    e.downcast_ref::<ApiStatus>().map(|s| s.status)
}

/// The text an error prints (for an engine error: "Error response from daemon: …").
pub fn message_of(e: &anyhow::Error) -> String {
    match e.downcast_ref::<SkiffError>() {
        Some(se) => se.message.clone(),
        None => format!("{e:#}"),
    }
}

/// Percent-encode one path segment (a container name, an exec ID).
pub fn seg(s: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(s, SET).to_string()
}

/// A query string as Go's `url.Values.Encode` writes it: keys sorted, values escaped.
pub fn query(pairs: &[(&str, String)]) -> String {
    let mut sorted: Vec<&(&str, String)> = pairs.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let mut out = String::new();
    for (k, v) in sorted {
        out.push(if out.is_empty() { '?' } else { '&' });
        out.push_str(&go_query_escape(k));
        out.push('=');
        out.push_str(&go_query_escape(v));
    }
    out
}

fn go_query_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// `--filter key=value` flags in docker's map form (`{"status":{"exited":true}}`), as the
/// docker CLI sends them: the one parser of every command's filter flag.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Filters(serde_json::Map<String, Value>);

impl Filters {
    /// Parse the flags; `flag` is the flag's spelling for the error ("-f, --filter", or
    /// "--filter" for prune, whose `-f` is `--force").
    pub fn parse(flags: &[String], flag: &str) -> Result<Filters> {
        let mut out = Filters::default();
        for f in flags {
            let (k, v) = f.split_once('=').ok_or_else(|| {
                SkiffError::new(format!("invalid argument \"{f}\" for \"{flag}\" flag: bad format of filter (expected name=value)"))
            })?;
            out.add(&k.trim().to_lowercase(), v.trim());
        }
        Ok(out)
    }

    /// One more value for a key (values of one key are ORed by the engine).
    pub fn add(&mut self, key: &str, value: &str) {
        let entry = self
            .0
            .entry(key.to_string())
            .or_insert_with(|| Value::Object(Default::default()));
        if let Value::Object(inner) = entry {
            inner.insert(value.to_string(), Value::Bool(true));
        }
    }

    /// The key with this one value, whatever was given for it.
    pub fn set(&mut self, key: &str, value: &str) {
        self.0.remove(key);
        self.add(key, value);
    }

    /// The `filters` query value; `None` when there are none.
    pub fn to_query(&self) -> Option<String> {
        (!self.0.is_empty()).then(|| Value::Object(self.0.clone()).to_string())
    }
}

/// The `filters` query value of `-f, --filter` flags.
pub fn filters_json(flags: &[String]) -> Result<Option<String>> {
    filters_json_flag(flags, "-f, --filter")
}

/// `filters_json` for a command whose filter flag has another spelling (prune's `--filter`
/// has no `-f`, which is its `--force`), so the error names the flag as typed.
pub fn filters_json_flag(flags: &[String], flag: &str) -> Result<Option<String>> {
    Ok(Filters::parse(flags, flag)?.to_query())
}

/// A `Write` that hands a request body (`Body::Stream`) over from a blocking thread in pieces
/// of `piece` bytes, counting what it sent.
pub struct BodyWriter {
    tx: tokio::sync::mpsc::Sender<Vec<u8>>,
    buf: Vec<u8>,
    piece: usize,
    counter: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl BodyWriter {
    pub fn new(
        tx: tokio::sync::mpsc::Sender<Vec<u8>>,
        counter: std::sync::Arc<std::sync::atomic::AtomicU64>,
        piece: usize,
    ) -> Self {
        BodyWriter {
            tx,
            buf: Vec::with_capacity(piece),
            piece,
            counter,
        }
    }

    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let piece = std::mem::replace(&mut self.buf, Vec::with_capacity(self.piece));
        self.counter
            .fetch_add(piece.len() as u64, std::sync::atomic::Ordering::Relaxed);
        self.tx.blocking_send(piece).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the agent stopped reading")
        })
    }
}

impl std::io::Write for BodyWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= self.piece {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_sorted_and_escaped_like_go() {
        assert_eq!(
            query(&[
                ("stream", "1".into()),
                ("stdout", "1".into()),
                ("stderr", "1".into())
            ]),
            "?stderr=1&stdout=1&stream=1"
        );
        assert_eq!(
            query(&[("path", "/etc/host name".into())]),
            "?path=%2Fetc%2Fhost+name"
        );
        assert_eq!(
            query(&[("filters", r#"{"status":{"exited":true}}"#.into())]),
            "?filters=%7B%22status%22%3A%7B%22exited%22%3Atrue%7D%7D"
        );
    }

    /// A response read from `raw`, as the agent would send it on the socket.
    async fn response(method: &str, raw: Vec<u8>) -> Response {
        let (mut agent, client) = UnixStream::pair().unwrap();
        tokio::spawn(async move {
            agent.write_all(&raw).await.unwrap();
        });
        let mut reader = BufReader::new(client);
        let head = read_head(&mut reader).await.unwrap();
        let leftover = reader.buffer().to_vec();
        Response::new(head, method, reader.into_inner(), leftover)
    }

    fn with_length(head: &str, body: &str) -> Vec<u8> {
        format!("{head}\r\nContent-Length: {}\r\n\r\n{body}", body.len()).into_bytes()
    }

    fn chunked(chunks: &[&str]) -> Vec<u8> {
        let mut out = String::from("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        for c in chunks {
            out.push_str(&format!("{:x}\r\n{c}\r\n", c.len()));
        }
        out.push_str("0\r\n\r\n");
        out.into_bytes()
    }

    #[tokio::test]
    async fn engine_errors_read_the_same_everywhere() {
        let body = "{\"message\":\"No such image: nope\"}\n";
        let r = response("GET", with_length("HTTP/1.1 404 Not Found", body)).await;
        let e = r.into_error().await;
        assert_eq!(status_of(&e), Some(404));
        assert_eq!(
            message_of(&e),
            "Error response from daemon: No such image: nope"
        );
        let se = e.downcast_ref::<SkiffError>().expect("a SkiffError");
        assert_eq!(se.code, 1, "engine errors exit 1, as docker's");

        let r = response(
            "POST",
            with_length("HTTP/1.1 500 Internal Server Error", ""),
        )
        .await;
        let e = r.into_error().await;
        assert_eq!(status_of(&e), Some(500));
        assert!(message_of(&e)
            .starts_with("Error response from daemon: request returned 500 Internal Server Error"));

        // A failure that is not the engine's answer has no status.
        let e: anyhow::Error = SkiffError::new("skiff: cannot connect").into();
        assert_eq!(status_of(&e), None);
        assert_eq!(message_of(&e), "skiff: cannot connect");
    }

    #[tokio::test]
    async fn json_lines_arrive_one_by_one() {
        let raw = chunked(&[
            "{\"status\":\"a\"}\n{\"stat",
            "us\":\"b\"}\n\n",
            "{\"s\":1}",
        ]);
        let mut r = response("POST", raw).await;
        assert_eq!(r.json_line().await.unwrap().unwrap()["status"], "a");
        assert_eq!(r.json_line().await.unwrap().unwrap()["status"], "b");
        // The last line needs no newline.
        assert_eq!(r.json_line().await.unwrap().unwrap()["s"], 1);
        assert!(r.json_line().await.unwrap().is_none());
    }

    #[test]
    fn one_filter_parser_for_every_command() {
        let mut f =
            Filters::parse(&[" Dangling = true".into(), "label=a=b".into()], "--filter").unwrap();
        f.add("reference", "busy*");
        assert_eq!(
            f.to_query().unwrap(),
            r#"{"dangling":{"true":true},"label":{"a=b":true},"reference":{"busy*":true}}"#
        );
        // prune's own `dangling` replaces the user's.
        f.set("dangling", "false");
        assert_eq!(
            serde_json::from_str::<Value>(&f.to_query().unwrap()).unwrap()["dangling"],
            serde_json::json!({"false": true})
        );
        assert_eq!(Filters::parse(&[], "--filter").unwrap().to_query(), None);
        let e = Filters::parse(&["dangling".into()], "--filter").unwrap_err();
        assert_eq!(
            message_of(&e),
            r#"invalid argument "dangling" for "--filter" flag: bad format of filter (expected name=value)"#
        );
        let e = filters_json(&["x".into()]).unwrap_err();
        assert!(message_of(&e).contains(r#"for "-f, --filter" flag"#));
    }

    #[test]
    fn filters_take_docker_map_form() {
        let f = filters_json(&["status=exited".into(), "status=created".into()])
            .unwrap()
            .unwrap();
        let v: Value = serde_json::from_str(&f).unwrap();
        assert_eq!(v["status"]["exited"], Value::Bool(true));
        assert_eq!(v["status"]["created"], Value::Bool(true));
        assert!(filters_json(&["nonsense".into()]).is_err());
    }

    #[test]
    fn heads_parse() {
        let h = parse_head(b"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\nConnection: Upgrade\r\n\r\n").unwrap();
        assert_eq!(h.status, 101);
        assert_eq!(h.reason, "UPGRADED");
        assert_eq!(
            h.header("content-type"),
            Some("application/vnd.docker.raw-stream")
        );
        assert!(parse_head(b"garbage\r\n\r\n").is_none());
    }

    #[test]
    fn error_messages_like_docker() {
        assert_eq!(
            error_message(404, "Not Found", br#"{"message":"No such container: x"}"#),
            "No such container: x"
        );
        assert_eq!(error_message(500, "x", b"plain\n"), "plain");
        assert!(error_message(404, "Not Found", b"").starts_with("request returned 404"));
        assert_eq!(seg("a b/c"), "a%20b%2Fc");
    }
}
