//! `/v2/_catalog`: repository names in lexical order, paginated.

use super::query::Query;
use super::responses::JsonPage;
use crate::auth::{Access, Action};
use crate::error::Result;
use crate::registry::Registry;

/// Lists only the repositories the caller may pull.
pub async fn list(registry: &Registry, access: &Access, query: &Query) -> Result<JsonPage> {
    let n = query.page_size()?;
    let last = query.get("last").map(String::from);
    let page = registry
        .list_repositories(n, last, &|r| access.allows(r, Action::Pull))
        .await?;
    let next_link = page
        .next
        .as_ref()
        .map(|last| format!("/v2/_catalog?n={}&last={last}", page.items.len()));
    Ok(JsonPage {
        body: serde_json::json!({ "repositories": page.items })
            .to_string()
            .into(),
        content_type: "application/json",
        next_link,
        extra: Vec::new(),
    })
}
