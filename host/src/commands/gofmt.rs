//! How Go (and go-units) print numbers, sizes, times and strings, for the columns docker
//! prints with them.

// Sizes and `%g` live once, in `skiff_common::units`; these names stay for their callers.
pub use skiff_common::units::bytes_size;

/// go-units' `HumanSize` (four significant digits, decimal units): prune totals, df.
pub fn human_size(v: f64) -> String {
    skiff_common::units::human_size4(v)
}

/// go-units' `HumanSizeWithPrecision(v, 3)`: ps sizes, stats I/O, cp.
pub fn human_size3(v: f64) -> String {
    skiff_common::units::human_size_with_precision(v, 3)
}

/// Go's `strconv.Quote`.
pub use skiff_common::gostr::quote;

/// docker's `Ellipsis`: at most `max` characters, the last an ellipsis when cut.
pub fn ellipsis(s: &str, max: usize) -> String {
    if max == 0 {
        return String::new();
    }
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}

/// Go's `time.Unix(secs, 0).String()` in local time: "2006-01-02 15:04:05 -0700 MST".
pub fn go_local_time(secs: i64) -> String {
    // SAFETY: a zeroed tm is a valid out-parameter; localtime_r fills it from `t`.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let t = secs as libc::time_t;
    // SAFETY: both pointers are to values we own for the duration of the call.
    if unsafe { libc::localtime_r(&t, &mut tm) }.is_null() {
        return String::new();
    }
    let off = tm.tm_gmtoff;
    let sign = if off < 0 { '-' } else { '+' };
    let off = off.abs();
    let zone = if tm.tm_zone.is_null() {
        String::new()
    } else {
        // SAFETY: tm_zone points at a NUL-terminated zone abbreviation owned by libc.
        unsafe { std::ffi::CStr::from_ptr(tm.tm_zone) }
            .to_string_lossy()
            .into_owned()
    };
    let zone = if zone.is_empty() {
        format!("{sign}{:02}{:02}", off / 3600, (off % 3600) / 60)
    } else {
        zone
    };
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} {sign}{:02}{:02} {zone}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        off / 3600,
        (off % 3600) / 60,
    )
}

/// fvbommel/sortorder's `NaturalLess`, which docker sorts names and port lines with: runs
/// of digits compare as numbers ("web2" before "web10"), digits before anything else, and
/// fewer leading zeros first on a tie.
pub fn natural_less(a: &str, b: &str) -> bool {
    let (s1, s2) = (a.as_bytes(), b.as_bytes());
    let (mut i1, mut i2) = (0, 0);
    while i1 < s1.len() && i2 < s2.len() {
        let (c1, c2) = (s1[i1], s2[i2]);
        let (d1, d2) = (c1.is_ascii_digit(), c2.is_ascii_digit());
        if d1 != d2 {
            return d1;
        }
        if !d1 {
            if c1 != c2 {
                return c1 < c2;
            }
            i1 += 1;
            i2 += 1;
            continue;
        }
        while i1 < s1.len() && s1[i1] == b'0' {
            i1 += 1;
        }
        while i2 < s2.len() && s2[i2] == b'0' {
            i2 += 1;
        }
        let (nz1, nz2) = (i1, i2);
        while i1 < s1.len() && s1[i1].is_ascii_digit() {
            i1 += 1;
        }
        while i2 < s2.len() && s2[i2].is_ascii_digit() {
            i2 += 1;
        }
        let (len1, len2) = (i1 - nz1, i2 - nz2);
        if len1 != len2 {
            return len1 < len2;
        }
        let (n1, n2) = (&s1[nz1..i1], &s2[nz2..i2]);
        if n1 != n2 {
            return n1 < n2;
        }
        if nz1 != nz2 {
            return nz1 < nz2;
        }
    }
    s1.len() < s2.len()
}

/// `natural_less` as an ordering, for `sort_by`.
pub fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    if natural_less(a, b) {
        std::cmp::Ordering::Less
    } else if natural_less(b, a) {
        std::cmp::Ordering::Greater
    } else {
        std::cmp::Ordering::Equal
    }
}

/// Go's `time.Time.String()` of a time the engine sent in RFC 3339:
/// "2006-01-02 15:04:05.999999999 -0700 MST". A zone Go would not know by name prints as
/// its offset; an absent or unreadable time is Go's zero time.
pub fn go_time_string(rfc3339: &str) -> String {
    let Ok(t) = chrono::DateTime::parse_from_rfc3339(rfc3339) else {
        return "0001-01-01 00:00:00 +0000 UTC".into();
    };
    let mut out = t.format("%Y-%m-%d %H:%M:%S").to_string();
    let nanos = t.timestamp_subsec_nanos();
    if nanos > 0 {
        let frac = format!("{nanos:09}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
    let off = t.offset().local_minus_utc();
    let sign = if off < 0 { '-' } else { '+' };
    let zone = format!(
        "{sign}{:02}{:02}",
        off.abs() / 3600,
        (off.abs() % 3600) / 60
    );
    let name = if off == 0 {
        "UTC".to_string()
    } else {
        zone.clone()
    };
    format!("{out} {zone} {name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_names_keep_their_precision() {
        assert_eq!(human_size(1_984_469.0), "1.984MB");
        assert_eq!(human_size3(1_984_469.0), "1.98MB");
        assert_eq!(bytes_size(1536.0), "1.5KiB");
    }

    #[test]
    fn quotes_and_ellipsis_like_docker() {
        assert_eq!(quote("echo hi"), "\"echo hi\"");
        assert_eq!(quote("a\"b\\\n\t"), "\"a\\\"b\\\\\\n\\t\"");
        assert_eq!(quote("\u{1}"), "\"\\x01\"");
        assert_eq!(quote("héllo"), "\"héllo\"");
        assert_eq!(
            ellipsis("sh -c 'while true; do sleep 1; done'", 20),
            "sh -c 'while true; …"
        );
        assert_eq!(ellipsis("short", 20), "short");
    }
    #[test]
    fn natural_order_like_sortorder() {
        let mut v = vec![
            "web10",
            "web2",
            "Web",
            "web",
            "a02",
            "a2",
            "a1b",
            "80/tcp -> [::]:80",
            "80/tcp -> 0.0.0.0:80",
            "8080/tcp -> 0.0.0.0:1",
            "443/tcp -> 0.0.0.0:1",
        ];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            v,
            vec![
                "80/tcp -> 0.0.0.0:80",
                "80/tcp -> [::]:80",
                "443/tcp -> 0.0.0.0:1",
                "8080/tcp -> 0.0.0.0:1",
                "Web",
                "a1b",
                "a2",
                "a02",
                "web",
                "web2",
                "web10"
            ]
        );
        assert!(!natural_less("same", "same"));
    }

    #[test]
    fn times_print_like_go() {
        assert_eq!(
            go_time_string("2024-05-01T10:00:00.120000000Z"),
            "2024-05-01 10:00:00.12 +0000 UTC"
        );
        assert_eq!(
            go_time_string("2024-05-01T10:00:00Z"),
            "2024-05-01 10:00:00 +0000 UTC"
        );
        assert_eq!(
            go_time_string("2024-05-01T10:00:00.5+02:00"),
            "2024-05-01 10:00:00.5 +0200 +0200"
        );
        assert_eq!(go_time_string(""), "0001-01-01 00:00:00 +0000 UTC");
    }
}
