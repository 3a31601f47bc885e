//! `ps` / `container ls`: docker's columns and template fields for container summaries.

use anyhow::Result;
use serde_json::{json, Map, Value};

use skiff_common::units::{human_duration, human_size_with_precision};

use super::api::{filters_json, query, Body};
use super::gofmt::{ellipsis, go_local_time, quote};
use super::Engine;
use crate::cli::PsArgs;
use crate::output::{outln, print_template, Format};
use crate::SkiffError;

const DEFAULT_TABLE: &str =
    "{{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}";

/// docker's `stringid.TruncateID`: drop an algorithm prefix, keep 12 characters.
pub fn truncate_id(id: &str) -> String {
    let id = id.split_once(':').map(|(_, h)| h).unwrap_or(id);
    id.chars().take(12).collect()
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

/// The IMAGE column: a short ID when the image is known by ID, else the reference without
/// its digest, in its familiar form.
pub fn image_column(image: &str, image_id: &str, trunc: bool) -> String {
    if image.is_empty() {
        return "<no image>".into();
    }
    if !trunc {
        return image.to_string();
    }
    if truncate_id(image_id) == truncate_id(image) {
        return truncate_id(image_id);
    }
    let without_digest = image.split_once('@').map(|(n, _)| n).unwrap_or(image);
    let familiar = without_digest
        .strip_prefix("docker.io/library/")
        .or_else(|| without_digest.strip_prefix("docker.io/"))
        .unwrap_or(without_digest);
    familiar.to_string()
}

fn port_sort_key(p: &Value) -> (u64, String, u64, String) {
    (
        p["PrivatePort"].as_u64().unwrap_or(0),
        s(p, "IP").to_string(),
        p["PublicPort"].as_u64().unwrap_or(0),
        s(p, "Type").to_string(),
    )
}

/// Go's `net.JoinHostPort`: an IPv6 host in brackets.
pub(super) fn join_host_port(ip: &str, port: &str) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

/// docker's DisplayablePorts: "0.0.0.0:8080->80/tcp, 9000-9002/tcp".
pub fn displayable_ports(ports: &[Value]) -> String {
    let mut ports: Vec<&Value> = ports.iter().collect();
    ports.sort_by_key(|p| port_sort_key(p));
    let mut groups: Vec<(String, u64, u64)> = Vec::new();
    let mut result = Vec::new();
    let mut host_mappings = Vec::new();
    for p in ports {
        let current = p["PrivatePort"].as_u64().unwrap_or(0);
        let public = p["PublicPort"].as_u64().unwrap_or(0);
        let typ = s(p, "Type");
        let ip = s(p, "IP");
        let mut key = typ.to_string();
        if !ip.is_empty() {
            if public != current {
                host_mappings.push(format!(
                    "{}->{current}/{typ}",
                    join_host_port(ip, &public.to_string())
                ));
                continue;
            }
            key = format!("{ip}/{typ}");
        }
        match groups.iter_mut().find(|g| g.0 == key) {
            None => groups.push((key, current, current)),
            Some(g) if current == g.2 + 1 => g.2 = current,
            Some(g) => {
                result.push(form_group(&g.0, g.1, g.2));
                g.1 = current;
                g.2 = current;
            }
        }
    }
    for g in &groups {
        result.push(form_group(&g.0, g.1, g.2));
    }
    result.extend(host_mappings);
    result.join(", ")
}

fn form_group(key: &str, start: u64, last: u64) -> String {
    let (ip, typ) = match key.rsplit_once('/') {
        Some((ip, t)) => (ip, t),
        None => ("", key),
    };
    let mut group = start.to_string();
    if start != last {
        group = format!("{group}-{last}");
    }
    if !ip.is_empty() {
        group = format!("{}->{group}", join_host_port(ip, &group));
    }
    format!("{group}/{typ}")
}

/// One container summary as docker's template fields.
pub fn row(c: &Value, trunc: bool, now: i64) -> Value {
    let id = s(c, "Id");
    let names: Vec<String> = c["Names"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(|n| n.strip_prefix('/').unwrap_or(n).to_string())
                .collect()
        })
        .unwrap_or_default();
    let names = if trunc {
        // Only the container's own name, not the legacy link aliases ("other/alias").
        match names.iter().find(|n| !n.contains('/')) {
            Some(n) => vec![n.clone()],
            None => names,
        }
    } else {
        names
    };
    let command = s(c, "Command");
    let created = c["Created"].as_i64().unwrap_or(0);
    let labels_map = c["Labels"].as_object().cloned().unwrap_or_default();
    let mut labels: Vec<String> = labels_map
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    labels.sort();
    let size_rw = c["SizeRw"].as_i64().unwrap_or(0);
    let size_root = c["SizeRootFs"].as_i64().unwrap_or(0);
    let size = if size_root > 0 {
        format!(
            "{} (virtual {})",
            human_size_with_precision(size_rw as f64, 3),
            human_size_with_precision(size_root as f64, 3)
        )
    } else {
        human_size_with_precision(size_rw as f64, 3)
    };
    let mounts: Vec<String> = c["Mounts"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|m| {
                    let name = match s(m, "Name") {
                        "" => s(m, "Source"),
                        n => n,
                    };
                    if trunc {
                        ellipsis(name, 15)
                    } else {
                        name.to_string()
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let local_volumes = c["Mounts"]
        .as_array()
        .map(|a| a.iter().filter(|m| s(m, "Driver") == "local").count())
        .unwrap_or(0);
    let networks: Vec<String> = c["NetworkSettings"]["Networks"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    let ports = displayable_ports(c["Ports"].as_array().map(Vec::as_slice).unwrap_or(&[]));
    json!({
        "ID": if trunc { truncate_id(id) } else { id.to_string() },
        "Image": image_column(s(c, "Image"), s(c, "ImageID"), trunc),
        "Command": quote(&if trunc { ellipsis(command, 20) } else { command.to_string() }),
        "CreatedAt": go_local_time(created),
        "RunningFor": format!("{} ago", human_duration(now - created)),
        "Ports": ports,
        "State": s(c, "State"),
        "Status": s(c, "Status"),
        "Size": size,
        "Names": names.join(","),
        "Labels": labels.join(","),
        "Label": Value::Object(labels_map),
        "Mounts": mounts.join(","),
        "LocalVolumes": local_volumes.to_string(),
        "Networks": networks.join(","),
        "Platform": Value::Null,
    })
}

pub fn header(field: &str) -> String {
    let f = field.split_whitespace().next().unwrap_or(field);
    match f {
        "ID" => "CONTAINER ID",
        "Names" => "NAMES",
        "Image" => "IMAGE",
        "Command" => "COMMAND",
        "CreatedAt" => "CREATED AT",
        "RunningFor" => "CREATED",
        "Ports" => "PORTS",
        "State" => "STATE",
        "Status" => "STATUS",
        "Size" => "SIZE",
        "Labels" => "LABELS",
        "Mounts" => "MOUNTS",
        "LocalVolumes" => "LOCAL VOLUMES",
        "Networks" => "NETWORKS",
        "Platform" => "PLATFORM",
        "Label" => "LABEL",
        other => return other.to_uppercase(),
    }
    .to_string()
}

pub async fn ps(engine: &Engine, a: &PsArgs) -> Result<u8> {
    let format = a.format.clone().unwrap_or_default();
    if !format.is_empty() && a.quiet {
        eprintln!("WARNING: Ignoring custom format, because both --format and --quiet are set.");
    }
    let mut size = a.size;
    // A template that shows sizes asks the engine for them, as docker does.
    if !format.is_empty() && !a.quiet && format.contains(".Size") {
        size = true;
    }
    let mut q = Vec::new();
    if a.all {
        q.push(("all", "1".to_string()));
    }
    let mut limit = a.last;
    if a.latest && limit == -1 {
        limit = 1;
    }
    if limit > 0 {
        q.push(("limit", limit.to_string()));
    }
    if size {
        q.push(("size", "1".to_string()));
    }
    if let Some(f) = filters_json(&a.filters)? {
        q.push(("filters", f));
    }
    let v = engine
        .api()
        .json("GET", &format!("/containers/json{}", query(&q)), Body::None)
        .await?;
    let list = v.as_array().cloned().unwrap_or_default();
    let trunc = !a.no_trunc;
    if a.quiet {
        for c in &list {
            let id = s(c, "Id");
            outln(&if trunc {
                truncate_id(id)
            } else {
                id.to_string()
            });
        }
        return Ok(0);
    }
    let now = chrono::Utc::now().timestamp();
    let rows: Vec<Value> = list.iter().map(|c| row(c, trunc, now)).collect();
    match Format::parse(a.format.as_deref()) {
        Format::Json => {
            for r in &rows {
                let mut m: Map<String, Value> = r.as_object().cloned().unwrap_or_default();
                m.remove("Label");
                outln(&serde_json::to_string(&m)?);
            }
        }
        Format::Template { table, text } => {
            print_template(table, &text, &header, &rows).map_err(SkiffError::new)?;
        }
        Format::Default => {
            let mut t = DEFAULT_TABLE.to_string();
            if size {
                t.push_str("\t{{.Size}}");
            }
            print_template(true, &t, &header, &rows).map_err(SkiffError::new)?;
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::render;

    fn summary() -> Value {
        json!({
            "Id": "c032d492135f3b6352ffecfd513b8d0570aea2513a13274d46d9d3be12abfebb",
            "Names": ["/web"],
            "Image": "busybox",
            "ImageID": "sha256:e4adb02d7a4db7ce570fd9ff6b4e3a8ebe9471885c0680434d7acda146a778d0",
            "Command": "sh -c 'while true; do sleep 1; done'",
            "Created": 1000,
            "State": "running",
            "Status": "Up 5 seconds",
            "Ports": [{"IP": "127.0.0.1", "PrivatePort": 80, "PublicPort": 8081, "Type": "tcp"}],
            "Labels": {"b": "2", "a": "1"},
            "SizeRw": 12,
            "SizeRootFs": 0,
            "Mounts": [],
            "NetworkSettings": {"Networks": {"bridge": {}}}
        })
    }

    #[test]
    fn rows_like_docker_ps() {
        let r = row(&summary(), true, 1005);
        assert_eq!(r["ID"], "c032d492135f");
        assert_eq!(r["Command"], "\"sh -c 'while true; …\"");
        assert_eq!(r["RunningFor"], "5 seconds ago");
        assert_eq!(r["Ports"], "127.0.0.1:8081->80/tcp");
        assert_eq!(r["Names"], "web");
        assert_eq!(r["Labels"], "a=1,b=2");
        assert_eq!(r["Size"], "12B");
        assert_eq!(render("{{.Label \"b\"}}", &r).unwrap(), "2");
        assert_eq!(render("{{.Label \"zz\"}}", &r).unwrap(), "");
        let r = row(&summary(), false, 1005);
        assert_eq!(r["Command"], "\"sh -c 'while true; do sleep 1; done'\"");
    }

    #[test]
    fn ports_group_like_docker() {
        let ports = vec![
            json!({"PrivatePort": 9001, "Type": "tcp"}),
            json!({"PrivatePort": 9000, "Type": "tcp"}),
            json!({"PrivatePort": 9002, "Type": "tcp"}),
            json!({"PrivatePort": 53, "Type": "udp"}),
            json!({"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 80, "Type": "tcp"}),
            json!({"IP": "::", "PrivatePort": 22, "PublicPort": 2222, "Type": "tcp"}),
        ];
        assert_eq!(
            displayable_ports(&ports),
            "53/udp, 0.0.0.0:80->80/tcp, 9000-9002/tcp, [::]:2222->22/tcp"
        );
    }

    /// docker 28's TestDisplayablePorts (cli/command/formatter/container_test.go).
    #[test]
    fn ports_match_docker_formatter_tests() {
        let p = |ip: &str, private: u64, public: u64, typ: &str| {
            let mut v = json!({"PrivatePort": private, "Type": typ});
            if !ip.is_empty() {
                v["IP"] = json!(ip);
            }
            if public != 0 {
                v["PublicPort"] = json!(public);
            }
            v
        };
        let cases: Vec<(Vec<Value>, &str)> = vec![
            (vec![p("", 9988, 0, "tcp")], "9988/tcp"),
            (vec![p("", 9988, 0, "udp")], "9988/udp"),
            (vec![p("0.0.0.0", 9988, 0, "tcp")], "0.0.0.0:0->9988/tcp"),
            (vec![p("::", 9988, 0, "tcp")], "[::]:0->9988/tcp"),
            (vec![p("", 9988, 8899, "tcp")], "9988/tcp"),
            (vec![p("4.3.2.1", 9988, 8899, "tcp")], "4.3.2.1:8899->9988/tcp"),
            (vec![p("::1", 9988, 8899, "tcp")], "[::1]:8899->9988/tcp"),
            (vec![p("4.3.2.1", 9988, 9988, "tcp")], "4.3.2.1:9988->9988/tcp"),
            (vec![p("::1", 9988, 9988, "tcp")], "[::1]:9988->9988/tcp"),
            (
                vec![p("", 9988, 0, "udp"), p("", 9988, 0, "udp")],
                "9988/udp, 9988/udp",
            ),
            (
                vec![p("1.2.3.4", 9998, 9998, "udp"), p("1.2.3.4", 9999, 9999, "udp")],
                "1.2.3.4:9998-9999->9998-9999/udp",
            ),
            (
                vec![p("::1", 9998, 9998, "udp"), p("::1", 9999, 9999, "udp")],
                "[::1]:9998-9999->9998-9999/udp",
            ),
            (
                vec![p("1.2.3.4", 9998, 8887, "udp"), p("1.2.3.4", 9999, 8888, "udp")],
                "1.2.3.4:8887->9998/udp, 1.2.3.4:8888->9999/udp",
            ),
            (
                vec![p("::1", 9998, 8887, "udp"), p("::1", 9999, 8888, "udp")],
                "[::1]:8887->9998/udp, [::1]:8888->9999/udp",
            ),
            (
                vec![p("", 9998, 0, "udp"), p("", 9999, 0, "udp")],
                "9998-9999/udp",
            ),
            (
                vec![p("1.2.3.4", 6677, 7766, "tcp"), p("", 9988, 8899, "udp")],
                "9988/udp, 1.2.3.4:7766->6677/tcp",
            ),
            (
                vec![
                    p("1.2.3.4", 9988, 8899, "udp"),
                    p("1.2.3.4", 9988, 8899, "tcp"),
                    p("4.3.2.1", 2233, 3322, "tcp"),
                    p("::1", 2233, 3322, "tcp"),
                ],
                "4.3.2.1:3322->2233/tcp, [::1]:3322->2233/tcp, 1.2.3.4:8899->9988/tcp, 1.2.3.4:8899->9988/udp",
            ),
            (
                vec![
                    p("", 9988, 8899, "udp"),
                    p("1.2.3.4", 6677, 7766, "tcp"),
                    p("4.3.2.1", 2233, 3322, "tcp"),
                ],
                "9988/udp, 4.3.2.1:3322->2233/tcp, 1.2.3.4:7766->6677/tcp",
            ),
            (
                vec![
                    p("", 80, 0, "tcp"),
                    p("", 1024, 0, "tcp"),
                    p("", 80, 0, "udp"),
                    p("", 1024, 0, "udp"),
                    p("1.1.1.1", 1024, 80, "tcp"),
                    p("1.1.1.1", 1024, 80, "udp"),
                    p("1.1.1.1", 80, 1024, "tcp"),
                    p("1.1.1.1", 80, 1024, "udp"),
                    p("2.1.1.1", 1024, 80, "tcp"),
                    p("2.1.1.1", 1024, 80, "udp"),
                    p("2.1.1.1", 80, 1024, "tcp"),
                    p("2.1.1.1", 80, 1024, "udp"),
                    p("", 12345, 0, "sctp"),
                ],
                "80/tcp, 80/udp, 1024/tcp, 1024/udp, 12345/sctp, 1.1.1.1:1024->80/tcp, 1.1.1.1:1024->80/udp, 2.1.1.1:1024->80/tcp, 2.1.1.1:1024->80/udp, 1.1.1.1:80->1024/tcp, 1.1.1.1:80->1024/udp, 2.1.1.1:80->1024/tcp, 2.1.1.1:80->1024/udp",
            ),
        ];
        for (ports, want) in cases {
            assert_eq!(displayable_ports(&ports), want, "{ports:?}");
        }
    }

    #[test]
    fn ports_of_a_docker_28_engine() {
        let p = |ip: &str, private: u64, public: u64, typ: &str| json!({"IP": ip, "PrivatePort": private, "PublicPort": public, "Type": typ});
        // -p 8080:80 binds both families; :: sorts after 0.0.0.0.
        assert_eq!(
            displayable_ports(&[p("::", 80, 8080, "tcp"), p("0.0.0.0", 80, 8080, "tcp")]),
            "0.0.0.0:8080->80/tcp, [::]:8080->80/tcp"
        );
        // Ranges collapse only where host and container ports are the same (-p 5000-5001:5000-5001).
        assert_eq!(
            displayable_ports(&[
                p("0.0.0.0", 5001, 5001, "tcp"),
                p("0.0.0.0", 5000, 5000, "tcp"),
                p("::", 5000, 5000, "tcp"),
                p("::", 5001, 5001, "tcp"),
            ]),
            "0.0.0.0:5000-5001->5000-5001/tcp, [::]:5000-5001->5000-5001/tcp"
        );
        // -p 8000-8001:5000-5001 is listed port by port, as docker does.
        assert_eq!(
            displayable_ports(&[
                p("0.0.0.0", 5000, 8000, "tcp"),
                p("0.0.0.0", 5001, 8001, "tcp")
            ]),
            "0.0.0.0:8000->5000/tcp, 0.0.0.0:8001->5001/tcp"
        );
        assert_eq!(
            displayable_ports(&[
                p("0.0.0.0", 53, 5353, "udp"),
                json!({"PrivatePort": 80, "Type": "tcp"})
            ]),
            "80/tcp, 0.0.0.0:5353->53/udp"
        );
    }

    #[test]
    fn images_and_ids_truncate() {
        assert_eq!(
            truncate_id("sha256:e4adb02d7a4db7ce570fd9ff"),
            "e4adb02d7a4d"
        );
        assert_eq!(
            image_column("busybox@sha256:abc", "sha256:e4adb02d7a4db7ce", true),
            "busybox"
        );
        assert_eq!(
            image_column(
                "docker.io/library/busybox:1",
                "sha256:e4adb02d7a4db7ce",
                true
            ),
            "busybox:1"
        );
        assert_eq!(
            image_column("sha256:e4adb02d7a4db7ce", "sha256:e4adb02d7a4db7ce", true),
            "e4adb02d7a4d"
        );
        assert_eq!(image_column("", "", true), "<no image>");
        assert_eq!(header("Label \"x\""), "LABEL");
    }
}
