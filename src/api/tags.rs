//! `/v2/<name>/tags/list`: tags in lexical order, paginated with `n` and `last`.

use super::query::Query;
use super::responses::JsonPage;
use crate::error::Result;
use crate::oci::RepoName;
use crate::registry::Registry;

pub async fn list(registry: &Registry, repo: &RepoName, query: &Query) -> Result<JsonPage> {
    let n = query.page_size()?;
    let last = query.get("last").map(String::from);
    let page = registry.list_tags(repo, n, last).await?;
    let next_link = page
        .next
        .as_ref()
        .map(|last| format!("/v2/{repo}/tags/list?n={}&last={last}", page.items.len()));
    #[derive(serde::Serialize)]
    struct TagList<'a> {
        name: &'a str,
        tags: &'a [String],
    }
    let body = page.encoded(|page| {
        // Sized up front: growing by doubling costs page faults on a large list.
        let size = page.items.iter().map(|t| t.len() + 3).sum::<usize>() + repo.as_str().len();
        let mut out = Vec::with_capacity(size + 32);
        let list = TagList {
            name: repo.as_str(),
            tags: &page.items,
        };
        serde_json::to_writer(&mut out, &list)
            .map_err(|e| crate::error::Error::Internal(e.to_string()))?;
        Ok(out.into())
    })?;
    Ok(JsonPage {
        body,
        content_type: "application/json",
        next_link,
        extra: Vec::new(),
    })
}
