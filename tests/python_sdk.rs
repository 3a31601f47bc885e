//! The Python Docker SDK (docker==7.1.0, in the venv scripts/setup.sh makes) against skiff's
//! socket: each test runs a short script and checks what it prints, one per group of the
//! SDK's defects dockerd does not have (issue 21).

use std::process::{Command, Stdio};

use skiff_e2e::*;

/// The venv's python: `SKIFF_PYENV` (scripts/test.sh exports it) or setup.sh's fixed path.
fn python() -> std::path::PathBuf {
    let venv = std::env::var_os("SKIFF_PYENV")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| "/var/cache/skiff/pyenv".into());
    let py = venv.join("bin/python");
    assert!(
        py.exists(),
        "{} is missing: run scripts/setup.sh (as root) to install the Python SDK",
        py.display()
    );
    py
}

/// A skiff with busybox pulled, ready for scripts.
fn skiff() -> Skiff {
    let s = Skiff::new();
    s.run(&["pull", &image("busybox")]).ok();
    s
}

/// Runs `script` with the SDK pointed at `s` (`c` is the client, `img` busybox, `docker`
/// imported); its output, which must end with "done".
fn sdk(s: &Skiff, script: &str) -> String {
    let prelude = "import docker, sys, time\n\
                   c = docker.from_env(timeout=60)\n\
                   img = sys.argv[1]\n";
    let out = Command::new(python())
        .arg("-c")
        .arg(format!("{prelude}{script}\nprint('done')\n"))
        .arg(image("busybox"))
        .env("DOCKER_HOST", format!("unix://{}", s.socket().display()))
        .stdin(Stdio::null())
        .output()
        .expect("run python");
    let run = Run::from(out);
    assert!(
        run.code == 0 && run.stdout.ends_with("done\n"),
        "script failed ({}):\nstdout: {}\nstderr: {}",
        run.code,
        run.stdout,
        run.stderr
    );
    run.stdout
}

#[track_caller]
fn has(out: &str, line: &str) {
    assert!(
        out.lines().any(|l| l == line),
        "no line {line:?} in:\n{out}"
    );
}

#[test]
fn run_without_detach_returns_the_output_and_inspect_names_log_driver_and_runtime() {
    let s = skiff();
    let out = sdk(
        &s,
        r#"
print("run", c.containers.run(img, "echo hi", remove=True))
ct = c.containers.create(img, "true")
hc = ct.attrs["HostConfig"]
print("log", hc["LogConfig"]["Type"], hc["LogConfig"]["Config"])
print("runtime", hc["Runtime"])
ct.remove()
for lc in [{"Type": "syslog"}, {"Type": "json-file", "Config": {"colour": "red"}}, {"Type": "json-file", "Config": {"max-size": "1m"}}]:
    try:
        c.containers.create(img, "true", log_config=docker.types.LogConfig(**{k.lower(): v for k, v in lc.items()}))
        print("accepted", lc)
    except docker.errors.APIError as e:
        print("refused", e.status_code, e.explanation)
print("local", c.containers.create(img, "true", log_config={"Type": "local"}).attrs["HostConfig"]["LogConfig"]["Type"])
"#,
    );
    has(&out, "run b'hi\\n'");
    has(&out, "log json-file {}");
    has(&out, "runtime skiff");
    has(
        &out,
        "refused 400 logger: no log driver named 'syslog' is registered",
    );
    has(
        &out,
        "refused 400 unknown log opt 'colour' for json-file log driver",
    );
    assert!(
        out.contains("refused 400 log opt 'max-size' is not supported by skiff"),
        "{out}"
    );
    has(&out, "local local");
}

#[test]
fn kill_answers_once_the_container_is_dead() {
    let s = skiff();
    let out = sdk(
        &s,
        r#"
for _ in range(3):
    ct = c.containers.run(img, "sleep 100", detach=True)
    ct.kill()
    ct.reload()
    print("killed", ct.status, ct.attrs["State"]["ExitCode"])
    ct.remove()
ct = c.containers.run(img, "sleep 100", detach=True)
ct.kill(signal="SIGUSR1")
ct.remove(force=True)
"#,
    );
    assert_eq!(
        out.lines().filter(|l| *l == "killed exited 137").count(),
        3,
        "{out}"
    );
}

#[test]
fn exec_output_is_framed_by_the_starts_tty() {
    let s = skiff();
    let out = sdk(
        &s,
        r#"
ct = c.containers.run(img, "sleep 100", detach=True)
# A terminal for the process, frames on the wire (dockerd frames by the start's Tty).
e = c.api.exec_create(ct.id, ["echo", "x"], tty=True)
print("tty-exec framed", repr(c.api.exec_start(e["Id"], tty=False)))
# No terminal, raw on the wire: stdout and stderr as they come.
e = c.api.exec_create(ct.id, ["sh", "-c", "echo out; echo err >&2"], tty=False)
raw = c.api.exec_start(e["Id"], tty=True)
print("plain-exec raw", sorted(raw.split()))
print("exec_run", c.containers.get(ct.id).exec_run(["echo", "y"]).output)
ct.remove(force=True)
"#,
    );
    has(&out, r"tty-exec framed b'x\r\n'");
    has(&out, "plain-exec raw [b'err', b'out']");
    has(&out, "exec_run b'y\\n'");
}

#[test]
fn logs_tail_counts_lines_and_attach_replays_a_stopped_containers_logs() {
    let s = skiff();
    let out = sdk(
        &s,
        r#"
ct = c.containers.run(img, ["sh", "-c", "printf 'a\nb\nc\n'; printf 'd\ne'"], detach=True)
ct.wait()
print("tail1", ct.logs(tail=1))
print("tail2", ct.logs(tail=2))
print("tail4", ct.logs(tail=4))
print("all", ct.logs())
print("attach", ct.attach(stdout=True, stderr=True, stream=False, logs=True))
ct.remove()
"#,
    );
    has(&out, "tail1 b'e'");
    has(&out, "tail2 b'd\\ne'");
    has(&out, "tail4 b'b\\nc\\nd\\ne'");
    has(&out, "all b'a\\nb\\nc\\nd\\ne'");
    has(&out, "attach b'a\\nb\\nc\\nd\\ne'");
}

#[test]
fn wait_returns_on_the_next_exit_of_a_container_that_restarts() {
    let s = skiff();
    let out = sdk(
        &s,
        r#"
ct = c.containers.run(img, ["sh", "-c", "sleep 1; exit 3"], detach=True, restart_policy={"Name": "always"})
print("wait", ct.wait(timeout=30))
ct.remove(force=True)
"#,
    );
    has(&out, "wait {'Error': None, 'StatusCode': 3}");
}

#[test]
fn endpoint_and_ipam_settings_are_kept_or_refused_by_name() {
    let s = skiff();
    let out = sdk(
        &s,
        r#"
def attempt(what, f):
    try:
        f()
        print(what, "accepted")
    except docker.errors.APIError as e:
        print(what, "refused", e.status_code, e.explanation)
pool = docker.types.IPAMPool(subnet="10.213.77.0/24", aux_addresses={"router": "10.213.77.5"})
attempt("aux", lambda: c.networks.create("sdkaux", ipam=docker.types.IPAMConfig(pool_configs=[pool])))
attempt("ipamopt", lambda: c.networks.create("sdkopt", ipam=docker.types.IPAMConfig(options={"x": "y"})))
net = c.networks.create("sdknet")
def create(**ep):
    nc = c.api.create_networking_config({"sdknet": c.api.create_endpoint_config(**ep)})
    return c.api.create_container(img, "true", networking_config=nc, host_config=c.api.create_host_config(network_mode="sdknet"))
attempt("mac", lambda: create(mac_address="02:42:ac:11:00:99"))
attempt("links", lambda: create(links={"other": "db"}))
attempt("linklocal", lambda: create(link_local_ips=["169.254.1.1"]))
attempt("driveropts", lambda: create(driver_opt={"com.example.k": "v"}))
ct = c.containers.get(create(aliases=["web"])["Id"])
print("kept", ct.attrs["NetworkSettings"]["Networks"]["sdknet"]["Aliases"], len(c.containers.list(all=True, filters={"network": "sdknet"})))
ct.remove()
net.remove()
"#,
    );
    has(
        &out,
        "aux refused 400 skiff cannot reserve auxiliary addresses in a network: drop --aux-address",
    );
    has(
        &out,
        "ipamopt refused 400 skiff's IPAM takes no options: drop --ipam-opt",
    );
    has(&out, "mac refused 400 skiff cannot set a container's MAC address: drop --mac-address (each endpoint gets a generated one)");
    assert!(
        out.contains("links refused 400 skiff does not support links on a user-defined network"),
        "{out}"
    );
    has(
        &out,
        "linklocal refused 400 skiff cannot give a container link-local addresses: drop --link-local-ip",
    );
    has(&out, "driveropts refused 400 skiff does not apply endpoint driver options (com.example.k): drop --network ...,driver-opt= (EndpointsConfig DriverOpts)");
    // The refused creates left nothing behind; an accepted one keeps what it asked for.
    has(&out, "kept ['web'] 1");
}

#[test]
fn stats_show_the_containers_interfaces() {
    let s = skiff();
    let out = sdk(
        &s,
        r#"
ct = c.containers.run(img, "sleep 100", detach=True)
st = ct.stats(stream=False)
nets = st.get("networks", {})
print("ifaces", sorted(nets))
print("keys", sorted(nets.get("eth0", {})))
print("received", nets.get("eth0", {}).get("rx_packets", -1) >= 0)
ct.remove(force=True)
ct = c.containers.run(img, "sleep 100", detach=True, network_mode="none")
print("none", "networks" in ct.stats(stream=False))
ct.remove(force=True)
"#,
    );
    has(&out, "ifaces ['eth0']");
    has(&out, "keys ['rx_bytes', 'rx_dropped', 'rx_errors', 'rx_packets', 'tx_bytes', 'tx_dropped', 'tx_errors', 'tx_packets']");
    has(&out, "received True");
    has(&out, "none False");
}

#[test]
fn swarm_endpoints_answer_as_a_node_outside_a_swarm() {
    let s = skiff();
    let out = sdk(
        &s,
        r#"
for name, f in [("leave", lambda: c.swarm.leave()), ("inspect", lambda: c.api.inspect_swarm())]:
    try:
        f()
        print(name, "ok")
    except docker.errors.APIError as e:
        print(name, e.status_code, e.explanation)
"#,
    );
    has(&out, "leave 503 This node is not part of a swarm");
    has(&out, "inspect 503 This node is not part of a swarm");
}

#[test]
fn update_applies_limits_and_the_restart_policy_and_refuses_the_rest() {
    let s = skiff();
    let out = sdk(
        &s,
        r#"
ct = c.containers.run(img, "sleep 100", detach=True)
ct.update(mem_limit="64m", memswap_limit="128m", cpu_quota=50000, cpu_period=100000, cpu_shares=512,
          restart_policy={"Name": "on-failure", "MaximumRetryCount": 2})
ct.reload()
hc = ct.attrs["HostConfig"]
print("updated", hc["Memory"], hc["MemorySwap"], hc["CpuQuota"], hc["CpuPeriod"], hc["CpuShares"], hc["RestartPolicy"]["Name"], hc["RestartPolicy"]["MaximumRetryCount"])
print("id", ct.id)
try:
    ct.update(cpuset_cpus="0")
    print("cpuset accepted")
except docker.errors.APIError as e:
    print("cpuset", e.status_code, e.explanation)
"#,
    );
    has(
        &out,
        "updated 67108864 134217728 50000 100000 512 on-failure 2",
    );
    has(&out, "cpuset 400 skiff cannot update the cpuset of a container: only memory, memory-swap, cpu-shares, cpu-period, cpu-quota, cpus, pids-limit and the restart policy");
    let id = out
        .lines()
        .find_map(|l| l.strip_prefix("id "))
        .expect("the container's id")
        .to_string();
    // The docker CLI's update on the same socket.
    s.docker(&["update", "--pids-limit", "30", "--memory", "32m", &id])
        .ok();
    let pids = s
        .docker(&[
            "inspect",
            "-f",
            "{{.HostConfig.PidsLimit}} {{.HostConfig.Memory}}",
            &id,
        ])
        .ok();
    assert_eq!(pids.stdout.trim(), "30 33554432");
    if !on_vm() {
        // The running container's cgroup has them (v2, or v1's controllers).
        let read = |v2: &str, v1: &str| {
            std::fs::read_to_string(format!("/sys/fs/cgroup/skiff/{id}/{v2}"))
                .or_else(|_| {
                    std::fs::read_to_string(format!("/sys/fs/cgroup/{v1}").replace("ID", &id))
                })
                .expect("the container's cgroup")
                .trim()
                .to_string()
        };
        assert_eq!(read("pids.max", "pids/skiff/ID/pids.max"), "30");
        assert_eq!(
            read("memory.max", "memory/skiff/ID/memory.limit_in_bytes"),
            "33554432"
        );
    }
    s.docker(&["rm", "-f", &id]).ok();
}

/// `images.get_registry_data` (`GET /distribution/{name}/json`): the manifest's descriptor and
/// the platforms the registry offers under a name, without pulling it, as dockerd answers.
#[test]
fn registry_data_names_the_manifest_and_its_platforms_without_pulling() {
    let s = skiff();
    let multi = image("multiarch");
    let want = images_json_digest(&format!("{multi}:latest"));
    let out = sdk(
        &s,
        &format!(
            r#"
d = c.images.get_registry_data("{multi}")
print("id", d.id)
print("arm64", d.has_platform("linux/arm64/v8"), "s390x", d.has_platform("linux/s390x"))
one = c.images.get_registry_data(img)
print("one", one.attrs["Descriptor"]["mediaType"], one.attrs["Platforms"])
try:
    c.images.get_registry_data(img + "-nothere")
except docker.errors.NotFound as e:
    print("missing", e.status_code)
print("images", sorted(t for i in c.images.list() for t in i.tags))
"#
        ),
    );
    has(&out, &format!("id {want}"));
    has(&out, "arm64 True s390x False");
    has(
        &out,
        "one application/vnd.oci.image.manifest.v1+json [{'architecture': 'amd64', 'os': 'linux'}]",
    );
    has(&out, "missing 404");
    // Only the busybox the test started with: nothing was pulled.
    has(&out, &format!("images ['{}:latest']", image("busybox")));
}

/// The manifest digest the test registry serves for `reference` (`host:port/repo:tag`, as
/// scripts/test-images.sh lists it in images.json).
fn images_json_digest(reference: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(registry_dir().join("images.json")).expect("images.json"),
    )
    .expect("images.json is JSON");
    v["images"][reference]["digest"]
        .as_str()
        .unwrap_or_else(|| panic!("{reference} not in images.json"))
        .to_string()
}

/// testcontainers-python (pinned by setup.sh) as a test suite uses it: a service on a user
/// network under an alias, waited for by its log, reached on its mapped port, exec'd into,
/// a file copied in and out, and a client on the same network reaching it by the alias; all
/// of it gone after the `with` blocks. Its reaper (Ryuk) is off: its image is on Docker Hub.
#[test]
fn testcontainers_runs_a_service_on_a_network_and_cleans_up() {
    let s = skiff();
    let out = sdk(
        &s,
        r#"
import os, pathlib, tempfile, urllib.request
os.environ["TESTCONTAINERS_RYUK_DISABLED"] = "true"
# These test machines are containers themselves (/.dockerenv), which makes testcontainers
# assume Docker-in-Docker and dial the bridge's gateway; a laptop's way is the docker host.
os.environ["TESTCONTAINERS_CONNECTION_MODE"] = "docker_host"
from testcontainers.core.container import DockerContainer
from testcontainers.core.network import Network
from testcontainers.core.wait_strategies import LogMessageWaitStrategy
serve = "mkdir -p /w && echo tc-ok > /w/index.html && echo serving && exec httpd -f -p 80 -h /w"
with Network() as net:
    srv = (DockerContainer(img).with_command(["sh", "-c", serve]).with_exposed_ports(80)
           .with_env("MODE", "test").with_network(net).with_network_aliases("svc")
           .waiting_for(LogMessageWaitStrategy("serving")))
    with srv:
        url = f"http://{srv.get_container_host_ip()}:{srv.get_exposed_port(80)}/index.html"
        print("http", urllib.request.urlopen(url, timeout=10).read().decode().strip())
        r = srv.exec(["sh", "-c", "echo $MODE"])
        print("exec", r.exit_code, r.output.decode().strip())
        srv.copy_into_container(b"copied-in\n", "/w/in.txt")
        d = pathlib.Path(tempfile.mkdtemp())
        srv.copy_from_container("/w/in.txt", d / "back.txt")
        print("copy", (d / "back.txt").read_text().strip())
        cli = (DockerContainer(img).with_network(net)
               .with_command(["wget", "-qO-", "http://svc/in.txt"]))
        with cli:
            print("alias", cli.wait(), cli.get_logs()[0].decode().strip())
        ids = [srv.get_container_id(), cli.get_container_id()]
    net_id = net.id
print("left", len(c.containers.list(all=True, filters={"id": ids[0]})),
      len(c.containers.list(all=True, filters={"id": ids[1]})),
      len(c.networks.list(ids=[net_id])))
"#,
    );
    has(&out, "http tc-ok");
    has(&out, "exec 0 test");
    has(&out, "copy copied-in");
    has(&out, "alias 0 copied-in");
    has(&out, "left 0 0 0");
}
