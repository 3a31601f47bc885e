#![recursion_limit = "256"]
//! skiff-agent: the engine. It serves the Docker Engine API and keeps images, containers and
//! networks. It runs natively on a Linux host, or as PID 1 in skiff's VM.

pub mod api;
pub mod build;
pub mod containers;
pub mod errdefs;
pub mod images;
pub mod mountinfo;
pub mod network;
pub mod openat2;
pub mod state_root;
pub mod vm;
pub mod volumes;
