//! Forwarding and NAT for the agent's bridges, through iptables (its nf_tables or legacy
//! backend, whichever the host's `iptables` is: the same one docker and podman use, so our
//! rules see theirs, such as docker's FORWARD policy DROP, and are not shadowed by them).
//!
//! Every rule lives in chains named for the agent (`SKIFF-<tag>-FWD` in filter,
//! `SKIFF-<tag>-NAT` and `SKIFF-<tag>-DNAT` in nat, `SKIFF-<tag>-RAW` in raw), reached by one
//! unconditional jump each from a built-in chain. Each change rewrites the chains whole in one
//! `iptables-restore` transaction, from the bridges and published ports in use: nothing to
//! patch, nothing to get out of step after a crash, and two agents never touch each other's
//! rules. Chains with nothing to hold are removed with their jumps.
//!
//! Published TCP ports are DNATed by the kernel (`PortRule`), as podman does, because a
//! userland hop cost 15-30 % of the throughput here; the agent's socket on the port stays, to
//! keep it reserved and to relay what the rules leave to it (see `network::Networks`).
//! Connections from the host's own loopback are DNATed too: that needs `route_localnet` on the
//! bridge, and with it comes a way for a container to send packets to the host's 127.0.0.1
//! (CVE-2020-8558, seen in kube-proxy), so the raw chain drops anything arriving on a bridge
//! for 127.0.0.0/8 before routing sees it.

use std::io::Write;
use std::process::{Command, Stdio};

use std::net::{Ipv4Addr, SocketAddrV4};

use anyhow::{anyhow, Context, Result};
use ipnet::Ipv4Net;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BridgeRules {
    pub bridge: String,
    pub subnet: Ipv4Net,
    pub internal: bool,
}

/// A published TCP port that the kernel forwards: connections to `host_ip` (every local
/// address when None) on `host_port` go to `target`, a container on `bridge`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortRule {
    pub bridge: String,
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
    pub target: SocketAddrV4,
}

pub struct Firewall {
    fwd: String,
    nat: String,
    dnat: String,
    raw: String,
    /// Every bridge of this agent's is named with this prefix.
    bridges: String,
}

/// What the tables hold now, per table in `iptables -S`'s form (`-N CHAIN`, `-A CHAIN …`).
#[derive(Debug, Default, PartialEq)]
struct Tables {
    filter: String,
    nat: String,
    raw: String,
}

impl Firewall {
    pub fn new(tag: &str) -> Self {
        Self {
            fwd: format!("SKIFF-{tag}-FWD"),
            nat: format!("SKIFF-{tag}-NAT"),
            dnat: format!("SKIFF-{tag}-DNAT"),
            raw: format!("SKIFF-{tag}-RAW"),
            bridges: super::store::bridge_prefix(tag),
        }
    }

    /// Make the rules exactly those for `bridges` and `ports`. Ports on a bridge not in
    /// `bridges` are left out.
    pub fn apply(&self, bridges: &[BridgeRules], ports: &[PortRule]) -> Result<()> {
        let ports: Vec<&PortRule> = ports
            .iter()
            .filter(|p| bridges.iter().any(|b| b.bridge == p.bridge))
            .collect();
        let tables = save()?;
        let script = self.script(bridges, &ports, &tables);
        if !bridges.is_empty() {
            // Routing between the bridges and the host's other interfaces is what a bridge
            // network is; docker switches it on the same way.
            std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")
                .context("enabling IPv4 forwarding")?;
        }
        // Loopback sources may leave through a bridge only while its raw DROP is in place
        // (the order matters when the rules are taken away: sysctl first).
        let localnet = |b: &BridgeRules, on: bool| {
            let path = format!("/proc/sys/net/ipv4/conf/{}/route_localnet", b.bridge);
            std::fs::write(&path, if on { "1" } else { "0" })
                .with_context(|| format!("setting {path}"))
        };
        let with_ports = bridges_with_ports(&ports);
        for b in bridges
            .iter()
            .filter(|b| !with_ports.contains(&b.bridge.as_str()))
        {
            localnet(b, false)?;
        }
        if !script.is_empty() {
            restore(&script)?;
        }
        for b in bridges
            .iter()
            .filter(|b| with_ports.contains(&b.bridge.as_str()))
        {
            localnet(b, true)?;
        }
        Ok(())
    }

    fn script(&self, bridges: &[BridgeRules], ports: &[&PortRule], t: &Tables) -> String {
        let mut out = String::new();
        // (table, its listing, built-in chain, our chain, whether our chain is wanted)
        let chains = [
            (
                "filter",
                &t.filter,
                "FORWARD",
                &self.fwd,
                !bridges.is_empty(),
            ),
            ("nat", &t.nat, "POSTROUTING", &self.nat, !bridges.is_empty()),
            ("nat", &t.nat, "PREROUTING", &self.dnat, !ports.is_empty()),
            ("nat", &t.nat, "OUTPUT", &self.dnat, !ports.is_empty()),
            ("raw", &t.raw, "PREROUTING", &self.raw, !ports.is_empty()),
        ];
        let has_chain = |text: &str, chain: &str| text.lines().any(|l| l == format!("-N {chain}"));
        let jumps = |text: &str, from: &str, chain: &str| {
            let want = format!("-A {from} -j {chain}");
            text.lines().filter(|l| *l == want).count()
        };
        for table in ["filter", "nat", "raw"] {
            let mine: Vec<_> = chains.iter().filter(|c| c.0 == table).collect();
            let body = match table {
                "filter" if !bridges.is_empty() => self.filter_rules(bridges, ports),
                "nat" => self.nat_rules(bridges, ports),
                "raw" => self.raw_rules(ports),
                _ => String::new(),
            };
            let mut text = String::new();
            // Declaring a chain (`:NAME`) creates or empties it, so a kept chain is rewritten
            // whole; jumps are fixed to exactly one where wanted, none where not.
            let mut declared = Vec::new();
            for (_, _, _, chain, wanted) in &mine {
                if *wanted && !declared.contains(chain) {
                    text.push_str(&format!(":{chain} - [0:0]\n"));
                    declared.push(*chain);
                }
            }
            text.push_str(&body);
            for (_, listing, from, chain, wanted) in &mine {
                match (jumps(listing, from, chain), *wanted) {
                    (0, true) => text.push_str(&format!("-I {from} 1 -j {chain}\n")),
                    (n, true) => (1..n).for_each(|_| {
                        text.push_str(&format!("-D {from} -j {chain}\n"));
                    }),
                    (n, false) => (0..n).for_each(|_| {
                        text.push_str(&format!("-D {from} -j {chain}\n"));
                    }),
                }
            }
            let mut dropped = Vec::new();
            for (_, listing, _, chain, _) in &mine {
                let wanted = mine.iter().any(|c| c.3 == *chain && c.4);
                if !wanted && has_chain(listing, chain) && !dropped.contains(chain) {
                    text.push_str(&format!("-F {chain}\n-X {chain}\n"));
                    dropped.push(*chain);
                }
            }
            if !text.is_empty() {
                out.push_str(&format!("*{table}\n{text}COMMIT\n"));
            }
        }
        out
    }

    /// filter: replies in; published ports in; traffic within a network; nothing else into a
    /// network (other networks, other agents' networks, the outside); out of a network unless
    /// internal.
    fn filter_rules(&self, bridges: &[BridgeRules], ports: &[&PortRule]) -> String {
        let mut out = String::new();
        let mut targets: Vec<(&str, SocketAddrV4)> = ports
            .iter()
            .map(|p| (p.bridge.as_str(), p.target))
            .collect();
        targets.sort_unstable();
        targets.dedup();
        for (br, target) in targets {
            out.push_str(&format!(
                "-A {c} -d {ip}/32 -o {br} -p tcp -m tcp --dport {port} -m conntrack --ctstate DNAT -j ACCEPT\n",
                c = self.fwd,
                ip = target.ip(),
                port = target.port(),
            ));
        }
        for b in bridges {
            out.push_str(&format!(
                "-A {c} -o {br} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n\
                 -A {c} -i {br} -o {br} -j ACCEPT\n\
                 -A {c} -o {br} -j DROP\n",
                c = self.fwd,
                br = b.bridge
            ));
        }
        for b in bridges {
            let verdict = if b.internal { "DROP" } else { "ACCEPT" };
            out.push_str(&format!("-A {} -i {} -j {verdict}\n", self.fwd, b.bridge));
        }
        out
    }

    /// nat: egress masqueraded; published ports DNATed, except for connections from this
    /// agent's own bridges (a container reaching a published port through the host would get
    /// its reply straight from the target, not through the NAT: the agent's socket relays
    /// those) and for addresses that are not the host's.
    fn nat_rules(&self, bridges: &[BridgeRules], ports: &[&PortRule]) -> String {
        let mut out = String::new();
        for b in bridges.iter().filter(|b| !b.internal) {
            out.push_str(&format!(
                "-A {} -s {} ! -o {} -j MASQUERADE\n",
                self.nat, b.subnet, b.bridge
            ));
        }
        for br in bridges_with_ports(ports) {
            // The host's loopback as a source means nothing to a container: give it the
            // bridge's address to answer.
            out.push_str(&format!(
                "-A {} -s 127.0.0.0/8 -o {br} -m conntrack --ctstate DNAT -j MASQUERADE\n",
                self.nat
            ));
        }
        if ports.is_empty() {
            return out;
        }
        out.push_str(&format!(
            "-A {c} -i {pre}+ -j RETURN\n-A {c} -m addrtype ! --dst-type LOCAL -j RETURN\n",
            c = self.dnat,
            pre = self.bridges,
        ));
        for p in ports {
            let dst = p
                .host_ip
                .map(|ip| format!(" -d {ip}/32"))
                .unwrap_or_default();
            out.push_str(&format!(
                "-A {c}{dst} -p tcp -m tcp --dport {hp} -j DNAT --to-destination {t}\n",
                c = self.dnat,
                hp = p.host_port,
                t = p.target,
            ));
        }
        out
    }

    /// raw: nothing arrives on a bridge for the host's loopback.
    fn raw_rules(&self, ports: &[&PortRule]) -> String {
        let mut out = String::new();
        for br in bridges_with_ports(ports) {
            out.push_str(&format!("-A {} -d 127.0.0.0/8 -i {br} -j DROP\n", self.raw));
        }
        out
    }
}

fn bridges_with_ports<'a>(ports: &[&'a PortRule]) -> Vec<&'a str> {
    let mut v: Vec<&str> = ports.iter().map(|p| p.bridge.as_str()).collect();
    v.sort_unstable();
    v.dedup();
    v
}

fn iptables_missing(e: std::io::Error) -> anyhow::Error {
    if e.kind() == std::io::ErrorKind::NotFound {
        anyhow!("iptables is not installed; bridge networks need it (Debian package iptables; scripts/setup.sh installs it)")
    } else {
        anyhow!("running iptables: {e}")
    }
}

/// The current tables, read by one `iptables-save` rather than an `iptables -S` per table:
/// each run of the tool costs a process start, and this sits on the path of the first
/// container on a network and of `network rm`.
fn save() -> Result<Tables> {
    let out = Command::new("iptables-save")
        .stderr(Stdio::piped())
        .output()
        .map_err(iptables_missing)?;
    if !out.status.success() {
        return Err(anyhow!(
            "iptables-save failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(parse_save(&String::from_utf8_lossy(&out.stdout)))
}

/// `iptables-save`'s text as `Tables`. A table the host does not have (no raw table on some
/// kernels) stays empty, as its listing did before; the restore that needs it then fails
/// with iptables' own message.
fn parse_save(text: &str) -> Tables {
    let mut t = Tables::default();
    let mut current: Option<&mut String> = None;
    for line in text.lines() {
        if let Some(name) = line.strip_prefix('*') {
            current = match name {
                "filter" => Some(&mut t.filter),
                "nat" => Some(&mut t.nat),
                "raw" => Some(&mut t.raw),
                _ => None,
            };
            continue;
        }
        let Some(out) = current.as_deref_mut() else {
            continue;
        };
        if let Some(decl) = line.strip_prefix(':') {
            // `:CHAIN POLICY [packets:bytes]` declares a chain, as `-N CHAIN` does in -S.
            if let Some(chain) = decl.split_whitespace().next() {
                out.push_str(&format!("-N {chain}\n"));
            }
        } else if line.starts_with("-A ") {
            out.push_str(line);
            out.push('\n');
        }
    }
    t
}

fn restore(script: &str) -> Result<()> {
    let mut child = Command::new("iptables-restore")
        .args(["-w", "--noflush"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(iptables_missing)?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(script.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        return Err(anyhow!(
            "iptables-restore refused the rules: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn br(name: &str, subnet: &str, internal: bool) -> BridgeRules {
        BridgeRules {
            bridge: name.into(),
            subnet: subnet.parse().unwrap(),
            internal,
        }
    }

    #[test]
    fn a_save_reads_as_each_tables_listing() {
        let text = "# Generated by iptables-save v1.8.9 (nf_tables)\n\
            *raw\n:PREROUTING ACCEPT [0:0]\n:SKIFF-ab12-RAW - [0:0]\n\
            -A PREROUTING -j SKIFF-ab12-RAW\nCOMMIT\n\
            *mangle\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -j MARK --set-mark 1\nCOMMIT\n\
            *filter\n:FORWARD DROP [3:180]\n:SKIFF-ab12-FWD - [0:0]\n\
            -A FORWARD -j SKIFF-ab12-FWD\n-A SKIFF-ab12-FWD -i skab12x -j ACCEPT\nCOMMIT\n\
            # Completed\n";
        assert_eq!(
            parse_save(text),
            tables(
                "-N FORWARD\n-N SKIFF-ab12-FWD\n-A FORWARD -j SKIFF-ab12-FWD\n-A SKIFF-ab12-FWD -i skab12x -j ACCEPT\n",
                "",
                "-N PREROUTING\n-N SKIFF-ab12-RAW\n-A PREROUTING -j SKIFF-ab12-RAW\n",
            )
        );
        // What the script decides from it: the jump is there once, so it is not added again.
        let fw = Firewall::new("ab12");
        let s = fw.script(
            &[br("skab12x", "10.1.0.0/24", false)],
            &[],
            &parse_save(text),
        );
        assert!(!s.contains("-I FORWARD 1 -j SKIFF-ab12-FWD"), "{s}");
        assert!(
            s.contains("-D PREROUTING -j SKIFF-ab12-RAW") && s.contains("-X SKIFF-ab12-RAW"),
            "{s}"
        );
    }

    fn tables(filter: &str, nat: &str, raw: &str) -> Tables {
        Tables {
            filter: filter.into(),
            nat: nat.into(),
            raw: raw.into(),
        }
    }

    fn port(bridge: &str, host_ip: Option<&str>, host_port: u16, target: &str) -> PortRule {
        PortRule {
            bridge: bridge.into(),
            host_ip: host_ip.map(|ip| ip.parse().unwrap()),
            host_port,
            target: target.parse().unwrap(),
        }
    }

    #[test]
    fn rules_for_two_networks_isolate_them() {
        let fw = Firewall::new("ab12");
        let s = fw.script(
            &[
                br("skab12n1", "172.18.0.0/16", false),
                br("skab12n2", "10.9.0.0/24", true),
            ],
            &[],
            &tables("-P FORWARD DROP\n", "", ""),
        );
        assert!(s.contains(":SKIFF-ab12-FWD - [0:0]\n"), "{s}");
        assert!(s.contains("-A SKIFF-ab12-FWD -o skab12n1 -j DROP\n"));
        assert!(s.contains("-A SKIFF-ab12-FWD -i skab12n1 -o skab12n1 -j ACCEPT\n"));
        assert!(s.contains("-A SKIFF-ab12-FWD -i skab12n1 -j ACCEPT\n"));
        assert!(s.contains("-A SKIFF-ab12-FWD -i skab12n2 -j DROP\n"));
        // The DROPs into each network come before any egress ACCEPT.
        let last_drop = s.rfind("-o skab12n2 -j DROP").unwrap();
        assert!(last_drop < s.find("-i skab12n1 -j ACCEPT").unwrap());
        assert!(s.contains("-I FORWARD 1 -j SKIFF-ab12-FWD\n"));
        assert!(s.contains("-A SKIFF-ab12-NAT -s 172.18.0.0/16 ! -o skab12n1 -j MASQUERADE\n"));
        assert!(
            !s.contains("10.9.0.0/24 !"),
            "internal networks are not NATed"
        );
        assert!(
            !s.contains("DNAT") && !s.contains("*raw"),
            "no ports, no DNAT: {s}"
        );
    }

    #[test]
    fn published_ports_are_dnated_with_loopback_guarded() {
        let fw = Firewall::new("ab12");
        let p1 = port("skab12n1", Some("127.0.0.1"), 8080, "172.18.0.2:80");
        let p2 = port("skab12n1", None, 8443, "172.18.0.2:443");
        let p3 = port("skab12n1", None, 8081, "172.18.0.2:80");
        let s = fw.script(
            &[br("skab12n1", "172.18.0.0/16", false)],
            &[&p1, &p2, &p3],
            &tables("", "", ""),
        );
        assert!(s.contains(
            "-A SKIFF-ab12-DNAT -d 127.0.0.1/32 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.18.0.2:80\n"
        ), "{s}");
        assert!(s.contains(
            "-A SKIFF-ab12-DNAT -p tcp -m tcp --dport 8443 -j DNAT --to-destination 172.18.0.2:443\n"
        ), "{s}");
        // Containers on our bridges and non-local destinations are left to the relay, before
        // any DNAT.
        let ret = s.find("-A SKIFF-ab12-DNAT -i skab12+ -j RETURN").unwrap();
        assert!(ret < s.find("--dport 8080 -j DNAT").unwrap());
        assert!(s.contains("-A SKIFF-ab12-DNAT -m addrtype ! --dst-type LOCAL -j RETURN\n"));
        assert!(s.contains("-I PREROUTING 1 -j SKIFF-ab12-DNAT\n"));
        assert!(s.contains("-I OUTPUT 1 -j SKIFF-ab12-DNAT\n"));
        assert_eq!(s.matches(":SKIFF-ab12-DNAT - [0:0]").count(), 1, "{s}");
        // The forwarded port is let into the network before the network's DROP.
        let accept = s.find("-A SKIFF-ab12-FWD -d 172.18.0.2/32 -o skab12n1 -p tcp -m tcp --dport 80 -m conntrack --ctstate DNAT -j ACCEPT").unwrap();
        assert!(accept < s.find("-o skab12n1 -j DROP").unwrap());
        assert_eq!(
            s.matches("--dport 80 -m conntrack").count(),
            1,
            "one ACCEPT per target: {s}"
        );
        assert!(s.contains(
            "-A SKIFF-ab12-NAT -s 127.0.0.0/8 -o skab12n1 -m conntrack --ctstate DNAT -j MASQUERADE\n"
        ));
        assert!(s.contains("*raw\n:SKIFF-ab12-RAW - [0:0]\n-A SKIFF-ab12-RAW -d 127.0.0.0/8 -i skab12n1 -j DROP\n-I PREROUTING 1 -j SKIFF-ab12-RAW\nCOMMIT\n"), "{s}");
    }

    #[test]
    fn the_last_port_takes_dnat_and_raw_away_and_keeps_the_bridge() {
        let fw = Firewall::new("ab12");
        let filter = "-N SKIFF-ab12-FWD\n-A FORWARD -j SKIFF-ab12-FWD\n";
        let nat = "-N SKIFF-ab12-NAT\n-N SKIFF-ab12-DNAT\n-A PREROUTING -j SKIFF-ab12-DNAT\n\
                   -A OUTPUT -j SKIFF-ab12-DNAT\n-A POSTROUTING -j SKIFF-ab12-NAT\n";
        let raw = "-N SKIFF-ab12-RAW\n-A PREROUTING -j SKIFF-ab12-RAW\n";
        let s = fw.script(
            &[br("skab12n1", "172.18.0.0/16", false)],
            &[],
            &tables(filter, nat, raw),
        );
        assert!(
            s.contains("-D PREROUTING -j SKIFF-ab12-DNAT\n-D OUTPUT -j SKIFF-ab12-DNAT\n"),
            "{s}"
        );
        assert_eq!(
            s.matches("-F SKIFF-ab12-DNAT\n-X SKIFF-ab12-DNAT\n")
                .count(),
            1,
            "{s}"
        );
        assert!(s.contains("*raw\n-D PREROUTING -j SKIFF-ab12-RAW\n-F SKIFF-ab12-RAW\n-X SKIFF-ab12-RAW\nCOMMIT\n"), "{s}");
        assert!(s.contains(":SKIFF-ab12-NAT - [0:0]\n"), "{s}");
        assert!(!s.contains("-I POSTROUTING"), "{s}");
    }

    #[test]
    fn existing_jump_is_not_added_twice_and_removal_cleans_up() {
        let fw = Firewall::new("ab12");
        let filter = "-P FORWARD DROP\n-N SKIFF-ab12-FWD\n-A FORWARD -j SKIFF-ab12-FWD\n";
        let nat = "-N SKIFF-ab12-NAT\n-A POSTROUTING -j SKIFF-ab12-NAT\n";
        let t = tables(filter, nat, "");
        let s = fw.script(&[br("skab12n1", "172.18.0.0/16", false)], &[], &t);
        assert!(!s.contains("-I FORWARD"), "{s}");
        assert!(!s.contains("-I POSTROUTING"), "{s}");
        let gone = fw.script(&[], &[], &t);
        assert_eq!(
            gone,
            "*filter\n-D FORWARD -j SKIFF-ab12-FWD\n-F SKIFF-ab12-FWD\n-X SKIFF-ab12-FWD\nCOMMIT\n\
             *nat\n-D POSTROUTING -j SKIFF-ab12-NAT\n-F SKIFF-ab12-NAT\n-X SKIFF-ab12-NAT\nCOMMIT\n"
        );
        assert_eq!(
            fw.script(&[], &[], &tables("-P FORWARD DROP\n", "", "")),
            ""
        );
    }
}
