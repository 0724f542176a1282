//! `berth promote REPO REF --to TAG`: point an environment tag at a version,
//! through the registry's gates.

use serde_json::json;

use super::client::{self, DEFAULT_URL};
use crate::error::Result;

#[derive(Debug, clap::Args)]
pub struct Args {
    repository: String,
    /// The version to promote: a tag or a digest.
    reference: String,
    /// The environment tag to move (staging, production, ...).
    #[arg(long)]
    to: String,
    #[arg(long)]
    reason: Option<String>,
    /// Only move the tag if it points at this digest now.
    #[arg(long)]
    expect: Option<String>,
    #[arg(long, env = "BERTH_URL", default_value = DEFAULT_URL)]
    url: String,
}

pub async fn run(args: Args) -> Result<()> {
    let body = json!({ "reference": args.reference, "to": args.to, "reason": args.reason, "expect": args.expect });
    let path = format!("/api/v1/repositories/{}/promote", args.repository);
    client::print_move(&client::post(&args.url, &path, &body).await?)
}
