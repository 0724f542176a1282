//! `berth gc [--dry-run]`: run garbage collection on a running registry now.

use serde_json::json;

use super::client::{self, DEFAULT_URL};
use crate::error::Result;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Report what would be freed without removing anything.
    #[arg(long)]
    dry_run: bool,
    #[arg(long, env = "BERTH_URL", default_value = DEFAULT_URL)]
    url: String,
}

pub async fn run(args: Args) -> Result<()> {
    let path = if args.dry_run {
        "/api/v1/gc?dry_run=true"
    } else {
        "/api/v1/gc"
    };
    client::print_json(&client::post(&args.url, path, &json!({})).await?);
    Ok(())
}
