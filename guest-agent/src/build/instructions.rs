//! The instructions that change only an image's config (ENV, LABEL, CMD, WORKDIR…): applied to
//! a stage's state, with the text docker records for each in the image's history
//! (`/bin/sh -c #(nop)  ENV a=b`). The same code applies `commit --change` and
//! `import --change`.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::dockerfile::goish::go_quote;
use super::dockerfile::{expand_word, expand_words, CmdForm, Instruction};
use crate::images::model::RunConfig;

pub const DEFAULT_SHELL: [&str; 2] = ["/bin/sh", "-c"];

/// Build args docker passes to RUN steps without an ARG declaring them.
pub const PROXY_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// A build stage's state between steps, beside its current image.
#[derive(Debug, Clone, Default)]
pub struct StageState {
    pub config: RunConfig,
    /// Whether this Dockerfile set CMD (an ENTRYPOINT then keeps it).
    pub cmd_set: bool,
    /// ARGs declared in this stage, with their values (a build arg, else the default).
    pub args: BTreeMap<String, Option<String>>,
    /// MAINTAINER sets the image's author.
    pub author: Option<String>,
    pub escape: char,
}

/// What a config instruction did: the history text (after `#(nop) `).
pub type Comment = String;

impl StageState {
    pub fn new(config: RunConfig, escape: char) -> Self {
        StageState {
            config,
            escape,
            ..Default::default()
        }
    }

    /// The stage's environment as a build step sees it: ARG values, overridden by ENV.
    pub fn lookup(&self, name: &str) -> Option<String> {
        let env = self.config.env.as_deref().unwrap_or_default();
        for e in env.iter().rev() {
            if let Some((k, v)) = e.split_once('=') {
                if k == name {
                    return Some(v.to_string());
                }
            }
        }
        self.args.get(name).cloned().flatten()
    }

    pub fn expand(&self, word: &str) -> Result<String, String> {
        expand_word(word, self.escape, &|n| self.lookup(n)).map_err(|e| e.to_string())
    }

    fn expand_all(&self, text: &str) -> Result<Vec<String>, String> {
        expand_words(text, self.escape, &|n| self.lookup(n)).map_err(|e| e.to_string())
    }

    pub fn shell(&self) -> Vec<String> {
        match self.config.extra.get("Shell").and_then(Value::as_array) {
            Some(s) if !s.is_empty() => s
                .iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect(),
            _ => DEFAULT_SHELL.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// A shell-form command as the stage's shell runs it.
    pub fn command(&self, form: &CmdForm) -> Vec<String> {
        match form {
            CmdForm::Exec(args) => args.clone(),
            CmdForm::Shell(text) => {
                let mut c = self.shell();
                c.push(text.clone());
                c
            }
        }
    }

    fn set_env(&mut self, key: &str, value: &str) {
        let env = self.config.env.get_or_insert_with(Vec::new);
        let entry = format!("{key}={value}");
        match env
            .iter_mut()
            .find(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) == key)
        {
            Some(e) => *e = entry,
            None => env.push(entry),
        }
    }

    /// Apply a config-only instruction. `build_args` are the values given with
    /// `--build-arg`; `used` collects the ones an ARG consumed. RUN, COPY, ADD and FROM are
    /// not config-only: the builder runs them.
    pub fn apply(
        &mut self,
        instr: &Instruction,
        build_args: &BTreeMap<String, Option<String>>,
        globals: &BTreeMap<String, Option<String>>,
    ) -> Result<Comment, String> {
        Ok(match instr {
            Instruction::Env(pairs) => {
                // Every value is expanded against the environment from before the
                // instruction (docker's `ENV abc=bye def=$abc` gives def the old abc).
                let mut expanded = Vec::new();
                for (k, v) in pairs {
                    expanded.push((self.expand(k)?, self.expand(v)?));
                }
                let mut text = String::from(" ENV");
                for (k, v) in expanded {
                    self.set_env(&k, &v);
                    text.push_str(&format!(" {k}={v}"));
                }
                text
            }
            Instruction::Arg(decls) => {
                let mut text = String::from(" ARG");
                for (name, default) in decls {
                    let default = match default {
                        Some(d) => Some(self.expand(d)?),
                        // `ARG NAME` in a stage takes a global ARG's value.
                        None => globals.get(name).cloned().flatten(),
                    };
                    let value = match build_args.get(name) {
                        Some(Some(v)) => Some(v.clone()),
                        _ => default.clone(),
                    };
                    self.args.insert(name.clone(), value);
                    match default {
                        Some(d) => text.push_str(&format!(" {name}={d}")),
                        None => text.push_str(&format!(" {name}")),
                    }
                }
                text
            }
            Instruction::Label(pairs) => {
                let mut text = String::from(" LABEL");
                let mut expanded = Vec::new();
                for (k, v) in pairs {
                    expanded.push((self.expand(k)?, self.expand(v)?));
                }
                let labels = self.config.labels.get_or_insert_with(BTreeMap::new);
                for (k, v) in expanded {
                    text.push_str(&format!(" {k}={v}"));
                    labels.insert(k, v);
                }
                text
            }
            Instruction::Expose(ports) => {
                let mut shown = Vec::new();
                let mut exposed = self.config.exposed_ports.clone().unwrap_or_default();
                for p in ports {
                    for word in self.expand_all(p)? {
                        let port = normalize_port(&word)?;
                        exposed.insert(port.clone(), json!({}));
                        shown.push(port);
                    }
                }
                self.config.exposed_ports = Some(exposed);
                format!(" EXPOSE {}", shown.join(" "))
            }
            Instruction::Volume(paths) => {
                let mut volumes = self.config.volumes.clone().unwrap_or_default();
                let mut shown = Vec::new();
                for p in paths {
                    let p = self.expand(p)?;
                    if p.trim().is_empty() {
                        return Err("VOLUME specified can not be an empty string".into());
                    }
                    volumes.insert(p.clone(), json!({}));
                    shown.push(p);
                }
                self.config.volumes = Some(volumes);
                format!(" VOLUME [{}]", shown.join(" "))
            }
            Instruction::Workdir(dir) => {
                let dir = self.expand(dir)?;
                let joined = if dir.starts_with('/') {
                    dir
                } else {
                    let base = self.config.working_dir.clone().unwrap_or_default();
                    let base = if base.is_empty() {
                        "/".to_string()
                    } else {
                        base
                    };
                    format!("{}/{dir}", base.trim_end_matches('/'))
                };
                let clean = clean_path(&joined);
                self.config.working_dir = Some(clean.clone());
                format!("WORKDIR {clean}")
            }
            Instruction::User(user) => {
                let user = self.expand(user)?;
                self.config.user = Some(user.clone());
                format!(" USER {user}")
            }
            Instruction::StopSignal(sig) => {
                let sig = self.expand(sig)?;
                self.config.stop_signal = Some(sig.clone());
                format!(" STOPSIGNAL {sig}")
            }
            Instruction::Maintainer(who) => {
                self.author = Some(who.clone());
                format!(" MAINTAINER {who}")
            }
            Instruction::Cmd(form) => {
                let cmd = self.command(form);
                self.config.cmd = Some(cmd.clone());
                self.cmd_set = true;
                format!(" CMD {}", go_list(&cmd))
            }
            Instruction::Entrypoint(form) => {
                let ep = self.command(form);
                self.config.entrypoint = Some(ep.clone());
                // An inherited CMD makes no sense with a new entrypoint: docker drops it.
                if !self.cmd_set {
                    self.config.cmd = None;
                }
                format!(" ENTRYPOINT {}", go_list(&ep))
            }
            Instruction::Shell(shell) => {
                self.config.extra.insert("Shell".into(), json!(shell));
                format!(" SHELL {}", go_list(shell))
            }
            Instruction::Healthcheck(hc) => {
                let test = hc.docker_test();
                let nanos = |d: Option<std::time::Duration>| d.map_or(0, |d| d.as_nanos() as u64);
                let mut v = json!({ "Test": test });
                if hc.test.is_some() {
                    for (key, d) in [
                        ("Interval", hc.interval),
                        ("Timeout", hc.timeout),
                        ("StartPeriod", hc.start_period),
                        ("StartInterval", hc.start_interval),
                    ] {
                        if d.is_some() {
                            v[key] = json!(nanos(d));
                        }
                    }
                    if let Some(r) = hc.retries {
                        v["Retries"] = json!(r);
                    }
                }
                self.config.extra.insert("Healthcheck".into(), v);
                // Go's `%v` of docker's HealthConfig, as the classic builder records it.
                format!(
                    " HEALTHCHECK &{{{} {} {} {} {}}}",
                    go_list(&test),
                    go_quote(&go_duration(hc.interval)),
                    go_quote(&go_duration(hc.timeout)),
                    go_quote(&go_duration(hc.start_period)),
                    go_rune(hc.retries.unwrap_or(0)),
                )
            }
            Instruction::Onbuild(trigger) => {
                let list = self
                    .config
                    .extra
                    .entry("OnBuild")
                    .or_insert_with(|| json!([]));
                if !list.is_array() {
                    *list = json!([]);
                }
                if let Some(a) = list.as_array_mut() {
                    a.push(json!(trigger));
                }
                format!(" ONBUILD {trigger}")
            }
            Instruction::From { .. }
            | Instruction::Run(_)
            | Instruction::Copy(_)
            | Instruction::Add(_) => {
                return Err("this instruction is not a config change".into());
            }
        })
    }
}

/// Go's `time.Duration.String()`: `2s`, `1m30s`, `500ms`, `0s`.
fn go_duration(d: Option<std::time::Duration>) -> String {
    let d = d.unwrap_or_default();
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".into();
    }
    if nanos < 1_000_000_000 {
        let (unit, div) = if nanos < 1_000 {
            ("ns", 1)
        } else if nanos < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        return format!("{}{unit}", trim_float(nanos as f64 / div as f64));
    }
    let secs = d.as_secs();
    let (h, m) = (secs / 3600, (secs % 3600) / 60);
    let s = (secs % 60) as f64 + f64::from(d.subsec_nanos()) / 1e9;
    let s = format!("{}s", trim_float(s));
    match (h, m) {
        (0, 0) => s,
        (0, m) => format!("{m}m{s}"),
        (h, m) => format!("{h}h{m}m{s}"),
    }
}

fn trim_float(f: f64) -> String {
    let t = format!("{f:.9}");
    t.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Go's `%q` of an integer: a quoted rune, `'\x00'` for 0, `'\x03'` for 3.
fn go_rune(n: u32) -> String {
    match char::from_u32(n) {
        Some(c) if !c.is_control() => format!("'{c}'"),
        _ if n < 0x100 => format!("'\\x{n:02x}'"),
        _ => format!("'\\u{n:04x}'"),
    }
}

/// Go's `%q` of a string slice: `["cat" "/out/g"]`.
pub fn go_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| go_quote(s)).collect();
    format!("[{}]", quoted.join(" "))
}

/// `80` → `80/tcp`, `53/UDP` → `53/udp`; a range or anything else docker refuses is refused.
fn normalize_port(word: &str) -> Result<String, String> {
    let (port, proto) = word.split_once('/').unwrap_or((word, "tcp"));
    let proto = proto.to_ascii_lowercase();
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("invalid proto: {proto}"));
    }
    let valid = |p: &str| p.parse::<u16>().is_ok();
    let ok = match port.split_once('-') {
        Some((a, b)) => valid(a) && valid(b),
        None => valid(port),
    };
    if !ok {
        return Err(format!("invalid containerPort: {port}"));
    }
    Ok(format!("{port}/{proto}"))
}

/// Go's `path.Clean` for a path taken from the root (`..` stops there).
pub fn clean_path(p: &str) -> String {
    skiff_common::gopath::clean(&format!("/{p}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::dockerfile::parse;

    fn state() -> StageState {
        StageState::new(RunConfig::default(), '\\')
    }

    fn steps(text: &str) -> Vec<Instruction> {
        parse(&format!("FROM scratch\n{text}"))
            .unwrap()
            .stages
            .remove(0)
            .steps
            .into_iter()
            .map(|s| s.instruction)
            .collect()
    }

    fn run(s: &mut StageState, text: &str, args: &[(&str, &str)]) -> Vec<String> {
        let build_args: BTreeMap<String, Option<String>> = args
            .iter()
            .map(|(k, v)| (k.to_string(), Some(v.to_string())))
            .collect();
        steps(text)
            .iter()
            .map(|i| s.apply(i, &build_args, &BTreeMap::new()).unwrap())
            .collect()
    }

    #[test]
    fn env_values_expand_against_the_environment_before_the_instruction() {
        let mut s = state();
        run(&mut s, "ENV abc=hello\nENV abc=bye def=$abc", &[]);
        assert_eq!(s.lookup("def").as_deref(), Some("hello"));
        assert_eq!(s.lookup("abc").as_deref(), Some("bye"));
    }

    #[test]
    fn env_and_arg_expand_and_env_wins() {
        let mut s = state();
        let c = run(
            &mut s,
            "ARG G=hi\nARG H\nENV A=$G B=\"x y\"\nENV G=env\nLABEL l=$G",
            &[("H", "given")],
        );
        assert_eq!(c[0], " ARG G=hi");
        assert_eq!(c[2], " ENV A=hi B=x y");
        assert_eq!(s.lookup("H").as_deref(), Some("given"));
        assert_eq!(s.config.labels.as_ref().unwrap()["l"], "env");
        assert_eq!(
            s.config.env.as_ref().unwrap(),
            &vec!["A=hi".to_string(), "B=x y".to_string(), "G=env".to_string()]
        );
    }

    #[test]
    fn cmd_entrypoint_shell_and_workdir_as_docker_records_them() {
        let mut s = state();
        s.config.cmd = Some(vec!["inherited".into()]);
        let c = run(
            &mut s,
            "ENTRYPOINT [\"/bin/app\"]\nSHELL [\"/bin/bash\", \"-c\"]\nCMD echo $HOME\nWORKDIR app\nWORKDIR ../srv/./x",
            &[],
        );
        assert_eq!(c[0], " ENTRYPOINT [\"/bin/app\"]");
        assert_eq!(c[2], " CMD [\"/bin/bash\" \"-c\" \"echo $HOME\"]");
        assert_eq!(s.config.working_dir.as_deref(), Some("/srv/x"));
        assert_eq!(c[4], "WORKDIR /srv/x");
        // The ENTRYPOINT dropped the inherited CMD; the later CMD set a new one.
        assert_eq!(s.config.cmd.as_ref().unwrap()[0], "/bin/bash");
    }

    #[test]
    fn expose_volume_healthcheck_onbuild() {
        let mut s = state();
        let c = run(
            &mut s,
            "EXPOSE 80 53/UDP\nVOLUME /data\nHEALTHCHECK --interval=2s CMD test -e /g\nONBUILD RUN echo hi",
            &[],
        );
        assert_eq!(c[0], " EXPOSE 53/udp 80/tcp");
        assert!(s
            .config
            .exposed_ports
            .as_ref()
            .unwrap()
            .contains_key("80/tcp"));
        assert!(s.config.volumes.as_ref().unwrap().contains_key("/data"));
        let hc = &s.config.extra["Healthcheck"];
        assert_eq!(hc["Test"], json!(["CMD-SHELL", "test -e /g"]));
        assert_eq!(hc["Interval"], json!(2_000_000_000u64));
        assert_eq!(
            c[2],
            " HEALTHCHECK &{[\"CMD-SHELL\" \"test -e /g\"] \"2s\" \"0s\" \"0s\" '\\x00'}"
        );
        assert_eq!(
            go_duration(Some(std::time::Duration::from_secs(90))),
            "1m30s"
        );
        assert_eq!(
            go_duration(Some(std::time::Duration::from_millis(500))),
            "500ms"
        );
        assert_eq!(s.config.extra["OnBuild"], json!(["RUN echo hi"]));
        let mut bad = state();
        let err = bad
            .apply(
                &steps("EXPOSE 99999")[0],
                &BTreeMap::new(),
                &BTreeMap::new(),
            )
            .unwrap_err();
        assert!(err.contains("invalid containerPort"), "{err}");
    }
}
