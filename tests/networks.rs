//! Networks and published ports on the native backend: every `-p` form serving a file whole,
//! UDP, port conflicts, container-to-container and container-to-host traffic, name resolution
//! and isolation on user-defined networks, the docker CLI's `-p`/`port`/`network`, nothing
//! left behind, and an agent restart.

use std::collections::BTreeSet;
use std::net::{TcpListener, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use skiff_e2e::*;

fn ready() -> Skiff {
    let s = Skiff::new();
    s.run(&["pull", "-q", &image("web")]).ok();
    s.run(&["pull", "-q", &image("busybox")]).ok();
    s
}

/// GET through `addr`, retrying while the server in the container comes up.
#[track_caller]
fn fetch(addr: &str, path: &str, half_close: bool) -> Vec<u8> {
    http_get_ok(addr, path, half_close, Duration::from_secs(20))
}

/// The host port `skiff port` reports for a container port (its first binding).
fn host_port(s: &Skiff, name: &str, port: &str) -> u16 {
    let out = s.run(&["port", name, port]).ok().stdout;
    let first = out.lines().next().unwrap_or_default().to_string();
    first
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {out:?}"))
}

fn inspect_field(s: &Skiff, name: &str, template: &str) -> String {
    s.run(&["inspect", "-f", template, name])
        .ok()
        .stdout
        .trim()
        .to_string()
}

/// A port that is free now and whose successor is free too.
fn free_pair() -> u16 {
    loop {
        let p = free_port();
        if p < u16::MAX && TcpListener::bind(("0.0.0.0", p + 1)).is_ok() {
            return p;
        }
    }
}

#[test]
fn every_publish_form_serves_the_file_whole() {
    let s = ready();
    let sha = web_big_sha();
    let web = image("web");
    let p1 = free_port();
    let p2 = free_port();
    let start = free_pair();
    // The first port of the range is taken: the range must give the next one.
    let _busy = TcpListener::bind(("0.0.0.0", start)).expect("hold the first port");
    let specs: Vec<(&str, String)> = vec![
        ("f1", format!("{p1}:80")),
        ("f2", format!("127.0.0.1:{p2}:80")),
        ("f3", format!("{start}-{}:80", start + 1)),
        ("f4", "80".to_string()),
    ];
    for (name, spec) in &specs {
        s.run(&["run", "-d", "--name", name, "-p", spec, &web]).ok();
    }
    s.run(&["run", "-d", "--name", "f5", "-P", &web]).ok();
    let ipv6 = std::fs::read_to_string("/proc/net/if_inet6").is_ok_and(|t| !t.trim().is_empty());
    let p6 = free_port();
    if ipv6 {
        s.run(&[
            "run",
            "-d",
            "--name",
            "f6",
            "-p",
            &format!("[::1]:{p6}:80"),
            &web,
        ])
        .ok();
    }

    assert_eq!(host_port(&s, "f1", "80/tcp"), p1);
    assert_eq!(host_port(&s, "f2", "80"), p2);
    assert_eq!(
        host_port(&s, "f3", "80/tcp"),
        start + 1,
        "busy first port skipped"
    );
    let p4 = host_port(&s, "f4", "80/tcp");
    let p5 = host_port(&s, "f5", "80/tcp");
    assert!(p4 > 0 && p5 > 0 && p4 != p5);

    let mut addrs = vec![
        format!("127.0.0.1:{p1}"),
        format!("127.0.0.1:{p2}"),
        format!("127.0.0.1:{}", start + 1),
        format!("127.0.0.1:{p4}"),
        format!("127.0.0.1:{p5}"),
    ];
    if ipv6 {
        assert_eq!(host_port(&s, "f6", "80/tcp"), p6);
        addrs.push(format!("[::1]:{p6}"));
        // Published on every address, so on IPv6 too, as docker 28 does.
        addrs.push(format!("[::1]:{p1}"));
    }
    for a in &addrs {
        assert_eq!(sha256_hex(&fetch(a, "/big.bin", false)), sha, "via {a}");
    }
    // A client that half-closes after its request still gets everything.
    let half = fetch(&format!("127.0.0.1:{p1}"), "/big.bin", true);
    assert_eq!(sha256_hex(&half), sha, "half-closed client");
    if ipv6 {
        // IPv6 is not DNATed: this goes through the agent's relay, which must pass the
        // half-close on as the kernel does.
        let half = fetch(&format!("[::1]:{p1}"), "/big.bin", true);
        assert_eq!(sha256_hex(&half), sha, "half-closed client, relayed");
    }

    // The published port is bound on 127.0.0.1 only for f2: another local address is refused.
    let other_ip = sh("ip -4 -o addr show scope global | awk '{print $4}' | cut -d/ -f1 | head -1");
    let other_ip = other_ip.trim();
    if !other_ip.is_empty() {
        assert!(
            std::net::TcpStream::connect((other_ip, p2)).is_err(),
            "-p 127.0.0.1:… must not listen on {other_ip}"
        );
    }

    // ps and inspect show the bindings as docker does.
    let ps = s.run(&["ps", "--filter", "name=f1"]).ok().stdout;
    assert!(ps.contains(&format!("0.0.0.0:{p1}->80/tcp")), "{ps}");
    let ports: serde_json::Value =
        serde_json::from_str(&inspect_field(&s, "f2", "{{json .NetworkSettings.Ports}}"))
            .expect("ports JSON");
    assert_eq!(
        ports,
        serde_json::json!({"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": p2.to_string()}]})
    );

    // Stop releases the port; start binds it again.
    s.run(&["stop", "-t", "1", "f1"]).ok();
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", p1)).is_err(),
        "port still open after stop"
    );
    assert_eq!(
        inspect_field(&s, "f1", "{{json .NetworkSettings.Ports}}"),
        "{\"80/tcp\":null}"
    );
    s.run(&["start", "f1"]).ok();
    assert_eq!(
        fetch(&format!("127.0.0.1:{p1}"), "/index.html", false),
        b"hello from web\n"
    );
}

#[test]
fn udp_is_forwarded_per_client_flow() {
    let s = ready();
    let echo = udp_echo_binary(s.dir.path());
    let port = UdpSocket::bind("0.0.0.0:0")
        .expect("udp")
        .local_addr()
        .expect("addr")
        .port();
    s.run(&[
        "create",
        "--name",
        "echo1",
        "-p",
        &format!("{port}:9999/udp"),
        &image("busybox"),
        "/udp-echo",
        "9999",
    ])
    .ok();
    s.run(&["cp", echo.to_str().expect("path"), "echo1:/udp-echo"])
        .ok();
    s.run(&["start", "echo1"]).ok();
    assert_eq!(host_port(&s, "echo1", "9999/udp"), port);

    let a = UdpSocket::bind("127.0.0.1:0").expect("a");
    let b = UdpSocket::bind("127.0.0.1:0").expect("b");
    for sock in [&a, &b] {
        sock.set_read_timeout(Some(Duration::from_millis(300)))
            .expect("timeout");
    }
    let ask = |sock: &UdpSocket, msg: &[u8]| -> Vec<u8> {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut buf = [0u8; 2048];
        loop {
            sock.send_to(msg, ("127.0.0.1", port)).expect("send");
            if let Ok((n, _)) = sock.recv_from(&mut buf) {
                return buf[..n].to_vec();
            }
            assert!(Instant::now() < deadline, "no UDP echo");
        }
    };
    assert_eq!(ask(&a, b"from a"), b"from a");
    assert_eq!(ask(&b, b"from b"), b"from b");
    let big = vec![7u8; 1400];
    assert_eq!(ask(&a, &big), big);
}

#[test]
fn a_busy_host_port_fails_the_start_and_bad_input_changes_nothing() {
    let s = ready();
    let busy = TcpListener::bind("0.0.0.0:0").expect("bind");
    let p = busy.local_addr().expect("addr").port();
    let out = s
        .run(&[
            "run",
            "-d",
            "--name",
            "busy1",
            "-p",
            &format!("{p}:80"),
            &image("web"),
        ])
        .fails_with(125, "address already in use");
    assert!(out.stderr.contains(&format!("{p}")), "{}", out.stderr);
    assert_eq!(inspect_field(&s, "busy1", "{{.State.Status}}"), "created");
    assert_eq!(
        inspect_field(&s, "busy1", "{{.NetworkSettings.SandboxKey}}"),
        ""
    );
    // The docker CLI gets the same refusal.
    s.docker(&["run", "-d", "-p", &format!("{p}:80"), &image("web")])
        .fails_with(125, "address already in use");
    // Freed, the same container starts.
    drop(busy);
    s.run(&["start", "busy1"]).ok();
    assert_eq!(
        fetch(&format!("127.0.0.1:{p}"), "/index.html", false),
        b"hello from web\n"
    );
    s.run(&["rm", "-f", "busy1"]).ok();

    let before = s.run(&["ps", "-a", "-q"]).ok().stdout;
    s.run(&["run", "-d", "-p", "99999:80", &image("web")])
        .fails_with(125, "99999");
    s.run(&["run", "-d", "-p", "80/sctp", &image("web")])
        .fails_with(125, "sctp");
    s.run(&[
        "run",
        "--rm",
        "--network",
        "nosuchnet",
        &image("busybox"),
        "true",
    ])
    .fails_with(125, "network nosuchnet not found");
    assert_eq!(
        s.run(&["ps", "-a", "-q"]).ok().stdout,
        before,
        "nothing created"
    );

    let nets = s.run(&["network", "ls", "-q"]).ok().stdout;
    s.run(&["network", "create", "--subnet", "10.300.0.0/16", "x1"])
        .fails_with(1, "invalid CIDR");
    s.run(&["network", "create", "--subnet", "10.87.0.0/24", "x2"])
        .ok();
    s.run(&["network", "create", "--subnet", "10.87.0.128/25", "x3"])
        .fails_with(1, "overlaps");
    s.run(&["network", "create", "x2"])
        .fails_with(1, "already exists");
    s.run(&["network", "create", "--driver", "overlay", "x4"])
        .fails_with(1, "overlay");
    s.run(&["network", "rm", "bridge"])
        .fails_with(1, "pre-defined network");
    s.run(&["network", "rm", "x2"]).ok();
    assert_eq!(s.run(&["network", "ls", "-q"]).ok().stdout, nets);
}

#[test]
fn containers_reach_each_other_and_the_host() {
    let s = ready();
    s.run(&["run", "-d", "--name", "srv", &image("web")]).ok();
    let ip = inspect_field(&s, "srv", "{{.NetworkSettings.IPAddress}}");
    let gw = inspect_field(&s, "srv", "{{.NetworkSettings.Gateway}}");
    assert!(!ip.is_empty() && !gw.is_empty(), "default bridge address");
    let bb = image("busybox");
    let got = s
        .run(&[
            "run",
            "--rm",
            &bb,
            "wget",
            "-qO-",
            &format!("http://{ip}/index.html"),
        ])
        .ok();
    assert_eq!(got.stdout, "hello from web\n");

    // Egress: a server on the host, reached through the host's side of the bridge and
    // through the host's own address (the route out, NATed). In the VM the bridge's gateway
    // is the VM; the host is host.docker.internal there (tests/vm.rs).
    if !on_vm() {
        egress_to_the_host(&s);
    }
    let resolv = s
        .run(&["run", "--rm", &bb, "cat", "/etc/resolv.conf"])
        .ok()
        .stdout;
    assert!(
        !resolv.contains("127.0.0."),
        "loopback resolver leaked: {resolv}"
    );

    // --network container:NAME shares srv's namespace: its server is on our loopback.
    let shared = s
        .run(&[
            "run",
            "--rm",
            "--network",
            "container:srv",
            &bb,
            "wget",
            "-qO-",
            "http://127.0.0.1/index.html",
        ])
        .ok();
    assert_eq!(shared.stdout, "hello from web\n");

    // --network none: loopback only; --network host: the host's interfaces.
    let none = s
        .run(&["run", "--rm", "--network", "none", &bb, "ip", "-o", "link"])
        .ok()
        .stdout;
    assert_eq!(none.lines().count(), 1, "{none}");
    let host_before = link_names(&sh("ip -o link"));
    let host = s
        .run(&["run", "--rm", "--network", "host", &bb, "ip", "-o", "link"])
        .ok()
        .stdout;
    let seen = link_names(&host);
    if on_vm() {
        // The VM's interfaces: lo and at least the default network's bridge.
        assert!(seen.len() > 1, "{host}");
    } else {
        // The host's own interfaces. Tests beside this one add and remove bridges and veths
        // meanwhile (skiff's: `sk…` and `vk…`), so the container sees every interface there
        // before and after, and nothing else but skiff's.
        let host_after = link_names(&sh("ip -o link"));
        let stayed: BTreeSet<_> = host_before.intersection(&host_after).cloned().collect();
        let missing: Vec<_> = stayed.difference(&seen).collect();
        let foreign: Vec<_> = seen
            .iter()
            .filter(|n| !host_before.contains(*n) && !host_after.contains(*n))
            .filter(|n| !n.starts_with("sk") && !n.starts_with("vk"))
            .collect();
        assert!(
            missing.is_empty() && foreign.is_empty(),
            "--network host saw {seen:?}: missing {missing:?}, not the host's {foreign:?}"
        );
    }
}

/// Interface names in `ip -o link` output (`3: veth1@if2: <…` → `veth1`).
fn link_names(out: &str) -> BTreeSet<String> {
    out.lines()
        .filter_map(|l| l.split(':').nth(1))
        .map(|n| n.trim().split('@').next().unwrap_or_default().to_string())
        .filter(|n| !n.is_empty())
        .collect()
}

fn egress_to_the_host(s: &Skiff) {
    let gw = inspect_field(s, "srv", "{{.NetworkSettings.Gateway}}");
    let bb = image("busybox");
    let port = host_server("host says hi");
    let via_gw = s
        .run(&[
            "run",
            "--rm",
            &bb,
            "wget",
            "-qO-",
            &format!("http://{gw}:{port}/"),
        ])
        .ok();
    assert_eq!(via_gw.stdout, "host says hi");
    let host_ip =
        sh("ip -4 route get 1.1.1.1 2>/dev/null | sed -n 's/.* src \\([0-9.]*\\).*/\\1/p'");
    let host_ip = host_ip.trim();
    if !host_ip.is_empty() {
        let out = s
            .run(&[
                "run",
                "--rm",
                &bb,
                "wget",
                "-qO-",
                &format!("http://{host_ip}:{port}/"),
            ])
            .ok();
        assert_eq!(out.stdout, "host says hi", "via {host_ip}");
    }
}

#[test]
fn user_networks_resolve_names_and_stay_apart() {
    let s = ready();
    let (web, bb) = (image("web"), image("busybox"));
    s.run(&["network", "create", "front"]).ok();
    s.run(&["network", "create", "back"]).ok();
    s.run(&[
        "run",
        "-d",
        "--name",
        "srv",
        "--network",
        "front",
        "--network-alias",
        "www",
        &web,
    ])
    .ok();
    s.run(&["run", "-d", "--name", "hidden", "--network", "back", &web])
        .ok();
    let hidden_ip = inspect_field(&s, "hidden", "{{.NetworkSettings.Networks.back.IPAddress}}");
    assert!(!hidden_ip.is_empty());

    for name in ["srv", "www", "SRV"] {
        let out = s
            .run(&[
                "run",
                "--rm",
                "--network",
                "front",
                &bb,
                "wget",
                "-qO-",
                &format!("http://{name}/index.html"),
            ])
            .ok();
        assert_eq!(out.stdout, "hello from web\n", "by {name}");
    }
    // Another network's container: neither its name nor its address is reachable.
    s.run(&[
        "run",
        "--rm",
        "--network",
        "front",
        &bb,
        "nslookup",
        "hidden",
    ])
    .fails_with(1, "");
    let cross = s.run(&[
        // --init: a PID 1 that is not wget, so that timeout's SIGTERM is not ignored.
        "run",
        "--rm",
        "--init",
        "--network",
        "front",
        &bb,
        "timeout",
        "3",
        "wget",
        "-qO-",
        &format!("http://{hidden_ip}/index.html"),
    ]);
    assert_ne!(cross.code, 0, "reached another network: {}", cross.stdout);

    // connect: a running container joins a second network and finds its members.
    s.run(&[
        "run",
        "-d",
        "--name",
        "cli",
        "--network",
        "front",
        &bb,
        "sleep",
        "300",
    ])
    .ok();
    s.run(&["network", "connect", "--alias", "bridgehead", "back", "cli"])
        .ok();
    let out = s
        .run(&["exec", "cli", "wget", "-qO-", "http://hidden/index.html"])
        .ok();
    assert_eq!(out.stdout, "hello from web\n");
    let from_back = s
        .run(&[
            "run",
            "--rm",
            "--network",
            "back",
            &bb,
            "nslookup",
            "bridgehead",
        ])
        .ok();
    assert!(from_back.stdout.contains("Address"), "{}", from_back.stdout);
    s.run(&["network", "disconnect", "back", "cli"]).ok();
    let gone = s.run(&[
        "exec",
        "cli",
        "timeout",
        "3",
        "wget",
        "-qO-",
        &format!("http://{hidden_ip}/"),
    ]);
    assert_ne!(gone.code, 0, "still on back after disconnect");

    s.run(&["network", "rm", "front"])
        .fails_with(1, "active endpoints");
    let members = s
        .docker(&[
            "network",
            "inspect",
            "-f",
            "{{range .Containers}}{{.Name}} {{end}}",
            "front",
        ])
        .ok()
        .stdout;
    assert!(
        members.contains("srv") && members.contains("cli"),
        "{members}"
    );
}

#[test]
fn docker_cli_publishes_ports_and_manages_networks() {
    let s = ready();
    let web = image("web");
    let p = free_port();
    let t0 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    s.docker(&["network", "create", "--label", "purpose=test", "dnet"])
        .ok();
    let ls = s
        .docker(&["network", "ls", "--filter", "label=purpose=test"])
        .ok()
        .stdout;
    assert!(ls.contains("dnet") && !ls.contains(" none "), "{ls}");
    s.docker(&[
        "run",
        "-d",
        "--name",
        "d1",
        "--network",
        "dnet",
        "-p",
        &format!("127.0.0.1:{p}:80"),
        &web,
    ])
    .ok();
    assert_eq!(
        s.docker(&["port", "d1"]).ok().stdout,
        format!("80/tcp -> 127.0.0.1:{p}\n")
    );
    assert_eq!(
        fetch(&format!("127.0.0.1:{p}"), "/index.html", false),
        b"hello from web\n"
    );
    let ps = s.docker(&["ps"]).ok().stdout;
    assert!(ps.contains(&format!("127.0.0.1:{p}->80/tcp")), "{ps}");
    let on = s
        .docker(&[
            "network",
            "inspect",
            "-f",
            "{{range .Containers}}{{.Name}}{{end}}",
            "dnet",
        ])
        .ok()
        .stdout;
    assert_eq!(on.trim(), "d1");
    s.docker(&["network", "connect", "bridge", "d1"]).ok();
    let nets = s
        .docker(&[
            "inspect",
            "-f",
            "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}",
            "d1",
        ])
        .ok()
        .stdout;
    assert_eq!(nets.trim(), "bridge dnet");
    s.docker(&["network", "disconnect", "bridge", "d1"]).ok();
    s.docker(&["rm", "-f", "d1"]).ok();
    let pruned = s.docker(&["network", "prune", "-f"]).ok().stdout;
    assert!(pruned.contains("dnet"), "{pruned}");
    s.docker(&["network", "inspect", "dnet"])
        .fails_with(1, "dnet");

    // What happened to the networks, as docker events tell it (compose follows these).
    let until = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        + 1;
    // Reaching back a minute: a VM's clock is set from the host's every 10 s but may trail
    // it by some milliseconds in between, and this engine's history holds nothing older of
    // its own anyway.
    let ev = s
        .docker(&[
            "events",
            "--since",
            &t0.saturating_sub(60).to_string(),
            "--until",
            &until.to_string(),
            "--filter",
            "type=network",
            "--format",
            "{{.Type}} {{.Action}} {{.Actor.Attributes.name}} {{.Actor.Attributes.type}} {{if .Actor.Attributes.container}}c{{end}}",
        ])
        .ok()
        .stdout;
    assert_eq!(
        ev.lines().map(str::trim_end).collect::<Vec<_>>(),
        [
            "network create dnet bridge",
            "network connect dnet bridge c",
            "network connect bridge bridge c",
            "network disconnect bridge bridge c",
            "network disconnect dnet bridge c",
            "network destroy dnet bridge",
        ],
        "{ev}"
    );
}

/// A new container's `ip -4 addr show eth0` on network `net`.
fn eth0_on(s: &Skiff, net: &str) -> Run {
    s.run(&[
        "run",
        "--rm",
        "--network",
        net,
        &image("busybox"),
        "ip",
        "-4",
        "-o",
        "addr",
        "show",
        "eth0",
    ])
    .ok()
}

fn link_exists(name: &str) -> bool {
    Command::new("ip")
        .args(["link", "show", name])
        .output()
        .expect("ip")
        .status
        .success()
}

/// Wait up to 10 s for `cond`.
fn within(what: &str, cond: &dyn Fn() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < Duration::from_secs(10), "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The host bridge of network `name`.
fn bridge_of(s: &Skiff, name: &str) -> String {
    let id = s
        .run(&["network", "inspect", "-f", "{{.Id}}", name])
        .ok()
        .stdout;
    format!("sk{}{}", agent_tag(s), &id.trim()[..8])
}

/// An agent SIGKILLed whose network is then gone from its state dir (as when a test or a user
/// deletes the dir) leaves that network's bridge up, with its subnet's route. Returns the
/// bridge, and the dead agent's skiff, to drop only once the test is done: dropping it starts
/// an agent there again, which would take its own bridge down.
fn orphan_bridge(subnet: &str) -> (Skiff, String) {
    let dead = Skiff::new();
    dead.run(&["network", "create", "--subnet", subnet, "doomed"])
        .ok();
    let bridge = bridge_of(&dead, "doomed");
    let id = dead
        .run(&["network", "inspect", "-f", "{{.Id}}", "doomed"])
        .ok()
        .stdout;
    within("the doomed network's bridge comes up", &|| {
        link_exists(&bridge) && sh("ip -4 -o route").contains(subnet)
    });
    dead.kill_agent();
    std::fs::remove_file(dead.root().join(format!("networks/{}.json", id.trim())))
        .expect("remove the network's record");
    (dead, bridge)
}

/// This agent's tag, which all its interface and chain names carry.
fn agent_tag(s: &Skiff) -> String {
    let name = s
        .run(&[
            "network",
            "inspect",
            "-f",
            "{{index .Options \"com.docker.network.bridge.name\"}}",
            "bridge",
        ])
        .ok()
        .stdout;
    name.trim()[2..6].to_string()
}

fn leftovers(tag: &str) -> String {
    sh(&format!(
        "{{ ip -o link; iptables -w -S; iptables -w -t nat -S; iptables -w -t raw -S; }} | grep -E 'sk{tag}|vk{tag}|SKIFF-{tag}' || true"
    ))
}

#[test]
fn nothing_of_ours_is_left_after_rm_and_prune() {
    if native_only("the bridges and rules are looked for on this host") {
        return;
    }
    let s = ready();
    let tag = agent_tag(&s);
    s.run(&["network", "create", "tmpnet"]).ok();
    s.run(&["run", "-d", "--name", "na", "-p", "80", &image("web")])
        .ok();
    s.run(&[
        "run",
        "-d",
        "--name",
        "nb",
        "--network",
        "tmpnet",
        &image("web"),
    ])
    .ok();
    let during = leftovers(&tag);
    assert!(during.contains(&format!("SKIFF-{tag}-FWD")), "{during}");
    // The published port is forwarded by the kernel, guarded on the raw table.
    assert!(during.contains(&format!("SKIFF-{tag}-DNAT")), "{during}");
    assert!(during.contains(&format!("SKIFF-{tag}-RAW")), "{during}");
    assert!(during.contains(&format!("vk{tag}")), "{during}");
    s.run(&["rm", "-f", "na", "nb"]).ok();
    s.run(&["network", "prune", "-f"]).ok();
    assert_eq!(leftovers(&tag), "", "bridges, veths or rules left");
}

#[test]
fn ports_names_and_bridges_come_back_after_an_agent_restart() {
    let s = ready();
    let p = free_port();
    s.run(&["network", "create", "keep"]).ok();
    s.run(&[
        "run",
        "-d",
        "--name",
        "keeper",
        "--network",
        "keep",
        "-p",
        &format!("{p}:80"),
        &image("web"),
    ])
    .ok();
    assert_eq!(
        fetch(&format!("127.0.0.1:{p}"), "/index.html", false),
        b"hello from web\n"
    );
    s.kill_agent();
    // The next command starts a new agent, which takes the running container back.
    assert!(s.run(&["ps"]).ok().stdout.contains("keeper"));
    assert_eq!(
        fetch(&format!("127.0.0.1:{p}"), "/index.html", false),
        b"hello from web\n"
    );
    let out = s
        .run(&[
            "run",
            "--rm",
            "--network",
            "keep",
            &image("busybox"),
            "wget",
            "-qO-",
            "http://keeper/index.html",
        ])
        .ok();
    assert_eq!(out.stdout, "hello from web\n");
}

/// While a bridge carries kernel-forwarded ports it has `route_localnet` on (so that the host's
/// own loopback connections can be DNATed), and that sysctl alone would let a container that
/// routes 127.0.0.1 to its gateway reach services bound to the host's loopback
/// (CVE-2020-8558). A privileged container tries it; the host must not even see the SYN.
#[test]
fn a_container_cannot_reach_the_hosts_loopback_through_its_bridge() {
    if native_only("the host's loopback is where the probe is aimed") {
        return;
    }
    let s = ready();
    let secret = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = secret.local_addr().expect("addr").port();
    s.run(&[
        "run",
        "-d",
        "--name",
        "lo-pub",
        "-p",
        "127.0.0.1::80",
        &image("web"),
    ])
    .ok();
    let script = format!(
        "sysctl -qw net.ipv4.conf.all.route_localnet=1 net.ipv4.conf.eth0.route_localnet=1; \
         ip route del local 127.0.0.0/8 table local; ip route del local 127.0.0.1 table local; \
         gw=$(ip route | awk '/default/ {{print $3}}'); \
         ip route add 127.0.0.1/32 via $gw dev eth0 && ip route get 127.0.0.1; \
         timeout 4 nc 127.0.0.1 {port} </dev/null; true"
    );
    let mut probe = s
        .command()
        .args(["run", "--rm", "--privileged", &image("busybox"), "sh", "-c"])
        .arg(&script)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn skiff run");
    // A SYN that got through shows as a half-open connection on the host's socket, whether
    // or not its answer finds the way back.
    let want = format!("0100007F:{port:04X}");
    let mut seen = String::new();
    let until = Instant::now() + Duration::from_secs(8);
    while Instant::now() < until && probe.try_wait().expect("wait").is_none() {
        let tcp = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
        if let Some(l) = tcp.lines().find(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.get(1) == Some(&want.as_str()) && f.get(3) != Some(&"0A")
        }) {
            seen = l.trim().to_string();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = probe.wait_with_output().expect("probe output");
    let route = String::from_utf8_lossy(&out.stdout);
    // The probe did route 127.0.0.1 out of eth0: otherwise this test would prove nothing.
    assert!(
        route.contains("127.0.0.1 via") && route.contains("dev eth0"),
        "the container could not set its route: {route}"
    );
    assert_eq!(
        seen, "",
        "a packet from the container reached the host's loopback"
    );
    s.run(&["rm", "-f", "lo-pub"]).ok();
}

/// docker's legacy `--link`: the alias resolves through `/etc/hosts` and, on the default
/// bridge, the linked container's ports and environment arrive as variables.
#[test]
fn legacy_links_name_the_target_and_describe_it() {
    let s = ready();
    s.run(&[
        "run",
        "-d",
        "--name",
        "linked-web",
        "-e",
        "ROLE=db",
        &image("web"),
    ])
    .ok();
    let ip = s
        .run(&[
            "inspect",
            "-f",
            "{{.NetworkSettings.IPAddress}}",
            "linked-web",
        ])
        .ok()
        .stdout
        .trim()
        .to_string();
    let out = s
        .run(&[
            "run",
            "--rm",
            "--name",
            "linker",
            "--link",
            "linked-web:store",
            &image("busybox"),
            "sh",
            "-c",
            "grep -w store /etc/hosts; echo $STORE_NAME $STORE_PORT_80_TCP $STORE_ENV_ROLE; wget -qO- http://store/index.html",
        ])
        .ok()
        .stdout;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[0].starts_with(&format!("{ip}\tstore ")) && lines[0].ends_with(" linked-web"),
        "{out}"
    );
    assert_eq!(lines[1], format!("/linker/store tcp://{ip}:80 db"));
    assert_eq!(lines[2], "hello from web");

    let before = s.run(&["ps", "-aq"]).ok().stdout;
    s.run(&[
        "run",
        "--rm",
        "--link",
        "nosuch:x",
        &image("busybox"),
        "true",
    ])
    .fails_with(125, "could not get container for nosuch");
    assert_eq!(s.run(&["ps", "-aq"]).ok().stdout, before);
    s.run(&["stop", "-t", "0", "linked-web"]).ok();
    s.run(&[
        "run",
        "--rm",
        "--link",
        "linked-web",
        &image("busybox"),
        "true",
    ])
    .fails_with(
        125,
        "Cannot link to a non running container: /linked-web AS /",
    );
    s.run(&["rm", "-f", "linked-web"]).ok();
}

/// `network rm` answers before the bridge is deleted (that goes on in the background), yet
/// the name and an explicit subnet are free for a new network at once. Natively: a network's
/// bridge is up as soon as it is created, as dockerd makes it, and gone soon after `rm`; and
/// a bridge of ours that a stopped agent left behind with no network of its own is removed by
/// the next agent.
#[test]
fn a_removed_networks_subnet_is_free_at_once_and_its_bridge_goes() {
    let s = ready();
    let subnet = "10.213.7.0/24";
    for _ in 0..2 {
        s.run(&["network", "create", "--subnet", subnet, "again"])
            .ok();
        s.run(&[
            "run",
            "-d",
            "--name",
            "again-c",
            "--network",
            "again",
            &image("busybox"),
            "sleep",
            "60",
        ])
        .ok();
        s.run(&["rm", "-f", "again-c"]).ok();
        s.run(&["network", "rm", "again"]).ok();
    }
    s.run(&["network", "create", "--subnet", subnet, "again"])
        .ok();
    let out = eth0_on(&s, "again");
    assert!(out.stdout.contains("inet 10.213.7.2/24"), "{}", out.stdout);
    if native_only("the bridges are looked for on this host") {
        s.run(&["network", "rm", "again"]).ok();
        return;
    }
    let tag = agent_tag(&s);
    s.run(&["network", "create", "early"]).ok();
    let bridge = bridge_of(&s, "early");
    within("the new network's bridge comes up", &|| {
        link_exists(&bridge)
    });
    s.run(&["network", "rm", "early", "again"]).ok();
    within("the removed network's bridge goes", &|| {
        !link_exists(&bridge)
    });

    let orphan = format!("sk{tag}0ddba11");
    sh(&format!("ip link add {orphan} type bridge"));
    s.kill_agent();
    s.run(&["ps"]).ok();
    within(
        "the next agent removes a bridge of ours with no network",
        &|| !link_exists(&orphan),
    );
}

/// Bridges of agents that died with their state gone must not hold docker's address pools
/// for good (on a test machine they used up all 31): the agent that needs the subnet, or
/// any agent that starts, removes them.
#[test]
fn a_dead_agents_bridges_do_not_keep_their_subnets() {
    if native_only("the bridges are looked for on this host") {
        return;
    }
    let subnet = "10.213.9.0/24";
    let (_dead, orphan) = orphan_bridge(subnet);
    let s = ready();
    s.run(&["network", "create", "--subnet", subnet, "reborn"])
        .ok();
    let out = eth0_on(&s, "reborn");
    assert!(out.stdout.contains("inet 10.213.9.2/24"), "{}", out.stdout);
    assert!(!link_exists(&orphan), "{orphan} is still there");
    s.run(&["network", "rm", "reborn"]).ok();

    let (_dead2, orphan) = orphan_bridge("10.213.10.0/24");
    s.kill_agent();
    s.run(&["ps"]).ok();
    within("a starting agent removes a dead agent's bridge", &|| {
        !link_exists(&orphan)
    });
}
