//! What the CLI and the agent share: docker's way of writing sizes and durations.

pub mod units;
