//! The HTTP client the subcommands use: they call the same API as everyone
//! else, so they work against a remote registry.

use serde_json::Value;

use crate::error::{Error, Result};

/// Default registry URL for client subcommands.
pub const DEFAULT_URL: &str = "http://127.0.0.1:5000";

/// GETs `path` (with its query) from `base` and returns the body, or the
/// registry's error message.
pub async fn get(base: &str, path: &str) -> Result<String> {
    send(base, path, None).await
}

/// POSTs a JSON body to `path` and returns the answer's body.
pub async fn post(base: &str, path: &str, body: &Value) -> Result<String> {
    send(base, path, Some(body)).await
}

async fn send(base: &str, path: &str, body: Option<&Value>) -> Result<String> {
    let url = format!("{}{path}", base.trim_end_matches('/'));
    let client = reqwest::Client::new();
    let request = match body {
        None => client.get(&url),
        Some(b) => client
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(b.to_string()),
    };
    let response = request
        .send()
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

/// Prints a JSON answer indented.
pub fn print_json(body: &str) {
    match serde_json::from_str::<Value>(body) {
        Ok(v) => println!(
            "{}",
            serde_json::to_string_pretty(&v).unwrap_or_else(|_| body.to_owned())
        ),
        Err(_) => println!("{body}"),
    }
}

/// Prints what a promote or rollback did, with its release notes in brief.
pub fn print_move(body: &str) -> Result<()> {
    let v: Value = serde_json::from_str(body)
        .map_err(|e| Error::Internal(format!("unexpected answer: {e}")))?;
    let s = |x: &Value| x.as_str().unwrap_or("nothing").to_owned();
    println!(
        "{} {}:{}: {} -> {}",
        s(&v["operation"]),
        s(&v["repository"]),
        s(&v["tag"]),
        s(&v["from"]),
        s(&v["to"])
    );
    let d = &v["diff"];
    if d.is_object() {
        let n = |x: &Value| x.as_array().map_or(0, Vec::len);
        println!(
            "  layers: +{} -{} ({} bytes added, {} removed)",
            n(&d["layers"]["added"]),
            n(&d["layers"]["removed"]),
            d["layers"]["bytesAdded"],
            d["layers"]["bytesRemoved"]
        );
        if let Some(metrics) = d["metrics"].as_object() {
            for (name, m) in metrics {
                println!(
                    "  {name}: {} -> {} (delta {})",
                    m["from"], m["to"], m["delta"]
                );
            }
        }
    }
    Ok(())
}
