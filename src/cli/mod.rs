//! The `berth` command line: one file per subcommand.

mod client;
mod lineage;
mod serve;

use clap::{Parser, Subcommand};

use crate::error::Result;

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
}

impl Cli {
    pub async fn run(self) -> Result<()> {
        match self.command {
            Command::Serve(args) => serve::run(args).await,
            Command::Lineage(args) => lineage::run(args).await,
        }
    }
}
