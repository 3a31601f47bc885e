//! docker-compose (Debian's 1.29, a real client of the Engine API) runs a dev stack against
//! skiff unchanged, on both backends (issue 21): a built service, a named volume, a bind
//! mount, two networks with an alias, a healthcheck-gated dependency, env and env_file,
//! restart and labels; `up -d`, `ps`, `logs`, `exec`, `run --rm`, `restart`, `--scale` and
//! `down -v`, which leaves nothing of the project behind.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use skiff_e2e::*;

const COMPOSE_FILE: &str = r#"version: "3.8"
services:
  db:
    image: ${BB}
    init: true
    command: ["sh", "-c", "echo db-booting; sleep 1; touch /data/up; echo db-ready; exec sleep 3600"]
    volumes:
      - dbdata:/data
    networks: [back]
    healthcheck:
      test: ["CMD", "test", "-f", "/data/up"]
      interval: 1s
      timeout: 3s
      retries: 30
  web:
    build:
      context: ./app
      args:
        BB: ${BB}
    ports:
      - "127.0.0.1:${PORT}:8080"
    volumes:
      - webdata:/var/web
      - ./src:/www/src:ro
    networks:
      front:
      back:
        aliases: [webalias]
    environment:
      GREETING: hello-from-compose
    env_file: web.env
    depends_on:
      db:
        condition: service_healthy
    restart: unless-stopped
    init: true
    labels:
      team: skiff
volumes:
  dbdata:
  webdata:
networks:
  front:
  back:
"#;

const DOCKERFILE: &str = "ARG BB\nFROM ${BB}\nCOPY index.html /www/index.html\n\
                          CMD [\"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n";

/// A compose project directory (in the VM's share on the vm backend, for the bind mount).
fn project() -> tempfile::TempDir {
    let dir = host_dir("compose-");
    let p = dir.path();
    std::fs::create_dir_all(p.join("app")).expect("app dir");
    std::fs::create_dir_all(p.join("src")).expect("src dir");
    std::fs::write(p.join("docker-compose.yml"), COMPOSE_FILE).expect("write compose file");
    std::fs::write(p.join("app/Dockerfile"), DOCKERFILE).expect("write Dockerfile");
    std::fs::write(p.join("app/index.html"), "built-by-compose\n").expect("write index");
    std::fs::write(p.join("src/page.txt"), "from-the-host\n").expect("write page");
    std::fs::write(p.join("web.env"), "FROM_ENV_FILE=yes\n").expect("write env file");
    dir
}

/// `docker-compose ARGS` in `dir` against `s`, as project `name`.
fn compose(s: &Skiff, dir: &Path, name: &str, port: u16, args: &[&str]) -> Run {
    let out = Command::new("docker-compose")
        .args(["--no-ansi", "-p", name])
        .args(args)
        .current_dir(dir)
        .env("DOCKER_HOST", format!("unix://{}", s.socket().display()))
        .env("DOCKER_CONFIG", s.docker_config())
        .env("BB", image("busybox"))
        .env("PORT", port.to_string())
        .stdin(Stdio::null())
        .output()
        .expect("run docker-compose (scripts/setup.sh installs it)");
    Run::from(out)
}

/// Names of `kind` (container, network, volume) objects of the project left in `s`.
fn leftovers(s: &Skiff, name: &str) -> Vec<String> {
    let label = format!("label=com.docker.compose.project={name}");
    let mut left = Vec::new();
    for kind in ["container", "network", "volume"] {
        let mut args = vec![kind, "ls", "-q", "--filter", &label];
        if kind == "container" {
            args.insert(2, "-a");
        }
        let out = s.docker(&args).ok();
        left.extend(out.stdout.lines().map(|l| format!("{kind} {l}")));
    }
    left
}

fn get(port: u16, path: &str) -> String {
    let body = http_get_ok(
        &format!("127.0.0.1:{port}"),
        path,
        false,
        Duration::from_secs(30),
    );
    String::from_utf8_lossy(&body).into_owned()
}

#[test]
fn a_dev_stack_comes_up_answers_and_goes_away_with_down_v() {
    let s = Skiff::new();
    s.run(&["pull", &image("busybox")]).ok();
    let dir = project();
    let p = dir.path();
    let name = format!("cmp{}", std::process::id());
    let port = free_port();

    let up = compose(&s, p, &name, port, &["up", "-d"]);
    assert_eq!(up.code, 0, "up -d:\n{}\n{}", up.stdout, up.stderr);

    // depends_on service_healthy: web starts only after db's check passed, so by now db is
    // healthy and says so in `ps`, and web answers with the file its build copied in.
    let ps = compose(&s, p, &name, port, &["ps"]).ok();
    let db_line = ps
        .stdout
        .lines()
        .find(|l| l.starts_with(&format!("{name}_db_1")))
        .unwrap_or_else(|| panic!("no db in ps:\n{}", ps.stdout));
    assert!(db_line.contains("(healthy)"), "db not healthy: {db_line}");
    assert_eq!(get(port, "/index.html"), "built-by-compose\n");

    // The bind mount: the host's file, and the host's edit seen by the running container.
    assert_eq!(get(port, "/src/page.txt"), "from-the-host\n");
    std::fs::write(p.join("src/page.txt"), "edited-on-the-host\n").expect("edit");
    assert_eq!(get(port, "/src/page.txt"), "edited-on-the-host\n");
    let ro = compose(
        &s,
        p,
        &name,
        port,
        &["exec", "-T", "web", "touch", "/www/src/x"],
    );
    assert_ne!(ro.code, 0, "the :ro bind mount was writable");

    // Environment, env_file, labels, the named volume and the alias on the shared network.
    let env = compose(&s, p, &name, port, &["exec", "-T", "web", "env"]).ok();
    assert!(
        env.stdout.contains("GREETING=hello-from-compose\n"),
        "{}",
        env.stdout
    );
    assert!(env.stdout.contains("FROM_ENV_FILE=yes\n"), "{}", env.stdout);
    let web_id = compose(&s, p, &name, port, &["ps", "-q", "web"]).ok();
    let web = s.run(&["container", "inspect", web_id.stdout.trim()]).ok();
    let web: serde_json::Value = serde_json::from_str(&web.stdout).expect("inspect JSON");
    let web = &web[0];
    assert_eq!(web["Config"]["Labels"]["team"], "skiff");
    assert_eq!(web["HostConfig"]["RestartPolicy"]["Name"], "unless-stopped");
    let via_alias = compose(
        &s,
        p,
        &name,
        port,
        &[
            "exec",
            "-T",
            "db",
            "wget",
            "-qO-",
            "http://webalias:8080/index.html",
        ],
    )
    .ok();
    assert_eq!(via_alias.stdout, "built-by-compose\n");
    compose(
        &s,
        p,
        &name,
        port,
        &["exec", "-T", "web", "sh", "-c", "echo kept > /var/web/f"],
    )
    .ok();

    // A one-off container sees the named volume db wrote to, and is gone after it.
    let once = compose(
        &s,
        p,
        &name,
        port,
        &["run", "--rm", "-T", "db", "ls", "/data"],
    )
    .ok();
    assert_eq!(once.stdout.trim(), "up");
    let logs = compose(&s, p, &name, port, &["logs", "--no-color", "db"]).ok();
    assert!(logs.stdout.contains("db-ready"), "{}", logs.stdout);

    // restart keeps the volume's contents; --scale adds a second db next to the first.
    compose(&s, p, &name, port, &["restart", "web"]).ok();
    let kept = compose(
        &s,
        p,
        &name,
        port,
        &["exec", "-T", "web", "cat", "/var/web/f"],
    )
    .ok();
    assert_eq!(kept.stdout, "kept\n");
    assert_eq!(get(port, "/index.html"), "built-by-compose\n");
    compose(&s, p, &name, port, &["up", "-d", "--scale", "db=2"]).ok();
    let dbs = compose(&s, p, &name, port, &["ps", "-q", "db"]).ok();
    assert_eq!(dbs.lines().len(), 2, "{}", dbs.stdout);

    // down -v: no container, network or volume of the project remains.
    compose(&s, p, &name, port, &["down", "-v"]).ok();
    assert_eq!(leftovers(&s, &name), Vec::<String>::new());
    assert!(
        http_get(&format!("127.0.0.1:{port}"), "/", false).is_err(),
        "the published port still answers after down"
    );
}
