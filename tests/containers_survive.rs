//! Nothing lost: containers keep running when the agent is SIGKILLed; the restarted agent
//! lists them, their logs go on without a gap, and exits meanwhile are recorded.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use skiff_e2e::*;

#[track_caller]
fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn field(s: &Skiff, name: &str, f: &str) -> String {
    s.run(&["inspect", "-f", f, name])
        .ok()
        .stdout
        .trim()
        .to_string()
}

#[test]
fn agent_sigkill_loses_no_container_log_or_exit_code() {
    let s = Skiff::new();
    let bb = image("busybox");
    s.run(&["pull", &bb]).ok();

    // One interactive container, attached through a real pty.
    let mut tty_client = Command::new("script")
        .args([
            "-qefc",
            &format!(
                "{} run -it --name tty {bb} sh",
                bin_dir().join("skiff").display()
            ),
            "/dev/null",
        ])
        .envs(s.env())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("script");
    let mut tty_in = tty_client.stdin.take().expect("stdin");
    wait_until("the tty container", || field_ok(&s, "tty") == "running");
    tty_in.write_all(b"echo before-crash\n").expect("typing");
    wait_until("tty output in the log", || {
        s.run(&["logs", "tty"]).stdout.contains("before-crash")
    });

    s.run(&[
        "run",
        "-d",
        "--name",
        "logger",
        &bb,
        "sh",
        "-c",
        "i=0; while true; do i=$((i+1)); echo $i; sleep 0.05; done",
    ])
    .ok();
    s.run(&["run", "-d", "--name", "idle", &bb, "sleep", "1000"])
        .ok();
    s.run(&[
        "run",
        "-d",
        "--name",
        "ender",
        &bb,
        "sh",
        "-c",
        "sleep 4; exit 7",
    ])
    .ok();
    let pids: Vec<i32> = ["tty", "logger", "idle"]
        .iter()
        .map(|n| field(&s, n, "{{.State.Pid}}").parse().unwrap())
        .collect();
    wait_until("some log lines", || {
        s.run(&["logs", "logger"]).lines().len() > 5
    });

    s.kill_agent();
    // Natively the processes are this host's to look at; in the VM the same PIDs after the
    // restart (below) say it.
    let host_pids = if on_vm() { &[][..] } else { &pids[..] };
    for pid in host_pids {
        assert!(alive(*pid), "container process {pid} outlived the agent");
    }
    // The agent is away while "ender" ends and "logger" keeps writing.
    std::thread::sleep(Duration::from_secs(6));
    for pid in host_pids {
        assert!(alive(*pid), "container process {pid} still running");
    }

    // Any command brings the agent back; it finds everything.
    let ps = s
        .run(&["ps", "-a", "--format", "{{.Names}} {{.State}}"])
        .ok();
    let mut listed: Vec<&str> = ps.lines();
    listed.sort();
    assert_eq!(
        listed,
        [
            "ender exited",
            "idle running",
            "logger running",
            "tty running"
        ],
        "{}",
        ps.stdout
    );
    assert_eq!(field(&s, "ender", "{{.State.ExitCode}}"), "7");
    for (name, pid) in ["tty", "logger", "idle"].iter().zip(&pids) {
        assert_eq!(field(&s, name, "{{.State.Pid}}"), pid.to_string());
    }
    assert!(s.run(&["logs", "tty"]).stdout.contains("before-crash"));

    // The log has every line, in order, across the outage, and still grows.
    let before = s.run(&["logs", "logger"]).ok().stdout;
    let n_before = before.lines().count();
    wait_until("more log lines", || {
        s.run(&["logs", "logger"]).stdout.lines().count() > n_before + 5
    });
    let all = s.run(&["logs", "logger"]).ok().stdout;
    for (i, line) in all.lines().enumerate() {
        assert_eq!(
            line,
            (i + 1).to_string(),
            "log line {} of {}",
            i + 1,
            all.lines().count()
        );
    }
    assert!(
        all.lines().count() > 100,
        "the logger wrote through the 6 s outage"
    );

    // The restarted agent controls them as before.
    s.run(&["exec", "tty", "true"]).ok();
    s.run(&["stop", "-t", "1", "idle", "logger", "tty"]).ok();
    assert_eq!(field(&s, "idle", "{{.State.Status}}"), "exited");
    assert_eq!(field(&s, "logger", "{{.State.ExitCode}}"), "137");
    let _ = tty_client.kill();
    let _ = tty_client.wait();
}

fn field_ok(s: &Skiff, name: &str) -> String {
    let r = s.run(&["inspect", "-f", "{{.State.Status}}", name]);
    r.stdout.trim().to_string()
}

#[test]
fn restart_policies_are_honoured_by_the_agent() {
    let s = Skiff::new();
    let bb = image("busybox");
    s.run(&["pull", &bb]).ok();
    s.run(&[
        "run",
        "-d",
        "--name",
        "flaky",
        "--restart",
        "on-failure:2",
        &bb,
        "sh",
        "-c",
        "echo run; exit 1",
    ])
    .ok();
    wait_until("two restarts", || {
        field(&s, "flaky", "{{.RestartCount}}") == "2"
            && field(&s, "flaky", "{{.State.Status}}") == "exited"
    });
    assert_eq!(s.run(&["logs", "flaky"]).ok().stdout, "run\nrun\nrun\n");

    s.run(&[
        "run",
        "-d",
        "--name",
        "always",
        "--restart",
        "always",
        &bb,
        "sh",
        "-c",
        "sleep 0.3; exit 0",
    ])
    .ok();
    wait_until("restarts of always", || {
        field(&s, "always", "{{.RestartCount}}")
            .parse::<u32>()
            .unwrap_or(0)
            >= 2
    });
    s.run(&["stop", "always"]).ok();
    let count = field(&s, "always", "{{.RestartCount}}");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        field(&s, "always", "{{.State.Status}}"),
        "exited",
        "stopped stays stopped"
    );
    assert_eq!(field(&s, "always", "{{.RestartCount}}"), count);

    s.run(&[
        "run",
        "-d",
        "--name",
        "ok",
        "--restart",
        "on-failure",
        &bb,
        "true",
    ])
    .ok();
    wait_until("clean exit", || {
        field(&s, "ok", "{{.State.Status}}") == "exited"
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(field(&s, "ok", "{{.RestartCount}}"), "0");
}
