pub mod dockerfile;
pub mod instructions;
pub mod copy;
