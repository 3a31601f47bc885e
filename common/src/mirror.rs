//! Docker Hub's mirrors as daemon.json's `registry-mirrors` names them: checked where the
//! user's settings are read (the CLI) and where they are used (the engine).

/// A mirror of Docker Hub, as daemon.json's `registry-mirrors` names one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mirror {
    /// As docker shows it in `info`: `scheme://host[:port]/`.
    pub url: String,
    /// `host[:port]`, what requests go to.
    pub host: String,
    /// Reached over plain http (its URL says `http://`).
    pub insecure: bool,
}

impl std::str::FromStr for Mirror {
    type Err = String;

    /// docker's rules: an http or https URL naming a host, with nothing after it.
    fn from_str(raw: &str) -> Result<Mirror, String> {
        let bad = |why: &str| {
            format!("invalid registry mirror {raw:?}: {why}; a mirror is written like https://mirror.example.com or http://127.0.0.1:5000")
        };
        let url = url::Url::parse(raw.trim()).map_err(|e| bad(&e.to_string()))?;
        let insecure = match url.scheme() {
            "http" => true,
            "https" => false,
            s => return Err(bad(&format!("the scheme must be http or https, not {s}"))),
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad("credentials do not belong in the URL"));
        }
        if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
            return Err(bad(
                "a path, query or fragment after the host is not supported",
            ));
        }
        let host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            (None, _) => return Err(bad("it names no host")),
        };
        Ok(Mirror {
            url: format!("{}://{host}/", url.scheme()),
            host,
            insecure,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirrors_are_checked_as_docker_checks_them() {
        let m: Mirror = "http://127.0.0.1:5000".parse().expect("valid");
        assert_eq!(m.url, "http://127.0.0.1:5000/");
        assert_eq!(m.host, "127.0.0.1:5000");
        assert!(m.insecure);
        let m: Mirror = "https://mirror.example.com/".parse().expect("valid");
        assert_eq!(
            (m.url.as_str(), m.insecure),
            ("https://mirror.example.com/", false)
        );
        for (bad, says) in [
            ("mirror.example.com", "relative URL"),
            ("ftp://mirror.example.com", "must be http or https, not ftp"),
            (
                "https://mirror.example.com/v2/",
                "a path, query or fragment",
            ),
            ("https://u:p@mirror.example.com", "credentials"),
        ] {
            let e = bad.parse::<Mirror>().expect_err(bad);
            assert!(
                e.contains(says) && e.contains("https://mirror.example.com or"),
                "{bad}: {e}"
            );
        }
    }
}
