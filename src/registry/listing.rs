//! Tags, catalog and referrers, answered from the metadata database.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::Registry;
use crate::error::{Error, Result};
use crate::meta::{ListingArea, Referrer, RepoSummary, TagDetail, TagNameChange, TagNameChanges};
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

    /// This page (the first `n` names after `last`) once `changes` are made
    /// to the names, or `None` when that takes names it does not hold (a
    /// name deleted from a full page, whose place the next page's first
    /// name takes).
    fn after(self, last: Option<&str>, n: usize, changes: Vec<TagNameChange>) -> Option<Page> {
        let Page {
            mut items,
            mut next,
            ..
        } = self;
        for change in changes {
            let name = change.name.as_str();
            let before = last.is_some_and(|last| name <= last);
            let beyond = next.as_deref().is_some_and(|end| name > end);
            if before || beyond {
                continue;
            }
            match (
                items.binary_search_by(|i| i.as_str().cmp(name)),
                change.present,
            ) {
                (Err(at), true) => {
                    items.insert(at, change.name);
                    if items.len() > n {
                        items.truncate(n);
                        next = items.last().cloned();
                    }
                }
                (Ok(at), false) if next.is_none() => {
                    items.remove(at);
                }
                _ => return None,
            }
        }
        Some(Page {
            items,
            next,
            encoded: std::sync::OnceLock::new(),
        })
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
/// [`crate::meta::ListingMeta::tag_name_changes`]). A page is served as it
/// is while no write has happened since; after writes, the names created
/// and deleted since its version are read and made to it (none when a tag
/// moved or the write was elsewhere).
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

    /// Takes a page out, to change it (kept again when changed).
    fn take(&self, key: &TagPageKey) -> Option<KeptPage> {
        self.pages.lock().ok()?.remove(key)
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
            if let Some(page) = self.catch_up(&key, kept, generation).await? {
                return Ok(page);
            }
        }
        let (r, last) = (repo.clone(), key.1.clone());
        let (tags, version) = self
            .meta(move |m: &ListingArea| m.tags(&r, last.as_deref(), n + 1))
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

    /// A kept page brought up to date with the tag names created and deleted
    /// since its version, and kept again under `generation`; `None` when that
    /// takes reading the page again.
    async fn catch_up(
        &self,
        key: &TagPageKey,
        kept: KeptPage,
        generation: u64,
    ) -> Result<Option<Arc<Page>>> {
        let since = kept.version;
        let now = match self.meta.tag_name_changes_now(&key.0, since) {
            Some(read) => read?,
            None => {
                let repo = key.0.clone();
                self.meta(move |m: &ListingArea| m.tag_name_changes(&repo, since))
                    .await?
            }
        };
        let Some(TagNameChanges {
            version,
            changes: Some(changes),
        }) = now
        else {
            return Ok(None);
        };
        let page = if changes.is_empty() {
            Some(kept.page)
        } else {
            // Taken out, the page is most often no one else's: it changes in
            // place rather than as a copy.
            drop(kept);
            self.tag_pages
                .take(key)
                .filter(|kept| kept.version == since)
                .and_then(|kept| {
                    Arc::unwrap_or_clone(kept.page).after(key.1.as_deref(), key.2, changes)
                })
                .map(Arc::new)
        };
        Ok(page.inspect(|page| {
            let kept = KeptPage {
                page: Arc::clone(page),
                generation,
                version,
            };
            self.tag_pages.keep(key.clone(), kept);
        }))
    }

    /// Repository names in lexical order after `last`, only those `visible` accepts.
    pub async fn list_repositories(
        &self,
        n: Option<usize>,
        last: Option<String>,
        visible: &(dyn Fn(&RepoName) -> bool + Send + Sync),
    ) -> Result<Page> {
        let n = self.page_size(n);
        let read = |m: &ListingArea, after: Option<&str>, k| m.catalog(after, k);
        let shown = self
            .visible_repositories(n, last, visible, read, |r| r)
            .await?;
        Ok(Page::from_overfetch(
            shown.iter().map(RepoName::to_string).collect(),
            n,
        ))
    }

    /// Repositories whose names contain `contains`, after `last`, only those
    /// `visible` accepts, with their counts, size and newest push; and the
    /// name to go on after when there are more.
    pub async fn repository_summaries(
        &self,
        contains: String,
        n: Option<usize>,
        last: Option<String>,
        visible: &(dyn Fn(&RepoName) -> bool + Send + Sync),
    ) -> Result<(Vec<RepoSummary>, Option<String>)> {
        let n = self.page_size(n);
        let read =
            move |m: &ListingArea, after: Option<&str>, k| m.repositories(&contains, after, k);
        let mut shown = self
            .visible_repositories(n, last, visible, read, |s| &s.name)
            .await?;
        let next = (shown.len() > n).then(|| {
            shown.truncate(n);
            shown.last().map(|s| s.name.to_string())
        });
        Ok((shown, next.flatten()))
    }

    /// Reads repositories in batches after `last` with `read` until more
    /// than `n` of them are `visible` or there are no more: a page cut only
    /// after what the caller may not see is left out.
    async fn visible_repositories<T: Send + 'static>(
        &self,
        n: usize,
        mut after: Option<String>,
        visible: &(dyn Fn(&RepoName) -> bool + Send + Sync),
        read: impl Fn(&ListingArea, Option<&str>, usize) -> Result<Vec<T>> + Clone + Send + 'static,
        name: fn(&T) -> &RepoName,
    ) -> Result<Vec<T>> {
        let mut shown = Vec::new();
        loop {
            let (a, read) = (after.clone(), read.clone());
            let batch = self
                .meta(move |m: &ListingArea| read(m, a.as_deref(), n + 1))
                .await?;
            let exhausted = batch.len() <= n;
            after = batch.last().map(|t| name(t).to_string());
            shown.extend(batch.into_iter().filter(|t| visible(name(t))));
            if shown.len() > n || exhausted {
                return Ok(shown);
            }
        }
    }

    /// Tags of `repo` after `last` with what each points at (NAME_UNKNOWN
    /// for an unknown repository).
    pub async fn tag_details(
        &self,
        repo: &RepoName,
        n: Option<usize>,
        last: Option<String>,
    ) -> Result<Vec<TagDetail>> {
        let n = self.page_size(n);
        let (r, first) = (repo.clone(), last.is_none());
        let tags = self
            .meta(move |m: &ListingArea| m.tag_details(&r, last.as_deref(), n))
            .await?;
        if tags.is_empty() && first {
            // No tags, or no repository: the listing says which.
            self.list_tags(repo, Some(1), None).await?;
        }
        Ok(tags)
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
        self.meta(move |m: &ListingArea| m.referrers(&r, &s, artifact_type.as_deref()))
            .await
    }
}
