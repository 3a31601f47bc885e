pub mod builder;
pub mod context;
pub mod copy;
mod copy_direct;
mod copy_step;
pub mod dockerfile;
pub mod instructions;
mod run_step;
