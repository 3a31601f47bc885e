//! `--security-opt`, read as dockerd reads it (`key=value`, or the older `key:value`).
//!
//! What a host without AppArmor or SELinux cannot apply (`apparmor=…`, `label=…`) is accepted
//! and has no effect, as dockerd does on such a host. Everything else either takes effect or
//! is refused: a confinement option that was silently dropped would run the container with
//! other permissions than the user asked for.

use anyhow::{bail, Result};

#[derive(Debug, Default, PartialEq, Eq)]
pub struct SecurityOpts {
    /// `seccomp=unconfined`: no seccomp filter at all.
    pub seccomp_unconfined: bool,
    /// `no-new-privileges`: setuid binaries and file capabilities grant nothing.
    pub no_new_privileges: bool,
    /// `systempaths=unconfined`: /proc and /sys paths are neither masked nor read-only.
    pub systempaths_unconfined: bool,
}

pub fn parse(opts: &[String]) -> Result<SecurityOpts> {
    let mut out = SecurityOpts::default();
    for opt in opts {
        // no-new-privileges alone is a key without a value.
        let (key, value) = match opt.split_once(['=', ':']) {
            Some((k, v)) => (k, Some(v)),
            None => (opt.as_str(), None),
        };
        match (key, value) {
            ("no-new-privileges", None) => out.no_new_privileges = true,
            ("no-new-privileges", Some(v)) => {
                out.no_new_privileges = match v {
                    "true" => true,
                    "false" => false,
                    _ => bail!(
                        "invalid --security-opt {opt:?}: no-new-privileges takes true or false"
                    ),
                }
            }
            ("seccomp", Some("unconfined")) => out.seccomp_unconfined = true,
            ("seccomp", Some("builtin" | "default")) => out.seccomp_unconfined = false,
            ("seccomp", Some(_)) => bail!(
                "invalid --security-opt seccomp: custom seccomp profiles are not supported yet; \
                 leave the option out for docker's default profile, or use seccomp=unconfined"
            ),
            ("systempaths", Some("unconfined")) => out.systempaths_unconfined = true,
            ("apparmor" | "label", Some(_)) => {}
            _ => bail!(
                "invalid --security-opt {opt:?}: expected seccomp=unconfined, no-new-privileges, \
                 systempaths=unconfined, apparmor=… or label=…"
            ),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(opts: &[&str]) -> Result<SecurityOpts> {
        parse(&opts.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn docker_forms_are_read() {
        let o = p(&[
            "seccomp=unconfined",
            "no-new-privileges",
            "apparmor=unconfined",
        ])
        .unwrap();
        assert!(o.seccomp_unconfined && o.no_new_privileges && !o.systempaths_unconfined);
        assert!(p(&["no-new-privileges:true"]).unwrap().no_new_privileges);
        assert!(!p(&["no-new-privileges=false"]).unwrap().no_new_privileges);
        assert!(p(&["seccomp:unconfined"]).unwrap().seccomp_unconfined);
        assert!(
            p(&["systempaths=unconfined"])
                .unwrap()
                .systempaths_unconfined
        );
        assert_eq!(p(&["label=disable"]).unwrap(), SecurityOpts::default());
    }

    #[test]
    fn what_cannot_be_applied_is_refused() {
        let e = p(&["seccomp={\"defaultAction\":\"SCMP_ACT_ALLOW\"}"]).unwrap_err();
        assert!(e.to_string().contains("custom seccomp profiles"), "{e}");
        let e = p(&["nonsense"]).unwrap_err();
        assert!(e.to_string().contains("\"nonsense\""), "{e}");
        assert!(p(&["no-new-privileges=maybe"]).is_err());
    }
}
