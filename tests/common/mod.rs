//! What the end-to-end tests share: the built binaries, an isolated skiff per test (its own
//! state dir, socket and agent), the test registries, and the docker CLI pointed at skiff.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

pub mod hostile;

/// The directory holding the built `skiff` and `skiff-agent`.
pub fn bin_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("SKIFF_BIN_DIR") {
        return PathBuf::from(d);
    }
    // target/<profile>/deps/<test-binary> → target/<profile>
    let exe = std::env::current_exe().expect("test binary path");
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf()
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo root")
        .to_path_buf()
}

/// The anonymous test registry, as started by scripts/test-registry.sh.
pub fn registry() -> String {
    std::env::var("SKIFF_REGISTRY").unwrap_or_else(|_| "127.0.0.1:5000".into())
}

/// The registry that wants a login (skiff / skiffpass).
pub fn auth_registry() -> String {
    std::env::var("SKIFF_AUTH_REGISTRY").unwrap_or_else(|_| "127.0.0.1:5001".into())
}

pub fn registry_dir() -> PathBuf {
    PathBuf::from(
        std::env::var("SKIFF_REGISTRY_DIR")
            .unwrap_or_else(|_| "/var/tmp/skiff-test-registry".into()),
    )
}

/// `registry/name:tag` in the anonymous test registry.
pub fn image(name: &str) -> String {
    format!("{}/{name}", registry())
}

/// What a finished command left: exit code and both streams.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    #[track_caller]
    pub fn ok(self) -> Run {
        assert_eq!(
            self.code, 0,
            "command failed:\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn fails_with(self, code: i32, needle: &str) -> Run {
        assert_eq!(
            self.code, code,
            "wrong exit code:\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        assert!(
            self.stderr.contains(needle) || self.stdout.contains(needle),
            "expected {needle:?} in the output:\nstdout: {}\nstderr: {}",
            self.stdout,
            self.stderr
        );
        self
    }

    pub fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }
}

/// One isolated skiff: its own state dir, socket, agent and docker config.
pub struct Skiff {
    pub dir: tempfile::TempDir,
}

impl Default for Skiff {
    fn default() -> Self {
        Self::new()
    }
}

/// Whether this run drives the engine in skiff's VM (`SKIFF_TEST_BACKEND=vm`): every
/// `Skiff` is then a separate engine of one shared machine, named by `SKIFF_MACHINE`.
pub fn on_vm() -> bool {
    std::env::var("SKIFF_TEST_BACKEND").is_ok_and(|b| b == "vm")
}

/// For a test that checks the host side of the native backend (the agent's process, host
/// mounts, bridges on the host): true, with a note, when the suite runs on the vm backend.
pub fn native_only(why: &str) -> bool {
    if on_vm() {
        eprintln!("not on the vm backend: {why}");
    }
    on_vm()
}

/// For a test of what only the vm backend does: true, with a note, when the suite runs
/// natively.
pub fn vm_only(why: &str) -> bool {
    if !on_vm() {
        eprintln!("vm only: {why}");
    }
    !on_vm()
}

impl Skiff {
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("skiff-e2e-")
            .tempdir_in(test_tmp())
            .expect("tempdir");
        std::fs::create_dir_all(dir.path().join("docker-config")).expect("docker config dir");
        let s = Skiff { dir };
        if on_vm() {
            // Tests talk to the socket directly too (docker CLI, raw API): start the engine
            // and its socket now.
            s.run(&["version"]).ok();
        }
        s
    }

    /// This skiff's engine in the shared machine (vm backend).
    pub fn engine_name(&self) -> String {
        self.dir
            .path()
            .file_name()
            .expect("dir name")
            .to_string_lossy()
            .into_owned()
    }

    /// A skiff whose state lives in `root` (e.g. a small loop-mounted filesystem).
    pub fn with_root(root: &Path) -> Self {
        let s = Self::new();
        std::fs::write(
            s.dir.path().join("root-override"),
            root.as_os_str().as_encoded_bytes(),
        )
        .expect("write");
        s
    }

    pub fn root(&self) -> PathBuf {
        match std::fs::read(self.dir.path().join("root-override")) {
            Ok(b) => PathBuf::from(String::from_utf8_lossy(&b).into_owned()),
            Err(_) => self.dir.path().join("root"),
        }
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("skiff.sock")
    }

    pub fn docker_config(&self) -> PathBuf {
        self.dir.path().join("docker-config")
    }

    /// The environment that points `skiff` at this skiff's engine.
    pub fn env(&self) -> Vec<(&'static str, std::ffi::OsString)> {
        let mut v = vec![
            ("SKIFF_ROOT", self.root().into_os_string()),
            ("SKIFF_SOCKET", self.socket().into_os_string()),
            ("DOCKER_CONFIG", self.docker_config().into_os_string()),
            (
                "SKIFF_AGENT_BIN",
                bin_dir().join("skiff-agent").into_os_string(),
            ),
        ];
        if on_vm() {
            v.push(("SKIFF_BACKEND", "vm".into()));
            v.push(("SKIFF_ENGINE", self.engine_name().into()));
        }
        v
    }

    /// The same as `NAME=value ...` words for a shell command line.
    pub fn env_words(&self) -> String {
        self.env()
            .iter()
            .map(|(k, v)| format!("{k}={} ", v.to_string_lossy()))
            .collect()
    }

    pub fn command(&self) -> Command {
        let mut c = Command::new(bin_dir().join("skiff"));
        c.envs(self.env()).stdin(Stdio::null());
        c
    }

    pub fn run(&self, args: &[&str]) -> Run {
        Run::from(self.command().args(args).output().expect("run skiff"))
    }

    pub fn run_stdin(&self, args: &[&str], input: &str) -> Run {
        use std::io::Write;
        let mut child = self
            .command()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn skiff");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
        Run::from(child.wait_with_output().expect("wait skiff"))
    }

    /// The real docker CLI (client 28) pointed at this skiff's socket.
    pub fn docker(&self, args: &[&str]) -> Run {
        let out = Command::new("docker")
            .arg("-H")
            .arg(format!("unix://{}", self.socket().display()))
            .args(args)
            .env("DOCKER_CONFIG", self.docker_config())
            .stdin(Stdio::null())
            .output()
            .expect("run docker");
        Run::from(out)
    }

    /// The docker CLI with `input` on its stdin.
    pub fn docker_stdin(&self, args: &[&str], input: &[u8]) -> Run {
        use std::io::Write;
        let mut child = Command::new("docker")
            .arg("-H")
            .arg(format!("unix://{}", self.socket().display()))
            .args(args)
            .env("DOCKER_CONFIG", self.docker_config())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn docker");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input)
            .expect("write stdin");
        Run::from(child.wait_with_output().expect("wait docker"))
    }

    /// One HTTP request to the agent's API, without any client library: (status, body).
    pub fn api(&self, method: &str, path: &str) -> (u16, String) {
        self.api_body(method, path, b"")
    }

    /// The same with a JSON body.
    pub fn api_body(&self, method: &str, path: &str, body: &[u8]) -> (u16, String) {
        let mut req = format!(
            "{method} {path} HTTP/1.0\r\nHost: skiff\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(body);
        self.api_raw(&req)
    }

    /// Bytes written to the API socket as they are (a hostile client): (status, body), status
    /// 0 when the connection closed without an answer.
    pub fn api_raw(&self, request: &[u8]) -> (u16, String) {
        use std::io::{Read, Write};
        let Ok(mut s) = std::os::unix::net::UnixStream::connect(self.socket()) else {
            return (0, String::new());
        };
        // The server may answer and close before the whole request is written.
        let _ = s.write_all(request);
        let mut raw = Vec::new();
        let _ = s.read_to_end(&mut raw);
        let text = String::from_utf8_lossy(&raw).into_owned();
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (status, body)
    }

    /// Remove every container of this skiff (containers outlive the agent by design, so a
    /// test's leftovers would otherwise keep running).
    pub fn remove_all_containers(&self) {
        let (code, body) = self.api("GET", "/containers/json?all=1");
        if code != 200 {
            return;
        }
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        for c in v.as_array().into_iter().flatten() {
            if let Some(id) = c["Id"].as_str() {
                self.api("DELETE", &format!("/containers/{id}?force=1"));
            }
        }
    }

    /// The image IDs `skiff images -q --no-trunc` lists, sorted.
    pub fn image_ids(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .run(&["images", "-q", "--no-trunc"])
            .ok()
            .lines()
            .iter()
            .map(|s| s.to_string())
            .collect();
        v.sort();
        v
    }

    pub fn inspect(&self, name: &str) -> serde_json::Value {
        let out = self.run(&["image", "inspect", name]).ok();
        let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("inspect JSON");
        v[0].clone()
    }

    pub fn agent_pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.root().join("agent.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// SIGKILL the agent, as a crash would (in the VM: this skiff's engine there).
    pub fn kill_agent(&self) {
        if on_vm() {
            vm_engine_request(&serde_json::json!({"op": "kill", "name": self.engine_name()}));
            return;
        }
        if let Some(pid) = self.agent_pid() {
            // SAFETY: plain signal delivery to a pid we started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            for _ in 0..200 {
                if !alive(pid) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    pub fn stop_agent(&self) {
        if let Some(pid) = self.agent_pid() {
            // SAFETY: plain signal delivery to a pid we started.
            unsafe { libc::kill(pid, libc::SIGTERM) };
            for _ in 0..200 {
                if !alive(pid) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = std::fs::remove_file(self.root().join("agent.pid"));
        }
    }
}

impl Drop for Skiff {
    fn drop(&mut self) {
        self.remove_all_containers();
        if on_vm() {
            let name = self.engine_name();
            let _ = self.run(&["machine", "engine", "rm", &name]);
        } else {
            self.stop_agent();
        }
    }
}

/// One request to the shared machine's daemon about engines (see host/src/machine/vm/engines.rs).
pub fn vm_engine_request(req: &serde_json::Value) -> serde_json::Value {
    use std::io::{BufRead, Write};
    let dir = PathBuf::from(std::env::var_os("SKIFF_MACHINES").expect("SKIFF_MACHINES"))
        .join(std::env::var("SKIFF_MACHINE").expect("SKIFF_MACHINE"));
    let mut s =
        std::os::unix::net::UnixStream::connect(dir.join("engines.sock")).expect("engines.sock");
    writeln!(s, "{req}").expect("request");
    let mut line = String::new();
    std::io::BufReader::new(s)
        .read_line(&mut line)
        .expect("answer");
    let v: serde_json::Value = serde_json::from_str(&line).expect("JSON answer");
    assert!(v.get("error").is_none(), "{req}: {v}");
    v
}

/// Where test state goes: under the target dir, on the same disk as the build.
pub fn test_tmp() -> PathBuf {
    let d = std::env::var_os("SKIFF_TEST_TMP")
        .map(PathBuf::from)
        .unwrap_or_else(|| bin_dir().join("e2e-tmp"));
    std::fs::create_dir_all(&d).expect("test tmp dir");
    d
}

/// SIGKILL a machine's QEMU, as a crash of the VMM would, and wait until `status` (which
/// runs `skiff machine status` for that machine) reports it stopped.
/// Whether a process is running: it exists and has not exited. An exited process stays a
/// zombie until its parent reaps it, and a detached agent's parent is whatever adopted it:
/// the init of these machines reaps about once every two seconds, which made every wait for
/// a killed agent take that long.
pub fn alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name, which is in parentheses and may hold any byte.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// A memory line of `/proc/PID/status` (`VmRSS`, `VmHWM`), in KiB.
pub fn proc_status_kib(pid: i32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

pub fn kill_vmm(qemu_pid: i32, status: impl Fn() -> String) {
    // SAFETY: plain signal delivery to the QEMU a test's machine started.
    unsafe { libc::kill(qemu_pid, libc::SIGKILL) };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while status().trim() != "stopped" {
        assert!(
            std::time::Instant::now() < deadline,
            "the killed VM is not reported stopped"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A small ext4 filesystem loop-mounted under `dir` (for full-disk tests on the native
/// backend); unmounted when dropped.
pub struct SmallFs {
    pub mnt: PathBuf,
}

impl SmallFs {
    pub fn mount(dir: &Path, size: &str) -> SmallFs {
        let img = dir.join("small.img");
        let mnt = dir.join("small");
        std::fs::create_dir_all(&mnt).expect("mount point");
        sh(&format!(
            "truncate -s {size} {0} && mkfs.ext4 -q -F {0} && mount -o loop {0} {1}",
            img.display(),
            mnt.display()
        ));
        SmallFs { mnt }
    }

    /// Free kilobytes, as root sees them (ext4's reserved blocks included).
    pub fn free_kib(&self) -> u64 {
        let mnt = std::ffi::CString::new(self.mnt.as_os_str().as_encoded_bytes()).expect("path");
        // SAFETY: statvfs fills the struct we own from a NUL-terminated path.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        assert_eq!(
            unsafe { libc::statvfs(mnt.as_ptr(), &mut st) },
            0,
            "statvfs"
        );
        st.f_bfree * st.f_frsize / 1024
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mnt).status();
    }
}

/// Number of lines in a registry's request log (to count requests made after a point).
pub fn registry_log_len(port_registry: &str) -> usize {
    registry_log(port_registry).lines().count()
}

pub fn registry_log(port_registry: &str) -> String {
    let port = port_registry.rsplit(':').next().unwrap_or("5000");
    std::fs::read_to_string(registry_dir().join(format!("registry-{port}.log"))).unwrap_or_default()
}

/// Blob GET requests in the registry's log after line `from`.
pub fn blob_gets_since(port_registry: &str, from: usize) -> Vec<String> {
    registry_log(port_registry)
        .lines()
        .skip(from)
        // The access-log line of each request (the registry also logs a structured line).
        .filter(|l| l.contains("\"GET /v2/") && l.contains("/blobs/sha256:"))
        .map(String::from)
        .collect()
}

/// Run a command and return its stdout, panicking with its stderr on failure.
#[track_caller]
pub fn sh(cmd: &str) -> String {
    let out = Command::new("sh").arg("-c").arg(cmd).output().expect("sh");
    assert!(
        out.status.success(),
        "{cmd} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The manifest digest and layer digests of an image in the test registry.
pub fn registry_layers(reference: &str) -> Vec<String> {
    let out = sh(&format!(
        "skopeo inspect --tls-verify=false --raw docker://{reference}"
    ));
    let v: serde_json::Value = serde_json::from_str(&out).expect("manifest JSON");
    v["layers"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|l| l["digest"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// The file holding a blob in the registry's storage.
pub fn registry_blob_path(port_registry: &str, digest: &str) -> PathBuf {
    let port = port_registry.rsplit(':').next().unwrap_or("5000");
    let hex = digest.trim_start_matches("sha256:");
    registry_dir()
        .join(format!("registry-{port}/storage"))
        .join("docker/registry/v2/blobs/sha256")
        .join(&hex[..2])
        .join(hex)
        .join("data")
}

/// sha256 of web's /www/big.bin, as the image builder recorded it.
pub fn web_big_sha() -> String {
    let v: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(registry_dir().join("images.json")).expect("images.json"),
    )
    .expect("json");
    v["web_big_bin_sha256"]
        .as_str()
        .expect("web_big_bin_sha256")
        .to_string()
}

pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex_lower(&sha2::Sha256::digest(data))
}

fn hex_lower(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// An HTTP/1.0 GET over a plain socket: (status line, body). With `half_close` the client
/// shuts its write side right after the request, as `curl`-less scripts and some proxies do.
pub fn http_get(addr: &str, path: &str, half_close: bool) -> std::io::Result<(String, Vec<u8>)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: test\r\n\r\n")?;
    if half_close {
        s.shutdown(std::net::Shutdown::Write)?;
    }
    let mut all = Vec::new();
    s.read_to_end(&mut all)?;
    let split = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("no HTTP header in {} bytes", all.len())))?;
    let head = String::from_utf8_lossy(&all[..split]).into_owned();
    let status = head.lines().next().unwrap_or("").to_string();
    Ok((status, all[split + 4..].to_vec()))
}

/// GET through `addr` until it answers 200 (a server in a container coming up), for at most
/// `within`: the body.
#[track_caller]
pub fn http_get_ok(addr: &str, path: &str, half_close: bool, within: Duration) -> Vec<u8> {
    let deadline = std::time::Instant::now() + within;
    loop {
        match http_get(addr, path, half_close) {
            Ok((status, body)) if status.starts_with("HTTP/1.") && status.contains(" 200 ") => {
                return body
            }
            other => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "GET {path} via {addr} never worked: {other:?}"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// A TCP port nobody listens on right now (on every address).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("0.0.0.0:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// A static UDP echo server (busybox has none), built for this run into `dir`; the container
/// runs it as `/udp-echo PORT`.
pub fn udp_echo_binary(dir: &Path) -> PathBuf {
    support_binary(dir, "udp_echo")
}

/// One of the std-only programs in `tests/support/`, built statically into `dir` with plain
/// rustc (no cargo project needed) so that it runs in any image.
pub fn support_binary(dir: &Path, name: &str) -> PathBuf {
    let out = dir.join(name.replace('_', "-"));
    let src = repo_root().join(format!("tests/support/{name}.rs"));
    let status = Command::new("rustc")
        .args([
            "--edition",
            "2021",
            "-O",
            "-C",
            "target-feature=+crt-static",
            "-o",
        ])
        .arg(&out)
        .arg(&src)
        .status()
        .expect("rustc");
    assert!(status.success(), "building tests/support/{name}.rs");
    out
}

/// An HTTP server on the host, on every address, answering `reply` to the first 32
/// connections; returns its port.
pub fn host_server(reply: &'static str) -> u16 {
    http_server_on("0.0.0.0:0", reply)
}

/// The same on the address `bind` names (a loopback-only server, say).
pub fn http_server_on(bind: &str, reply: &'static str) -> u16 {
    let l = std::net::TcpListener::bind(bind).expect("bind");
    let port = l.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for conn in l.incoming().flatten().take(32) {
            use std::io::{Read, Write};
            let mut conn = conn;
            let mut buf = [0u8; 1024];
            let _ = conn.read(&mut buf);
            let _ = write!(
                conn,
                "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{reply}",
                reply.len()
            );
        }
    });
    port
}

/// Nothing of an interrupted or refused unpack is left in the store's temporary area (native
/// only: in the VM the store is out of the test's reach, and `system check` covers it).
pub fn assert_no_unpack_leftovers(s: &Skiff, what: &str) {
    if on_vm() {
        return;
    }
    let left = std::fs::read_dir(s.root().join("images/tmp"))
        .expect("images/tmp")
        .count();
    assert_eq!(left, 0, "{what}");
}

/// The shared machine's directory (vm backend).
pub fn vm_machine_dir() -> PathBuf {
    PathBuf::from(std::env::var_os("SKIFF_MACHINES").expect("SKIFF_MACHINES"))
        .join(std::env::var("SKIFF_MACHINE").expect("SKIFF_MACHINE"))
}

/// The pid the shared machine's `file` (`daemon.pid`, `qemu.pid`, `passt.pid`) names.
pub fn vm_machine_pid(file: &str) -> Option<i32> {
    std::fs::read_to_string(vm_machine_dir().join(file))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The local address of every listening TCP socket on the host, and of every bound UDP one,
/// by socket inode (`tcp 127.0.0.1:8080`).
pub fn listening_sockets() -> std::collections::HashMap<String, String> {
    let mut by_inode = std::collections::HashMap::new();
    for (table, proto, state) in [
        ("/proc/net/tcp", "tcp", "0A"),
        ("/proc/net/tcp6", "tcp6", "0A"),
        ("/proc/net/udp", "udp", "07"),
        ("/proc/net/udp6", "udp6", "07"),
    ] {
        for line in std::fs::read_to_string(table)
            .unwrap_or_default()
            .lines()
            .skip(1)
        {
            let f: Vec<&str> = line.split_whitespace().collect();
            // Field 1 is the local address (hex), 3 the state (0A listen, 07 unconnected), 9
            // the inode.
            if f.get(3) == Some(&state) {
                if let (Some(local), Some(inode)) = (f.get(1), f.get(9)) {
                    by_inode.insert(inode.to_string(), format!("{proto} {local}"));
                }
            }
        }
    }
    by_inode
}

/// What `pid` listens on (from `listening_sockets`), sorted.
pub fn listening_sockets_of(pid: i32) -> Vec<String> {
    let all = listening_sockets();
    let mut mine: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fds")
        .flatten()
        .filter_map(|fd| {
            let target = std::fs::read_link(fd.path()).ok()?;
            let t = target.to_string_lossy();
            let inode = t.strip_prefix("socket:[")?.strip_suffix(']')?;
            all.get(inode).cloned()
        })
        .collect();
    mine.sort();
    mine
}

/// A fresh host directory a container can bind: in the VM it must be inside the machine's
/// share (`SKIFF_TEST_SHARE`, which scripts/test.sh makes).
pub fn host_dir(name: &str) -> tempfile::TempDir {
    use std::os::unix::fs::MetadataExt;
    let parent = if on_vm() {
        PathBuf::from(std::env::var("SKIFF_TEST_SHARE").expect("SKIFF_TEST_SHARE for the vm pass"))
    } else {
        test_tmp()
    };
    let dir = tempfile::Builder::new()
        .prefix(name)
        .tempdir_in(&parent)
        .expect("host dir");
    if on_vm() {
        // As a user's own directory in their share: the VM reaches the share as its owner.
        let owner = std::fs::metadata(&parent).expect("share");
        std::os::unix::fs::chown(dir.path(), Some(owner.uid()), Some(owner.gid())).expect("chown");
    }
    dir
}
