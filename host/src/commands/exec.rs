//! `exec`: create the exec, start it over a hijacked connection, stream, then read its exit
//! code (126/127 come from the engine for "cannot execute" / "not found").

use anyhow::Result;
use serde_json::{json, Value};

use super::api::{seg, Body};
use super::attach::{self, exit_code, monitor_size, Ended, ResizeTarget, StreamConfig};
use super::opts::{env_lookup, read_kv_file, validate_env};
use super::term;
use super::Engine;
use crate::cli::ExecArgs;
use crate::SkiffError;

/// The body of `POST /containers/{id}/exec`, as the docker CLI writes it.
pub fn exec_body(a: &ExecArgs, console: Option<(u16, u16)>) -> Result<Value, String> {
    let mut env = Vec::new();
    for file in &a.env_file {
        env.extend(read_kv_file(file, Some(&env_lookup))?);
    }
    for e in &a.env {
        env.push(
            validate_env(e)
                .map_err(|err| format!("invalid argument \"{e}\" for \"-e, --env\" flag: {err}"))?,
        );
    }
    let attach_out = !a.detach;
    let mut body = json!({
        "User": a.user.clone().unwrap_or_default(),
        "Privileged": a.privileged,
        "Tty": a.tty,
        "AttachStdin": attach_out && a.interactive,
        "AttachStderr": attach_out,
        "AttachStdout": attach_out,
        "Detach": a.detach,
        "DetachKeys": a.detach_keys.clone().unwrap_or_default(),
        "Env": if env.is_empty() { Value::Null } else { json!(env) },
        "WorkingDir": a.workdir.clone().unwrap_or_default(),
        "Cmd": a.container_and_command[1..].to_vec(),
    });
    if let (true, Some((h, w))) = (a.tty, console) {
        body["ConsoleSize"] = json!([h, w]);
    }
    Ok(body)
}

pub async fn exec(engine: &Engine, a: &ExecArgs) -> Result<u8> {
    let api = engine.api();
    let container = &a.container_and_command[0];
    let console = a.tty.then(term::size);
    let body = exec_body(a, console).map_err(|e| {
        SkiffError::new(format!(
            "skiff: {e}\n\nRun 'skiff exec --help' for more information"
        ))
    })?;
    let stdin = !a.detach && a.interactive;
    if !a.detach && a.tty && stdin && !term::stdin_is_tty() {
        // As docker's CLI: a missing container is the error that wins. Otherwise the exec's
        // creation says so itself, and an inspect first would cost every exec a round trip.
        api.call(
            "GET",
            &format!("/containers/{}/json", seg(container)),
            Body::None,
        )
        .await?;
        return Err(SkiffError::daemon("the input device is not a TTY").into());
    }
    let created = api
        .json(
            "POST",
            &format!("/containers/{}/exec", seg(container)),
            Body::Json(&body),
        )
        .await?;
    let exec_id = created["Id"].as_str().unwrap_or_default().to_string();
    if exec_id.is_empty() {
        return Err(SkiffError::daemon("exec ID empty").into());
    }
    let mut start = json!({"Detach": a.detach, "Tty": a.tty});
    if let Some((h, w)) = console {
        start["ConsoleSize"] = json!([h, w]);
    }
    let start_target = format!("/exec/{}/start", seg(&exec_id));
    if a.detach {
        api.call("POST", &start_target, Body::Json(&start)).await?;
        return Ok(0);
    }
    let hijacked = api.hijack(&start_target, Some(&start)).await?;
    let mut streaming = attach::start(
        hijacked,
        &StreamConfig {
            tty: a.tty,
            stdin,
            stdout: true,
            stderr: true,
            detach_keys: a.detach_keys.clone(),
        },
    )?;
    let _resize = (a.tty && term::stdin_is_tty())
        .then(|| monitor_size(&api, ResizeTarget::Exec, &exec_id, None));
    let end = streaming.next().await;
    streaming.close();
    match end {
        Ended::Detached => return Err(SkiffError::daemon("read escape sequence").into()),
        Ended::Failed(e) => return Err(SkiffError::daemon(e).into()),
        Ended::Done => {}
    }
    let info = api
        .json("GET", &format!("/exec/{}/json", seg(&exec_id)), Body::None)
        .await?;
    Ok(exit_code(info["ExitCode"].as_i64().unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_bodies_like_docker() {
        let cli = crate::cli::Cli::parse_from_args([
            "skiff", "exec", "-it", "-e", "A=1", "-w", "/tmp", "c1", "sh", "-c", "echo hi",
        ])
        .unwrap();
        let crate::cli::Command::OfContainer(crate::cli::ContainerVerb::Exec(a)) = cli.command
        else {
            panic!("not exec")
        };
        let b = exec_body(&a, Some((40, 120))).unwrap();
        assert_eq!(b["Cmd"], json!(["sh", "-c", "echo hi"]));
        assert_eq!(b["AttachStdin"], true);
        assert_eq!(b["Tty"], true);
        assert_eq!(b["Env"], json!(["A=1"]));
        assert_eq!(b["WorkingDir"], "/tmp");
        assert_eq!(b["ConsoleSize"], json!([40, 120]));
        assert_eq!(b["Detach"], false);

        let cli = crate::cli::Cli::parse_from_args(["skiff", "exec", "-d", "c1", "true"]).unwrap();
        let crate::cli::Command::OfContainer(crate::cli::ContainerVerb::Exec(a)) = cli.command
        else {
            panic!("not exec")
        };
        let b = exec_body(&a, None).unwrap();
        assert_eq!(b["AttachStdout"], false);
        assert_eq!(b["Env"], Value::Null);
        assert!(b.get("ConsoleSize").is_none());
    }
}
