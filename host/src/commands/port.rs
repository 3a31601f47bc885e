//! `port` / `container port`: a container's published ports from its
//! `NetworkSettings.Ports`, printed as docker 28's `runPort` does.

use anyhow::Result;
use serde_json::Value;

use super::api::{seg, Body};
use super::gofmt::{natural_cmp, quote};
use super::network::trim_id;
use super::ps::join_host_port;
use super::Engine;
use crate::cli::PortArgs;
use crate::output::outln;
use crate::SkiffError;

/// Go's `strconv.ParseUint(s, 10, 16)`, with its error text.
fn parse_port_number(s: &str) -> Result<u16, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "strconv.ParseUint: parsing {}: invalid syntax",
            quote(s)
        ));
    }
    s.parse::<u16>().map_err(|_| {
        format!(
            "strconv.ParseUint: parsing {}: value out of range",
            quote(s)
        )
    })
}

/// "HOST_IP:HOST_PORT" of one binding (`[::]:8080` for IPv6).
fn frontend(b: &Value) -> String {
    let field = |k: &str| b.get(k).and_then(Value::as_str).unwrap_or("");
    join_host_port(field("HostIp"), field("HostPort"))
}

/// The lines `port` prints for a container's `NetworkSettings.Ports`: every binding as
/// "80/tcp -> 0.0.0.0:8080", or with `private` ("80", "53/udp") just the host addresses of
/// that port. Sorted in natural order as docker does (so 0.0.0.0 comes before [::]).
pub fn port_lines(
    ports: &Value,
    private: Option<&str>,
    container: &str,
) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    match private {
        Some(p) => {
            // The protocol is taken as written: docker looks up "80/TCP" and finds nothing.
            let (port, proto) = p.split_once('/').unwrap_or((p, ""));
            let proto = if proto.is_empty() { "tcp" } else { proto };
            parse_port_number(port).map_err(|e| format!("Error: invalid port ({port}): {e}"))?;
            let frontends = ports
                .get(format!("{port}/{proto}"))
                .and_then(Value::as_array)
                .filter(|f| !f.is_empty())
                .ok_or_else(|| format!("Error: No public port '{p}' published for {container}"))?;
            out.extend(frontends.iter().map(frontend));
        }
        None => {
            if let Some(map) = ports.as_object() {
                for (from, frontends) in map {
                    for f in frontends.as_array().map(Vec::as_slice).unwrap_or(&[]) {
                        out.push(format!("{from} -> {}", frontend(f)));
                    }
                }
            }
        }
    }
    out.sort_by(|a, b| natural_cmp(a, b));
    Ok(out)
}

pub async fn port(engine: &Engine, a: &PortArgs) -> Result<u8> {
    let id = trim_id("container", &a.container).map_err(|e| SkiffError::with_code(e, 1))?;
    let c = engine
        .api()
        .json("GET", &format!("/containers/{}/json", seg(&id)), Body::None)
        .await?;
    // Plain errors in docker: printed as they are, exit 1.
    let lines = port_lines(
        &c["NetworkSettings"]["Ports"],
        a.port.as_deref(),
        &a.container,
    )
    .map_err(|e| SkiffError::with_code(e, 1))?;
    if !lines.is_empty() {
        outln(&lines.join("\n"));
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ports() -> Value {
        json!({
            "80/tcp": [{"HostIp": "::", "HostPort": "8080"}, {"HostIp": "0.0.0.0", "HostPort": "8080"}],
            "443/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8443"}],
            "53/udp": [{"HostIp": "0.0.0.0", "HostPort": "5353"}],
            "9000/tcp": null,
            "9001/tcp": []
        })
    }

    #[test]
    fn all_ports_like_docker() {
        assert_eq!(
            port_lines(&ports(), None, "web").unwrap(),
            vec![
                "53/udp -> 0.0.0.0:5353",
                "80/tcp -> 0.0.0.0:8080",
                "80/tcp -> [::]:8080",
                "443/tcp -> 127.0.0.1:8443",
            ]
        );
        assert!(port_lines(&json!({}), None, "web").unwrap().is_empty());
        assert!(port_lines(&Value::Null, None, "web").unwrap().is_empty());
    }

    #[test]
    fn one_port_like_docker() {
        assert_eq!(
            port_lines(&ports(), Some("80"), "web").unwrap(),
            vec!["0.0.0.0:8080", "[::]:8080"]
        );
        assert_eq!(
            port_lines(&ports(), Some("80/tcp"), "web").unwrap(),
            vec!["0.0.0.0:8080", "[::]:8080"]
        );
        assert_eq!(
            port_lines(&ports(), Some("53/udp"), "web").unwrap(),
            vec!["0.0.0.0:5353"]
        );
        assert_eq!(
            port_lines(&ports(), Some("53"), "web"),
            Err("Error: No public port '53' published for web".into())
        );
        assert_eq!(
            port_lines(&ports(), Some("9000/tcp"), "web"),
            Err("Error: No public port '9000/tcp' published for web".into())
        );
        assert_eq!(
            port_lines(&ports(), Some("9001"), "web"),
            Err("Error: No public port '9001' published for web".into())
        );
        assert_eq!(
            port_lines(&ports(), Some("80/TCP"), "web"),
            Err("Error: No public port '80/TCP' published for web".into())
        );
        assert_eq!(
            port_lines(&ports(), Some("http"), "web"),
            Err(
                "Error: invalid port (http): strconv.ParseUint: parsing \"http\": invalid syntax"
                    .into()
            )
        );
        assert_eq!(
            port_lines(&ports(), Some("70000/tcp"), "web"),
            Err("Error: invalid port (70000): strconv.ParseUint: parsing \"70000\": value out of range".into())
        );
    }
}
