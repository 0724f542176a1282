//! `berth rollback REPO TAG`: move an environment tag back to its previous
//! version (or `--to` a digest).

use serde_json::json;

use super::client::{self, DEFAULT_URL};
use crate::error::Result;

#[derive(Debug, clap::Args)]
pub struct Args {
    repository: String,
    tag: String,
    /// The digest to go back to; by default the version before the current one.
    #[arg(long)]
    to: Option<String>,
    #[arg(long)]
    reason: Option<String>,
    #[arg(long, env = "BERTH_URL", default_value = DEFAULT_URL)]
    url: String,
}

pub async fn run(args: Args) -> Result<()> {
    let body = json!({ "tag": args.tag, "to": args.to, "reason": args.reason });
    let path = format!("/api/v1/repositories/{}/rollback", args.repository);
    client::print_move(&client::post(&args.url, &path, &body).await?)
}
