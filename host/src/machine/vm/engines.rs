//! Separate engines in one machine (`--engine NAME`): the guest's PID 1 starts each with its
//! own state and vsock ports, and the machine daemon serves its API on a unix socket the
//! client names, exactly as it serves the machine's own engine on `api.sock`.
//!
//! The client asks on the daemon's `engines.sock`, one JSON line each way:
//! `{"op":"up","name":N,"socket":PATH,"env":["KEY=VALUE"...]}` (`env`: settings from
//! `skiff_common::vsock::ENGINE_ENV`, applied when the engine starts), `{"op":"rm","name":N}`,
//! `{"op":"ls"}` (the running engines, each with its resident memory), and `{"op":"kill","name":N}` (SIGKILL the engine, as tests of crash survival do natively).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use super::guest;

/// An engine's API as this daemon serves it: the socket, the guest port, the relay.
type Relay = (PathBuf, u32, JoinHandle<()>);

/// The engines whose API this daemon serves, by name.
#[derive(Default)]
pub struct Served {
    by_name: Mutex<HashMap<String, Relay>>,
}

pub async fn serve(listener: UnixListener, device: PathBuf, served: Arc<Served>) {
    loop {
        let Ok((conn, _)) = listener.accept().await else {
            continue;
        };
        let (device, served) = (device.clone(), served.clone());
        tokio::spawn(async move {
            let (rd, mut wr) = conn.into_split();
            let mut line = String::new();
            if BufReader::new(rd).read_line(&mut line).await.is_err() {
                return;
            }
            let answer = match serde_json::from_str::<Value>(&line) {
                Ok(req) => match handle(&req, &device, &served).await {
                    Ok(v) => v,
                    Err(e) => json!({ "error": format!("{e:#}") }),
                },
                Err(e) => json!({ "error": format!("bad request: {e}") }),
            };
            let _ = wr.write_all(format!("{answer}\n").as_bytes()).await;
        });
    }
}

async fn handle(req: &Value, device: &Path, served: &Served) -> Result<Value> {
    let name = req.get("name").and_then(Value::as_str).unwrap_or_default();
    match req.get("op").and_then(Value::as_str).unwrap_or_default() {
        "up" => {
            let socket = req
                .get("socket")
                .and_then(Value::as_str)
                .map(PathBuf::from)
                .context("the request names no socket")?;
            // Checked again here: the words go into PID 1's one-line request.
            let env = req
                .get("env")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let lookup = |k: &str| {
                env.iter()
                    .filter_map(Value::as_str)
                    .find_map(|w| w.strip_prefix(k)?.strip_prefix('=').map(str::to_string))
            };
            let mut request = format!("engine {name}");
            for w in skiff_common::vsock::engine_env_words(lookup) {
                request.push(' ');
                request.push_str(&w);
            }
            let port: u32 = ask_init(device, &request)
                .await?
                .parse()
                .context("PID 1 answered no port")?;
            let mut by_name = served.by_name.lock().await;
            if let Some((path, p, task)) = by_name.get(name) {
                if *path == socket && *p == port && !task.is_finished() {
                    return Ok(json!({ "ok": true }));
                }
            }
            if let Some((old, _, task)) = by_name.remove(name) {
                task.abort();
                let _ = std::fs::remove_file(old);
            }
            // A socket file left by an earlier daemon serves nobody now.
            let _ = std::fs::remove_file(&socket);
            let listener = super::bind_private(&socket)?;
            let task = tokio::spawn(relay(listener, device.to_path_buf(), port));
            by_name.insert(name.to_string(), (socket, port, task));
            Ok(json!({ "ok": true }))
        }
        "rm" => {
            if let Some((path, _, task)) = served.by_name.lock().await.remove(name) {
                task.abort();
                let _ = std::fs::remove_file(path);
            }
            ask_init(device, &format!("engine-rm {name}")).await?;
            Ok(json!({ "ok": true }))
        }
        "kill" => {
            ask_init(device, &format!("engine-kill {name}")).await?;
            Ok(json!({ "ok": true }))
        }
        "ls" => {
            let listed = ask_init(device, "engines").await?;
            Ok(json!({ "engines": parse_engine_list(&listed) }))
        }
        op => bail!("unknown request {op:?}"),
    }
}

/// PID 1's `NAME=KIB …` answer as `[{"name", "memory_kib"}]` (`memory_kib` null when PID 1
/// could not read it).
fn parse_engine_list(listed: &str) -> Vec<serde_json::Value> {
    listed
        .split_whitespace()
        .map(|word| {
            let (name, kib) = match word.split_once('=') {
                Some((name, kib)) => (name, kib.parse::<u64>().ok()),
                None => (word, None),
            };
            json!({ "name": name, "memory_kib": kib })
        })
        .collect()
}

/// Every connection to the engine's socket becomes a vsock stream to its API port.
async fn relay(listener: UnixListener, device: PathBuf, port: u32) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        let device = device.clone();
        tokio::spawn(async move {
            match guest::connect(&device, port).await {
                Ok(up) => {
                    let _ = skiff_common::relay::relay(client, up).await;
                }
                Err(e) => tracing::debug!("engine api: {e:#}"),
            }
        });
    }
}

/// One request to the guest's PID 1 on the init port; the text after `ok`.
pub async fn ask_init(device: &Path, request: &str) -> Result<String> {
    ask_init_made(device, || request.to_string()).await
}

/// The same with a request made once the connection stands (a time sent to the guest must
/// not include the handshake's delay).
pub async fn ask_init_made(device: &Path, make: impl FnOnce() -> String) -> Result<String> {
    let mut request = String::new();
    let answer = ask_init_answer(device, || {
        request = make();
        request.clone()
    })
    .await?;
    answer.map_err(|refusal| anyhow::anyhow!("the VM refused {request:?}: {refusal}"))
}

/// PID 1's answer: `Ok` with the text after `ok`, or `Err` with its refusal; the outer error is
/// for a VM that could not be asked at all.
pub async fn ask_init_answer(
    device: &Path,
    make: impl FnOnce() -> String,
) -> Result<std::result::Result<String, String>> {
    let s = guest::connect(device, skiff_common::vsock::INIT_PORT).await?;
    let request = make();
    let (rd, mut wr) = s.into_split();
    wr.write_all(format!("{request}\n").as_bytes()).await?;
    let mut line = String::new();
    BufReader::new(rd)
        .read_line(&mut line)
        .await
        .context("reading PID 1's answer")?;
    let line = line.trim_end();
    if line.is_empty() {
        bail!("PID 1 closed the connection without an answer");
    }
    Ok(match line.strip_prefix("ok") {
        Some(rest) => Ok(rest.trim_start().to_string()),
        None => Err(line.strip_prefix("error ").unwrap_or(line).to_string()),
    })
}

/// The client side: one request to a running machine's daemon.
pub fn request(daemon_socket: &Path, req: &Value) -> Result<Value> {
    use std::io::{BufRead, Write};
    let mut s = std::os::unix::net::UnixStream::connect(daemon_socket)
        .with_context(|| format!("connecting to {}", daemon_socket.display()))?;
    s.write_all(format!("{req}\n").as_bytes())?;
    let mut line = String::new();
    std::io::BufReader::new(s).read_line(&mut line)?;
    let v: Value = serde_json::from_str(&line).context("the machine daemon's answer")?;
    if let Some(e) = v.get("error").and_then(Value::as_str) {
        bail!("{e}");
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PID 1's answers as the host reads them, over a real unix socket pair standing in for
    /// the device (the handshake, then one line).
    #[tokio::test]
    async fn init_answers_are_parsed_and_refusals_named() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("vsock.sock");
        let l = UnixListener::bind(&sock).unwrap();
        let server = tokio::spawn(async move {
            for answer in ["ok 10000\n", "error invalid engine name \"a/b\"\n"] {
                let (c, _) = l.accept().await.unwrap();
                let mut c = BufReader::new(c);
                let mut line = String::new();
                c.read_line(&mut line).await.unwrap();
                assert_eq!(line, "CONNECT 1028\n");
                c.get_mut().write_all(b"OK 1\n").await.unwrap();
                line.clear();
                c.read_line(&mut line).await.unwrap();
                c.get_mut().write_all(answer.as_bytes()).await.unwrap();
            }
        });
        assert_eq!(ask_init(&sock, "engine x").await.unwrap(), "10000");
        let e = ask_init(&sock, "engine a/b").await.unwrap_err().to_string();
        assert!(e.contains("invalid engine name"), "{e}");
        server.await.unwrap();
    }

    #[test]
    fn engine_lists_carry_memory_when_pid_1_could_read_it() {
        assert_eq!(
            parse_engine_list("a=30544 b.c \n"),
            vec![
                json!({"name": "a", "memory_kib": 30544}),
                json!({"name": "b.c", "memory_kib": null}),
            ]
        );
        assert!(parse_engine_list("").is_empty());
    }
}
