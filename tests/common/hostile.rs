//! A tiny registry that misbehaves on purpose: it serves canned answers per path (a malformed
//! manifest, a blob cut short, …) on 127.0.0.1 so tests can check skiff's errors.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;

#[derive(Clone)]
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
    /// Announce this Content-Length but send only `body` (a truncated download).
    pub claimed_len: Option<usize>,
}

impl Answer {
    pub fn json(body: impl Into<Vec<u8>>, content_type: &str) -> Self {
        Answer {
            status: 200,
            content_type: content_type.into(),
            body: body.into(),
            claimed_len: None,
        }
    }
}

pub struct HostileRegistry {
    pub addr: String,
    routes: Arc<Mutex<HashMap<String, Answer>>>,
    auth: Arc<Mutex<Option<BearerAuth>>>,
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
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind hostile registry");
        let addr = listener.local_addr().expect("addr").to_string();
        let routes: Arc<Mutex<HashMap<String, Answer>>> = Arc::new(Mutex::new(HashMap::new()));
        routes
            .lock()
            .expect("lock")
            .insert("/v2/".into(), Answer::json("{}", "application/json"));
        let r = routes.clone();
        let auth: Arc<Mutex<Option<BearerAuth>>> = Arc::new(Mutex::new(None));
        let a = auth.clone();
        let realm = format!("http://{addr}/token");
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let r = r.clone();
                let a = a.clone();
                let realm = realm.clone();
                thread::spawn(move || serve(stream, r, a, realm));
            }
        });
        HostileRegistry { addr, routes, auth }
    }

    pub fn require_bearer(&self, auth: BearerAuth) {
        *self.auth.lock().expect("lock") = Some(auth);
    }

    pub fn route(&self, path: &str, answer: Answer) {
        self.routes
            .lock()
            .expect("lock")
            .insert(path.into(), answer);
    }
}

/// The token flow, when the registry is set to require it: an answer that stands in for the
/// route (a token, or a 401 with its challenge), and extra response headers.
fn check_auth(
    auth: &Mutex<Option<BearerAuth>>,
    path: &str,
    authorization: Option<&str>,
    realm: &str,
) -> (Option<Answer>, String) {
    let Some(req) = auth.lock().expect("lock").clone() else {
        return (None, String::new());
    };
    let refuse = |body: &[u8]| Answer {
        status: 401,
        content_type: "application/json".into(),
        body: body.to_vec(),
        claimed_len: None,
    };
    if path == "/token" {
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

fn serve(
    stream: TcpStream,
    routes: Arc<Mutex<HashMap<String, Answer>>>,
    auth: Arc<Mutex<Option<BearerAuth>>>,
    realm: String,
) {
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
        let (gate, extra_headers) = check_auth(&auth, &path, authorization.as_deref(), &realm);
        let answer = gate
            .or_else(|| routes.lock().expect("lock").get(&path).cloned())
            .unwrap_or(Answer {
                status: 404,
                content_type: "application/json".into(),
                body: br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#
                    .to_vec(),
                claimed_len: None,
            });
        let len = answer.claimed_len.unwrap_or(answer.body.len());
        let head = format!(
            "HTTP/1.1 {} X\r\nContent-Type: {}\r\nContent-Length: {len}\r\nDocker-Distribution-API-Version: registry/2.0\r\n{extra_headers}\r\n",
            answer.status, answer.content_type
        );
        if stream.write_all(head.as_bytes()).is_err() {
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
