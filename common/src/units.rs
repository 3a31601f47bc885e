//! Docker's human units: go-units' sizes (`HumanSizeWithPrecision`, `HumanSize`,
//! `BytesSize`), Go's `%g` they are printed with, and `HumanDuration` for ages
//! ("3 years ago"). The one implementation of each, for the CLI and the engine.

const DECIMAL: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
const BINARY: [&str; 9] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];

/// Docker's `HumanSizeWithPrecision(n, 3)`: decimal units, three significant digits
/// (`images`, `history`, `info`, pull progress, `ps --size`, stats I/O, `cp`, df's
/// verbose tables).
pub fn human_size(n: u64) -> String {
    human_size_with_precision(n as f64, 3)
}

/// go-units' `HumanSizeWithPrecision(v, prec)`: decimal units, `prec` significant digits.
/// docker uses 3 (`HumanSizeWithPrecision(n, 3)`: "1.98MB") and, through `HumanSize`, 4
/// (prune totals, `system df`'s summary: "1.984MB").
pub fn human_size_with_precision(v: f64, prec: usize) -> String {
    custom_size(v, 1000.0, &DECIMAL, prec)
}

/// go-units' `HumanSize`: `HumanSizeWithPrecision(v, 4)`.
pub fn human_size4(v: f64) -> String {
    human_size_with_precision(v, 4)
}

/// go-units' `BytesSize` (binary units, four significant digits): stats memory.
pub fn bytes_size(v: f64) -> String {
    custom_size(v, 1024.0, &BINARY, 4)
}

/// go-units' `CustomSize("%.{prec}g%s", v, base, units)`.
fn custom_size(v: f64, base: f64, units: &[&str], prec: usize) -> String {
    let mut size = v;
    let mut i = 0;
    while size >= base && i < units.len() - 1 {
        size /= base;
        i += 1;
    }
    format!("{}{}", format_g(size, prec), units[i])
}

/// Go's `%.{prec}g`.
pub fn format_g(v: f64, prec: usize) -> String {
    if v == 0.0 {
        return "0".into();
    }
    if !v.is_finite() {
        return if v.is_nan() {
            "NaN".into()
        } else if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    let prec = prec.max(1);
    // The exponent after rounding to `prec` significant digits decides the notation.
    let sci = format!("{:.*e}", prec - 1, v);
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if exp < -4 || exp >= prec as i32 {
        let mant = trim_zeros(mant);
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mant}e{sign}{:02}", exp.abs());
    }
    let decimals = (prec as i32 - 1 - exp).max(0) as usize;
    trim_zeros(&format!("{v:.decimals$}"))
}

fn trim_zeros(s: &str) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s.to_string()
    }
}

/// go-units' `HumanDuration`, which docker prints before " ago".
pub fn human_duration(secs: i64) -> String {
    let secs = secs.max(0);
    if secs < 1 {
        return "Less than a second".into();
    }
    if secs == 1 {
        return "1 second".into();
    }
    if secs < 60 {
        return format!("{secs} seconds");
    }
    let minutes = secs / 60;
    if minutes == 1 {
        return "About a minute".into();
    }
    if minutes < 60 {
        return format!("{minutes} minutes");
    }
    let hours = ((secs as f64) / 3600.0).round() as i64;
    if hours == 1 {
        return "About an hour".into();
    }
    if hours < 48 {
        return format!("{hours} hours");
    }
    if hours < 24 * 7 * 2 {
        return format!("{} days", hours / 24);
    }
    if hours < 24 * 30 * 2 {
        return format!("{} weeks", hours / 24 / 7);
    }
    if hours < 24 * 365 * 2 {
        return format!("{} months", hours / 24 / 30);
    }
    format!("{} years", hours / 24 / 365)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_as_docker_prints_them() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(236), "236B");
        assert_eq!(human_size(1984469), "1.98MB");
        assert_eq!(human_size(4300), "4.3kB");
        assert_eq!(human_size(1000), "1kB");
        assert_eq!(human_size(123456), "123kB");
        assert_eq!(human_size(51_200_000), "51.2MB");
        assert_eq!(human_size(8_388_608), "8.39MB");
        assert_eq!(human_size(999_999), "1e+03kB");
    }

    #[test]
    fn each_precision_docker_uses() {
        // HumanSizeWithPrecision(n, 3): images, ps --size, stats I/O, cp.
        assert_eq!(human_size_with_precision(1234.0, 3), "1.23kB");
        assert_eq!(human_size_with_precision(1_984_469.0, 3), "1.98MB");
        // HumanSize (precision 4): prune totals, system df.
        assert_eq!(human_size4(1234.0), "1.234kB");
        assert_eq!(human_size4(1_984_469.0), "1.984MB");
        assert_eq!(human_size4(0.0), "0B");
        // Precision 2, as go-units' own examples ("1.2kB").
        assert_eq!(human_size_with_precision(1234.0, 2), "1.2kB");
        // BytesSize: stats memory.
        assert_eq!(bytes_size(0.0), "0B");
        assert_eq!(bytes_size(1536.0), "1.5KiB");
        assert_eq!(bytes_size(8_229_298_176.0), "7.664GiB");
        assert_eq!(bytes_size(1023.0), "1023B");
    }

    #[test]
    fn percent_g_like_go() {
        assert_eq!(format_g(1.5, 4), "1.5");
        assert_eq!(format_g(1000.0, 4), "1000");
        assert_eq!(format_g(999.96, 4), "1000");
        assert_eq!(format_g(7.6640625, 4), "7.664");
        assert_eq!(format_g(12345.0, 4), "1.234e+04");
        assert_eq!(format_g(0.0001, 3), "0.0001");
        assert_eq!(format_g(0.00001, 3), "1e-05");
        assert_eq!(format_g(1.98, 3), "1.98");
        assert_eq!(format_g(999.9, 3), "1e+03");
        assert_eq!(format_g(0.5, 3), "0.5");
        assert_eq!(format_g(f64::INFINITY, 3), "+Inf");
    }

    #[test]
    fn durations_as_docker_prints_them() {
        assert_eq!(human_duration(0), "Less than a second");
        assert_eq!(human_duration(45), "45 seconds");
        assert_eq!(human_duration(90), "About a minute");
        assert_eq!(human_duration(3600 * 5), "5 hours");
        assert_eq!(human_duration(3600 * 24 * 3), "3 days");
        assert_eq!(human_duration(3600 * 24 * 365 * 3), "3 years");
    }
}
