//! Forwarding and NAT for the agent's bridges, through iptables (its nf_tables or legacy
//! backend, whichever the host's `iptables` is: the same one docker and podman use, so our
//! rules see theirs, such as docker's FORWARD policy DROP, and are not shadowed by them).
//!
//! Every rule lives in two chains named for the agent (`SKIFF-<tag>-FWD` in filter,
//! `SKIFF-<tag>-NAT` in nat), reached by one jump each from FORWARD and POSTROUTING. Each
//! change rewrites both chains whole in one `iptables-restore` transaction, from the list of
//! bridges in use: nothing to patch, nothing to get out of step after a crash, and two
//! agents never touch each other's rules. With no bridge in use, chains and jumps are
//! removed. Published ports do not use NAT (the agent forwards them), so there are no
//! per-container rules.

use std::io::Write;
use std::process::{Command, Stdio};

use anyhow::{anyhow, Context, Result};
use ipnet::Ipv4Net;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BridgeRules {
    pub bridge: String,
    pub subnet: Ipv4Net,
    pub internal: bool,
}

pub struct Firewall {
    fwd: String,
    nat: String,
}

impl Firewall {
    pub fn new(tag: &str) -> Self {
        Self {
            fwd: format!("SKIFF-{tag}-FWD"),
            nat: format!("SKIFF-{tag}-NAT"),
        }
    }

    /// Make the rules exactly those for `bridges`.
    pub fn apply(&self, bridges: &[BridgeRules]) -> Result<()> {
        let filter = list("filter")?;
        let nat = list("nat")?;
        let script = self.script(bridges, &filter, &nat);
        if script.is_empty() {
            return Ok(());
        }
        if !bridges.is_empty() {
            // Routing between the bridges and the host's other interfaces is what a bridge
            // network is; docker switches it on the same way.
            std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")
                .context("enabling IPv4 forwarding")?;
        }
        restore(&script)
    }

    fn script(&self, bridges: &[BridgeRules], filter: &str, nat: &str) -> String {
        let mut out = String::new();
        let has_chain =
            |table: &str, chain: &str| table.lines().any(|l| l == format!("-N {chain}"));
        let jumps = |table: &str, from: &str, chain: &str| {
            let want = format!("-A {from} -j {chain}");
            table.lines().filter(|l| *l == want).count()
        };
        if bridges.is_empty() {
            for (table, text, from, chain) in [
                ("filter", filter, "FORWARD", &self.fwd),
                ("nat", nat, "POSTROUTING", &self.nat),
            ] {
                let n = jumps(text, from, chain);
                if n == 0 && !has_chain(text, chain) {
                    continue;
                }
                out.push_str(&format!("*{table}\n"));
                for _ in 0..n {
                    out.push_str(&format!("-D {from} -j {chain}\n"));
                }
                if has_chain(text, chain) {
                    out.push_str(&format!("-F {chain}\n-X {chain}\n"));
                }
                out.push_str("COMMIT\n");
            }
            return out;
        }

        // filter: replies in; traffic within a network; nothing else into a network (other
        // networks, other agents' networks, the outside); out of a network unless internal.
        out.push_str(&format!("*filter\n:{} - [0:0]\n", self.fwd));
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
        match jumps(filter, "FORWARD", &self.fwd) {
            0 => out.push_str(&format!("-I FORWARD 1 -j {}\n", self.fwd)),
            1 => {}
            n => (1..n).for_each(|_| out.push_str(&format!("-D FORWARD -j {}\n", self.fwd))),
        }
        out.push_str("COMMIT\n");

        out.push_str(&format!("*nat\n:{} - [0:0]\n", self.nat));
        for b in bridges.iter().filter(|b| !b.internal) {
            out.push_str(&format!(
                "-A {} -s {} ! -o {} -j MASQUERADE\n",
                self.nat, b.subnet, b.bridge
            ));
        }
        match jumps(nat, "POSTROUTING", &self.nat) {
            0 => out.push_str(&format!("-I POSTROUTING 1 -j {}\n", self.nat)),
            1 => {}
            n => (1..n).for_each(|_| out.push_str(&format!("-D POSTROUTING -j {}\n", self.nat))),
        }
        out.push_str("COMMIT\n");
        out
    }
}

fn iptables_missing(e: std::io::Error) -> anyhow::Error {
    if e.kind() == std::io::ErrorKind::NotFound {
        anyhow!("iptables is not installed; bridge networks need it (Debian package iptables; scripts/setup.sh installs it)")
    } else {
        anyhow!("running iptables: {e}")
    }
}

fn list(table: &str) -> Result<String> {
    let out = Command::new("iptables")
        .args(["-w", "-t", table, "-S"])
        .stderr(Stdio::piped())
        .output()
        .map_err(iptables_missing)?;
    if !out.status.success() {
        return Err(anyhow!(
            "iptables -t {table} -S failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
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
    fn rules_for_two_networks_isolate_them() {
        let fw = Firewall::new("ab12");
        let s = fw.script(
            &[
                br("skab12n1", "172.18.0.0/16", false),
                br("skab12n2", "10.9.0.0/24", true),
            ],
            "-P FORWARD DROP\n",
            "",
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
    }

    #[test]
    fn existing_jump_is_not_added_twice_and_removal_cleans_up() {
        let fw = Firewall::new("ab12");
        let filter = "-P FORWARD DROP\n-N SKIFF-ab12-FWD\n-A FORWARD -j SKIFF-ab12-FWD\n";
        let nat = "-N SKIFF-ab12-NAT\n-A POSTROUTING -j SKIFF-ab12-NAT\n";
        let s = fw.script(&[br("skab12n1", "172.18.0.0/16", false)], filter, nat);
        assert!(!s.contains("-I FORWARD"), "{s}");
        assert!(!s.contains("-I POSTROUTING"), "{s}");
        let gone = fw.script(&[], filter, nat);
        assert_eq!(
            gone,
            "*filter\n-D FORWARD -j SKIFF-ab12-FWD\n-F SKIFF-ab12-FWD\n-X SKIFF-ab12-FWD\nCOMMIT\n\
             *nat\n-D POSTROUTING -j SKIFF-ab12-NAT\n-F SKIFF-ab12-NAT\n-X SKIFF-ab12-NAT\nCOMMIT\n"
        );
        assert_eq!(fw.script(&[], "-P FORWARD DROP\n", ""), "");
    }
}
