//! `skiff login` / `skiff logout`: credentials checked by the engine, kept in docker's config.

use std::io::{BufRead, IsTerminal, Write};

use super::api::Body;
use super::Engine;
use crate::cli::{LoginArgs, LogoutArgs};
use crate::{dockercfg, SkiffError};
use anyhow::{Context, Result};

fn server_of(s: &Option<String>) -> String {
    s.clone().unwrap_or_else(|| "docker.io".into())
}

fn prompt(label: &str) -> Result<String> {
    eprint!("{label}: ");
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

pub async fn login(engine: &Engine, a: &LoginArgs) -> Result<u8> {
    let server = server_of(&a.server);
    if a.password.is_some() && a.password_stdin {
        return Err(
            SkiffError::new("--password and --password-stdin are mutually exclusive").into(),
        );
    }
    let username = match &a.username {
        Some(u) => u.clone(),
        None if std::io::stdin().is_terminal() => prompt("Username")?,
        None => {
            return Err(
                SkiffError::new("give a username with -u when stdin is not a terminal").into(),
            )
        }
    };
    let password = if a.password_stdin {
        let mut p = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut p)
            .context("reading the password from stdin")?;
        p.trim_end_matches(['\r', '\n']).to_string()
    } else if let Some(p) = &a.password {
        eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
        p.clone()
    } else {
        prompt("Password")?
    };
    if username.is_empty() || password.is_empty() {
        return Err(SkiffError::new("Error: Cannot perform an interactive login from a non TTY device; give -u and --password-stdin").into());
    }
    let body = serde_json::to_value(dockercfg::Credentials {
        username: username.clone(),
        password: password.clone(),
        serveraddress: server.clone(),
    })?;
    engine
        .api()
        .call("POST", "/auth", Body::Json(&body))
        .await?;
    let path = dockercfg::store(&server, &username, &password)?;
    eprintln!(
        "WARNING! Your credentials are stored unencrypted in '{}'.",
        path.display()
    );
    crate::output::out_line!("Login Succeeded");
    Ok(0)
}

pub fn logout(a: &LogoutArgs) -> Result<u8> {
    let server = server_of(&a.server);
    if dockercfg::remove(&server)? {
        crate::output::out_line!(
            "Removing login credentials for {}",
            dockercfg::key_for(&server)
        );
    } else {
        crate::output::out_line!("Not logged in to {server}");
    }
    Ok(0)
}
