//! Pickle scans: `GET /api/v1/repositories/{repository}/manifests/{reference}/scan`
//! (the latest report; 202 while one is on its way), `POST
//! /api/v1/repositories/{repository}/scan` (scan one version now and wait),
//! `POST /api/v1/scan` (queue every version of the store that has none).

use axum::Json;
use axum::body::Body;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::json_body;
use crate::error::{Error, Result};
use crate::oci::{Digest, Reference, RepoName};
use crate::registry::Registry;
use crate::registry::scan::{ScanReport, ScanStatus};

/// The report manifest's digest, beside the document.
const REPORT_HEADER: &str = "Berth-Scan-Report";

pub async fn report(registry: &Registry, repo: RepoName, reference: Reference) -> Result<Response> {
    let digest = registry.stat_manifest(&repo, &reference).await?.digest;
    match registry.scan_status(&repo, &digest).await? {
        ScanStatus::Done(report, at) => Ok(with_report(*report, &at)),
        ScanStatus::Pending => Ok((
            StatusCode::ACCEPTED,
            Json(json!({ "status": "pending", "subject": digest.to_string() })),
        )
            .into_response()),
        ScanStatus::Absent => Err(Error::ScanUnknown(reference.in_repo(&repo))),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScanRequest {
    reference: String,
    /// Scan again even if a report is there.
    #[serde(default)]
    force: bool,
}

pub async fn run(registry: &Registry, repo: RepoName, body: Body) -> Result<Response> {
    let req: ScanRequest = json_body(body).await?;
    let reference = Reference::parse(&req.reference)?;
    let digest = registry.stat_manifest(&repo, &reference).await?.digest;
    let (at, report) = registry.scan(&repo, &digest, req.force).await?;
    Ok(with_report(report, &at))
}

pub async fn all(registry: &Registry) -> Result<Response> {
    let queued = registry.queue_unscanned().await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "queued": queued }))).into_response())
}

fn with_report(report: ScanReport, at: &Digest) -> Response {
    let mut response = Json(report).into_response();
    if let Ok(v) = HeaderValue::from_str(&at.to_string()) {
        response.headers_mut().insert(REPORT_HEADER, v);
    }
    response
}
