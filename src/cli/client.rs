//! The HTTP client the subcommands use: they call the same API as everyone
//! else, so they work against a remote registry.

use serde_json::Value;

use crate::error::{Error, Result};

/// Default registry URL for client subcommands.
pub const DEFAULT_URL: &str = "http://127.0.0.1:5000";

/// GETs `path` (with its query) from `base` and returns the body, or the
/// registry's error message.
pub async fn get(base: &str, path: &str) -> Result<String> {
    let url = format!("{}{path}", base.trim_end_matches('/'));
    let response = reqwest::get(&url)
        .await
        .map_err(|e| Error::Internal(format!("{url}: {e}")))?;
    let status = response.status();
    let body = response
        .text()
        .await
        .map_err(|e| Error::Internal(format!("{url}: {e}")))?;
    if status.is_success() {
        return Ok(body);
    }
    let message = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| {
            let e = &v["errors"][0];
            Some(format!(
                "{}: {}",
                e["code"].as_str()?,
                e["message"].as_str()?
            ))
        })
        .unwrap_or(body);
    Err(Error::Internal(format!("{status} from {url}: {message}")))
}

/// Splits `REPO:TAG` or `REPO@DIGEST` into the repository and the reference.
pub fn split_reference(s: &str) -> Result<(&str, &str)> {
    s.split_once('@')
        .or_else(|| s.rsplit_once(':'))
        .filter(|(repo, r)| !repo.is_empty() && !r.is_empty())
        .ok_or_else(|| {
            Error::Config(format!(
                "{s:?}: expected REPOSITORY:TAG or REPOSITORY@DIGEST"
            ))
        })
}
