//! `berth probe [--path /readyz]`: asks a running registry whether it is
//! ready (or healthy), for container health checks, where no curl is at
//! hand. Exits non-zero, with the answer, unless it is a 2xx.

use super::client::DEFAULT_URL;
use crate::error::{Error, Result};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The probe to ask: /readyz or /healthz.
    #[arg(long, default_value = "/readyz")]
    path: String,
    #[arg(long, env = "BERTH_URL", default_value = DEFAULT_URL)]
    url: String,
}

pub async fn run(args: Args) -> Result<()> {
    let url = format!("{}{}", args.url.trim_end_matches('/'), args.path);
    let answer = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .build()
        .map_err(|e| Error::Internal(e.to_string()))?
        .get(&url)
        .send()
        .await
        .map_err(|e| Error::Internal(format!("{url}: {}", e.without_url())))?;
    let status = answer.status();
    let text = answer.text().await.unwrap_or_default();
    if status.is_success() {
        println!("{}", text.trim_end());
        Ok(())
    } else {
        Err(Error::Internal(format!(
            "{url} answered {status}: {}",
            text.trim_end()
        )))
    }
}
