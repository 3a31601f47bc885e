//! A tiny registry that misbehaves on purpose: it serves canned answers per path (a malformed
//! manifest, a blob cut short, …) on 127.0.0.1 so tests can check skiff's errors; and the
//! hostile layers it can serve as real images.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

#[derive(Clone)]
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
    /// Announce this Content-Length but send only `body` (a truncated download).
    pub claimed_len: Option<usize>,
    /// Further response headers (a redirect's `Location`).
    pub headers: Vec<(String, String)>,
    /// Send this many bytes of the body, then hold the connection open, silent.
    pub stall_after: Option<usize>,
}

impl Answer {
    pub fn json(body: impl Into<Vec<u8>>, content_type: &str) -> Self {
        Answer {
            status: 200,
            content_type: content_type.into(),
            body: body.into(),
            claimed_len: None,
            headers: Vec::new(),
            stall_after: None,
        }
    }

    pub fn status(status: u16, body: &str) -> Self {
        Answer {
            status,
            ..Answer::json(body, "application/json")
        }
    }

    pub fn redirect(location: &str) -> Self {
        Answer {
            headers: vec![("Location".into(), location.into())],
            ..Answer::status(307, "")
        }
    }
}

/// A request the registry saw.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub authorization: Option<String>,
}

#[derive(Default)]
struct Shared {
    routes: HashMap<String, Answer>,
    auth: Option<BearerAuth>,
    /// Path → how many more requests get a 503 before the route answers.
    failing: HashMap<String, usize>,
    seen: Vec<Seen>,
    garbage_tokens: bool,
}

pub struct HostileRegistry {
    pub addr: String,
    shared: Arc<Mutex<Shared>>,
}

/// A token-protected registry: `/v2/…` wants `Authorization: Bearer <token>`, and the token
/// endpoint hands it out for the right basic credentials only.
#[derive(Clone)]
pub struct BearerAuth {
    pub token: String,
    /// The `Authorization` header the token endpoint wants (e.g. `Basic …`); None = anonymous.
    pub token_credentials: Option<String>,
}

impl HostileRegistry {
    pub fn start() -> Self {
        Self::start_on("127.0.0.1")
    }

    /// On another loopback address (127.0.0.2 is another host as far as clients can tell).
    pub fn start_on(ip: &str) -> Self {
        let listener = TcpListener::bind((ip, 0)).expect("bind hostile registry");
        let addr = listener.local_addr().expect("addr").to_string();
        let mut shared = Shared::default();
        shared
            .routes
            .insert("/v2/".into(), Answer::json("{}", "application/json"));
        let shared = Arc::new(Mutex::new(shared));
        let s = shared.clone();
        let realm = format!("http://{addr}/token");
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let s = s.clone();
                let realm = realm.clone();
                thread::spawn(move || serve(stream, s, realm));
            }
        });
        HostileRegistry { addr, shared }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn require_bearer(&self, auth: BearerAuth) {
        self.lock().auth = Some(auth);
    }

    /// The token endpoint answers with bytes that are no token at all.
    pub fn serve_garbage_tokens(&self) {
        self.lock().garbage_tokens = true;
    }

    /// The next `n` requests for `path` get a 503.
    pub fn fail_first(&self, path: &str, n: usize) {
        self.lock().failing.insert(path.into(), n);
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.lock().seen.clone()
    }

    /// The body served at `path` (empty when there is none).
    pub fn body(&self, path: &str) -> Vec<u8> {
        self.lock()
            .routes
            .get(path)
            .map(|a| a.body.clone())
            .unwrap_or_default()
    }

    pub fn route(&self, path: &str, answer: Answer) {
        self.lock().routes.insert(path.into(), answer);
    }
}

/// The token flow, when the registry is set to require it: an answer that stands in for the
/// route (a token, or a 401 with its challenge), and extra response headers.
fn check_auth(
    shared: &Shared,
    path: &str,
    authorization: Option<&str>,
    realm: &str,
) -> (Option<Answer>, String) {
    let Some(req) = shared.auth.clone() else {
        return (None, String::new());
    };
    let refuse = |body: &[u8]| Answer {
        status: 401,
        ..Answer::json(body.to_vec(), "application/json")
    };
    if path == "/token" {
        if shared.garbage_tokens {
            return (
                Some(Answer::json("\u{0}<html>not a token", "application/json")),
                String::new(),
            );
        }
        if req.token_credentials.is_none() || authorization == req.token_credentials.as_deref() {
            return (
                Some(Answer::json(
                    format!(r#"{{"token":"{}"}}"#, req.token),
                    "application/json",
                )),
                String::new(),
            );
        }
        return (
            Some(refuse(br#"{"details":"incorrect username or password"}"#)),
            String::new(),
        );
    }
    if path.starts_with("/v2/") && authorization != Some(format!("Bearer {}", req.token).as_str()) {
        let challenge =
            format!("WWW-Authenticate: Bearer realm=\"{realm}\",service=\"hostile\"\r\n");
        return (
            Some(refuse(
                br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
            )),
            challenge,
        );
    }
    (None, String::new())
}

fn serve(stream: TcpStream, shared: Arc<Mutex<Shared>>, realm: String) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut stream = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let path = parts
            .next()
            .unwrap_or("")
            .split('?')
            .next()
            .unwrap_or("")
            .to_string();
        let mut authorization = None;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                if k.eq_ignore_ascii_case("authorization") {
                    authorization = Some(v.trim().to_string());
                }
            }
        }
        let (answer, extra_headers) = {
            let mut sh = shared.lock().unwrap_or_else(|e| e.into_inner());
            sh.seen.push(Seen {
                method: method.clone(),
                path: path.clone(),
                authorization: authorization.clone(),
            });
            let (gate, extra) = check_auth(&sh, &path, authorization.as_deref(), &realm);
            let failing = match sh.failing.get_mut(&path) {
                Some(n) if *n > 0 => {
                    *n -= 1;
                    Some(Answer::status(503, "the registry is restarting"))
                }
                _ => None,
            };
            let answer = gate
                .or(failing)
                .or_else(|| sh.routes.get(&path).cloned())
                .unwrap_or(Answer::status(
                    404,
                    r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#,
                ));
            (answer, extra)
        };
        let len = answer.claimed_len.unwrap_or(answer.body.len());
        let mut head = format!(
            "HTTP/1.1 {} X\r\nContent-Type: {}\r\nContent-Length: {len}\r\nDocker-Distribution-API-Version: registry/2.0\r\n{extra_headers}",
            answer.status, answer.content_type
        );
        for (k, v) in &answer.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        if stream.write_all(head.as_bytes()).is_err() {
            return;
        }
        if let Some(n) = answer.stall_after {
            let _ = stream.write_all(&answer.body[..n.min(answer.body.len())]);
            let _ = stream.flush();
            // Silent until the client gives up and closes.
            let mut sink = [0u8; 1024];
            let _ = stream.set_read_timeout(Some(Duration::from_secs(600)));
            let _ = std::io::Read::read(&mut stream, &mut sink);
            return;
        }
        if method != "HEAD" && stream.write_all(&answer.body).is_err() {
            return;
        }
        if answer.claimed_len.is_some() {
            // Close mid-body: the client sees a truncated download.
            let _ = stream.shutdown(std::net::Shutdown::Both);
            return;
        }
    }
}

/// A layer's tar stream built entry by entry, names and link targets as raw bytes: the tar
/// crate's own path setters refuse exactly the hostile names this exists to make.
pub struct LayerTar {
    builder: tar::Builder<Vec<u8>>,
}

impl Default for LayerTar {
    fn default() -> Self {
        LayerTar {
            builder: tar::Builder::new(Vec::new()),
        }
    }
}

impl LayerTar {
    pub fn file(self, name: &[u8], data: &[u8]) -> Self {
        self.file_mode(name, data, 0o644)
    }
    pub fn file_mode(mut self, name: &[u8], data: &[u8], mode: u32) -> Self {
        self.entry(name, tar::EntryType::Regular, data, b"", mode, (0, 0));
        self
    }
    pub fn dir(mut self, name: &[u8]) -> Self {
        self.entry(name, tar::EntryType::Directory, b"", b"", 0o755, (0, 0));
        self
    }
    pub fn symlink(mut self, name: &[u8], target: &[u8]) -> Self {
        self.entry(name, tar::EntryType::Symlink, b"", target, 0o777, (0, 0));
        self
    }
    pub fn hardlink(mut self, name: &[u8], target: &[u8]) -> Self {
        self.entry(name, tar::EntryType::Link, b"", target, 0o644, (0, 0));
        self
    }
    /// A device node, fifo or socket-like entry (`kind` `Char`, `Block` or `Fifo`).
    pub fn node(mut self, name: &[u8], kind: tar::EntryType, dev: (u32, u32)) -> Self {
        self.entry(name, kind, b"", b"", 0o666, dev);
        self
    }
    pub fn finish(self) -> Vec<u8> {
        self.builder.into_inner().expect("tar in memory")
    }

    fn entry(
        &mut self,
        name: &[u8],
        kind: tar::EntryType,
        data: &[u8],
        link: &[u8],
        mode: u32,
        dev: (u32, u32),
    ) {
        for (long, bytes) in [
            (tar::EntryType::GNULongName, name),
            (tar::EntryType::GNULongLink, link),
        ] {
            if bytes.len() >= 100 {
                let mut h = tar::Header::new_gnu();
                h.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
                h.set_entry_type(long);
                h.set_size(bytes.len() as u64 + 1);
                h.set_mode(0o644);
                h.set_uid(0);
                h.set_gid(0);
                h.set_mtime(0);
                h.set_cksum();
                let mut body = bytes.to_vec();
                body.push(0);
                self.builder.append(&h, &body[..]).expect("tar in memory");
            }
        }
        let mut h = tar::Header::new_gnu();
        let n = name.len().min(100);
        h.as_old_mut().name[..n].copy_from_slice(&name[..n]);
        let l = link.len().min(100);
        h.as_old_mut().linkname[..l].copy_from_slice(&link[..l]);
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_mtime(1_700_000_000);
        h.set_uid(0);
        h.set_gid(0);
        h.set_device_major(dev.0).expect("gnu header");
        h.set_device_minor(dev.1).expect("gnu header");
        h.set_cksum();
        self.builder.append(&h, data).expect("tar in memory");
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use flate2::write::GzEncoder;
    let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).expect("gzip in memory");
    enc.finish().expect("gzip in memory")
}

/// A gzipped layer whose only entry is a PAX header of `declared` bytes (one valid `comment`
/// record, so that a reader that takes it whole accepts it), then a small file: the tar
/// stream is built and compressed piece by piece, never whole in memory. Returns the blob and
/// the diff ID (the digest of the uncompressed tar).
pub fn huge_pax_layer(declared: u64) -> (Vec<u8>, String) {
    use sha2::{Digest, Sha256};
    struct Out {
        gz: flate2::write::GzEncoder<Vec<u8>>,
        sha: Sha256,
        len: u64,
    }
    impl Out {
        fn put(&mut self, data: &[u8]) {
            self.gz.write_all(data).expect("gzip in memory");
            self.sha.update(data);
            self.len += data.len() as u64;
        }
        fn pad(&mut self) {
            let rest = (512 - self.len % 512) % 512;
            self.put(&vec![0u8; rest as usize]);
        }
    }
    let mut out = Out {
        gz: flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()),
        sha: Sha256::new(),
        len: 0,
    };
    let mut h = tar::Header::new_ustar();
    h.set_path("PaxHeaders/huge").expect("path");
    h.set_entry_type(tar::EntryType::XHeader);
    h.set_size(declared);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_cksum();
    out.put(h.as_bytes());
    // "LEN comment=000…\n", LEN counting the whole record, its own digits included.
    let prefix = format!("{declared} comment=");
    let zeros = declared - prefix.len() as u64 - 1;
    out.put(prefix.as_bytes());
    let chunk = vec![b'0'; 1 << 20];
    let mut left = zeros;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        out.put(&chunk[..n]);
        left -= n as u64;
    }
    out.put(b"\n");
    out.pad();
    let mut h = tar::Header::new_ustar();
    h.set_path("described").expect("path");
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(3);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_700_000_000);
    h.set_cksum();
    out.put(h.as_bytes());
    out.put(b"hi\n");
    out.pad();
    out.put(&[0u8; 1024]);
    let diff_id = format!("sha256:{}", crate::hex_lower(&out.sha.finalize()));
    (out.gz.finish().expect("gzip in memory"), diff_id)
}

impl HostileRegistry {
    /// Serve an image made of these uncompressed layer tars (gzipped here) as `repo:latest`;
    /// returns the layers' (compressed) digests.
    pub fn publish(&self, repo: &str, tars: &[Vec<u8>]) -> Vec<String> {
        let layers: Vec<(Vec<u8>, String)> = tars
            .iter()
            .map(|t| (gzip(t), format!("sha256:{}", crate::sha256_hex(t))))
            .collect();
        self.publish_gzipped(repo, layers)
    }

    /// The same with layers already gzipped, each with its diff ID.
    pub fn publish_gzipped(&self, repo: &str, layers_in: Vec<(Vec<u8>, String)>) -> Vec<String> {
        let mut layers = Vec::new();
        let mut diff_ids = Vec::new();
        let mut descriptors = Vec::new();
        for (blob, diff_id) in layers_in {
            let digest = format!("sha256:{}", crate::sha256_hex(&blob));
            diff_ids.push(format!("\"{diff_id}\""));
            descriptors.push(format!(
                r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{digest}","size":{}}}"#,
                blob.len()
            ));
            self.route(
                &format!("/v2/{repo}/blobs/{digest}"),
                Answer::json(blob, "application/octet-stream"),
            );
            layers.push(digest);
        }
        let config = format!(
            r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":[{}]}},"config":{{"Cmd":["/bin/sh"]}}}}"#,
            diff_ids.join(",")
        );
        let config_digest = format!("sha256:{}", crate::sha256_hex(config.as_bytes()));
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_digest}","size":{}}},"layers":[{}]}}"#,
            config.len(),
            descriptors.join(",")
        );
        self.route(
            &format!("/v2/{repo}/manifests/latest"),
            Answer::json(manifest, "application/vnd.oci.image.manifest.v1+json"),
        );
        self.route(
            &format!("/v2/{repo}/blobs/{config_digest}"),
            Answer::json(config, "application/octet-stream"),
        );
        layers
    }
}
