//! The command line: docker's commands and flags, under the names docker users know.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "skiff",
    version,
    about = "Run Linux containers the way docker does, with skiff's own engine",
    long_about = "skiff runs Linux containers with docker's command line. It speaks the Docker \
                  Engine API, so the docker CLI and compose can use it too: point them at the \
                  socket `skiff info` shows."
)]
pub struct Cli {
    /// Directory of skiff's state (images, containers) [default: /var/lib/skiff]
    #[arg(long, global = true, env = "SKIFF_ROOT", value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Unix socket of the skiff API [default: ROOT/skiff.sock]
    #[arg(long, global = true, env = "SKIFF_SOCKET", value_name = "PATH")]
    pub socket: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Download an image from a registry
    Pull(PullArgs),
    /// List images
    Images(ImagesArgs),
    /// Manage images
    #[command(subcommand)]
    Image(ImageCommand),
    /// Show the history of an image
    History(HistoryArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(TagArgs),
    /// Remove one or more images
    Rmi(RmiArgs),
    /// Return low-level information on skiff objects
    Inspect(InspectArgs),
    /// Log in to a registry
    Login(LoginArgs),
    /// Log out from a registry
    Logout(LogoutArgs),
    /// Manage skiff
    #[command(subcommand)]
    System(SystemCommand),
    /// Display system-wide information (same as `system info`)
    Info(FormatOnly),
    /// Show the skiff version information
    Version(FormatOnly),
}

#[derive(Subcommand, Debug)]
pub enum ImageCommand {
    /// List images
    #[command(alias = "list")]
    Ls(ImagesArgs),
    /// Download an image from a registry
    Pull(PullArgs),
    /// Display detailed information on one or more images
    Inspect(InspectArgs),
    /// Show the history of an image
    History(HistoryArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(TagArgs),
    /// Remove one or more images
    Rm(RmiArgs),
    /// Remove unused images
    Prune(PruneArgs),
}

#[derive(Subcommand, Debug)]
pub enum SystemCommand {
    /// Display system-wide information, including the API socket address
    Info(FormatOnly),
}

#[derive(Args, Debug)]
pub struct PullArgs {
    /// NAME[:TAG|@DIGEST], e.g. busybox, 127.0.0.1:5000/team/app:v1
    pub image: String,
    /// Pull for this platform (os/arch[/variant]) instead of the machine's
    #[arg(long)]
    pub platform: Option<String>,
    /// Suppress verbose output
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct ImagesArgs {
    /// Only images matching REPOSITORY[:TAG]
    pub reference: Option<String>,
    /// Show all images (default hides intermediate images)
    #[arg(short, long)]
    pub all: bool,
    /// Only show image IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Show digests
    #[arg(long)]
    pub digests: bool,
    /// Don't truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// Filter output (dangling=true|false, reference=PATTERN, label=KEY[=VALUE], before=IMAGE, since=IMAGE)
    #[arg(short, long = "filter", value_name = "FILTER")]
    pub filters: Vec<String>,
    /// Format output: table, json, or a Go template such as '{{.Repository}}:{{.Tag}}'
    #[arg(long)]
    pub format: Option<String>,
}

#[derive(Args, Debug)]
pub struct HistoryArgs {
    pub image: String,
    /// Print sizes and dates in human readable format
    #[arg(short = 'H', long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub human: bool,
    /// Don't truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// Only show image IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Format output: table, json, or a Go template
    #[arg(long)]
    pub format: Option<String>,
}

#[derive(Args, Debug)]
pub struct TagArgs {
    pub source: String,
    pub target: String,
}

#[derive(Args, Debug)]
pub struct RmiArgs {
    #[arg(required = true)]
    pub images: Vec<String>,
    /// Force removal of the image
    #[arg(short, long)]
    pub force: bool,
    /// Do not delete untagged parents
    #[arg(long)]
    pub no_prune: bool,
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Remove all unused images, not just dangling ones
    #[arg(short, long)]
    pub all: bool,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
    /// Provide filter values (e.g. until=24h, label=KEY)
    #[arg(long = "filter", value_name = "FILTER")]
    pub filters: Vec<String>,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    #[arg(required = true)]
    pub names: Vec<String>,
    /// Format output using a Go template, or json
    #[arg(short, long)]
    pub format: Option<String>,
}

#[derive(Args, Debug)]
pub struct LoginArgs {
    /// Registry host[:port] [default: docker.io]
    pub server: Option<String>,
    #[arg(short, long)]
    pub username: Option<String>,
    /// Password (prefer --password-stdin)
    #[arg(short, long)]
    pub password: Option<String>,
    /// Take the password from stdin
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(Args, Debug)]
pub struct LogoutArgs {
    /// Registry host[:port] [default: docker.io]
    pub server: Option<String>,
}

#[derive(Args, Debug)]
pub struct FormatOnly {
    /// Format output using a Go template, or json
    #[arg(short, long)]
    pub format: Option<String>,
}
