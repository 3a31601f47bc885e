//! RUN: the step's command in a real container of the engine, its output streamed as it
//! comes, its changes committed as the step's layer.

use bollard::models::{ContainerCreateBody, HostConfig};
use serde_json::json;
use tokio::sync::mpsc;

use super::builder::{canceled, Failure, Run};
use super::dockerfile::CmdForm;
use super::instructions::{StageState, PROXY_ARGS};
use crate::containers::engine::{Signal, WaitCondition};
use crate::containers::follow::{follow, FollowSpec};
use crate::images::store::Image;

use anyhow::{anyhow, Result};

impl Run<'_> {
    pub(super) async fn run_step(
        &mut self,
        form: &CmdForm,
        state: &StageState,
        cur: &mut Option<Image>,
    ) -> Result<()> {
        let cmd = state.command(form);
        // Build args the stage declared are the command's environment, not the image's, and
        // name the step in the cache (docker's `|N K=V… cmd`).
        let args: Vec<String> = state
            .args
            .iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
            .collect();
        let mut key = Vec::new();
        if !args.is_empty() {
            key.push(format!("|{}", args.len()));
            key.extend(args.iter().cloned());
        }
        key.extend(cmd.iter().cloned());
        let mut cc = state.config.clone();
        cc.cmd = Some(key.clone());
        if let Some(img) = self.cached(cur, &cc) {
            self.hit(img, cur);
            return Ok(());
        }
        let Some(base) = cur.as_ref() else {
            return Err(anyhow!(Failure {
                message: format!(
                    "The command '{}' cannot run: this stage is FROM scratch and has no files to run it with",
                    cmd.join(" ")
                ),
                code: None,
            }));
        };
        let mut env = state.config.env.clone().unwrap_or_default();
        // docker's predefined proxy args reach every RUN without an ARG, and stay out of the
        // cache key and the image.
        let proxies: Vec<String> = self
            .req
            .build_args
            .iter()
            .filter(|(k, _)| PROXY_ARGS.contains(&k.as_str()) && !state.args.contains_key(*k))
            .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
            .collect();
        // ENV wins over an ARG of the same name.
        for a in args.iter().chain(&proxies) {
            let k = a.split_once('=').map_or(a.as_str(), |(k, _)| k);
            if !env
                .iter()
                .any(|e| e.split_once('=').map(|(ek, _)| ek) == Some(k))
            {
                env.push(a.clone());
            }
        }
        let body = ContainerCreateBody {
            image: Some(base.record.id.clone()),
            cmd: Some(cmd.clone()),
            entrypoint: Some(vec![]),
            env: Some(env),
            working_dir: state.config.working_dir.clone(),
            user: state.config.user.clone(),
            tty: Some(false),
            host_config: Some(HostConfig {
                network_mode: self.req.network_mode.clone(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let containers = self.b.containers.clone();
        let (id, _) = containers.create(body, None)?;
        let c = containers.get(&id)?;
        self.say(format!(" ---> Running in {}\n", &id[..12]));
        let result = self.run_container(&c, &cmd).await;
        let layer = match result {
            Ok(()) => containers.commit_changes(&c, self.req.max_layer).await,
            Err(e) => {
                let _ = containers.remove(&c, true, true).await;
                return Err(e);
            }
        };
        let layer = match layer {
            Ok(l) => l,
            Err(e) => {
                let _ = containers.remove(&c, true, true).await;
                return Err(e.into());
            }
        };
        if !self.req.keep_containers {
            containers.remove(&c, true, true).await?;
            self.say(format!("Removing intermediate container {}\n", &id[..12]));
        }
        let created_by = key.join(" ");
        self.commit(state, cur, &cc, created_by, Some(&layer), Some(&id))
    }

    async fn run_container(
        &self,
        c: &std::sync::Arc<crate::containers::Container>,
        cmd: &[String],
    ) -> Result<()> {
        let containers = self.b.containers.clone();
        let (tx, mut rx) = mpsc::channel(64);
        let follower = tokio::spawn(follow(
            containers.clone(),
            c.clone(),
            FollowSpec {
                offset: 0,
                skip: 0,
                stdout: true,
                stderr: true,
                follow: true,
                wait_for_start: true,
                since_nanos: None,
                until_nanos: None,
            },
            tx,
        ));
        containers.start(c).await?;
        let out = self.out_sender();
        let quiet = self.req.quiet;
        let printer = tokio::spawn(async move {
            while let Some(rec) = rx.recv().await {
                if !quiet {
                    let text = String::from_utf8_lossy(&rec.data).into_owned();
                    let _ = out.send(json!({ "stream": text }));
                }
            }
        });
        let code = tokio::select! {
            code = containers.wait(c, WaitCondition::NotRunning) => Some(code),
            () = self.client_gone() => None,
        };
        let Some(code) = code else {
            // The caller removes the container; its command must not run on meanwhile.
            if let Err(e) = containers.kill_and_wait(c, Signal::KILL).await {
                tracing::debug!("stopping the canceled build's step {}: {e}", c.id);
            }
            return Err(canceled());
        };
        let _ = follower.await;
        let _ = printer.await;
        if code != 0 {
            return Err(anyhow!(Failure {
                message: format!(
                    "The command '{}' returned a non-zero code: {code}",
                    cmd.join(" ")
                ),
                code: Some(code),
            }));
        }
        Ok(())
    }
}
