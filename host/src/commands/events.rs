//! `events` / `system events`: the engine's event stream, printed as docker's CLI prints it.

use std::collections::BTreeMap;

use anyhow::Result;
use chrono::{DateTime, FixedOffset, Local, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::api::{query, Body, Filters};
use super::logs::get_timestamp;
use super::Engine;
use crate::cli::EventsArgs;
use crate::output::{out_line, render};
use crate::SkiffError;

/// docker's `events.Message`, its fields in Go's order so `--format json` writes them as
/// docker's CLI does (serde_json's maps would sort them).
#[derive(Debug, Default, Deserialize, Serialize)]
struct Message {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    status: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    from: String,
    #[serde(rename = "Type", default)]
    kind: String,
    #[serde(rename = "Action", default)]
    action: String,
    #[serde(rename = "Actor", default)]
    actor: Actor,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    scope: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    time: i64,
    #[serde(rename = "timeNano", default, skip_serializing_if = "is_zero")]
    time_nano: i64,
}

#[derive(Debug, Default, Deserialize, Serialize)]
struct Actor {
    #[serde(rename = "ID", default)]
    id: String,
    #[serde(rename = "Attributes", default)]
    attributes: Option<BTreeMap<String, String>>,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

impl Message {
    /// The message as a Go template sees it: by its Go field names, not its JSON ones.
    fn template_value(&self) -> Value {
        json!({
            "Status": self.status,
            "ID": self.id,
            "From": self.from,
            "Type": self.kind,
            "Action": self.action,
            "Actor": {"ID": self.actor.id, "Attributes": self.actor.attributes},
            "Scope": self.scope,
            "Time": self.time,
            "TimeNano": self.time_nano,
        })
    }
}

/// How the events are printed.
enum Output {
    /// docker's line: time, type, action, actor, attributes.
    Pretty,
    /// One JSON object per event.
    Json,
    Template(String),
}

/// docker's `makeTemplate`: a template is tried on an empty message before any event, and
/// a bad one is refused with exit 64.
fn output_of(format: Option<&str>) -> Result<Output> {
    let format = match format {
        None | Some("") => return Ok(Output::Pretty),
        Some("json") | Some("{{json .}}") => return Ok(Output::Json),
        Some(f) => f.replace("\\t", "\t").replace("\\n", "\n"),
    };
    render(&format, &Message::default().template_value())
        .map_err(|e| SkiffError::with_code(format!("Error parsing format: {e}"), 64))?;
    Ok(Output::Template(format))
}

/// Go's `time.Format` with "2006-01-02T15:04:05.000000000Z07:00": nine fraction digits
/// always, "Z" for a zero offset.
fn rfc3339_nano_fixed<Tz: TimeZone>(t: &DateTime<Tz>) -> String {
    let fixed: DateTime<FixedOffset> = t.fixed_offset();
    let zone = if fixed.offset().local_minus_utc() == 0 {
        "Z".to_string()
    } else {
        fixed.format("%:z").to_string()
    };
    format!("{}{zone}", fixed.format("%Y-%m-%dT%H:%M:%S%.9f"))
}

/// docker's `prettyPrintEvent`, in the zone `tz` (docker prints local time).
fn pretty_line<Tz: TimeZone>(m: &Message, tz: &Tz) -> String {
    let mut line = String::new();
    let when = if m.time_nano != 0 {
        Some(Utc.timestamp_nanos(m.time_nano))
    } else if m.time != 0 {
        Utc.timestamp_opt(m.time, 0).single()
    } else {
        None
    };
    if let Some(t) = when {
        line.push_str(&rfc3339_nano_fixed(&t.with_timezone(tz)));
        line.push(' ');
    }
    line.push_str(&format!("{} {} {}", m.kind, m.action, m.actor.id));
    if let Some(attrs) = m.actor.attributes.as_ref().filter(|a| !a.is_empty()) {
        // A BTreeMap is in key order, as docker sorts them.
        let joined: Vec<String> = attrs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        line.push_str(&format!(" ({})", joined.join(", ")));
    }
    line
}

fn event_line(m: &Message, output: &Output) -> Result<String> {
    Ok(match output {
        Output::Pretty => pretty_line(m, &Local),
        Output::Json => serde_json::to_string(m)?,
        Output::Template(t) => render(t, &m.template_value()).map_err(SkiffError::daemon)?,
    })
}

/// The query docker's client sends: `since`/`until` as unix seconds (durations are back from
/// `now`), and the filters.
fn events_query(a: &EventsArgs, now: DateTime<Local>) -> Result<String> {
    let mut q = Vec::new();
    for (key, value) in [("since", &a.since), ("until", &a.until)] {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            q.push((key, get_timestamp(v, now).map_err(SkiffError::daemon)?));
        }
    }
    if let Some(f) = Filters::parse(&a.filters, "-f, --filter")?.to_query() {
        q.push(("filters", f));
    }
    Ok(query(&q))
}

/// The refusals that come before any request: the format, the times, the filters.
pub fn check(a: &EventsArgs) -> Result<()> {
    output_of(a.format.as_deref())?;
    events_query(a, Local::now()).map(drop)
}

pub async fn events(engine: &Engine, a: &EventsArgs) -> Result<u8> {
    let output = output_of(a.format.as_deref())?;
    let target = format!("/events{}", events_query(a, Local::now())?);
    let mut resp = engine.api().call("GET", &target, Body::None).await?;
    // Without `until` the engine never ends the stream: skiff runs until interrupted.
    while let Some(v) = resp.json_line().await? {
        let m: Message = serde_json::from_value(v)
            .map_err(|e| SkiffError::new(format!("skiff: unreadable event from the agent: {e}")))?;
        out_line!("{}", event_line(&m, &output)?);
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start_event() -> Message {
        serde_json::from_value(json!({
            "status": "start",
            "id": "0123abcd",
            "from": "busybox",
            "Type": "container",
            "Action": "start",
            "Actor": {"ID": "0123abcd", "Attributes": {"name": "foo", "image": "busybox"}},
            "scope": "local",
            "time": 1_796_644_800,
            "timeNano": 1_796_644_800_123_456_789i64,
        }))
        .unwrap()
    }

    #[test]
    fn pretty_lines_as_dockers() {
        assert_eq!(
            pretty_line(&start_event(), &Utc),
            "2026-12-07T12:00:00.123456789Z container start 0123abcd (image=busybox, name=foo)"
        );
        let plus_one = FixedOffset::east_opt(3600).unwrap();
        assert_eq!(
            pretty_line(&start_event(), &plus_one),
            "2026-12-07T13:00:00.123456789+01:00 container start 0123abcd (image=busybox, name=foo)"
        );
        // No nanoseconds: the seconds, with nine zeros; no attributes: no parentheses.
        let bare: Message = serde_json::from_value(json!({
            "Type": "network", "Action": "create", "Actor": {"ID": "n1"}, "time": 1_796_644_800,
        }))
        .unwrap();
        assert_eq!(
            pretty_line(&bare, &Utc),
            "2026-12-07T12:00:00.000000000Z network create n1"
        );
    }

    #[test]
    fn json_and_templates() {
        let m = start_event();
        let json_line = event_line(&m, &output_of(Some("json")).unwrap()).unwrap();
        assert!(
            json_line.starts_with(r#"{"status":"start","id":"0123abcd","from":"busybox","Type":"container","Action":"start","Actor":{"ID":"0123abcd","Attributes":{"image":"busybox","name":"foo"}},"scope":"local","time":1796644800,"timeNano":1796644800123456789}"#),
            "{json_line}"
        );
        let t = output_of(Some(
            "{{.Type}} {{.Action}} {{.Actor.Attributes.name}} {{.ID}}",
        ))
        .unwrap();
        assert_eq!(event_line(&m, &t).unwrap(), "container start foo 0123abcd");
        let bad = output_of(Some("{{.Type")).err().unwrap();
        let se = bad.downcast_ref::<SkiffError>().unwrap();
        assert_eq!(se.code, 64);
        assert!(
            se.message.starts_with("Error parsing format: "),
            "{}",
            se.message
        );
    }

    fn args(since: Option<&str>, until: Option<&str>, filters: &[&str]) -> EventsArgs {
        EventsArgs {
            filters: filters.iter().map(|f| f.to_string()).collect(),
            format: None,
            since: since.map(String::from),
            until: until.map(String::from),
        }
    }

    #[test]
    fn since_until_and_filters_go_as_docker_sends_them() {
        let now = Local.timestamp_opt(1_700_000_000, 0).single().unwrap();
        assert_eq!(events_query(&args(None, None, &[]), now).unwrap(), "");
        assert_eq!(
            events_query(&args(Some("10m"), Some("1700000000.5"), &[]), now).unwrap(),
            "?since=1699999400&until=1700000000.5"
        );
        assert_eq!(
            events_query(&args(Some("2023-11-14T22:13:20Z"), None, &[]), now).unwrap(),
            "?since=1700000000.000000000"
        );
        let q = events_query(&args(None, None, &["type=container", "event=start"]), now).unwrap();
        let filters: Vec<(String, String)> = url_pairs(&q);
        assert_eq!(filters[0].0, "filters");
        let v: Value = serde_json::from_str(&filters[0].1).unwrap();
        assert_eq!(
            v,
            json!({"type": {"container": true}, "event": {"start": true}})
        );
        let e = events_query(&args(Some("yesterday"), None, &[]), now).unwrap_err();
        assert_eq!(
            e.to_string(),
            "failed to parse value as time or duration: \"yesterday\""
        );
        assert!(events_query(&args(None, None, &["nokey"]), now).is_err());
    }

    fn url_pairs(q: &str) -> Vec<(String, String)> {
        q.trim_start_matches('?')
            .split('&')
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap();
                let v = percent_encoding::percent_decode_str(&v.replace('+', " "))
                    .decode_utf8()
                    .unwrap()
                    .into_owned();
                (k.to_string(), v)
            })
            .collect()
    }
}
