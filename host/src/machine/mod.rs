//! Where the agent runs. Today: natively on this Linux host.

pub mod native;
