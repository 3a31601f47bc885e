//! docker's legacy `--link NAME[:ALIAS]`: the linked container's address under the alias (and
//! its name and short ID) in `/etc/hosts`, and on the default bridge the environment docker
//! gives (`ALIAS_NAME`, `ALIAS_PORT_80_TCP…`, `ALIAS_ENV_…`). The target must run when the
//! linking container starts. Entries are fixed at start, as docker's are for the environment;
//! docker also rewrites `/etc/hosts` when the target moves, which skiff does not.

use anyhow::{bail, Result};

use super::record::Record;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub name: String,
    pub alias: String,
}

/// `name`, `name:alias`, or the form dockerd stores and inspect shows: `/name:/me/alias`.
pub fn parse(spec: &str) -> Result<Link> {
    let (name, alias) = spec.split_once(':').unwrap_or((spec, spec));
    let name = name.trim_start_matches('/');
    let alias = alias.rsplit('/').next().unwrap_or(alias);
    if name.is_empty() || alias.is_empty() {
        bail!("invalid link {spec:?}: expected NAME or NAME:ALIAS");
    }
    Ok(Link {
        name: name.to_string(),
        alias: alias.to_string(),
    })
}

/// The `/etc/hosts` line for a link to `target` at `ip`.
pub fn hosts_line(link: &Link, target: &Record, ip: &str) -> String {
    let mut names = vec![link.alias.as_str()];
    for n in [target.short_id(), target.name.as_str()] {
        if !names.contains(&n) {
            names.push(n);
        }
    }
    format!("{ip}\t{}\n", names.join(" "))
}

/// docker's link environment for a container named `me` linking to `target` at `ip`.
pub fn env(link: &Link, me: &str, target: &Record, ip: &str) -> Vec<String> {
    let prefix: String = link
        .alias
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    let mut out = vec![format!("{prefix}_NAME=/{me}/{}", link.alias)];
    let mut ports: Vec<(u16, String)> = target
        .config
        .exposed_ports
        .iter()
        .flatten()
        .filter_map(|k| {
            let (p, proto) = k.split_once('/').unwrap_or((k, "tcp"));
            Some((p.parse().ok()?, proto.to_ascii_lowercase()))
        })
        .collect();
    ports.sort();
    if let Some((p, proto)) = ports.first() {
        out.push(format!("{prefix}_PORT={proto}://{ip}:{p}"));
    }
    for (p, proto) in &ports {
        let k = format!("{prefix}_PORT_{p}_{}", proto.to_ascii_uppercase());
        out.push(format!("{k}={proto}://{ip}:{p}"));
        out.push(format!("{k}_ADDR={ip}"));
        out.push(format!("{k}_PORT={p}"));
        out.push(format!("{k}_PROTO={proto}"));
    }
    for kv in target.config.env.iter().flatten() {
        let key = kv.split('=').next().unwrap_or(kv);
        if key != "HOME" && key != "PATH" {
            out.push(format!("{prefix}_ENV_{kv}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_forms() {
        let l = |n: &str, a: &str| Link {
            name: n.into(),
            alias: a.into(),
        };
        assert_eq!(parse("db").unwrap(), l("db", "db"));
        assert_eq!(parse("db:store").unwrap(), l("db", "store"));
        assert_eq!(parse("/db:/web/store").unwrap(), l("db", "store"));
        assert!(parse(":x").is_err());
        assert!(parse("db:").is_err());
    }
}
