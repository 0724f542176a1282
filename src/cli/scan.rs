//! `berth scan REPO:TAG` (or `REPO@DIGEST`): scan a version's pickles now on
//! a running registry, wait for the report and print it; fails when the
//! verdict is malformed or dangerous. `berth scan --all` queues every
//! version of the store that has no report yet.

use serde_json::{Value, json};

use super::client::{self, DEFAULT_URL};
use crate::error::{Error, Result};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The version: REPOSITORY:TAG or REPOSITORY@DIGEST.
    #[arg(required_unless_present = "all")]
    version: Option<String>,
    /// Scan again even if the version has a report.
    #[arg(long)]
    force: bool,
    /// Queue every version in the store that has no report (administrators).
    #[arg(long, conflicts_with = "version")]
    all: bool,
    /// Print the whole report as JSON.
    #[arg(long)]
    json: bool,
    #[arg(long, env = "BERTH_URL", default_value = DEFAULT_URL)]
    url: String,
}

pub async fn run(args: Args) -> Result<()> {
    let Some(version) = args.version.as_deref() else {
        client::print_json(&client::post(&args.url, "/api/v1/scan", &json!({})).await?);
        return Ok(());
    };
    let (repo, reference) = client::split_reference(version)?;
    let path = format!("/api/v1/repositories/{repo}/scan");
    let body = client::post(
        &args.url,
        &path,
        &json!({ "reference": reference, "force": args.force }),
    )
    .await?;
    let report: Value = serde_json::from_str(&body)
        .map_err(|e| Error::Internal(format!("unexpected answer: {e}")))?;
    if args.json {
        client::print_json(&body);
    } else {
        print_report(version, &report);
    }
    match report["verdict"].as_str() {
        Some("malformed" | "dangerous") => Err(Error::Internal(format!(
            "{version}: the scan's verdict is {}",
            report["verdict"].as_str().unwrap_or_default()
        ))),
        _ => Ok(()),
    }
}

fn print_report(version: &str, report: &Value) {
    let s = |v: &Value| v.as_str().unwrap_or("-").to_owned();
    println!(
        "{version} ({}): {}",
        s(&report["subject"]),
        s(&report["verdict"])
    );
    for layer in report["layers"].as_array().into_iter().flatten() {
        let title = layer["title"]
            .as_str()
            .map(|t| format!(" {t}"))
            .unwrap_or_default();
        println!(
            "  layer {}{title}: {} ({} other files)",
            s(&layer["digest"]),
            s(&layer["verdict"]),
            layer["otherFiles"]
        );
        for file in layer["files"].as_array().into_iter().flatten() {
            let imports: Vec<String> = file["imports"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|i| i["class"] != "clean")
                .map(|i| format!("{}.{} ({})", s(&i["module"]), s(&i["name"]), s(&i["class"])))
                .collect();
            let problem = file["problem"]
                .as_str()
                .map(|p| format!(": {p}"))
                .unwrap_or_default();
            println!(
                "    {} [{}] {}{problem}{}",
                s(&file["path"]),
                s(&file["format"]),
                s(&file["verdict"]),
                if imports.is_empty() {
                    String::new()
                } else {
                    format!(", imports {}", imports.join(", "))
                }
            );
        }
        if let Some(why) = layer["incomplete"].as_str() {
            println!("    {why}");
        }
    }
}
