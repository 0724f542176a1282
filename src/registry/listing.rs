//! Tags, catalog and referrers, answered from the metadata database.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

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

/// A page of tags: repository, `last`, page size.
type TagPageKey = (RepoName, Option<String>, usize);

/// Pages of tags kept in memory at most (each up to `max_page_size` names).
const TAG_PAGES_KEPT: usize = 16;

/// Pages of tag names kept in memory, each with the write generation and the
/// repository's tag-names version it was read under (see
/// [`crate::meta::ListingMeta::tag_names_version`]). A page is served as it
/// is while no write has happened since; after writes, once the version is
/// seen to stand: a tag moved, or a write elsewhere, leaves the names as they
/// were.
#[derive(Debug, Default)]
pub struct TagPages {
    pages: Mutex<HashMap<TagPageKey, KeptPage>>,
}

#[derive(Debug, Clone)]
struct KeptPage {
    page: Arc<Page>,
    generation: u64,
    version: u64,
}

impl TagPages {
    fn get(&self, key: &TagPageKey) -> Option<KeptPage> {
        self.pages.lock().ok()?.get(key).cloned()
    }

    /// Keeps a page; emptied first when full.
    fn keep(&self, key: TagPageKey, kept: KeptPage) {
        let Ok(mut pages) = self.pages.lock() else {
            return;
        };
        if pages.len() >= TAG_PAGES_KEPT && !pages.contains_key(&key) {
            pages.clear();
        }
        pages.insert(key, kept);
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
        // Read before anything else: a write after it makes the next
        // request look again.
        let generation = self.meta.generation();
        let key = (repo.clone(), last, n);
        if let Some(kept) = self.tag_pages.get(&key) {
            if kept.generation == generation {
                return Ok(kept.page);
            }
            let r = repo.clone();
            if self.meta(move |m| m.tag_names_version(&r)).await? == Some(kept.version) {
                let page = Arc::clone(&kept.page);
                self.tag_pages.keep(key, KeptPage { generation, ..kept });
                return Ok(page);
            }
        }
        let (r, last) = (repo.clone(), key.1.clone());
        let (tags, version) = self
            .meta(move |m| m.tags(&r, last.as_deref(), n + 1))
            .await?
            .ok_or_else(|| Error::NameUnknown(repo.to_string()))?;
        let page = Arc::new(Page::from_overfetch(tags, n));
        self.tag_pages.keep(
            key,
            KeptPage {
                page: Arc::clone(&page),
                generation,
                version,
            },
        );
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
