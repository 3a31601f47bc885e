//! `skiff pull`: streams the engine's progress as per-layer bars on a terminal, or as plain
//! status lines otherwise.

use std::collections::HashMap;

use anyhow::Result;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde_json::Value;

use super::api::{query, Body, Response};
use super::term;
use super::Engine;
use crate::cli::PullArgs;
use crate::dockercfg;
use crate::SkiffError;

/// Split NAME[:TAG|@DIGEST] as docker's CLI does before calling the API.
pub fn split_reference(image: &str) -> (String, Option<String>) {
    if let Some((name, digest)) = image.split_once('@') {
        return (name.to_string(), Some(digest.to_string()));
    }
    let slash = image.rfind('/').map(|i| i + 1).unwrap_or(0);
    match image[slash..].rfind(':') {
        Some(i) => (
            image[..slash + i].to_string(),
            Some(image[slash + i + 1..].to_string()),
        ),
        None => (image.to_string(), None),
    }
}

/// The registry part of an image name, as docker decides it (a first component with a dot,
/// a colon, or `localhost`); docker.io otherwise.
pub fn registry_of(name: &str) -> String {
    match name.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            first.to_string()
        }
        _ => "docker.io".to_string(),
    }
}

pub async fn pull(engine: &Engine, a: &PullArgs) -> Result<u8> {
    let (name, tag) = split_reference(&a.image);
    if name.is_empty() {
        return Err(SkiffError::new(format!("invalid reference format: {:?}", a.image)).into());
    }
    let tag_shown = tag.clone().unwrap_or_else(|| "latest".into());
    if tag.is_none() && !a.quiet {
        crate::output::out_line!("Using default tag: latest");
    }
    stream_pull(engine, &a.image, a.platform.as_deref(), a.quiet, false).await?;
    let shown = if a.image.contains('@') {
        a.image.clone()
    } else {
        format!("{name}:{tag_shown}")
    };
    crate::output::out_line!("{}", full_name(&shown));
    Ok(0)
}

/// Pull an image showing the engine's progress; `to_stderr` for `run` and `create`, which
/// keep stdout for the container ID (as docker does).
pub async fn stream_pull(
    engine: &Engine,
    image: &str,
    platform: Option<&str>,
    quiet: bool,
    to_stderr: bool,
) -> Result<()> {
    let (name, tag) = split_reference(image);
    let mut headers = Vec::new();
    if let Some(creds) = dockercfg::credentials_for(&registry_of(&name))? {
        headers.push(("X-Registry-Auth", creds.header()?));
    }
    let mut q = vec![
        ("fromImage", name.clone()),
        ("tag", tag.unwrap_or_else(|| "latest".into())),
    ];
    if let Some(p) = platform.filter(|p| !p.is_empty()) {
        q.push(("platform", p.to_string()));
    }
    let target = format!("/images/create{}", query(&q));
    let resp = engine
        .api()
        .call_with("POST", &target, &headers, Body::None)
        .await?;
    show_progress(resp, quiet, to_stderr).await
}

/// Show a pull's or a push's JSON progress stream as it arrives (the bars move while the
/// layers go), ending with the stream's error if it sends one.
pub async fn show_progress(mut resp: Response, quiet: bool, to_stderr: bool) -> Result<()> {
    let mut view = ProgressView::new(quiet, to_stderr);
    // Each message is shown as it arrives: the bars move while the layers go.
    let result = loop {
        let msg = match resp.json_line().await {
            Ok(Some(m)) => m,
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        };
        if let Some(err) = stream_error(&msg) {
            break Err(SkiffError::daemon(err).into());
        }
        // `aux` (a push's digest and size) is for programs, as in docker's display.
        if msg.get("aux").is_some() {
            continue;
        }
        if let Some(text) = msg["stream"].as_str() {
            view.text(text);
            continue;
        }
        let detail = &msg["progressDetail"];
        view.show(
            msg["id"].as_str(),
            msg["status"].as_str().unwrap_or_default(),
            detail["current"].as_i64(),
            detail["total"].as_i64(),
        );
    };
    view.finish();
    result
}

/// The failure a JSON progress stream ends with (docker's jsonmessage `errorDetail`, or
/// its older `error`), printed as it is, without "Error response from daemon".
pub fn stream_error(msg: &Value) -> Option<String> {
    msg["errorDetail"]["message"]
        .as_str()
        .or_else(|| msg["error"].as_str())
        .filter(|m| !m.is_empty())
        .map(String::from)
}

/// docker prints the fully qualified name at the end: docker.io/library/busybox:latest.
fn full_name(s: &str) -> String {
    let (name, _) = split_reference(s);
    if registry_of(&name) != "docker.io" || name.starts_with("docker.io/") {
        return s.to_string();
    }
    if name.contains('/') {
        format!("docker.io/{s}")
    } else {
        format!("docker.io/library/{s}")
    }
}

/// Whether a message carries byte counters (a bar's step): docker's plain output leaves
/// those out (jsonmessage: a progress that would print something).
fn has_counters(current: Option<i64>, total: Option<i64>) -> bool {
    current.unwrap_or(0) > 0 || total.unwrap_or(0) > 0
}

/// The statuses that end a layer's bar: a pull's and a push's.
fn is_layer_done(status: &str) -> bool {
    matches!(
        status,
        "Pull complete" | "Already exists" | "Pushed" | "Layer already exists"
    ) || status.starts_with("Mounted from")
}

struct ProgressView {
    quiet: bool,
    to_stderr: bool,
    tty: bool,
    multi: MultiProgress,
    bars: HashMap<String, ProgressBar>,
}

impl ProgressView {
    fn new(quiet: bool, to_stderr: bool) -> Self {
        ProgressView {
            quiet,
            to_stderr,
            tty: if to_stderr {
                term::stderr_is_tty()
            } else {
                term::stdout_is_tty()
            },
            multi: MultiProgress::new(),
            bars: HashMap::new(),
        }
    }

    fn show(&mut self, id: Option<&str>, status: &str, current: Option<i64>, total: Option<i64>) {
        if self.quiet {
            return;
        }
        let Some(id) = id.filter(|_| !status.starts_with("Pulling from")) else {
            let line = match id {
                Some(id) => format!("{id}: {status}"),
                None => status.to_string(),
            };
            if self.tty {
                // Printing above the bars fails only when the terminal is gone; the pull
                // itself goes on, as docker's does.
                let _ = self.multi.println(line);
            } else {
                self.line(&line);
            }
            return;
        };
        if !self.tty {
            // Plain output: one line per state change, no byte counters.
            if !has_counters(current, total) {
                self.line(&format!("{id}: {status}"));
            }
            return;
        }
        let bar = self.bars.entry(id.to_string()).or_insert_with(|| {
            let b = self.multi.add(ProgressBar::new(0));
            b.set_style(
                ProgressStyle::with_template(
                    "{prefix}: {msg:<18} {bar:40.cyan/blue} {bytes:>9}/{total_bytes:<9}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            b.set_prefix(id.to_string());
            b
        });
        bar.set_message(status.to_string());
        if let (Some(c), Some(t)) = (current, total) {
            bar.set_length(t.max(0) as u64);
            bar.set_position(c.max(0) as u64);
        }
        if is_layer_done(status) {
            bar.set_style(
                ProgressStyle::with_template("{prefix}: {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.finish_with_message(status.to_string());
        }
    }

    /// A `stream` message: text printed as it is (above the bars on a terminal).
    fn text(&self, text: &str) {
        if self.quiet {
            return;
        }
        if self.tty && !self.bars.is_empty() {
            let _ = self.multi.println(text.trim_end_matches('\n'));
        } else if self.to_stderr {
            eprint!("{text}");
        } else {
            crate::output::out_text!("{text}");
        }
    }

    fn line(&self, line: &str) {
        if self.to_stderr {
            eprintln!("{line}");
        } else {
            crate::output::out_line!("{line}");
        }
    }

    fn finish(&mut self) {
        for b in self.bars.values() {
            if !b.is_finished() {
                b.abandon();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_errors_print_as_sent() {
        let m: Value = serde_json::from_str(
            r#"{"errorDetail":{"message":"manifest unknown"},"error":"manifest unknown"}"#,
        )
        .unwrap();
        assert_eq!(stream_error(&m).as_deref(), Some("manifest unknown"));
        let old: Value = serde_json::from_str(r#"{"error":"denied"}"#).unwrap();
        assert_eq!(stream_error(&old).as_deref(), Some("denied"));
        let progress: Value =
            serde_json::from_str(r#"{"status":"Downloading","id":"abc","progressDetail":{}}"#)
                .unwrap();
        assert_eq!(stream_error(&progress), None);
    }

    #[test]
    fn plain_output_drops_counters_and_push_statuses_end_bars() {
        // A pull's and a push's byte steps are left out; their state changes are not.
        assert!(has_counters(Some(512), Some(14)));
        assert!(has_counters(None, Some(10)));
        assert!(!has_counters(None, None));
        assert!(!has_counters(Some(0), Some(0)));
        for done in [
            "Pull complete",
            "Already exists",
            "Pushed",
            "Layer already exists",
            "Mounted from web",
        ] {
            assert!(is_layer_done(done), "{done}");
        }
        assert!(!is_layer_done("Preparing") && !is_layer_done("Waiting"));
    }

    #[test]
    fn references_split_like_docker() {
        assert_eq!(split_reference("busybox"), ("busybox".into(), None));
        assert_eq!(
            split_reference("127.0.0.1:5000/busybox"),
            ("127.0.0.1:5000/busybox".into(), None)
        );
        assert_eq!(
            split_reference("127.0.0.1:5000/busybox:v2s2"),
            ("127.0.0.1:5000/busybox".into(), Some("v2s2".into()))
        );
        assert_eq!(
            split_reference("a/b@sha256:00"),
            ("a/b".into(), Some("sha256:00".into()))
        );
        assert_eq!(
            registry_of("127.0.0.1:5001/private/busybox"),
            "127.0.0.1:5001"
        );
        assert_eq!(registry_of("user/app"), "docker.io");
        assert_eq!(
            full_name("busybox:latest"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(
            full_name("127.0.0.1:5000/busybox:latest"),
            "127.0.0.1:5000/busybox:latest"
        );
    }
}
