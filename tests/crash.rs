//! Nothing lost: a pull killed at any point (SIGKILL of the agent) leaves no half image
//! visible, and the next pull completes.

use std::process::Stdio;
use std::time::Duration;

use skiff_e2e::*;

/// Every listed image is whole: each layer directory exists and web's big file is intact.
fn assert_store_whole(s: &Skiff, big_sha: &str) {
    if on_vm() {
        return assert_images_run(s, big_sha);
    }
    for id in s.image_ids() {
        let img = s.inspect(&id);
        let data = &img["GraphDriver"]["Data"];
        let mut dirs = vec![data["UpperDir"].as_str().expect("upper").to_string()];
        if let Some(l) = data["LowerDir"].as_str() {
            dirs.extend(l.split(':').map(String::from));
        }
        for d in &dirs {
            assert!(
                std::path::Path::new(d).is_dir(),
                "layer dir {d} of {id} missing"
            );
        }
        let big = format!("{}/www/big.bin", dirs[0]);
        if std::path::Path::new(&big).exists() {
            assert_eq!(
                sh(&format!("sha256sum {big}")).split_whitespace().next(),
                Some(big_sha),
                "big.bin intact"
            );
        }
    }
}

/// The store is in the VM: every image must start a container, and web's big file be whole.
fn assert_images_run(s: &Skiff, big_sha: &str) {
    for id in s.image_ids() {
        let out = s
            .run(&[
                "run",
                "--rm",
                "--entrypoint",
                "/bin/sh",
                &id,
                "-c",
                "test ! -e /www/big.bin || sha256sum /www/big.bin",
            ])
            .ok();
        if let Some(sum) = out.stdout.split_whitespace().next() {
            assert_eq!(sum, big_sha, "big.bin intact in {id}");
        }
    }
}

#[test]
fn killed_pulls_leave_no_half_image_and_the_next_pull_completes() {
    let s = Skiff::new();
    let big_sha = web_big_sha();
    s.run(&["pull", "-q", &image("busybox")]).ok();
    for delay_ms in [0u64, 5, 15, 30, 60, 120] {
        s.run(&["rmi", "-f", &image("web")]);
        let mut child = s
            .command()
            .args(["pull", "-q", &image("web")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn pull");
        std::thread::sleep(Duration::from_millis(delay_ms));
        s.kill_agent();
        let _ = child.wait();
        // The next command starts a fresh agent, which must find the store consistent.
        assert_store_whole(&s, &big_sha);
        if !on_vm() {
            assert_eq!(
                std::fs::read_dir(s.root().join("images/tmp"))
                    .expect("tmp")
                    .count(),
                0,
                "leftovers cleared at start"
            );
        }
        s.run(&["pull", "-q", &image("web")]).ok();
        assert_store_whole(&s, &big_sha);
        assert!(s.image_ids().len() == 2, "busybox and web");
    }
}
