//! Docker's streamed JSON progress messages (`JSONMessage`), as `POST /images/create` sends them.

use serde_json::{json, Value};
use skiff_common::units::human_size;
use tokio::sync::mpsc::UnboundedSender;

#[derive(Clone)]
pub struct Progress {
    tx: Option<UnboundedSender<Value>>,
}

impl Progress {
    pub fn new(tx: UnboundedSender<Value>) -> Self {
        Progress { tx: Some(tx) }
    }

    pub fn silent() -> Self {
        Progress { tx: None }
    }

    fn send(&self, v: Value) {
        if let Some(tx) = &self.tx {
            // The client may have gone away; the pull goes on regardless.
            let _ = tx.send(v);
        }
    }

    pub fn status(&self, status: &str) {
        self.send(json!({ "status": status }));
    }

    pub fn status_id(&self, id: &str, status: &str) {
        self.send(json!({ "status": status, "id": id }));
    }

    pub fn layer(&self, id: &str, status: &str) {
        self.send(json!({ "status": status, "progressDetail": {}, "id": id }));
    }

    /// A message for programs rather than people (docker's `aux`: a push's tag, digest and
    /// manifest size).
    pub fn aux(&self, aux: Value) {
        self.send(json!({ "progressDetail": {}, "aux": aux }));
    }

    pub fn bytes(&self, id: &str, status: &str, current: u64, total: u64) {
        self.send(json!({
            "status": status,
            "progressDetail": { "current": current, "total": total },
            "progress": progress_bar(current, total),
            "id": id,
        }));
    }
}

/// The `progress` text docker puts beside progressDetail: `[====>     ]  1.2MB/3.4MB`.
pub fn progress_bar(current: u64, total: u64) -> String {
    const WIDTH: u64 = 50;
    let filled = (current.min(total) * WIDTH).checked_div(total).unwrap_or(0) as usize;
    let mut bar = "=".repeat(filled);
    if (filled as u64) < WIDTH {
        bar.push('>');
        bar.push_str(&" ".repeat(WIDTH as usize - filled - 1));
    } else {
        bar.push('>');
    }
    format!("[{bar}] {:>8}/{}", human_size(current), human_size(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bar_fills() {
        assert!(progress_bar(236, 236)
            .starts_with("[==================================================>]"));
        assert!(progress_bar(0, 100).starts_with("[>"));
    }
}
