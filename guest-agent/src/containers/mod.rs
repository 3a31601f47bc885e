//! Containers: their records, specs, confinement and lifecycle.

pub mod archive;
pub mod cgroup_prime;
pub mod cgroup_ro;
pub mod engine;
pub mod error;
pub mod events;
pub mod exec;
pub mod follow;
pub mod health;
pub mod links;
pub mod logs;
pub mod mounts;
pub mod names;
pub mod process;
pub mod record;
pub mod rootfs;
pub mod security;
pub mod security_opt;
pub mod shim;
pub mod sockpath;
pub mod spec;
pub mod tty;
pub mod user;

pub use engine::{Container, Containers, Signal, WaitCondition};
pub use error::ContainerError;
