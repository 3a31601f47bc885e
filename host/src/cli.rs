//! The command line: docker's commands and flags, under the names docker users know.

use std::path::PathBuf;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

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
    /// Unix socket of the skiff API [default: ROOT/skiff.sock; with the vm backend, the machine's]
    #[arg(long, global = true, env = "SKIFF_SOCKET", value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Where containers run: natively on this Linux host, or in skiff's VM [default: the
    /// "backend" of ~/.config/skiff/config.json, else native on Linux]
    #[arg(long, global = true, env = "SKIFF_BACKEND", value_name = "BACKEND")]
    pub backend: Option<crate::machine::Backend>,
    /// With the vm backend: use a separate engine of the machine, with images and containers
    /// of its own, started on first use [default: the machine's own engine]
    #[arg(long, global = true, env = "SKIFF_ENGINE", value_name = "NAME")]
    pub engine: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Parse the command line (`std::env::args_os`).
    pub fn parse_args() -> Result<Cli, clap::Error> {
        Self::parse_from_args(std::env::args_os())
    }

    /// Parse these arguments, with what differs between the two places a shared command
    /// appears (`skiff run` and `skiff container run`) applied: see `command`.
    pub fn parse_from_args<I, T>(args: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let mut cmd = command();
        let mut matches = cmd.try_get_matches_from_mut(args)?;
        Cli::from_arg_matches_mut(&mut matches).map_err(|e| e.format(&mut cmd))
    }
}

/// The usage lines clap cannot write itself (a trailing list of several values), as
/// `(command, usage after "skiff [container] COMMAND ")`.
const USAGES: [(&str, &str); 5] = [
    ("run", "[OPTIONS] IMAGE [COMMAND] [ARG...]"),
    ("update", "[OPTIONS] CONTAINER [CONTAINER...]"),
    ("create", "[OPTIONS] IMAGE [COMMAND] [ARG...]"),
    ("exec", "[OPTIONS] CONTAINER COMMAND [ARG...]"),
    ("top", "CONTAINER [ps OPTIONS]"),
];

/// The clap command: the derived one, plus what depends on where a `ContainerVerb` is
/// mounted: its usage line names its path, and `skiff container rm` is also
/// `skiff container remove` (docker has no top-level `remove`).
pub fn command() -> clap::Command {
    let mut cmd = <Cli as CommandFactory>::command();
    for (name, tail) in USAGES {
        cmd = cmd
            .mut_subcommand(name, |c| c.override_usage(format!("skiff {name} {tail}")))
            .mut_subcommand("container", |c| {
                c.mut_subcommand(name, |c| {
                    c.override_usage(format!("skiff container {name} {tail}"))
                })
            });
    }
    cmd.mut_subcommand("container", |c| {
        c.mut_subcommand("rm", |c| c.visible_alias("remove"))
    })
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// `pull`, `history`, `tag` (also under `image`)
    #[command(flatten)]
    OfImage(ImageVerb),
    /// List images
    Images(ImagesArgs),
    /// Manage images
    #[command(subcommand)]
    Image(ImageCommand),
    /// Remove one or more images
    Rmi(RmiArgs),
    /// Return low-level information on skiff objects
    Inspect(ObjectInspectArgs),
    /// List containers
    Ps(PsArgs),
    /// `run`, `create`, `start`, `stop`, … (also under `container`)
    #[command(flatten)]
    OfContainer(ContainerVerb),
    /// Manage containers
    #[command(subcommand)]
    Container(ContainerCommand),
    /// Manage networks
    #[command(subcommand)]
    Network(NetworkCommand),
    /// Manage volumes
    #[command(subcommand)]
    Volume(VolumeCommand),
    /// Log in to a registry
    Login(LoginArgs),
    /// Log out from a registry
    Logout(LogoutArgs),
    /// Manage skiff
    #[command(subcommand)]
    System(SystemCommand),
    /// Manage skiff's VM (the vm backend)
    #[command(subcommand)]
    Machine(MachineCommand),
    /// Get real time events from the server (same as `system events`)
    Events(EventsArgs),
    /// Display system-wide information (same as `system info`)
    Info(FormatOnly),
    /// Show the skiff version information
    Version(FormatOnly),
}

/// The image commands that are both `skiff X` and `skiff image X`, declared once.
#[derive(Subcommand, Debug)]
pub enum ImageVerb {
    /// Download an image from a registry
    Pull(PullArgs),
    /// Show the history of an image
    History(HistoryArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(TagArgs),
    /// Build an image from a Dockerfile
    #[command(long_about = BUILD_LONG_ABOUT)]
    Build(BuildArgs),
    /// Upload an image to a registry
    Push(PushArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    Save(SaveArgs),
    /// Load an image from a tar archive or STDIN
    Load(LoadArgs),
    /// Import the contents from a tarball to create a filesystem image
    #[command(long_about = IMPORT_LONG_ABOUT)]
    Import(ImportArgs),
}

#[derive(Subcommand, Debug)]
pub enum ImageCommand {
    /// List images
    #[command(alias = "list")]
    Ls(ImagesArgs),
    #[command(flatten)]
    Verb(ImageVerb),
    /// Display detailed information on one or more images
    Inspect(InspectArgs),
    /// Remove one or more images
    Rm(RmiArgs),
    /// Remove unused images
    Prune(PruneArgs),
}

/// The container commands that are both `skiff X` and `skiff container X`, declared once
/// (their usage lines, which name the path, are set by `command`).
#[derive(Subcommand, Debug)]
pub enum ContainerVerb {
    /// Create and run a new container from an image
    #[command(disable_help_flag = true)]
    Run(RunArgs),
    /// Create a new container
    #[command(disable_help_flag = true)]
    Create(CreateArgs),
    /// Start one or more stopped containers
    Start(StartArgs),
    /// Stop one or more running containers
    Stop(StopArgs),
    /// Restart one or more containers
    Restart(StopArgs),
    /// Kill one or more running containers
    Kill(KillArgs),
    /// Remove one or more containers
    Rm(RmArgs),
    /// Pause all processes within one or more containers
    Pause(ContainersArgs),
    /// Unpause all processes within one or more containers
    Unpause(ContainersArgs),
    /// Rename a container
    Rename(RenameArgs),
    /// Block until one or more containers stop, then print their exit codes
    Wait(ContainersArgs),
    /// Attach local standard input, output, and error streams to a running container
    Attach(AttachArgs),
    /// Fetch the logs of a container
    Logs(LogsArgs),
    /// Execute a command in a running container
    Exec(ExecArgs),
    /// Display the running processes of a container
    Top(TopArgs),
    /// Display a live stream of container(s) resource usage statistics
    Stats(StatsArgs),
    /// Copy files/folders between a container and the local filesystem
    #[command(long_about = CP_LONG_ABOUT, override_usage = CP_USAGE)]
    Cp(CpArgs),
    /// List port mappings or a specific mapping for the container
    #[command(long_about = PORT_LONG_ABOUT)]
    Port(PortArgs),
    /// Create a new image from a container's changes
    Commit(CommitArgs),
    /// Export a container's filesystem as a tar archive
    Export(ExportArgs),
    /// Inspect changes to files or directories on a container's filesystem
    #[command(long_about = DIFF_LONG_ABOUT)]
    Diff(DiffArgs),
    /// Update configuration of one or more containers
    Update(UpdateArgs),
}

#[derive(Subcommand, Debug)]
pub enum MachineCommand {
    /// Create a machine: its settings and its data disk
    Init(MachineInitArgs),
    /// Start a machine (the vm backend also starts it on first use)
    Start(MachineName),
    /// Stop a machine: the engine stops and the VM flushes its disk and ends
    Stop(MachineName),
    /// Show whether a machine is running
    Status(MachineName),
    /// Remove a machine with its disk (images, containers, volumes)
    Rm(MachineRmArgs),
    /// Show the VM's console (kernel and engine messages) of the last boot
    Logs(MachineName),
    /// Show a machine's settings and state as JSON
    Inspect(MachineName),
    /// Separate engines in a running machine (`--engine NAME`)
    #[command(subcommand)]
    Engine(MachineEngineCommand),
    /// Run the machine daemon in the foreground (started by `machine start`)
    #[command(hide = true)]
    Daemon(MachineName),
}

#[derive(Subcommand, Debug)]
pub enum MachineEngineCommand {
    /// List the engines the machine runs besides its own, with the memory each uses
    Ls(MachineEngineLsArgs),
    /// Remove engines: their containers, images and state
    Rm(MachineEngineRmArgs),
}

#[derive(Args, Debug)]
pub struct MachineEngineRmArgs {
    /// The machine [default: $SKIFF_MACHINE, else "default"]
    #[arg(long)]
    pub machine: Option<String>,
    /// The engines to remove
    #[arg(required = true, value_name = "ENGINE")]
    pub engines: Vec<String>,
}

#[derive(Args, Debug)]
pub struct MachineEngineLsArgs {
    /// The machine [default: $SKIFF_MACHINE, else "default"]
    pub name: Option<String>,
    /// Only display engine names
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct MachineName {
    /// The machine [default: $SKIFF_MACHINE, else "default"]
    pub name: Option<String>,
}

#[derive(Args, Debug)]
pub struct MachineInitArgs {
    /// Number of virtual CPUs [default: up to 2]
    #[arg(long)]
    pub cpus: Option<u32>,
    /// Memory of the VM in MiB
    #[arg(long, default_value_t = 2048, value_name = "MIB")]
    pub memory: u64,
    /// Size of the data disk in GiB (sparse: it takes host space as it fills)
    #[arg(long, default_value_t = 64, value_name = "GIB")]
    pub disk_size: u64,
    /// Guest kernel (vmlinux) [default: $SKIFF_KERNEL, else installed beside skiff]
    #[arg(long, value_name = "PATH")]
    pub kernel: Option<PathBuf>,
    /// Guest image [default: $SKIFF_INITRAMFS, else installed beside skiff]
    #[arg(long, value_name = "PATH")]
    pub initramfs: Option<PathBuf>,
    /// Share a host directory with the VM, so that bind mounts from it work; repeat for
    /// more, `:ro` for read-only. Given at all, these replace the default [default: your
    /// home directory]
    #[arg(long = "mount", value_name = "PATH[:ro]")]
    pub mounts: Vec<String>,
    /// Start the machine once created
    #[arg(long)]
    pub now: bool,
    /// The machine [default: $SKIFF_MACHINE, else "default"]
    pub name: Option<String>,
}

#[derive(Args, Debug)]
pub struct MachineRmArgs {
    /// Stop the machine first if it runs
    #[arg(short, long)]
    pub force: bool,
    /// The machine [default: $SKIFF_MACHINE, else "default"]
    pub name: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum SystemCommand {
    /// Get real time events from the server
    Events(EventsArgs),
    /// Display system-wide information, including the API socket address
    Info(FormatOnly),
    /// Remove unused data
    Prune(SystemPruneArgs),
    /// Show skiff disk usage
    Df(DfArgs),
    /// Verify the image store: every blob's digest, every layer's unpacked tree, every
    /// reference and every container's image. Exits 1 when something is damaged or missing.
    Check(FormatOnly),
}

// One value per process, parsed once: boxing the shared verbs would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum ContainerCommand {
    /// List containers
    #[command(visible_aliases = ["ps", "list"])]
    Ls(PsArgs),
    #[command(flatten)]
    Verb(ContainerVerb),
    /// Display detailed information on one or more containers
    Inspect(ContainerInspectArgs),
    /// Remove all stopped containers
    Prune(ContainerPruneArgs),
}

#[derive(Subcommand, Debug)]
pub enum NetworkCommand {
    /// Connect a container to a network
    #[command(long_about = NETWORK_CONNECT_LONG_ABOUT)]
    Connect(NetworkConnectArgs),
    /// Create a network
    #[command(long_about = NETWORK_CREATE_LONG_ABOUT)]
    Create(NetworkCreateArgs),
    /// Disconnect a container from a network
    Disconnect(NetworkDisconnectArgs),
    /// Display detailed information on one or more networks
    Inspect(NetworkInspectArgs),
    /// List networks
    #[command(visible_alias = "list")]
    Ls(NetworkLsArgs),
    /// Remove all unused networks
    #[command(long_about = NETWORK_PRUNE_LONG_ABOUT)]
    Prune(NetworkPruneArgs),
    /// Remove one or more networks
    #[command(visible_alias = "remove")]
    Rm(NetworkRmArgs),
}

#[derive(Subcommand, Debug)]
pub enum VolumeCommand {
    /// Create a volume
    Create(VolumeCreateArgs),
    /// Display detailed information on one or more volumes
    Inspect(VolumeInspectArgs),
    /// List volumes
    #[command(visible_alias = "list")]
    Ls(VolumeLsArgs),
    /// Remove unused local volumes
    Prune(VolumePruneArgs),
    /// Remove one or more volumes
    #[command(visible_alias = "remove", long_about = VOLUME_RM_LONG_ABOUT)]
    Rm(VolumeRmArgs),
}

pub const VOLUME_RM_LONG_ABOUT: &str =
    "Remove one or more volumes. You cannot remove a volume that is in use by a container.";

#[derive(Args, Debug)]
pub struct VolumeCreateArgs {
    /// Name of the new volume [default: a random name]
    #[arg(value_name = "VOLUME")]
    pub volume: Option<String>,
    /// Specify volume driver name
    #[arg(short, long, default_value = "local", value_name = "string")]
    pub driver: String,
    /// Set metadata for a volume
    #[arg(long, value_name = "list")]
    pub label: Vec<String>,
    /// Specify volume name
    #[arg(long, hide = true, value_name = "string")]
    pub name: Option<String>,
    /// Set driver specific options
    #[arg(short, long, value_name = "map")]
    pub opt: Vec<String>,
}

#[derive(Args, Debug)]
pub struct VolumeLsArgs {
    /// Provide filter values (e.g. "dangling=true")
    #[arg(short, long = "filter", value_name = "filter")]
    pub filters: Vec<String>,
    /// Format output using a custom template: 'table', 'table TEMPLATE', 'json' or a Go template
    #[arg(long, value_name = "string")]
    pub format: Option<String>,
    /// Only display volume names
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct VolumeInspectArgs {
    /// Volume names
    #[arg(required = true, value_name = "VOLUME")]
    pub names: Vec<String>,
    /// Format output using a custom template: 'json' or a Go template
    #[arg(short, long, value_name = "string")]
    pub format: Option<String>,
}

#[derive(Args, Debug)]
pub struct VolumeRmArgs {
    /// Volume names
    #[arg(required = true, value_name = "VOLUME")]
    pub names: Vec<String>,
    /// Force the removal of one or more volumes
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Args, Debug)]
pub struct VolumePruneArgs {
    /// Remove all unused volumes, not just anonymous ones
    #[arg(short, long)]
    pub all: bool,
    /// Provide filter values (e.g. "label=<label>")
    #[arg(long = "filter", value_name = "filter")]
    pub filters: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
}

pub const PORT_LONG_ABOUT: &str = "List port mappings or a specific mapping for the container

Without PRIVATE_PORT, every published port is listed as
'PRIVATE_PORT/PROTO -> HOST_IP:HOST_PORT'. With it, only the host
addresses it is published on are listed; PROTO defaults to tcp.";

pub const NETWORK_CREATE_LONG_ABOUT: &str = "Create a network

Prints the new network's ID. Each --gateway, --ip-range and
--aux-address applies to the --subnet that contains it, so give one
--subnet for each of them; subnets may not overlap.";

pub const NETWORK_CONNECT_LONG_ABOUT: &str = "Connect a container to a network

Connects a container to a network, by the container's name or ID. Once
connected, the container can communicate with the other containers on
the network, which also find it by its name and its --alias names.";

pub const NETWORK_PRUNE_LONG_ABOUT: &str = "Remove all unused networks

Unused networks are custom networks no container is connected to; the
predefined networks are never removed.";

#[derive(Args, Debug)]
pub struct NetworkCreateArgs {
    /// Name of the new network
    #[arg(value_name = "NETWORK")]
    pub name: String,
    /// Enable manual container attachment
    #[arg(long)]
    pub attachable: bool,
    /// Auxiliary IPv4 or IPv6 addresses used by Network driver
    #[arg(long, value_name = "map")]
    pub aux_address: Vec<String>,
    /// The network from which to copy the configuration
    #[arg(long, value_name = "string")]
    pub config_from: Option<String>,
    /// Create a configuration only network
    #[arg(long)]
    pub config_only: bool,
    /// Driver to manage the Network
    #[arg(short, long, default_value = "bridge", value_name = "string")]
    pub driver: String,
    /// IPv4 or IPv6 Gateway for the master subnet
    #[arg(long, value_name = "strings", value_delimiter = ',')]
    pub gateway: Vec<String>,
    /// Restrict external access to the network
    #[arg(long)]
    pub internal: bool,
    /// Allocate container ip from a sub-range
    #[arg(long, value_name = "strings", value_delimiter = ',')]
    pub ip_range: Vec<String>,
    /// IP Address Management Driver
    #[arg(long, default_value = "default", value_name = "string")]
    pub ipam_driver: String,
    /// Set IPAM driver specific options
    #[arg(long, value_name = "map")]
    pub ipam_opt: Vec<String>,
    /// Enable or disable IPv4 address assignment [default: true]
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "bool")]
    pub ipv4: Option<bool>,
    /// Enable or disable IPv6 address assignment
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "bool")]
    pub ipv6: Option<bool>,
    /// Set metadata on a network
    #[arg(long, value_name = "list")]
    pub label: Vec<String>,
    /// Set driver specific options
    #[arg(short, long, value_name = "map")]
    pub opt: Vec<String>,
    /// Control the network's scope
    #[arg(long, value_name = "string")]
    pub scope: Option<String>,
    /// Subnet in CIDR format that represents a network segment
    #[arg(long, value_name = "strings", value_delimiter = ',')]
    pub subnet: Vec<String>,
}

#[derive(Args, Debug)]
pub struct NetworkLsArgs {
    /// Provide filter values (e.g. "driver=bridge")
    #[arg(short, long = "filter", value_name = "filter")]
    pub filters: Vec<String>,
    /// Format output using a custom template: 'table', 'table TEMPLATE', 'json' or a Go template
    #[arg(long, value_name = "string")]
    pub format: Option<String>,
    /// Do not truncate the output
    #[arg(long)]
    pub no_trunc: bool,
    /// Only display network IDs
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct NetworkInspectArgs {
    /// Network names or IDs
    #[arg(required = true, value_name = "NETWORK")]
    pub names: Vec<String>,
    /// Format output using a custom template: 'json' or a Go template
    #[arg(short, long, value_name = "string")]
    pub format: Option<String>,
    /// Verbose output for diagnostics
    #[arg(short, long)]
    pub verbose: bool,
}

#[derive(Args, Debug)]
pub struct NetworkRmArgs {
    /// Network names or IDs
    #[arg(required = true, value_name = "NETWORK")]
    pub names: Vec<String>,
    /// Do not error if the network does not exist
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Args, Debug)]
pub struct NetworkConnectArgs {
    /// Network name or ID
    #[arg(value_name = "NETWORK")]
    pub network: String,
    /// Container name or ID
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    /// Add network-scoped alias for the container
    #[arg(long, value_name = "strings", value_delimiter = ',')]
    pub alias: Vec<String>,
    /// driver options for the network
    #[arg(long, value_name = "strings", value_delimiter = ',')]
    pub driver_opt: Vec<String>,
    /// Highest gw-priority provides the default gateway. Accepts positive and negative values.
    #[arg(
        long,
        value_name = "int",
        default_value_t = 0,
        allow_hyphen_values = true
    )]
    pub gw_priority: i64,
    /// IPv4 address (e.g., "172.30.100.104")
    #[arg(long, value_name = "string")]
    pub ip: Option<String>,
    /// IPv6 address (e.g., "2001:db8::33")
    #[arg(long, value_name = "string")]
    pub ip6: Option<String>,
    /// Add a link-local address for the container
    #[arg(long, value_name = "strings", value_delimiter = ',')]
    pub link_local_ip: Vec<String>,
}

#[derive(Args, Debug)]
pub struct NetworkDisconnectArgs {
    /// Network name or ID
    #[arg(value_name = "NETWORK")]
    pub network: String,
    /// Container name or ID
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    /// Force the container to disconnect from a network
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Args, Debug)]
pub struct NetworkPruneArgs {
    /// Provide filter values (e.g. "until=<timestamp>")
    #[arg(long = "filter", value_name = "filter")]
    pub filters: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Args, Debug)]
pub struct PortArgs {
    /// Container name or ID
    pub container: String,
    /// A port inside the container, e.g. 80 or 53/udp (the protocol defaults to tcp)
    #[arg(value_name = "PRIVATE_PORT[/PROTO]")]
    pub port: Option<String>,
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

#[derive(Args, Debug)]
pub struct ObjectInspectArgs {
    #[arg(required = true, value_name = "NAME|ID")]
    pub names: Vec<String>,
    /// Format output using a custom template: 'json' or a Go template
    #[arg(short, long)]
    pub format: Option<String>,
    /// Display total file sizes if the type is container
    #[arg(short, long)]
    pub size: bool,
    /// Return JSON for specified type (container, image or network)
    #[arg(long = "type", value_name = "TYPE")]
    pub kind: Option<String>,
}

#[derive(Args, Debug)]
pub struct ContainerInspectArgs {
    #[arg(required = true, value_name = "CONTAINER")]
    pub names: Vec<String>,
    /// Format output using a custom template: 'json' or a Go template
    #[arg(short, long)]
    pub format: Option<String>,
    /// Display total file sizes
    #[arg(short, long)]
    pub size: bool,
}

/// The flags `run` and `create` share (docker's containerOptions and createOptions).
#[derive(Args, Debug, Default)]
pub struct ContainerFlags {
    /// Print usage
    #[arg(long, action = clap::ArgAction::Help)]
    pub help: Option<bool>,
    /// Add a custom host-to-IP mapping (host:ip)
    #[arg(long, value_name = "list")]
    pub add_host: Vec<String>,
    /// Attach to STDIN, STDOUT or STDERR
    #[arg(short, long, value_name = "list")]
    pub attach: Vec<String>,
    /// Add Linux capabilities
    #[arg(long, value_name = "list")]
    pub cap_add: Vec<String>,
    /// Drop Linux capabilities
    #[arg(long, value_name = "list")]
    pub cap_drop: Vec<String>,
    /// Number of CPUs
    #[arg(long, value_name = "decimal")]
    pub cpus: Option<String>,
    /// Set custom DNS servers
    #[arg(long, value_name = "list")]
    pub dns: Vec<String>,
    /// Set DNS options
    #[arg(long, alias = "dns-opt", value_name = "list")]
    pub dns_option: Vec<String>,
    /// Set custom DNS search domains
    #[arg(long, value_name = "list")]
    pub dns_search: Vec<String>,
    /// Container NIS domain name
    #[arg(long, value_name = "string")]
    pub domainname: Option<String>,
    /// Overwrite the default ENTRYPOINT of the image
    #[arg(long, value_name = "string")]
    pub entrypoint: Option<String>,
    /// Set environment variables
    #[arg(short, long, value_name = "list")]
    pub env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long, value_name = "list")]
    pub env_file: Vec<String>,
    /// Expose a port or a range of ports
    #[arg(long, value_name = "list")]
    pub expose: Vec<String>,
    /// Command to run to check health
    #[arg(long, value_name = "string")]
    pub health_cmd: Option<String>,
    /// Time between running the check (ms|s|m|h) (default 0s)
    #[arg(long, value_name = "duration", allow_hyphen_values = true)]
    pub health_interval: Option<String>,
    /// Consecutive failures needed to report unhealthy
    #[arg(long, value_name = "int", allow_hyphen_values = true)]
    pub health_retries: Option<i64>,
    /// Time between running the check during the start period (ms|s|m|h) (default 0s)
    #[arg(long, value_name = "duration", allow_hyphen_values = true)]
    pub health_start_interval: Option<String>,
    /// Start period for the container to initialize before starting health-retries countdown (ms|s|m|h) (default 0s)
    #[arg(long, value_name = "duration", allow_hyphen_values = true)]
    pub health_start_period: Option<String>,
    /// Maximum time to allow one check to run (ms|s|m|h) (default 0s)
    #[arg(long, value_name = "duration", allow_hyphen_values = true)]
    pub health_timeout: Option<String>,
    /// Container host name
    #[arg(short = 'h', long, value_name = "string")]
    pub hostname: Option<String>,
    /// Run an init inside the container that forwards signals and reaps processes
    #[arg(long)]
    pub init: bool,
    /// Keep STDIN open even if not attached
    #[arg(short, long)]
    pub interactive: bool,
    /// IPv4 address (e.g., 172.30.100.104)
    #[arg(long, value_name = "string")]
    pub ip: Option<String>,
    /// IPv6 address (e.g., 2001:db8::33)
    #[arg(long, value_name = "string")]
    pub ip6: Option<String>,
    /// Set meta data on a container
    #[arg(short, long, value_name = "list")]
    pub label: Vec<String>,
    /// Read in a line delimited file of labels
    #[arg(long, value_name = "list")]
    pub label_file: Vec<String>,
    /// Memory limit
    #[arg(short, long, value_name = "bytes")]
    pub memory: Option<String>,
    /// Swap limit equal to memory plus swap: '-1' to enable unlimited swap
    #[arg(long, value_name = "bytes", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Attach a filesystem mount to the container
    #[arg(long, value_name = "mount")]
    pub mount: Vec<String>,
    /// Assign a name to the container
    #[arg(long, value_name = "string")]
    pub name: Option<String>,
    /// Connect a container to a network
    #[arg(long, visible_alias = "net", value_name = "network")]
    pub network: Option<String>,
    /// Add network-scoped alias for the container
    #[arg(long, alias = "net-alias", value_name = "list")]
    pub network_alias: Vec<String>,
    /// Disable any container-specified HEALTHCHECK
    #[arg(long)]
    pub no_healthcheck: bool,
    /// Add link to another container (NAME or NAME:ALIAS; legacy, as docker's)
    #[arg(long, value_name = "list")]
    pub link: Vec<String>,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long, value_name = "int", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Set platform if server is multi-platform capable
    #[arg(long, value_name = "string")]
    pub platform: Option<String>,
    /// Give extended privileges to this container
    #[arg(long)]
    pub privileged: bool,
    /// Publish a container's port(s) to the host
    #[arg(short, long, value_name = "list")]
    pub publish: Vec<String>,
    /// Publish all exposed ports to random ports
    #[arg(short = 'P', long)]
    pub publish_all: bool,
    /// Pull image before running ("always", "missing", "never")
    #[arg(long, default_value = "missing", value_name = "string")]
    pub pull: String,
    /// Suppress the pull output
    #[arg(short, long)]
    pub quiet: bool,
    /// Mount the container's root filesystem as read only
    #[arg(long)]
    pub read_only: bool,
    /// Restart policy to apply when a container exits
    #[arg(long, default_value = "no", value_name = "string")]
    pub restart: String,
    /// Automatically remove the container and its associated anonymous volumes when it exits
    #[arg(long)]
    pub rm: bool,
    /// Security Options
    #[arg(long, value_name = "list")]
    pub security_opt: Vec<String>,
    /// Signal to stop the container
    #[arg(long, value_name = "string")]
    pub stop_signal: Option<String>,
    /// Timeout (in seconds) to stop a container
    #[arg(long, value_name = "int", allow_hyphen_values = true)]
    pub stop_timeout: Option<i64>,
    /// Mount a tmpfs directory
    #[arg(long, value_name = "list")]
    pub tmpfs: Vec<String>,
    /// Allocate a pseudo-TTY
    #[arg(short, long)]
    pub tty: bool,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short, long, value_name = "string")]
    pub user: Option<String>,
    /// Bind mount a volume
    #[arg(short, long, value_name = "list")]
    pub volume: Vec<String>,
    /// Optional volume driver for the container
    #[arg(long, value_name = "string")]
    pub volume_driver: Option<String>,
    /// Mount volumes from the specified container(s)
    #[arg(long, value_name = "list")]
    pub volumes_from: Vec<String>,
    /// Working directory inside the container
    #[arg(short, long, value_name = "string")]
    pub workdir: Option<String>,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Run container in background and print container ID
    #[arg(short, long)]
    pub detach: bool,
    /// Proxy received signals to the process
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "bool")]
    pub sig_proxy: bool,
    /// Override the key sequence for detaching a container
    #[arg(long, value_name = "string")]
    pub detach_keys: Option<String>,
    #[command(flatten)]
    pub flags: ContainerFlags,
    /// The image, then the command and its arguments
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "IMAGE [COMMAND] [ARG...]"
    )]
    pub image_and_command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    #[command(flatten)]
    pub flags: ContainerFlags,
    /// The image, then the command and its arguments
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "IMAGE [COMMAND] [ARG...]"
    )]
    pub image_and_command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct StartArgs {
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
    /// Attach STDOUT/STDERR and forward signals
    #[arg(short, long)]
    pub attach: bool,
    /// Attach container's STDIN
    #[arg(short, long)]
    pub interactive: bool,
    /// Override the key sequence for detaching a container
    #[arg(long, value_name = "string")]
    pub detach_keys: Option<String>,
}

#[derive(Args, Debug)]
pub struct StopArgs {
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
    /// Signal to send to the container
    #[arg(short, long, value_name = "string")]
    pub signal: Option<String>,
    /// Seconds to wait before killing the container
    #[arg(
        short = 't',
        long = "timeout",
        visible_alias = "time",
        value_name = "int",
        allow_hyphen_values = true
    )]
    pub timeout: Option<i64>,
}

#[derive(Args, Debug)]
pub struct KillArgs {
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
    /// Signal to send to the container
    #[arg(short, long, value_name = "string")]
    pub signal: Option<String>,
}

#[derive(Args, Debug)]
pub struct RmArgs {
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
    /// Force the removal of a running container (uses SIGKILL)
    #[arg(short, long)]
    pub force: bool,
    /// Remove anonymous volumes associated with the container
    #[arg(short, long)]
    pub volumes: bool,
    /// Remove the specified link
    #[arg(short, long)]
    pub link: bool,
}

#[derive(Args, Debug)]
pub struct ContainersArgs {
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

#[derive(Args, Debug)]
pub struct RenameArgs {
    pub container: String,
    pub new_name: String,
}

#[derive(Args, Debug)]
pub struct AttachArgs {
    pub container: String,
    /// Do not attach STDIN
    #[arg(long)]
    pub no_stdin: bool,
    /// Proxy all received signals to the process
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "bool")]
    pub sig_proxy: bool,
    /// Override the key sequence for detaching a container
    #[arg(long, value_name = "string")]
    pub detach_keys: Option<String>,
}

#[derive(Args, Debug)]
pub struct PsArgs {
    /// Show all containers (default shows just running)
    #[arg(short, long)]
    pub all: bool,
    /// Filter output based on conditions provided
    #[arg(short, long = "filter", value_name = "filter")]
    pub filters: Vec<String>,
    /// Format output using a custom template: 'table', 'table TEMPLATE', 'json' or a Go template
    #[arg(long, value_name = "string")]
    pub format: Option<String>,
    /// Show n last created containers (includes all states)
    #[arg(short = 'n', long, value_name = "int", default_value_t = -1, allow_hyphen_values = true)]
    pub last: i64,
    /// Show the latest created container (includes all states)
    #[arg(short, long)]
    pub latest: bool,
    /// Don't truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// Only display container IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Display total file sizes
    #[arg(short, long)]
    pub size: bool,
}

#[derive(Args, Debug)]
pub struct LogsArgs {
    pub container: String,
    /// Show extra details provided to logs
    #[arg(long)]
    pub details: bool,
    /// Follow log output
    #[arg(short, long)]
    pub follow: bool,
    /// Show logs since timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" for 42 minutes)
    #[arg(long, value_name = "string")]
    pub since: Option<String>,
    /// Number of lines to show from the end of the logs
    #[arg(short = 'n', long, default_value = "all", value_name = "string")]
    pub tail: String,
    /// Show timestamps
    #[arg(short, long)]
    pub timestamps: bool,
    /// Show logs before a timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" for 42 minutes)
    #[arg(long, value_name = "string")]
    pub until: Option<String>,
}

#[derive(Args, Debug)]
pub struct ExecArgs {
    /// Detached mode: run command in the background
    #[arg(short, long)]
    pub detach: bool,
    /// Override the key sequence for detaching a container
    #[arg(long, value_name = "string")]
    pub detach_keys: Option<String>,
    /// Set environment variables
    #[arg(short, long, value_name = "list")]
    pub env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long, value_name = "list")]
    pub env_file: Vec<String>,
    /// Keep STDIN open even if not attached
    #[arg(short, long)]
    pub interactive: bool,
    /// Give extended privileges to the command
    #[arg(long)]
    pub privileged: bool,
    /// Allocate a pseudo-TTY
    #[arg(short, long)]
    pub tty: bool,
    /// Username or UID (format: "<name|uid>[:<group|gid>]")
    #[arg(short, long, value_name = "string")]
    pub user: Option<String>,
    /// Working directory inside the container
    #[arg(short, long, value_name = "string")]
    pub workdir: Option<String>,
    /// The container, then the command and its arguments
    #[arg(required = true, num_args = 2.., trailing_var_arg = true, allow_hyphen_values = true, value_name = "CONTAINER COMMAND [ARG...]")]
    pub container_and_command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct TopArgs {
    /// The container, then options for ps
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CONTAINER [ps OPTIONS]"
    )]
    pub container_and_args: Vec<String>,
}

#[derive(Args, Debug)]
pub struct StatsArgs {
    #[arg(value_name = "CONTAINER")]
    pub containers: Vec<String>,
    /// Show all containers (default shows just running)
    #[arg(short, long)]
    pub all: bool,
    /// Format output using a custom template: 'table', 'table TEMPLATE', 'json' or a Go template
    #[arg(long, value_name = "string")]
    pub format: Option<String>,
    /// Disable streaming stats and only pull the first result
    #[arg(long)]
    pub no_stream: bool,
    /// Do not truncate output
    #[arg(long)]
    pub no_trunc: bool,
}

pub const CP_LONG_ABOUT: &str = "Copy files/folders between a container and the local filesystem

Use '-' as the source to read a tar archive from stdin
and extract it to a directory destination in a container.
Use '-' as the destination to stream a tar archive of a
container source to stdout.";

pub const CP_USAGE: &str = "skiff cp [OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-
       skiff cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH";

#[derive(Args, Debug)]
pub struct CpArgs {
    /// CONTAINER:SRC_PATH or SRC_PATH or -
    #[arg(allow_hyphen_values = true)]
    pub source: String,
    /// DEST_PATH or CONTAINER:DEST_PATH or -
    #[arg(allow_hyphen_values = true)]
    pub destination: String,
    /// Archive mode (copy all uid/gid information)
    #[arg(short, long)]
    pub archive: bool,
    /// Always follow symbol link in SRC_PATH
    #[arg(short = 'L', long)]
    pub follow_link: bool,
    /// Suppress progress output during copy. Progress output is automatically suppressed if no terminal is attached
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct ContainerPruneArgs {
    /// Provide filter values (e.g. "until=<timestamp>")
    #[arg(long = "filter", value_name = "filter")]
    pub filters: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Args, Debug)]
pub struct SystemPruneArgs {
    /// Remove all unused images not just dangling ones
    #[arg(short, long)]
    pub all: bool,
    /// Provide filter values (e.g. "label=<key>=<value>")
    #[arg(long = "filter", value_name = "filter")]
    pub filters: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
    /// Prune anonymous volumes
    #[arg(long)]
    pub volumes: bool,
}

#[derive(Args, Debug)]
pub struct DfArgs {
    /// Format output using a custom template: 'table', 'table TEMPLATE', 'json' or a Go template
    #[arg(long, value_name = "string")]
    pub format: Option<String>,
    /// Show detailed information on space usage
    #[arg(short, long)]
    pub verbose: bool,
}

pub const BUILD_LONG_ABOUT: &str = "Build an image from a Dockerfile

PATH is the build context: a directory, sent to the engine as a tar
archive with the patterns of its .dockerignore left out (the Dockerfile
and .dockerignore are always sent). With -, stdin is the context: a tar
archive (plain or gzip-compressed), or a Dockerfile's text, built with an
empty context. -f names the Dockerfile, relative to the current
directory; -f - reads it from stdin while PATH is the context.";

pub const IMPORT_LONG_ABOUT: &str =
    "Import the contents from a tarball to create a filesystem image

The tarball is a file, an http(s) URL the engine downloads, or - for
stdin. It may be compressed (gzip, bzip2, xz). Prints the new image's ID.";

pub const DIFF_LONG_ABOUT: &str =
    "Inspect changes to files or directories on a container's filesystem

Lists the files and directories changed since the container was created:
A for added, D for deleted, C for changed.";

#[derive(Args, Debug)]
pub struct BuildArgs {
    /// The build context: a directory, or - for a tar archive (plain or gzip) or a
    /// Dockerfile read from stdin
    #[arg(value_name = "PATH | -", allow_hyphen_values = true)]
    pub context: String,
    /// Name and optionally a tag in the "name:tag" format
    #[arg(short, long = "tag", value_name = "list")]
    pub tags: Vec<String>,
    /// Name of the Dockerfile (Default is "PATH/Dockerfile"; - reads it from stdin)
    #[arg(short, long, value_name = "string", allow_hyphen_values = true)]
    pub file: Option<String>,
    /// Set build-time variables (KEY=VALUE, or KEY to take it from the environment)
    #[arg(long = "build-arg", value_name = "list")]
    pub build_args: Vec<String>,
    /// Set metadata for an image
    #[arg(long = "label", value_name = "list")]
    pub labels: Vec<String>,
    /// Set the target build stage to build.
    #[arg(long, value_name = "string")]
    pub target: Option<String>,
    /// Do not use cache when building the image
    #[arg(long)]
    pub no_cache: bool,
    /// Always attempt to pull a newer version of the image
    #[arg(long)]
    pub pull: bool,
    /// Suppress the build output and print image ID on success
    #[arg(short, long)]
    pub quiet: bool,
    /// Write the image ID to the file
    #[arg(long, value_name = "string")]
    pub iidfile: Option<String>,
    /// Set platform if server is multi-platform capable (only this machine's platform)
    #[arg(long, value_name = "string")]
    pub platform: Option<String>,
    /// Set the networking mode for the RUN instructions during build (default, bridge,
    /// host or none)
    #[arg(long, default_value = "default", value_name = "string")]
    pub network: String,
    /// Remove intermediate containers after a successful build
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "bool")]
    pub rm: bool,
    /// Always remove intermediate containers
    #[arg(long)]
    pub force_rm: bool,
}

#[derive(Args, Debug)]
pub struct PushArgs {
    /// NAME[:TAG]
    #[arg(value_name = "NAME[:TAG]")]
    pub image: String,
    /// Push all tags of an image to the repository
    #[arg(short, long)]
    pub all_tags: bool,
    /// Suppress verbose output
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct SaveArgs {
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
    /// Write to a file, instead of STDOUT
    #[arg(short, long, value_name = "string")]
    pub output: Option<String>,
}

#[derive(Args, Debug)]
pub struct LoadArgs {
    /// Read from tar archive file, instead of STDIN
    #[arg(short, long, value_name = "string")]
    pub input: Option<String>,
    /// Suppress the load output
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// The tarball: a file, an http(s) URL, or - for stdin
    #[arg(value_name = "file|URL|-", allow_hyphen_values = true)]
    pub source: String,
    /// The new image's name
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub reference: Option<String>,
    /// Apply Dockerfile instruction to the created image
    #[arg(short, long = "change", value_name = "list")]
    pub changes: Vec<String>,
    /// Set commit message for imported image
    #[arg(short, long, value_name = "string")]
    pub message: Option<String>,
}

#[derive(Args, Debug)]
pub struct CommitArgs {
    pub container: String,
    /// The new image's name
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub reference: Option<String>,
    /// Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")
    #[arg(short, long, value_name = "string")]
    pub author: Option<String>,
    /// Apply Dockerfile instruction to the created image
    #[arg(short, long = "change", value_name = "list")]
    pub changes: Vec<String>,
    /// Commit message
    #[arg(short, long, value_name = "string")]
    pub message: Option<String>,
    /// Pause container during commit
    #[arg(short, long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "bool")]
    pub pause: bool,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    pub container: String,
    /// Write to a file, instead of STDOUT
    #[arg(short, long, value_name = "string")]
    pub output: Option<String>,
}

#[derive(Args, Debug)]
pub struct DiffArgs {
    pub container: String,
}

#[derive(Args, Debug)]
pub struct EventsArgs {
    /// Filter output based on conditions provided
    #[arg(short, long = "filter", value_name = "filter")]
    pub filters: Vec<String>,
    /// Format output using a custom template: 'json' or a Go template
    #[arg(long, value_name = "string")]
    pub format: Option<String>,
    /// Show all events created since timestamp
    #[arg(long, value_name = "string")]
    pub since: Option<String>,
    /// Stream events until this timestamp
    #[arg(long, value_name = "string")]
    pub until: Option<String>,
}

/// docker's `update` flags. Each is an `Option` because docker refuses a call with none
/// given, and a flag given as zero still counts as given.
#[derive(Args, Debug, Default)]
pub struct UpdateArgs {
    /// Block IO (relative weight), between 10 and 1000, or 0 to disable
    #[arg(long, value_name = "uint16")]
    pub blkio_weight: Option<u16>,
    /// Limit CPU CFS (Completely Fair Scheduler) period
    #[arg(long, value_name = "int", allow_hyphen_values = true)]
    pub cpu_period: Option<i64>,
    /// Limit CPU CFS (Completely Fair Scheduler) quota
    #[arg(long, value_name = "int", allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    /// Limit the CPU real-time period in microseconds
    #[arg(long, value_name = "int", allow_hyphen_values = true)]
    pub cpu_rt_period: Option<i64>,
    /// Limit the CPU real-time runtime in microseconds
    #[arg(long, value_name = "int", allow_hyphen_values = true)]
    pub cpu_rt_runtime: Option<i64>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long, value_name = "int", allow_hyphen_values = true)]
    pub cpu_shares: Option<i64>,
    /// Number of CPUs
    #[arg(long, value_name = "decimal")]
    pub cpus: Option<String>,
    /// CPUs in which to allow execution (0-3, 0,1)
    #[arg(long, value_name = "string")]
    pub cpuset_cpus: Option<String>,
    /// MEMs in which to allow execution (0-3, 0,1)
    #[arg(long, value_name = "string")]
    pub cpuset_mems: Option<String>,
    /// Memory limit
    #[arg(short, long, value_name = "bytes")]
    pub memory: Option<String>,
    /// Memory soft limit
    #[arg(long, value_name = "bytes")]
    pub memory_reservation: Option<String>,
    /// Swap limit equal to memory plus swap: -1 to enable unlimited swap
    #[arg(long, value_name = "bytes", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long, value_name = "int", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Restart policy to apply when a container exits
    #[arg(long, value_name = "string")]
    pub restart: Option<String>,
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::parse_from_args(args).unwrap()
    }

    #[test]
    fn run_keeps_everything_after_the_image() {
        let Command::OfContainer(ContainerVerb::Run(r)) = parse(&[
            "skiff", "run", "--rm", "-e", "A=1", "busybox", "ls", "-l", "--rm",
        ])
        .command
        else {
            panic!("not run");
        };
        assert!(r.flags.rm);
        assert_eq!(r.flags.env, vec!["A=1"]);
        assert_eq!(r.image_and_command, vec!["busybox", "ls", "-l", "--rm"]);

        let Command::OfContainer(ContainerVerb::Run(r)) =
            parse(&["skiff", "run", "-d", "--", "busybox", "echo", "hi"]).command
        else {
            panic!("not run");
        };
        assert!(r.detach);
        assert_eq!(r.image_and_command, vec!["busybox", "echo", "hi"]);

        let Command::OfContainer(ContainerVerb::Run(r)) = parse(&[
            "skiff",
            "run",
            "-h",
            "box",
            "--sig-proxy=false",
            "busybox",
            "--",
            "x",
        ])
        .command
        else {
            panic!("not run");
        };
        assert_eq!(r.flags.hostname.as_deref(), Some("box"));
        assert!(!r.sig_proxy);
        assert_eq!(r.image_and_command, vec!["busybox", "--", "x"]);

        let Command::OfContainer(ContainerVerb::Run(r)) =
            parse(&["skiff", "run", "--sig-proxy", "-it", "busybox"]).command
        else {
            panic!("not run");
        };
        assert!(r.sig_proxy && r.flags.interactive && r.flags.tty);
    }

    #[test]
    fn exec_and_top_keep_the_command() {
        let Command::OfContainer(ContainerVerb::Exec(e)) =
            parse(&["skiff", "exec", "-it", "c1", "sh", "-c", "echo -n hi"]).command
        else {
            panic!("not exec");
        };
        assert!(e.interactive && e.tty);
        assert_eq!(
            e.container_and_command,
            vec!["c1", "sh", "-c", "echo -n hi"]
        );
        assert!(Cli::parse_from_args(["skiff", "exec", "c1"]).is_err());
        let Command::OfContainer(ContainerVerb::Top(t)) =
            parse(&["skiff", "top", "c1", "-eo", "pid,comm"]).command
        else {
            panic!("not top");
        };
        assert_eq!(t.container_and_args, vec!["c1", "-eo", "pid,comm"]);
    }

    #[test]
    fn network_commands_take_docker_flags() {
        let Command::Network(NetworkCommand::Create(c)) = parse(&[
            "skiff",
            "network",
            "create",
            "-d",
            "bridge",
            "--subnet",
            "10.1.0.0/16,10.2.0.0/16",
            "--gateway=10.1.0.1",
            "-o",
            "a=b",
            "--ipv6",
            "--ipv4=false",
            "n1",
        ])
        .command
        else {
            panic!("not network create");
        };
        assert_eq!(c.name, "n1");
        assert_eq!(c.subnet, vec!["10.1.0.0/16", "10.2.0.0/16"]);
        assert_eq!(c.gateway, vec!["10.1.0.1"]);
        assert_eq!(c.opt, vec!["a=b"]);
        assert_eq!((c.ipv4, c.ipv6), (Some(false), Some(true)));
        assert_eq!(c.ipam_driver, "default");
        let Command::Network(NetworkCommand::Create(c)) =
            parse(&["skiff", "network", "create", "n2"]).command
        else {
            panic!("not network create");
        };
        assert_eq!((c.driver.as_str(), c.ipv4, c.ipv6), ("bridge", None, None));

        assert!(matches!(
            parse(&["skiff", "network", "list", "-q"]).command,
            Command::Network(NetworkCommand::Ls(_))
        ));
        assert!(matches!(
            parse(&["skiff", "network", "remove", "n1"]).command,
            Command::Network(NetworkCommand::Rm(_))
        ));
        let Command::Network(NetworkCommand::Connect(c)) = parse(&[
            "skiff",
            "network",
            "connect",
            "--alias",
            "a,b",
            "--alias",
            "c",
            "--gw-priority",
            "-1",
            "n1",
            "web",
        ])
        .command
        else {
            panic!("not network connect");
        };
        assert_eq!(c.alias, vec!["a", "b", "c"]);
        assert_eq!(c.gw_priority, -1);
        assert_eq!((c.network.as_str(), c.container.as_str()), ("n1", "web"));
        assert!(Cli::parse_from_args(["skiff", "network", "connect", "n1"]).is_err());
        assert!(Cli::parse_from_args(["skiff", "network", "rm"]).is_err());

        let Command::OfContainer(ContainerVerb::Run(r)) = parse(&[
            "skiff",
            "run",
            "--network-alias",
            "a",
            "--net-alias",
            "b",
            "--dns-opt",
            "ndots:2",
            "--dns-option",
            "rotate",
            "--add-host",
            "h:1.2.3.4",
            "busybox",
        ])
        .command
        else {
            panic!("not run");
        };
        assert_eq!(r.flags.network_alias, vec!["a", "b"]);
        assert_eq!(r.flags.dns_option, vec!["ndots:2", "rotate"]);
        assert_eq!(r.flags.add_host, vec!["h:1.2.3.4"]);

        let Command::Container(ContainerCommand::Verb(ContainerVerb::Port(p))) =
            parse(&["skiff", "container", "port", "web", "80/udp"]).command
        else {
            panic!("not container port");
        };
        assert_eq!(p.port.as_deref(), Some("80/udp"));
        assert!(matches!(
            parse(&["skiff", "port", "web"]).command,
            Command::OfContainer(ContainerVerb::Port(PortArgs { port: None, .. }))
        ));
    }

    #[test]
    fn the_command_is_well_formed() {
        command().debug_assert();
    }

    fn usage(path: &[&str]) -> String {
        let mut cmd = command();
        cmd.build();
        let mut sub = &mut cmd;
        for p in path {
            sub = sub.find_subcommand_mut(p).expect("subcommand");
        }
        sub.render_usage().to_string()
    }

    #[test]
    fn shared_commands_name_their_path_in_usage() {
        assert_eq!(
            usage(&["run"]),
            "Usage: skiff run [OPTIONS] IMAGE [COMMAND] [ARG...]"
        );
        assert_eq!(
            usage(&["container", "run"]),
            "Usage: skiff container run [OPTIONS] IMAGE [COMMAND] [ARG...]"
        );
        assert_eq!(
            usage(&["container", "exec"]),
            "Usage: skiff container exec [OPTIONS] CONTAINER COMMAND [ARG...]"
        );
        assert_eq!(usage(&["top"]), "Usage: skiff top CONTAINER [ps OPTIONS]");
        assert!(usage(&["container", "cp"]).contains("skiff cp [OPTIONS] CONTAINER:SRC_PATH"));
    }

    #[test]
    fn shared_commands_parse_in_both_places() {
        for path in [&["skiff"][..], &["skiff", "container"][..]] {
            let mut args = path.to_vec();
            args.extend(["kill", "-s", "HUP", "c1"]);
            let cmd = parse(&args).command;
            let k = match cmd {
                Command::OfContainer(ContainerVerb::Kill(k))
                | Command::Container(ContainerCommand::Verb(ContainerVerb::Kill(k))) => k,
                other => panic!("not kill: {other:?}"),
            };
            assert_eq!(k.signal.as_deref(), Some("HUP"));
        }
        for path in [&["skiff"][..], &["skiff", "image"][..]] {
            let mut args = path.to_vec();
            args.extend(["tag", "a", "b"]);
            assert!(matches!(
                parse(&args).command,
                Command::OfImage(ImageVerb::Tag(_))
                    | Command::Image(ImageCommand::Verb(ImageVerb::Tag(_)))
            ));
        }
        assert!(matches!(
            parse(&["skiff", "image", "list"]).command,
            Command::Image(ImageCommand::Ls(_))
        ));
        assert!(matches!(
            parse(&["skiff", "container", "ps"]).command,
            Command::Container(ContainerCommand::Ls(_))
        ));
        // `remove` is `container rm`'s alias only, as in docker.
        assert!(Cli::parse_from_args(["skiff", "remove", "x"]).is_err());
        assert!(matches!(
            parse(&["skiff", "rm", "-f", "x"]).command,
            Command::OfContainer(ContainerVerb::Rm(RmArgs { force: true, .. }))
        ));
    }

    #[test]
    fn container_group_and_aliases() {
        assert!(matches!(
            parse(&["skiff", "container", "ls", "-a"]).command,
            Command::Container(ContainerCommand::Ls(_))
        ));
        assert!(matches!(
            parse(&["skiff", "container", "list"]).command,
            Command::Container(ContainerCommand::Ls(_))
        ));
        assert!(matches!(
            parse(&["skiff", "container", "remove", "x"]).command,
            Command::Container(ContainerCommand::Verb(ContainerVerb::Rm(_)))
        ));
        let Command::OfContainer(ContainerVerb::Stop(s)) =
            parse(&["skiff", "stop", "-t", "0", "a", "b"]).command
        else {
            panic!("not stop");
        };
        assert_eq!(s.timeout, Some(0));
        assert_eq!(s.containers, vec!["a", "b"]);
        let Command::OfContainer(ContainerVerb::Cp(c)) =
            parse(&["skiff", "cp", "-", "c:/tmp"]).command
        else {
            panic!("not cp");
        };
        assert_eq!(c.source, "-");
    }
}
