//! `logs`: the container's output as the engine kept it, demultiplexed to our stdout and
//! stderr unless the container has a TTY.

use std::io::Write;

use anyhow::Result;
use chrono::{DateTime, FixedOffset, Local, NaiveDate, NaiveDateTime, TimeZone};

use super::api::{query, seg, Body};
use super::attach::Demuxer;
use super::opts::go_duration;
use super::Engine;
use crate::cli::LogsArgs;
use crate::SkiffError;

/// docker's `timetypes.GetTimestamp`: durations ("10m") are before `now`; RFC 3339 times
/// and dates (local unless a zone is given) become "seconds.nanoseconds"; unix seconds
/// pass as they are.
pub fn get_timestamp(value: &str, now: DateTime<Local>) -> Result<String, String> {
    if value != "0" {
        if let Ok(d) = go_duration(value) {
            let t = now.timestamp_nanos_opt().unwrap_or(0) as i128 - d;
            return Ok(t.div_euclid(1_000_000_000).to_string());
        }
    }
    let has_zone = value.contains(['z', 'Z', '+']) || value.matches('-').count() == 3;
    let parsed = parse_time(value, has_zone, now);
    match parsed {
        Some(t) => Ok(format!(
            "{}.{:09}",
            t.timestamp(),
            t.timestamp_subsec_nanos()
        )),
        None => {
            if value.contains('-') {
                return Err(format!(
                    "parsing time \"{value}\": cannot parse as a timestamp"
                ));
            }
            let (secs, nanos) = value.split_once('.').unwrap_or((value, ""));
            let ok =
                secs.parse::<i64>().is_ok() && (nanos.is_empty() || nanos.parse::<i64>().is_ok());
            if !ok {
                return Err(format!(
                    "failed to parse value as time or duration: \"{value}\""
                ));
            }
            Ok(value.to_string())
        }
    }
}

fn parse_time(value: &str, has_zone: bool, now: DateTime<Local>) -> Option<DateTime<FixedOffset>> {
    if has_zone {
        let v = value.replace('z', "Z");
        if let Ok(t) = DateTime::parse_from_rfc3339(&v) {
            return Some(t);
        }
        for f in ["%Y-%m-%dT%H:%M%#z", "%Y-%m-%dT%H%#z"] {
            if let Ok(t) = DateTime::parse_from_str(&v.replace('Z', "+00:00"), f) {
                return Some(t);
            }
        }
        // A date with a zone: "2006-01-02Z07:00" or "2006-01-02Z".
        if v.len() >= 10 {
            let (date, zone) = v.split_at(10);
            let date = NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
            let zone = zone.strip_prefix('Z').unwrap_or(zone);
            let offset = if zone.is_empty() {
                FixedOffset::east_opt(0)?
            } else {
                DateTime::parse_from_str(
                    &format!("2000-01-01T00:00:00{zone}"),
                    "%Y-%m-%dT%H:%M:%S%:z",
                )
                .ok()?
                .offset()
                .to_owned()
            };
            return offset
                .from_local_datetime(&date.and_hms_opt(0, 0, 0)?)
                .single();
        }
        return None;
    }
    let offset: FixedOffset = *now.offset();
    let naive = if value.contains('.') {
        NaiveDateTime::parse_from_str(value, "%Y-%m-%dT%H:%M:%S%.f").ok()?
    } else if value.contains('T') {
        match value.matches(':').count() {
            0 => NaiveDateTime::parse_from_str(&format!("{value}:00:00"), "%Y-%m-%dT%H:%M:%S")
                .ok()?,
            1 => NaiveDateTime::parse_from_str(&format!("{value}:00"), "%Y-%m-%dT%H:%M:%S").ok()?,
            _ => NaiveDateTime::parse_from_str(value, "%Y-%m-%dT%H:%M:%S").ok()?,
        }
    } else {
        NaiveDate::parse_from_str(value, "%Y-%m-%d")
            .ok()?
            .and_hms_opt(0, 0, 0)?
    };
    offset.from_local_datetime(&naive).single()
}

pub async fn logs(engine: &Engine, a: &LogsArgs) -> Result<u8> {
    let api = engine.api();
    let c = api
        .json(
            "GET",
            &format!("/containers/{}/json", seg(&a.container)),
            Body::None,
        )
        .await?;
    let id = c["Id"].as_str().unwrap_or(&a.container).to_string();
    let tty = c["Config"]["Tty"].as_bool().unwrap_or(false);
    let now = Local::now();
    let mut q = vec![("stdout", "1".to_string()), ("stderr", "1".to_string())];
    if let Some(s) = a.since.as_ref().filter(|s| !s.is_empty()) {
        let ts = get_timestamp(s, now)
            .map_err(|e| SkiffError::daemon(format!("invalid value for \"since\": {e}")))?;
        q.push(("since", ts));
    }
    if let Some(u) = a.until.as_ref().filter(|u| !u.is_empty()) {
        let ts = get_timestamp(u, now)
            .map_err(|e| SkiffError::daemon(format!("invalid value for \"until\": {e}")))?;
        q.push(("until", ts));
    }
    if a.timestamps {
        q.push(("timestamps", "1".into()));
    }
    if a.details {
        q.push(("details", "1".into()));
    }
    if a.follow {
        q.push(("follow", "1".into()));
    }
    q.push(("tail", a.tail.clone()));
    let mut resp = api
        .call(
            "GET",
            &format!("/containers/{}/logs{}", seg(&id), query(&q)),
            Body::None,
        )
        .await?;
    let mut demux = Demuxer::default();
    let mut sink = |fd: u8, data: &[u8]| -> std::io::Result<()> {
        if fd == 2 {
            let mut e = std::io::stderr().lock();
            e.write_all(data)?;
            e.flush()
        } else {
            let mut o = std::io::stdout().lock();
            o.write_all(data)?;
            o.flush()
        }
    };
    while let Some(chunk) = resp.chunk().await? {
        let r = if tty {
            sink(1, &chunk).map_err(|e| e.to_string())
        } else {
            demux.feed(&chunk, &mut sink)
        };
        if let Err(e) = r {
            if e.contains("Broken pipe") {
                return Ok(0);
            }
            return Err(SkiffError::daemon(e).into());
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Local> {
        Local.timestamp_opt(1_700_000_000, 0).single().unwrap()
    }

    #[test]
    fn since_and_until_like_docker() {
        assert_eq!(get_timestamp("10m", now()).unwrap(), "1699999400");
        assert_eq!(get_timestamp("1h30m", now()).unwrap(), "1699994600");
        assert_eq!(
            get_timestamp("2013-01-02T13:23:37Z", now()).unwrap(),
            "1357133017.000000000"
        );
        assert_eq!(
            get_timestamp("2013-01-02T13:23:37.5+01:00", now()).unwrap(),
            "1357129417.500000000"
        );
        assert_eq!(get_timestamp("1357133017", now()).unwrap(), "1357133017");
        assert_eq!(
            get_timestamp("1357133017.123", now()).unwrap(),
            "1357133017.123"
        );
        assert_eq!(get_timestamp("0", now()).unwrap(), "0");
        assert!(get_timestamp("yesterday", now()).is_err());
        assert!(get_timestamp("2013-13-45", now()).is_err());
        // Local times are taken in the local zone.
        let local = get_timestamp("2013-01-02T13:23:37", now()).unwrap();
        let want = Local
            .with_ymd_and_hms(2013, 1, 2, 13, 23, 37)
            .single()
            .unwrap()
            .timestamp();
        assert_eq!(local, format!("{want}.000000000"));
        let date = get_timestamp("2013-01-02", now()).unwrap();
        assert!(date.ends_with(".000000000"));
    }
}
