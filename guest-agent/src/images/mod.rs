//! Images: references, the registry client, pulling, unpacking layers and the store.

pub mod archive;
pub mod blockgzip;
pub mod check;
pub mod child;
pub mod diff;
pub mod holds;
pub mod import;
pub mod ingest;
pub mod model;
pub mod progress;
pub mod pull;
pub mod push;
pub mod reference;
pub mod registry;
pub mod store;
pub mod tarsplit;
pub mod tree;
pub mod unpack;
