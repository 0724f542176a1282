//! The `berth` command line: one file per subcommand.

mod client;
mod copy_metadata;
mod diff;
mod fsck;
mod gc;
mod history;
mod lineage;
mod log;
mod probe;
mod promote;
mod rollback;
mod scan;
mod serve;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::error::Result;

/// Where the configuration and data come from, for subcommands that open a
/// data directory themselves.
#[derive(Debug, clap::Args)]
pub struct ConfigArgs {
    /// Data directory [default: ./berth-data].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// TOML configuration file.
    #[arg(long)]
    config: Option<PathBuf>,
}

impl ConfigArgs {
    /// Defaults, file, `BERTH_*` environment, then `--data-dir`.
    pub fn load(&self) -> Result<Config> {
        let mut config = Config::load(self.config.as_deref(), std::env::vars())?;
        if let Some(dir) = &self.data_dir {
            config.data_dir.clone_from(dir);
        }
        Ok(config)
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "berth",
    version,
    about = "A registry for models and images, with lineage and release history"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the registry.
    Serve(serve::Args),
    /// Show what a model version came from, or what was built from it.
    Lineage(lineage::Args),
    /// Point an environment tag at a version, through the promotion gates.
    Promote(promote::Args),
    /// Move an environment tag back to its previous version.
    Rollback(rollback::Args),
    /// Show every move of a tag.
    History(history::Args),
    /// Release notes between two versions.
    Diff(diff::Args),
    /// Scan a version's pickles on a running registry and print the report.
    Scan(scan::Args),
    /// Run garbage collection on a running registry.
    Gc(gc::Args),
    /// Check (and repair) a data directory.
    Fsck(fsck::Args),
    /// Ask a running registry whether it is ready (for health checks).
    Probe(probe::Args),
    /// Copy the SQLite metadata of a data directory into PostgreSQL.
    CopyMetadata(copy_metadata::Args),
}

impl Cli {
    pub async fn run(self) -> Result<()> {
        match self.command {
            Command::Serve(args) => serve::run(args).await,
            Command::Lineage(args) => lineage::run(args).await,
            Command::Promote(args) => promote::run(args).await,
            Command::Rollback(args) => rollback::run(args).await,
            Command::History(args) => history::run(args).await,
            Command::Diff(args) => diff::run(args).await,
            Command::Scan(args) => scan::run(args).await,
            Command::Gc(args) => gc::run(args).await,
            Command::Fsck(args) => fsck::run(args).await,
            Command::Probe(args) => probe::run(args).await,
            Command::CopyMetadata(args) => copy_metadata::run(args).await,
        }
    }
}
