//! The `EndpointSettings` the docker CLI sends for one network: `network connect`'s body and
//! `run`/`create`'s `NetworkingConfig` (`--network`, `--network-alias`, `--ip`, `--ip6`).

use serde_json::{json, Map, Value};

/// Network modes that are not a network of the user's (moby's `NetworkMode.IsUserDefined`).
pub fn is_user_defined(mode: &str) -> bool {
    let container = mode.split_once(':').is_some_and(|(k, _)| k == "container");
    !matches!(mode, "default" | "bridge" | "host" | "none") && !container
}

/// An `EndpointSettings` as the docker CLI marshals it: configuration first, then the
/// operational fields it leaves at their zero values.
pub fn endpoint_settings(
    ipam: Value,
    aliases: Value,
    driver_opts: Value,
    gw_priority: i64,
) -> Value {
    json!({
        "IPAMConfig": ipam, "Links": null, "Aliases": aliases, "MacAddress": "",
        "DriverOpts": driver_opts, "GwPriority": gw_priority, "NetworkID": "", "EndpointID": "",
        "Gateway": "", "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "",
        "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "DNSNames": null
    })
}

/// `EndpointIPAMConfig`, whose fields are all `omitempty`.
pub fn endpoint_ipam(ipv4: &str, ipv6: &str, link_local: &[String]) -> Value {
    let mut m = Map::new();
    if !ipv4.is_empty() {
        m.insert("IPv4Address".into(), json!(ipv4));
    }
    if !ipv6.is_empty() {
        m.insert("IPv6Address".into(), json!(ipv6));
    }
    if !link_local.is_empty() {
        m.insert("LinkLocalIPs".into(), json!(link_local));
    }
    Value::Object(m)
}

/// `run`/`create`'s `NetworkingConfig.EndpointsConfig` (docker's parseNetworkOpts for one
/// `--network`): the endpoint is keyed by the network as given, or "default" without one.
/// A `--network` with nothing to configure sends no endpoint at all, as docker does.
pub fn run_endpoints(
    network: Option<&str>,
    aliases: &[String],
    ipv4: &str,
    ipv6: &str,
) -> Result<Map<String, Value>, String> {
    let target = network.unwrap_or("default");
    if target.trim().is_empty() {
        return Err("no name set for network".into());
    }
    // Client-side, as docker: the engine would only say so after the pull.
    if !is_user_defined(target) && !aliases.is_empty() {
        return Err("network-scoped aliases are only supported for user-defined networks".into());
    }
    let mut endpoints = Map::new();
    let configured = !aliases.is_empty() || !ipv4.is_empty() || !ipv6.is_empty();
    if network.is_some() && !configured {
        return Ok(endpoints);
    }
    let ipam = if ipv4.is_empty() && ipv6.is_empty() {
        Value::Null
    } else {
        endpoint_ipam(ipv4, ipv6, &[])
    };
    let aliases = if aliases.is_empty() {
        Value::Null
    } else {
        json!(aliases)
    };
    endpoints.insert(
        target.to_string(),
        endpoint_settings(ipam, aliases, Value::Null, 0),
    );
    Ok(endpoints)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_endpoints_like_docker() {
        let none: &[String] = &[];
        let aliases = vec!["db".to_string()];
        // No --network: the "default" endpoint, always.
        let e = run_endpoints(None, none, "", "").unwrap();
        assert_eq!(e["default"]["Aliases"], Value::Null);
        assert_eq!(e["default"]["IPAMConfig"], Value::Null);
        let e = run_endpoints(None, none, "172.17.0.9", "").unwrap();
        assert_eq!(
            e["default"]["IPAMConfig"],
            json!({"IPv4Address": "172.17.0.9"})
        );
        // A --network with nothing to configure sends no endpoint.
        assert!(run_endpoints(Some("mynet"), none, "", "")
            .unwrap()
            .is_empty());
        assert!(run_endpoints(Some("host"), none, "", "")
            .unwrap()
            .is_empty());
        let e = run_endpoints(Some("mynet"), &aliases, "10.0.0.3", "").unwrap();
        assert_eq!(e["mynet"]["Aliases"], json!(["db"]));
        assert_eq!(e["mynet"]["IPAMConfig"], json!({"IPv4Address": "10.0.0.3"}));
        let refused =
            Err("network-scoped aliases are only supported for user-defined networks".to_string());
        assert_eq!(run_endpoints(None, &aliases, "", ""), refused);
        assert_eq!(run_endpoints(Some("bridge"), &aliases, "", ""), refused);
        assert_eq!(
            run_endpoints(Some("container:x"), &aliases, "", ""),
            refused
        );
        assert_eq!(
            run_endpoints(Some(" "), none, "", ""),
            Err("no name set for network".into())
        );
    }

    #[test]
    fn user_defined_networks() {
        assert!(is_user_defined("mynet"));
        assert!(!is_user_defined("default"));
        assert!(!is_user_defined("none"));
        assert!(is_user_defined("containers:x"));
    }
}
