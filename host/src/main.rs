//! `skiff`: the docker command line, served by skiff's own engine.

mod archive;
mod buildctx;
mod cli;
mod commands;
mod dockercfg;
mod goerror;
mod machine;
mod output;

use std::process::ExitCode;

/// An error with the exit code skiff leaves with (125 for skiff's own failures, as docker).
#[derive(Debug)]
pub struct SkiffError {
    pub message: String,
    pub code: u8,
}

impl SkiffError {
    pub fn new(message: impl Into<String>) -> Self {
        SkiffError {
            message: message.into(),
            code: 125,
        }
    }
    /// A failure the engine reported (docker exits 1 for these).
    pub fn daemon(message: impl Into<String>) -> Self {
        SkiffError {
            message: message.into(),
            code: 1,
        }
    }
    pub fn with_code(message: impl Into<String>, code: u8) -> Self {
        SkiffError {
            message: message.into(),
            code,
        }
    }
}

impl std::fmt::Display for SkiffError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SkiffError {}

fn main() -> ExitCode {
    let args = match cli::Cli::parse_args() {
        Ok(a) => a,
        Err(e) => {
            let code = match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => 0,
                _ => 125,
            };
            // Printing usage fails only when stdout/stderr is closed; the exit code says it.
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    // Machine commands run before any runtime: the daemon builds its own.
    if let cli::Command::Machine(cmd) = &args.command {
        return exit_with(commands::machine::run(cmd));
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("skiff: cannot start the async runtime: {e}");
            return ExitCode::from(125);
        }
    };
    exit_with(rt.block_on(commands::run(args)))
}

fn exit_with(result: anyhow::Result<u8>) -> ExitCode {
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            if let Some(se) = e.downcast_ref::<SkiffError>() {
                if !se.message.is_empty() {
                    eprintln!("{}", se.message);
                }
                ExitCode::from(se.code)
            } else {
                eprintln!("skiff: {e:#}");
                ExitCode::from(125)
            }
        }
    }
}
