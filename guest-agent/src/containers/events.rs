//! Container and network events, as `GET /events` streams them (`docker events`, and the
//! docker CLI's `stats` and compose follow them to see containers come and go).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use serde_json::{json, Value};
use tokio::sync::broadcast;

/// How many past events `--since` can reach back to.
const KEPT: usize = 1024;

#[derive(Clone, Debug)]
pub struct Event {
    /// docker's event type: "container" or "network".
    pub kind: &'static str,
    pub action: String,
    pub id: String,
    pub attributes: HashMap<String, String>,
    pub time_nano: i64,
}

impl Event {
    /// docker's event message (for containers, both its old flat fields and the typed ones).
    pub fn to_json(&self) -> Value {
        if self.kind != "container" {
            return json!({
                "Type": self.kind,
                "Action": self.action,
                "Actor": {"ID": self.id, "Attributes": self.attributes},
                "scope": "local",
                "time": self.time_nano / 1_000_000_000,
                "timeNano": self.time_nano,
            });
        }
        let from = self.attributes.get("image").cloned().unwrap_or_default();
        json!({
            "status": self.action,
            "id": self.id,
            "from": from,
            "Type": "container",
            "Action": self.action,
            "Actor": {"ID": self.id, "Attributes": self.attributes},
            "scope": "local",
            "time": self.time_nano / 1_000_000_000,
            "timeNano": self.time_nano,
        })
    }
}

pub struct Events {
    tx: broadcast::Sender<Event>,
    recent: Mutex<VecDeque<Event>>,
}

impl Default for Events {
    fn default() -> Self {
        Self {
            tx: broadcast::channel(KEPT).0,
            recent: Mutex::new(VecDeque::with_capacity(KEPT)),
        }
    }
}

impl Events {
    pub fn emit(&self, action: &str, id: &str, attributes: HashMap<String, String>) {
        self.emit_kind("container", action, id, attributes)
    }

    /// A network event: `id` is the network's, `attributes` carry its name and type (and the
    /// container, for connect and disconnect), as docker's do.
    pub fn emit_network(&self, action: &str, id: &str, attributes: HashMap<String, String>) {
        self.emit_kind("network", action, id, attributes)
    }

    fn emit_kind(
        &self,
        kind: &'static str,
        action: &str,
        id: &str,
        attributes: HashMap<String, String>,
    ) {
        let ev = Event {
            kind,
            action: action.to_string(),
            id: id.to_string(),
            attributes,
            time_nano: super::logs::now_nanos(),
        };
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        if recent.len() == KEPT {
            recent.pop_front();
        }
        recent.push_back(ev.clone());
        // Sent under the lock, so a subscriber that took the history under it misses nothing.
        let _ = self.tx.send(ev);
    }

    /// The kept events from `since` on, and a receiver for what follows them.
    pub fn subscribe(&self, since_nanos: Option<i64>) -> (Vec<Event>, broadcast::Receiver<Event>) {
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        let past = match since_nanos {
            Some(s) => recent
                .iter()
                .filter(|e| e.time_nano >= s)
                .cloned()
                .collect(),
            None => Vec::new(),
        };
        (past, self.tx.subscribe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_then_live() {
        let ev = Events::default();
        ev.emit("create", "a", HashMap::new());
        let (past, mut rx) = ev.subscribe(Some(0));
        assert_eq!(past.len(), 1);
        ev.emit("start", "a", HashMap::new());
        assert_eq!(rx.try_recv().unwrap().action, "start");
        let (none, _) = ev.subscribe(None);
        assert!(none.is_empty());
        assert_eq!(past[0].to_json()["Action"], "create");
    }

    #[test]
    fn network_events_have_docker_shape() {
        let ev = Events::default();
        let (_, mut rx) = ev.subscribe(None);
        let attrs = HashMap::from([("name".to_string(), "web".to_string())]);
        ev.emit_network("connect", "n1", attrs);
        let j = rx.try_recv().unwrap().to_json();
        assert_eq!(j["Type"], "network");
        assert_eq!(j["Actor"]["ID"], "n1");
        assert_eq!(j["Actor"]["Attributes"]["name"], "web");
        assert!(j.get("status").is_none() && j.get("from").is_none(), "{j}");
    }
}
