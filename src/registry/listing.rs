//! Tags, catalog and referrers, answered from the metadata database.

use std::sync::Arc;

use super::Registry;
use crate::error::{Error, Result};
use crate::meta::Referrer;
use crate::oci::{Digest, RepoName};

/// One page of a listing, with the key to continue after when there is more.
#[derive(Debug, Clone)]
pub struct Page {
    pub items: Vec<String>,
    /// The `last` to ask with for the next page; `None` at the end.
    pub next: Option<String>,
    /// The page as answered, once encoded (a cached page is encoded once).
    encoded: std::sync::OnceLock<bytes::Bytes>,
}

impl Page {
    fn from_overfetch(mut items: Vec<String>, n: usize) -> Page {
        let next = if items.len() > n {
            items.truncate(n);
            items.last().cloned()
        } else {
            None
        };
        Page {
            items,
            next,
            encoded: std::sync::OnceLock::new(),
        }
    }

    /// The page encoded by `encode`, which runs once per page.
    pub fn encoded(
        &self,
        encode: impl FnOnce(&Page) -> Result<bytes::Bytes>,
    ) -> Result<bytes::Bytes> {
        if let Some(bytes) = self.encoded.get() {
            return Ok(bytes.clone());
        }
        let bytes = encode(self)?;
        Ok(self.encoded.get_or_init(|| bytes).clone())
    }
}

impl Registry {
    /// The page size to use for a requested `n`: capped, and everything (up
    /// to the cap) when absent.
    fn page_size(&self, n: Option<usize>) -> usize {
        n.unwrap_or(self.settings.max_page_size)
            .min(self.settings.max_page_size)
    }

    /// Tags of `repo` in lexical order after `last`.
    pub async fn list_tags(
        &self,
        repo: &RepoName,
        n: Option<usize>,
        last: Option<String>,
    ) -> Result<Arc<Page>> {
        let n = self.page_size(n);
        let generation = self.meta.generation();
        let key = (repo.clone(), last, n);
        if let Some(page) = self.tag_pages.get(&key, generation) {
            return Ok(page);
        }
        let (r, last) = (repo.clone(), key.1.clone());
        let tags = self
            .meta(move |m| m.tags(&r, last.as_deref(), n + 1))
            .await?
            .ok_or_else(|| Error::NameUnknown(repo.to_string()))?;
        let page = Arc::new(Page::from_overfetch(tags, n));
        self.tag_pages.insert(key, generation, Arc::clone(&page));
        Ok(page)
    }

    /// Repository names in lexical order after `last`, only those `visible` accepts.
    pub async fn list_repositories(
        &self,
        n: Option<usize>,
        last: Option<String>,
        visible: &(dyn Fn(&RepoName) -> bool + Send + Sync),
    ) -> Result<Page> {
        let n = self.page_size(n);
        let mut shown = Vec::new();
        let mut after = last;
        loop {
            let a = after.clone();
            let batch = self.meta(move |m| m.catalog(a.as_deref(), n + 1)).await?;
            let exhausted = batch.len() <= n;
            after = batch.last().cloned();
            shown.extend(
                batch
                    .into_iter()
                    .filter(|name| RepoName::parse(name).is_ok_and(|r| visible(&r))),
            );
            if shown.len() > n || exhausted {
                break;
            }
        }
        Ok(Page::from_overfetch(shown, n))
    }

    /// Manifests in `repo` whose subject is `subject`, optionally filtered by
    /// artifact type. An unknown subject has no referrers: an empty list.
    pub async fn list_referrers(
        &self,
        repo: &RepoName,
        subject: &Digest,
        artifact_type: Option<String>,
    ) -> Result<Vec<Referrer>> {
        let (r, s) = (repo.clone(), subject.clone());
        self.meta(move |m| m.referrers(&r, &s, artifact_type.as_deref()))
            .await
    }
}
