//! Timestamps as docker writes them.

/// Now, in RFC 3339 with nanoseconds in UTC, as docker's `Created`, `StartedAt`, … fields.
pub fn now_rfc3339() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.9fZ")
        .to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn nanoseconds_in_utc() {
        let t = super::now_rfc3339();
        assert_eq!(t.len(), "2026-01-02T03:04:05.123456789Z".len(), "{t}");
        assert!(chrono::DateTime::parse_from_rfc3339(&t).is_ok(), "{t}");
    }
}
