//! `/v2/<name>/referrers/<digest>`: an image index of the manifests whose
//! subject is the digest, filtered by `artifactType` when asked.

use axum::http::HeaderValue;
use serde_json::{Map, Value, json};

use super::query::Query;
use super::responses::{JsonPage, OCI_FILTERS_APPLIED};
use crate::error::Result;
use crate::oci::media_type::OCI_INDEX;
use crate::oci::{Digest, RepoName};
use crate::registry::Registry;

pub async fn list(
    registry: &Registry,
    repo: &RepoName,
    subject: Digest,
    query: &Query,
) -> Result<JsonPage> {
    let filter = query.get("artifactType").map(str::to_owned);
    let referrers = registry
        .list_referrers(repo, &subject, filter.clone())
        .await?;
    let manifests: Vec<Value> = referrers
        .into_iter()
        .map(|r| {
            let mut d = Map::new();
            d.insert("mediaType".into(), json!(r.media_type));
            d.insert("digest".into(), json!(r.digest.to_string()));
            d.insert("size".into(), json!(r.size));
            if let Some(t) = r.artifact_type {
                d.insert("artifactType".into(), json!(t));
            }
            if !r.annotations.is_empty() {
                d.insert("annotations".into(), json!(r.annotations));
            }
            Value::Object(d)
        })
        .collect();
    let extra = match filter {
        Some(_) => vec![(
            OCI_FILTERS_APPLIED,
            HeaderValue::from_static("artifactType"),
        )],
        None => Vec::new(),
    };
    Ok(JsonPage {
        body: json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests })
            .to_string()
            .into(),
        content_type: OCI_INDEX,
        next_link: None,
        extra,
    })
}
