//! Docker's `filters` query parameter, for every listing and prune: containers, images,
//! networks, events, and the volumes to come. Parsing, the refusal of keys an endpoint does not
//! know, and the filters that mean the same everywhere (`label`, `label!`, `until`, booleans)
//! live here once, so that each endpoint only says which keys it takes and what its own keys
//! match.

use std::collections::BTreeMap;

use serde_json::Value;

use super::errors::ApiError;

#[derive(Debug, Default)]
pub struct Filters(BTreeMap<String, Vec<String>>);

impl Filters {
    /// Docker's two shapes: `{"key":{"value":true}}` (the CLI's), or the older
    /// `{"key":["value"]}` (the Python SDK's). A value mapped to `false` is not asked for.
    pub fn parse(raw: Option<&str>) -> Result<Self, ApiError> {
        let Some(raw) = raw.filter(|r| !r.is_empty()) else {
            return Ok(Filters::default());
        };
        let v: Value = serde_json::from_str(raw)
            .map_err(|e| ApiError::bad_request(format!("invalid filters parameter: {e}")))?;
        let obj = v.as_object().ok_or_else(|| {
            ApiError::bad_request("invalid filters parameter: expected a JSON object")
        })?;
        let mut out = BTreeMap::new();
        for (k, vals) in obj {
            let list: Vec<String> = match vals {
                Value::Object(m) => m
                    .iter()
                    .filter(|(_, on)| on.as_bool() != Some(false))
                    .map(|(s, _)| s.clone())
                    .collect(),
                Value::Array(a) => a
                    .iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect(),
                _ => return Err(ApiError::bad_request(format!("invalid filter {k:?}"))),
            };
            out.insert(k.clone(), list);
        }
        Ok(Filters(out))
    }

    pub fn get(&self, k: &str) -> &[String] {
        self.0.get(k).map(Vec::as_slice).unwrap_or(&[])
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// Refuse keys this endpoint does not know, as docker does.
    pub fn only(&self, allowed: &[&str]) -> Result<(), ApiError> {
        match self.keys().find(|k| !allowed.contains(k)) {
            Some(k) => Err(ApiError::bad_request(format!("invalid filter '{k}'"))),
            None => Ok(()),
        }
    }

    /// True when the filter is absent or one of its values satisfies `pred` (docker ORs the
    /// values of one key and ANDs the keys).
    pub fn any(&self, k: &str, pred: impl Fn(&str) -> bool) -> bool {
        let v = self.get(k);
        v.is_empty() || v.iter().any(|x| pred(x))
    }

    /// A boolean filter such as dangling=true; None when absent.
    pub fn bool(&self, k: &str) -> Result<Option<bool>, ApiError> {
        match self.get(k).first().map(|s| s.to_ascii_lowercase()) {
            None => Ok(None),
            Some(s) if s == "true" || s == "1" => Ok(Some(true)),
            Some(s) if s == "false" || s == "0" => Ok(Some(false)),
            Some(s) => Err(ApiError::bad_request(format!(
                "invalid filter '{k}={s}': use true or false"
            ))),
        }
    }

    /// `label=KEY` / `label=KEY=VALUE` (every one must hold) and `label!=…` (none may), over
    /// whatever holds the labels: `get` answers a key's value.
    pub fn labels_match<'a>(&self, get: impl Fn(&str) -> Option<&'a str>) -> bool {
        let holds = |l: &String| match l.split_once('=') {
            Some((k, v)) => get(k) == Some(v),
            None => get(l).is_some(),
        };
        self.get("label").iter().all(holds) && !self.get("label!").iter().any(holds)
    }

    /// `until=…` as a unix time, if given.
    pub fn until(&self) -> Result<Option<i64>, ApiError> {
        self.get("until")
            .first()
            .map(|u| parse_until(u, chrono::Utc::now().timestamp()))
            .transpose()
    }
}

/// What every prune filters on (`until`: created before; `label`, `label!`), with the keys
/// of its own: one reading of them for containers, images, networks and the volumes to come.
pub struct PruneFilters {
    pub filters: Filters,
    until: Option<i64>,
}

impl PruneFilters {
    pub fn parse(raw: Option<&str>, own: &[&str]) -> Result<Self, ApiError> {
        let filters = Filters::parse(raw)?;
        let mut allowed = vec!["until", "label", "label!"];
        allowed.extend_from_slice(own);
        filters.only(&allowed)?;
        let until = filters.until()?;
        Ok(PruneFilters { filters, until })
    }

    /// Whether an object created at `created` (unix seconds) with these labels may go.
    pub fn admit<'a>(&self, created: i64, labels: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.until.is_none_or(|u| created < u) && self.filters.labels_match(labels)
    }
}

/// `until`: unix seconds, an RFC 3339 time, or a duration before `now` (`90s`, `10m`, `24h`).
pub fn parse_until(s: &str, now: i64) -> Result<i64, ApiError> {
    if let Ok(n) = s.parse::<i64>() {
        return Ok(n);
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp());
    }
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = num
        .parse()
        .map_err(|_| ApiError::bad_request(format!("invalid until filter {s:?}")))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => {
            return Err(ApiError::bad_request(format!(
                "invalid until filter {s:?}: use e.g. 24h or a timestamp"
            )))
        }
    };
    Ok(now - secs)
}

/// Go's `path.Match`, which docker uses for `reference=` filters: `*` and `?` do not cross `/`.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    fn rec(p: &[u8], n: &[u8]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some(b'*') => {
                let rest = &p[1..];
                for i in 0..=n.len() {
                    if rec(rest, &n[i..]) {
                        return true;
                    }
                    if i < n.len() && n[i] == b'/' {
                        break;
                    }
                }
                false
            }
            Some(b'?') => !n.is_empty() && n[0] != b'/' && rec(&p[1..], &n[1..]),
            Some(b'[') => {
                let Some(end) = p.iter().position(|&c| c == b']') else {
                    return false;
                };
                if n.is_empty() {
                    return false;
                }
                let class = &p[1..end];
                let (negate, class) = match class.first() {
                    Some(b'^') => (true, &class[1..]),
                    _ => (false, class),
                };
                let mut hit = false;
                let mut i = 0;
                while i < class.len() {
                    if i + 2 < class.len() && class[i + 1] == b'-' {
                        hit |= class[i] <= n[0] && n[0] <= class[i + 2];
                        i += 3;
                    } else {
                        hit |= class[i] == n[0];
                        i += 1;
                    }
                }
                hit != negate && rec(&p[end + 1..], &n[1..])
            }
            Some(b'\\') if p.len() > 1 => !n.is_empty() && n[0] == p[1] && rec(&p[2..], &n[1..]),
            Some(&c) => !n.is_empty() && n[0] == c && rec(&p[1..], &n[1..]),
        }
    }
    rec(pattern.as_bytes(), name.as_bytes())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn f(raw: &str) -> Filters {
        Filters::parse(Some(raw)).unwrap()
    }

    #[test]
    fn both_shapes_and_false_values() {
        let cli = f(r#"{"dangling":{"true":true},"label":{"a=1":true,"b":false}}"#);
        assert_eq!(cli.bool("dangling").unwrap(), Some(true));
        assert_eq!(cli.get("label"), &["a=1".to_string()]);
        let sdk = f(r#"{"reference":["busy*","alp*"]}"#);
        assert_eq!(sdk.get("reference"), &["busy*", "alp*"]);
        assert!(Filters::parse(None).unwrap().get("x").is_empty());
        assert!(Filters::parse(Some("")).unwrap().keys().next().is_none());
    }

    #[test]
    fn bad_input_is_refused_with_what_was_wrong() {
        let msg = |r: Result<Filters, ApiError>| r.unwrap_err().message;
        assert!(msg(Filters::parse(Some("nope"))).starts_with("invalid filters parameter: "));
        assert_eq!(
            msg(Filters::parse(Some("[1]"))),
            "invalid filters parameter: expected a JSON object"
        );
        assert_eq!(
            msg(Filters::parse(Some(r#"{"label":"a"}"#))),
            r#"invalid filter "label""#
        );
        let e = f(r#"{"colour":["red"]}"#).only(&["label"]).unwrap_err();
        assert_eq!(
            (e.status.as_u16(), e.message.as_str()),
            (400, "invalid filter 'colour'")
        );
        assert_eq!(
            f(r#"{"dangling":["maybe"]}"#)
                .bool("dangling")
                .unwrap_err()
                .message,
            "invalid filter 'dangling=maybe': use true or false"
        );
        assert_eq!(
            f(r#"{"dangling":["0"]}"#).bool("dangling").unwrap(),
            Some(false)
        );
    }

    #[test]
    fn labels_all_must_hold_and_negated_none() {
        let labels: HashMap<String, String> = [("app", "web"), ("tier", "front")]
            .map(|(k, v)| (k.into(), v.into()))
            .into();
        let get = |k: &str| labels.get(k).map(String::as_str);
        assert!(f(r#"{"label":["app"]}"#).labels_match(get));
        assert!(f(r#"{"label":["app=web","tier"]}"#).labels_match(get));
        assert!(!f(r#"{"label":["app=db"]}"#).labels_match(get));
        assert!(!f(r#"{"label":["app","owner"]}"#).labels_match(get));
        assert!(!f(r#"{"label!":["tier=front"]}"#).labels_match(get));
        assert!(f(r#"{"label!":["tier=back","owner"]}"#).labels_match(get));
        assert!(Filters::default().labels_match(get));
    }

    #[test]
    fn any_ors_values_and_passes_when_absent() {
        let fl = f(r#"{"type":["container","network"]}"#);
        assert!(fl.any("type", |t| t == "network"));
        assert!(!fl.any("type", |t| t == "image"));
        assert!(fl.any("event", |_| false));
    }

    #[test]
    fn go_path_match() {
        assert!(glob_match("busy*", "busybox"));
        assert!(!glob_match("*", "127.0.0.1:5000/busybox"));
        assert!(glob_match("*/busybox", "127.0.0.1:5000/busybox"));
        assert!(glob_match("busybox:*", "busybox:latest"));
        assert!(glob_match("b?sybox", "busybox"));
        assert!(glob_match("[a-c]usybox", "busybox"));
        assert!(!glob_match("[^a-c]usybox", "busybox"));
    }

    #[test]
    fn until_forms() {
        let now = 1_700_000_000;
        assert_eq!(parse_until("1600000000", now).unwrap(), 1_600_000_000);
        assert_eq!(
            parse_until("2023-11-14T22:13:20Z", now).unwrap(),
            1_700_000_000
        );
        assert_eq!(parse_until("90s", now).unwrap(), now - 90);
        assert_eq!(parse_until("10m", now).unwrap(), now - 600);
        assert_eq!(parse_until("24h", now).unwrap(), now - 86_400);
        assert_eq!(
            parse_until("3d", now).unwrap_err().message,
            r#"invalid until filter "3d": use e.g. 24h or a timestamp"#
        );
        assert_eq!(
            parse_until("soon", now).unwrap_err().message,
            r#"invalid until filter "soon""#
        );
        assert_eq!(f(r#"{"until":["1"]}"#).until().unwrap(), Some(1));
        assert_eq!(Filters::default().until().unwrap(), None);
    }
}
