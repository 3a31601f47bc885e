//! Published ports: docker's `PortBindings`/`PublishAllPorts` turned into bound host sockets,
//! and back into what inspect and `ps` show.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use bollard::models::{HostConfig, PortBinding};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::proxy::Proto;
use super::publish::{Listener, Publisher};

/// One port the user asked for: the container side, and the host side as requested.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub container_port: u16,
    pub proto: Proto,
    /// None: every address (0.0.0.0 and, where the host has IPv6, ::).
    pub host_ip: Option<IpAddr>,
    /// Inclusive; (0, 0) for a port of the kernel's choosing.
    pub host_ports: (u16, u16),
}

/// One host socket that was bound for a container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Published {
    pub container_port: u16,
    pub proto: Proto,
    pub host_ip: IpAddr,
    pub host_port: u16,
}

/// "80/tcp" → (80, Tcp). docker takes a bare "80" as tcp.
pub fn parse_port_key(key: &str) -> Result<(u16, Proto), String> {
    let (port, proto) = key.split_once('/').unwrap_or((key, "tcp"));
    let proto = match proto.to_ascii_lowercase().as_str() {
        "tcp" => Proto::Tcp,
        "udp" => Proto::Udp,
        other => {
            return Err(format!(
                "invalid proto '{other}' in port spec {key}: use tcp or udp"
            ))
        }
    };
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok((p, proto)),
        _ => Err(format!("invalid containerPort: {port}")),
    }
}

fn parse_host_ports(s: &str) -> Result<(u16, u16), String> {
    let bad = || format!("invalid hostPort: {s}");
    if s.is_empty() {
        return Ok((0, 0));
    }
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let a = a.parse::<u16>().map_err(|_| bad())?;
    let b = b.parse::<u16>().map_err(|_| bad())?;
    if a > b || (a == 0) != (b == 0) {
        return Err(bad());
    }
    Ok((a, b))
}

fn parse_host_ip(s: &str) -> Result<Option<IpAddr>, String> {
    let t = s.trim_start_matches('[').trim_end_matches(']');
    if t.is_empty() {
        return Ok(None);
    }
    t.parse::<IpAddr>()
        .map(Some)
        .map_err(|_| format!("invalid IP address in port binding: {s}"))
}

/// Everything to publish for a container, checked. `exposed` are its ExposedPorts keys
/// (image's and user's), used by `-P`.
pub fn requests(hc: &HostConfig, exposed: &[String]) -> Result<Vec<Request>, String> {
    let mut out = Vec::new();
    let bindings: BTreeMap<String, Option<Vec<PortBinding>>> = hc
        .port_bindings
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    for (key, list) in &bindings {
        let (container_port, proto) = parse_port_key(key)?;
        let list = list.clone().unwrap_or_default();
        let list = if list.is_empty() {
            vec![PortBinding::default()]
        } else {
            list
        };
        for b in list {
            out.push(Request {
                container_port,
                proto,
                host_ip: parse_host_ip(b.host_ip.as_deref().unwrap_or(""))?,
                host_ports: parse_host_ports(b.host_port.as_deref().unwrap_or(""))?,
            });
        }
    }
    if hc.publish_all_ports.unwrap_or(false) {
        for key in exposed {
            if bindings.contains_key(key) {
                continue;
            }
            let (container_port, proto) = parse_port_key(key)?;
            out.push(Request {
                container_port,
                proto,
                host_ip: None,
                host_ports: (0, 0),
            });
        }
    }
    Ok(out)
}

/// Whether the host can bind IPv6 sockets at all (a kernel booted with ipv6.disable=1 cannot).
pub fn host_has_ipv6() -> bool {
    std::fs::read_to_string("/proc/net/if_inet6").is_ok_and(|s| !s.trim().is_empty())
}

fn in_use(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::AddrInUse
}

/// Bind every request. `target` is the container's address, for messages. On any failure
/// nothing stays bound (the sockets bound so far are dropped).
pub fn bind_all(
    reqs: &[Request],
    target: Ipv4Addr,
    ipv6: bool,
    publisher: &Publisher,
) -> Result<Vec<(Published, Listener)>, String> {
    let mut out = Vec::new();
    for r in reqs {
        let ips: Vec<IpAddr> = match r.host_ip {
            Some(ip) => vec![ip],
            None if ipv6 => vec![Ipv4Addr::UNSPECIFIED.into(), Ipv6Addr::UNSPECIFIED.into()],
            None => vec![Ipv4Addr::UNSPECIFIED.into()],
        };
        let show = |ip: &IpAddr, port: String| match ip {
            IpAddr::V6(v6) => format!("[{v6}]:{port}"),
            IpAddr::V4(v4) => format!("{v4}:{port}"),
        };
        let fail = |ip: &IpAddr, port: String, e: &std::io::Error| {
            format!(
                "failed to bind host port for {}:{target}:{}/{}: {}",
                show(ip, port),
                r.container_port,
                r.proto,
                describe(e)
            )
        };
        let bound = match r.host_ports {
            (0, 0) => {
                // The kernel picks a port on the first address; the others must get the same.
                let mut last_err = None;
                let mut got = None;
                for _ in 0..16 {
                    match bind_same_port(publisher, r.proto, &ips, 0) {
                        Ok(b) => {
                            got = Some(b);
                            break;
                        }
                        Err(e) => last_err = Some(e),
                    }
                }
                match got {
                    Some(b) => b,
                    None => {
                        let e = last_err.unwrap_or_else(|| std::io::Error::other("no port"));
                        return Err(fail(&ips[0], "0".into(), &e));
                    }
                }
            }
            (a, b) if a == b => {
                bind_same_port(publisher, r.proto, &ips, a).map_err(|e| fail(&ips[0], a.to_string(), &e))?
            }
            (a, b) => (a..=b)
                .find_map(|p| bind_same_port(publisher, r.proto, &ips, p).ok())
                .ok_or_else(|| {
                    format!(
                        "failed to bind host port for {}:{target}:{}/{}: every port of the range is in use; choose another range",
                        show(&ips[0], format!("{a}-{b}")),
                        r.container_port,
                        r.proto
                    )
                })?,
        };
        for b in bound {
            let addr = b.local_addr();
            out.push((
                Published {
                    container_port: r.container_port,
                    proto: r.proto,
                    host_ip: addr.ip(),
                    host_port: addr.port(),
                },
                b,
            ));
        }
    }
    Ok(out)
}

fn describe(e: &std::io::Error) -> String {
    if in_use(e) {
        "address already in use".into()
    } else {
        e.to_string()
    }
}

/// Bind `port` (0: the kernel's choice, taken from the first address) on every address.
fn bind_same_port(
    publisher: &Publisher,
    proto: Proto,
    ips: &[IpAddr],
    port: u16,
) -> std::io::Result<Vec<Listener>> {
    let mut out: Vec<Listener> = Vec::new();
    let mut port = port;
    for ip in ips {
        let b = publisher.bind(proto, SocketAddr::new(*ip, port))?;
        port = b.local_addr().port();
        out.push(b);
    }
    Ok(out)
}

/// inspect's `NetworkSettings.Ports`: every exposed or published port, with its bindings
/// (null for one exposed only).
pub fn inspect_ports(exposed: &[String], published: &[Published]) -> Value {
    let mut map = serde_json::Map::new();
    for key in exposed {
        map.insert(normalize_key(key), Value::Null);
    }
    for p in published {
        let key = format!("{}/{}", p.container_port, p.proto);
        let entry = map.entry(key).or_insert_with(|| json!([]));
        if entry.is_null() {
            *entry = json!([]);
        }
        if let Some(list) = entry.as_array_mut() {
            list.push(
                json!({"HostIp": p.host_ip.to_string(), "HostPort": p.host_port.to_string()}),
            );
        }
    }
    Value::Object(map)
}

/// `/containers/json`'s `Ports`: published ones with their host side, then the exposed rest.
pub fn list_ports(exposed: &[String], published: &[Published]) -> Value {
    let mut out: Vec<Value> = published
        .iter()
        .map(|p| {
            json!({"IP": p.host_ip.to_string(), "PrivatePort": p.container_port,
                   "PublicPort": p.host_port, "Type": p.proto.to_string()})
        })
        .collect();
    for key in exposed {
        let Ok((port, proto)) = parse_port_key(key) else {
            continue;
        };
        if !published
            .iter()
            .any(|p| p.container_port == port && p.proto == proto)
        {
            out.push(json!({"PrivatePort": port, "Type": proto.to_string()}));
        }
    }
    Value::Array(out)
}

fn normalize_key(key: &str) -> String {
    match parse_port_key(key) {
        Ok((p, proto)) => format!("{p}/{proto}"),
        Err(_) => key.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn hc(bindings: &[(&str, &str, &str)], all: bool) -> HostConfig {
        let mut m: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
        for (k, ip, port) in bindings {
            m.entry(k.to_string())
                .or_insert_with(|| Some(vec![]))
                .as_mut()
                .unwrap()
                .push(PortBinding {
                    host_ip: Some(ip.to_string()),
                    host_port: Some(port.to_string()),
                });
        }
        HostConfig {
            port_bindings: Some(m),
            publish_all_ports: Some(all),
            ..Default::default()
        }
    }

    #[test]
    fn every_docker_form_parses() {
        let r = requests(
            &hc(
                &[
                    ("80/tcp", "", "8080"),
                    ("81/tcp", "127.0.0.1", "8000-9000"),
                    ("53/udp", "::1", ""),
                ],
                true,
            ),
            &["80/tcp".into(), "443/tcp".into()],
        )
        .unwrap();
        assert_eq!(r.len(), 4);
        assert_eq!(r[0].container_port, 53);
        assert_eq!(r[0].proto, Proto::Udp);
        assert_eq!(r[0].host_ip, Some("::1".parse().unwrap()));
        assert_eq!(r[0].host_ports, (0, 0));
        assert_eq!(r[1].host_ports, (8080, 8080));
        assert_eq!(r[1].host_ip, None);
        assert_eq!(r[2].host_ports, (8000, 9000));
        assert_eq!(
            r[3].container_port, 443,
            "-P adds the exposed port not bound"
        );
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        let e = requests(&hc(&[("80/sctp", "", "1")], false), &[]).unwrap_err();
        assert!(e.contains("sctp"), "{e}");
        let e = requests(&hc(&[("80/tcp", "", "9-3")], false), &[]).unwrap_err();
        assert!(e.contains("invalid hostPort"), "{e}");
        let e = requests(&hc(&[("80/tcp", "1.2.3", "1")], false), &[]).unwrap_err();
        assert!(e.contains("invalid IP"), "{e}");
        let e = requests(&hc(&[("0/tcp", "", "1")], false), &[]).unwrap_err();
        assert!(e.contains("containerPort"), "{e}");
    }

    #[tokio::test]
    async fn ranges_skip_busy_ports_and_conflicts_fail() {
        let target = Ipv4Addr::new(10, 0, 0, 2);
        let lo: IpAddr = Ipv4Addr::LOCALHOST.into();
        let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let p = busy.local_addr().unwrap().port();
        let req = |ports| Request {
            container_port: 80,
            proto: Proto::Tcp,
            host_ip: Some(lo),
            host_ports: ports,
        };
        let e = match bind_all(&[req((p, p))], target, false, &Publisher::Local) {
            Err(e) => e,
            Ok(_) => panic!("bound a busy port"),
        };
        assert!(e.contains("address already in use"), "{e}");
        assert!(e.contains(&format!("127.0.0.1:{p}:10.0.0.2:80/tcp")), "{e}");
        if p < u16::MAX {
            let got = bind_all(&[req((p, p + 1))], target, false, &Publisher::Local).unwrap();
            assert_eq!(got[0].0.host_port, p + 1);
        }
        let e = match bind_all(&[req((p, p))], target, false, &Publisher::Local) {
            Err(e) => e,
            Ok(_) => panic!("bound a busy port"),
        };
        assert!(!e.is_empty());
        let random = bind_all(&[req((0, 0))], target, false, &Publisher::Local).unwrap();
        assert_ne!(random[0].0.host_port, 0);
    }

    #[test]
    fn shown_as_docker_shows_them() {
        let published = vec![
            Published {
                container_port: 80,
                proto: Proto::Tcp,
                host_ip: "0.0.0.0".parse().unwrap(),
                host_port: 8080,
            },
            Published {
                container_port: 80,
                proto: Proto::Tcp,
                host_ip: "::".parse().unwrap(),
                host_port: 8080,
            },
        ];
        let exposed = vec!["80/tcp".to_string(), "443/tcp".to_string()];
        assert_eq!(
            inspect_ports(&exposed, &published),
            json!({"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}, {"HostIp": "::", "HostPort": "8080"}],
                   "443/tcp": null})
        );
        let l = list_ports(&exposed, &published);
        assert_eq!(l.as_array().unwrap().len(), 3);
        assert_eq!(l[2], json!({"PrivatePort": 443, "Type": "tcp"}));
    }

    fn req(port: u16, ip: Option<&str>, host_ports: (u16, u16)) -> Request {
        Request {
            container_port: port,
            proto: Proto::Tcp,
            host_ip: ip.map(|i| i.parse().unwrap()),
            host_ports,
        }
    }

    #[test]
    fn bind_all_publishes_every_address_and_takes_back_all_on_failure() {
        use crate::network::publish::fake::FakeRemote;
        use std::sync::Arc;
        let remote = Arc::new(FakeRemote::default());
        let publisher = Publisher::Remote(remote.clone());
        let target: Ipv4Addr = "10.0.0.2".parse().unwrap();
        let held = |r: &FakeRemote| {
            r.held
                .lock()
                .unwrap()
                .keys()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
        };

        // A port of the kernel's choosing is the same on IPv4 and IPv6.
        let bound = bind_all(&[req(80, None, (0, 0))], target, true, &publisher).unwrap();
        let ports: Vec<_> = bound
            .iter()
            .map(|(p, _)| (p.host_ip.to_string(), p.host_port))
            .collect();
        assert_eq!(
            ports,
            [("0.0.0.0".to_string(), 40001), ("::".to_string(), 40001)]
        );

        // A range takes its first free port.
        let taken = bind_all(
            &[req(81, Some("127.0.0.1"), (8000, 8000))],
            target,
            false,
            &publisher,
        )
        .unwrap();
        let ranged = bind_all(
            &[req(82, Some("127.0.0.1"), (8000, 8002))],
            target,
            false,
            &publisher,
        )
        .unwrap();
        assert_eq!(ranged[0].0.host_port, 8001);

        // One port in use fails the whole request, named as docker names it, and what was
        // bound for it before the failure is given back.
        let before = held(&remote);
        let e = bind_all(
            &[
                req(90, Some("127.0.0.1"), (9000, 9000)),
                req(91, Some("127.0.0.1"), (8000, 8000)),
            ],
            target,
            false,
            &publisher,
        )
        .err()
        .unwrap();
        assert_eq!(
            e,
            "failed to bind host port for 127.0.0.1:8000:10.0.0.2:91/tcp: address already in use"
        );
        assert_eq!(held(&remote), before, "9000 is free again");
        let e = bind_all(
            &[req(92, Some("127.0.0.1"), (8000, 8001))],
            target,
            false,
            &publisher,
        )
        .err()
        .unwrap();
        assert!(
            e.ends_with("every port of the range is in use; choose another range"),
            "{e}"
        );
        drop((bound, taken, ranged));
        assert!(
            held(&remote).is_empty(),
            "dropped listeners give their ports back"
        );
    }
}
