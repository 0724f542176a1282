//! Berth: an OCI distribution registry for models and images, with lineage and
//! release history.
//!
//! Layers, dependencies pointing down only:
//! ```text
//! cli            parse arguments, load config, run
//! server         assemble storage, metadata and router; shutdown
//! config         typed configuration, gathering each layer's own section
//! api            axum: /v2 endpoint parser and thin handlers
//! auth           who is asking (htpasswd), and the rules over what they may do
//! registry       domain operations: push, pull, mount, delete, list
//! storage, meta  bytes on local disk or object storage; metadata in SQLite
//!                or PostgreSQL
//! oci            digests, names, references, manifests
//! error, time,   one error type; durations and instants as text;
//! glob, metrics, name patterns; what the registry counts (Prometheus);
//! secret         credentials that never print
//! ```

pub mod api;
pub mod auth;
pub mod cli;
pub mod config;
pub mod error;
pub mod glob;
pub mod meta;
pub mod metrics;
pub mod oci;
pub mod registry;
pub mod secret;
pub mod server;
pub mod storage;
pub mod time;

pub use error::{Error, Result};

/// Makes ring the process's TLS crypto provider (HTTPS to object storage and
/// webhooks); the first call wins, later ones do nothing.
pub fn install_crypto_provider() {
    let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
}
