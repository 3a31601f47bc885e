//! The few Go standard-library behaviours whose output docker's messages carry: `%q` quoting,
//! `time.ParseDuration`, `strconv.ParseInt(s, 10, 32)`, and buildkit's "did you mean" suggestion.
//! Docker's error text is built from these, so we reproduce them rather than use Rust's own.

use std::time::Duration;

/// Go's `strconv.Quote` (and `%q` on a string), shared with the CLI.
pub use skiff_common::gostr::quote as go_quote;

/// Go's `time.ParseDuration`, for non-negative results; a negative duration comes back as
/// `Ok(None)` so that the caller can give docker's "cannot be less than" message for it, as
/// docker does (it parses `-5s` fine and then finds it below the minimum).
pub fn parse_go_duration(orig: &str) -> Result<Option<Duration>, String> {
    let invalid = || format!("time: invalid duration {}", go_quote(orig));
    let mut s = orig;
    let mut neg = false;
    if let Some(rest) = s.strip_prefix('-') {
        neg = true;
        s = rest;
    } else if let Some(rest) = s.strip_prefix('+') {
        s = rest;
    }
    if s == "0" {
        return Ok(Some(Duration::ZERO));
    }
    if s.is_empty() {
        return Err(invalid());
    }
    const MAX: u64 = 1 << 63;
    let mut total: u64 = 0;
    while !s.is_empty() {
        let first = s.as_bytes()[0];
        if !(first == b'.' || first.is_ascii_digit()) {
            return Err(invalid());
        }
        // Integer part; overflow past 2^63 is an invalid duration in Go.
        let int_len = s.bytes().take_while(|b| b.is_ascii_digit()).count();
        let mut v: u64 = 0;
        for b in s[..int_len].bytes() {
            v = v
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(b - b'0')))
                .filter(|v| *v <= MAX)
                .ok_or_else(invalid)?;
        }
        let pre = int_len > 0;
        s = &s[int_len..];
        // Fraction: Go keeps the digits while they fit and ignores the rest.
        let mut frac: u64 = 0;
        let mut scale: f64 = 1.0;
        let mut post = false;
        if let Some(rest) = s.strip_prefix('.') {
            s = rest;
            let frac_len = s.bytes().take_while(|b| b.is_ascii_digit()).count();
            let mut overflow = false;
            for b in s[..frac_len].bytes() {
                if overflow {
                    continue;
                }
                match frac
                    .checked_mul(10)
                    .and_then(|f| f.checked_add(u64::from(b - b'0')))
                    .filter(|f| *f <= MAX)
                {
                    Some(f) => {
                        frac = f;
                        scale *= 10.0;
                    }
                    None => overflow = true,
                }
            }
            post = frac_len > 0;
            s = &s[frac_len..];
        }
        if !pre && !post {
            return Err(invalid());
        }
        let unit_len = s
            .char_indices()
            .find(|(_, c)| *c == '.' || c.is_ascii_digit())
            .map_or(s.len(), |(i, _)| i);
        let unit_text = &s[..unit_len];
        s = &s[unit_len..];
        if unit_text.is_empty() {
            return Err(format!("time: missing unit in duration {}", go_quote(orig)));
        }
        let unit: u64 = match unit_text {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => {
                return Err(format!(
                    "time: unknown unit {} in duration {}",
                    go_quote(unit_text),
                    go_quote(orig)
                ))
            }
        };
        if v > MAX / unit {
            return Err(invalid());
        }
        v *= unit;
        if frac > 0 {
            // Go computes this in float64 too, so the rounding matches.
            let add = (frac as f64 * (unit as f64 / scale)) as u64;
            v = v
                .checked_add(add)
                .filter(|v| *v <= MAX)
                .ok_or_else(invalid)?;
        }
        total = total
            .checked_add(v)
            .filter(|t| *t <= MAX)
            .ok_or_else(invalid)?;
    }
    if neg {
        return Ok(if total == 0 {
            Some(Duration::ZERO)
        } else {
            None
        });
    }
    if total > MAX - 1 {
        return Err(invalid());
    }
    Ok(Some(Duration::from_nanos(total)))
}

/// Go's `strconv.ParseInt(s, 10, 32)` with its error text.
pub fn parse_go_int32(s: &str) -> Result<i64, String> {
    let syntax = || format!("strconv.ParseInt: parsing {}: invalid syntax", go_quote(s));
    let range = || {
        format!(
            "strconv.ParseInt: parsing {}: value out of range",
            go_quote(s)
        )
    };
    let (neg, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(syntax());
    }
    let mut v: i64 = 0;
    for b in digits.bytes() {
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_add(i64::from(b - b'0')))
            .unwrap_or(i64::MAX);
    }
    let v = if neg { -v } else { v };
    if v > i64::from(i32::MAX) || v < i64::from(i32::MIN) {
        return Err(range());
    }
    Ok(v)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// buildkit's `suggest.Search`: the closest option at edit distance below 3, none on an exact
/// match. Without case sensitivity the answer takes the case of `val` when that is all lower or
/// all upper, as buildkit's `matchCase` does.
pub fn suggest(val: &str, options: &[&str], case_sensitive: bool) -> Option<String> {
    let key = if case_sensitive {
        val.to_string()
    } else {
        val.to_lowercase()
    };
    let mut best: Option<String> = None;
    let mut min_dist = 3;
    for opt in options {
        let opt = if case_sensitive {
            opt.to_string()
        } else {
            opt.to_lowercase()
        };
        if opt == key {
            return None;
        }
        let dist = levenshtein(&key, &opt);
        if dist < min_dist {
            min_dist = dist;
            best = Some(if case_sensitive || val == val.to_lowercase() {
                opt
            } else if val == val.to_uppercase() {
                opt.to_uppercase()
            } else {
                opt
            });
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse_like_time_parse_duration() {
        let ok = |s: &str| parse_go_duration(s).ok().flatten();
        assert_eq!(ok("30s"), Some(Duration::from_secs(30)));
        assert_eq!(ok("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(ok("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(ok("1.5h"), Some(Duration::from_secs(5400)));
        assert_eq!(ok(".5s"), Some(Duration::from_millis(500)));
        assert_eq!(ok("0"), Some(Duration::ZERO));
        assert_eq!(ok("2\u{b5}s"), Some(Duration::from_micros(2)));
        assert_eq!(parse_go_duration("-5s"), Ok(None));
        assert_eq!(
            parse_go_duration("5").unwrap_err(),
            "time: missing unit in duration \"5\""
        );
        assert_eq!(
            parse_go_duration("5x").unwrap_err(),
            "time: unknown unit \"x\" in duration \"5x\""
        );
        assert_eq!(
            parse_go_duration("abc").unwrap_err(),
            "time: invalid duration \"abc\""
        );
        assert_eq!(
            parse_go_duration("").unwrap_err(),
            "time: invalid duration \"\""
        );
        assert!(parse_go_duration("9999999999999h").is_err());
    }

    #[test]
    fn go_int32_and_quote() {
        assert_eq!(parse_go_int32("3"), Ok(3));
        assert_eq!(parse_go_int32("-1"), Ok(-1));
        assert_eq!(
            parse_go_int32("x").unwrap_err(),
            "strconv.ParseInt: parsing \"x\": invalid syntax"
        );
        assert_eq!(
            parse_go_int32("99999999999").unwrap_err(),
            "strconv.ParseInt: parsing \"99999999999\": value out of range"
        );
        assert_eq!(go_quote("a\"b\\c\n\u{1}"), "\"a\\\"b\\\\c\\n\\x01\"");
    }

    #[test]
    fn suggestions_follow_buildkit() {
        assert_eq!(
            suggest("RUNN", &["RUN", "ADD"], false).as_deref(),
            Some("RUN")
        );
        assert_eq!(
            suggest("runn", &["RUN", "ADD"], false).as_deref(),
            Some("run")
        );
        assert_eq!(suggest("FOOBAR", &["RUN", "ADD"], false), None);
        assert_eq!(
            suggest("mout", &["mount", "network"], true).as_deref(),
            Some("mount")
        );
    }
}
