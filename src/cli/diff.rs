//! `berth diff REPO FROM TO`: release notes between two versions.

use super::client::{self, DEFAULT_URL};
use crate::error::Result;

#[derive(Debug, clap::Args)]
pub struct Args {
    repository: String,
    /// A tag or digest.
    from: String,
    /// A tag or digest.
    to: String,
    #[arg(long, env = "BERTH_URL", default_value = DEFAULT_URL)]
    url: String,
}

pub async fn run(args: Args) -> Result<()> {
    let path = format!(
        "/api/v1/repositories/{}/diff?from={}&to={}",
        args.repository, args.from, args.to
    );
    client::print_json(&client::get(&args.url, &path).await?);
    Ok(())
}
