//! Docker's human units: `HumanSizeWithPrecision(n, 3)` for sizes and go-units'
//! `HumanDuration` for ages ("3 years ago").

/// Docker's `HumanSizeWithPrecision(n, 3)`: decimal units, three significant digits.
pub fn human_size(n: u64) -> String {
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    let mut size = n as f64;
    let mut i = 0;
    while size >= 1000.0 && i < UNITS.len() - 1 {
        size /= 1000.0;
        i += 1;
    }
    format!("{}{}", format_g3(size), UNITS[i])
}

/// Go's `%.3g` for the values human sizes produce (0 ≤ v < 1000).
fn format_g3(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let exp = v.abs().log10().floor() as i32;
    let rounded_exp = {
        let decimals = (2 - exp).max(0) as usize;
        let s = format!("{v:.decimals$}");
        s.parse::<f64>()
            .map(|r| r.abs().log10().floor() as i32)
            .unwrap_or(exp)
    };
    if rounded_exp >= 3 {
        // Go prints 999.9 with %.3g as 1e+03.
        return format!("1e+{:02}", rounded_exp);
    }
    let decimals = (2 - rounded_exp).max(0) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
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
    fn durations_as_docker_prints_them() {
        assert_eq!(human_duration(0), "Less than a second");
        assert_eq!(human_duration(45), "45 seconds");
        assert_eq!(human_duration(90), "About a minute");
        assert_eq!(human_duration(3600 * 5), "5 hours");
        assert_eq!(human_duration(3600 * 24 * 3), "3 days");
        assert_eq!(human_duration(3600 * 24 * 365 * 3), "3 years");
    }
}
