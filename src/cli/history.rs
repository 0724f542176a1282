//! `berth history REPO TAG`: every move of a tag, newest first, or (`--at`)
//! what it pointed at at a given time.

use serde_json::Value;

use super::client::{self, DEFAULT_URL};
use crate::error::{Error, Result};

#[derive(Debug, clap::Args)]
pub struct Args {
    repository: String,
    tag: String,
    /// How many moves to show.
    #[arg(long, default_value_t = 20)]
    n: usize,
    /// An RFC 3339 time: show what the tag pointed at then.
    #[arg(long)]
    at: Option<String>,
    #[arg(long, env = "BERTH_URL", default_value = DEFAULT_URL)]
    url: String,
}

pub async fn run(args: Args) -> Result<()> {
    let base = format!(
        "/api/v1/repositories/{}/tags/{}/history",
        args.repository, args.tag
    );
    if let Some(at) = &args.at {
        let at = percent_encoding::utf8_percent_encode(at, percent_encoding::NON_ALPHANUMERIC);
        client::print_json(&client::get(&args.url, &format!("{base}?at={at}")).await?);
        return Ok(());
    }
    let body = client::get(&args.url, &format!("{base}?n={}", args.n)).await?;
    let v: Value = serde_json::from_str(&body)
        .map_err(|e| Error::Internal(format!("unexpected answer: {e}")))?;
    let s = |x: &Value| x.as_str().unwrap_or("-").to_owned();
    for e in v["history"].as_array().into_iter().flatten() {
        println!(
            "{}  {:<16} {} -> {}  {}{}",
            s(&e["at"]),
            s(&e["operation"]),
            s(&e["from"]),
            s(&e["to"]),
            e["actor"]
                .as_str()
                .map(|a| format!("by {a} "))
                .unwrap_or_default(),
            e["reason"]
                .as_str()
                .map(|r| format!("({r})"))
                .unwrap_or_default(),
        );
    }
    Ok(())
}
