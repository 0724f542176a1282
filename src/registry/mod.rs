//! The domain operations of a registry: push, pull, mount, delete, list.
//!
//! `Registry` writes bytes to the [`BlobStore`], verifies them, and only then
//! commits metadata through the [`MetaStore`], so that nothing is visible before
//! it is whole. No HTTP types here.

pub mod blobs;
pub mod events;
pub mod fsck;
pub mod gc;
mod hashing;
pub mod lineage;
pub mod listing;
pub mod manifest_cache;
pub mod manifests;
mod observe;
pub mod release_notes;
pub mod releases;
pub mod scan;
pub mod uploads;

use std::sync::Arc;

use tokio::sync::Notify;

/// Who did something and why; re-exported so that the HTTP layer need not reach into `meta`.
pub use crate::meta::{Actor, Event, HistoryEntry};

use crate::error::{Error, Result};
use crate::meta::{Area, MetaStore, StoredManifest};
use crate::oci::{Reference, RepoName};
use crate::storage::BlobStore;
use manifest_cache::GenerationCache;

/// Behaviour switches of the registry, from the `[registry]` config section.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Allow DELETE of manifests, tags and blobs (405 UNSUPPORTED when off).
    pub delete_enabled: bool,
    /// Largest manifest accepted, in bytes (413 beyond).
    pub max_manifest_bytes: u64,
    /// Cap on `n` for tag, catalog and referrers pages.
    pub max_page_size: usize,
    /// Mount a blob without `from` when another repository holds it.
    pub auto_mount: bool,
    /// Smallest chunk a client should send, advertised as `OCI-Chunk-Min-Length`
    /// (raised to the storage backend's minimum part size).
    pub chunk_min_length: u64,
    /// Immutable tags, promotion gates and rollback policies.
    pub releases: releases::ReleasePolicy,
    /// What garbage collection may remove.
    pub gc: crate::meta::GcPolicy,
    /// Pickle scanning: when, how much, and what it refuses.
    pub scan: scan::ScanPolicy,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            delete_enabled: true,
            max_manifest_bytes: 4 * 1024 * 1024,
            max_page_size: 10_000,
            auto_mount: true,
            chunk_min_length: 0,
            releases: releases::ReleasePolicy::default(),
            gc: crate::meta::GcPolicy {
                grace_ms: 24 * 3_600_000,
                keep_history: 10,
                delete_untagged: false,
                batch: 500,
                upload_ttl_ms: 24 * 3_600_000,
            },
            scan: scan::ScanPolicy::default(),
        }
    }
}

/// Manifest look-ups kept in memory at most.
const LOOKUPS_KEPT: usize = 16 * 1024;

/// How long an operation waits for garbage collection to release content.
const BUSY_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Clone)]
pub struct Registry {
    blobs: BlobStore,
    meta: Arc<dyn MetaStore>,
    settings: Arc<Settings>,
    /// Woken whenever events are appended, for webhook delivery.
    events: Arc<Notify>,
    /// Held while a garbage collection runs.
    gc_lock: Arc<tokio::sync::Mutex<()>>,
    manifests: Arc<manifest_cache::ManifestCache>,
    /// Manifest look-ups by repository and reference, valid while the
    /// metadata generation stands.
    lookups: Arc<GenerationCache<(RepoName, Reference), StoredManifest>>,
    tag_pages: Arc<listing::TagPages>,
    /// Scans queued and running in this process.
    scans: Arc<scan::Scans>,
    metrics: Arc<crate::metrics::Metrics>,
    /// One lock per upload being appended in place, so its chunks never interleave.
    upload_locks: Arc<
        std::sync::Mutex<
            std::collections::HashMap<crate::oci::UploadId, Arc<tokio::sync::Mutex<()>>>,
        >,
    >,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("blobs", &self.blobs)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Registry {
    pub fn new(blobs: BlobStore, meta: Arc<dyn MetaStore>, mut settings: Settings) -> Registry {
        // Chunks below the backend's part size would only be staged.
        settings.chunk_min_length = settings.chunk_min_length.max(blobs.min_chunk());
        let metrics = Arc::new(crate::metrics::Metrics::new());
        let scans = Arc::new(scan::Scans::new(settings.scan.concurrency));
        Registry {
            scans,
            blobs: blobs.observed(Arc::clone(&metrics)),
            metrics,
            meta,
            settings: Arc::new(settings),
            events: Arc::new(Notify::new()),
            gc_lock: Arc::default(),
            manifests: Arc::default(),
            lookups: Arc::new(GenerationCache::new(LOOKUPS_KEPT)),
            tag_pages: Arc::default(),
            upload_locks: Arc::default(),
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// What this registry counts (served at `/metrics`), as a handle to
    /// keep past a request's end.
    pub fn metrics(&self) -> &Arc<crate::metrics::Metrics> {
        &self.metrics
    }

    /// The object store holding the bytes.
    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    /// Runs a metadata operation on the blocking pool. The task starts at
    /// once; the returned future only waits for it (and so holds no closure,
    /// which keeps handler futures `Send`).
    ///
    /// `f` names the one area of the database it needs (`|m: &dyn
    /// UploadMeta| ...`): each part of the registry sees only its own.
    fn meta<A: Area + ?Sized, T: Send + 'static>(
        &self,
        f: impl FnOnce(&A) -> Result<T> + Send + 'static,
    ) -> impl Future<Output = Result<T>> + Send + 'static {
        let meta = Arc::clone(&self.meta);
        let start = std::time::Instant::now();
        let task = tokio::task::spawn_blocking(move || f(A::of(meta.as_ref())));
        let metrics = Arc::clone(&self.metrics);
        async move {
            let done = task
                .await
                .map_err(|e| Error::Internal(format!("metadata task failed: {e}")))
                .and_then(|r| r);
            // Busy (content held by GC) is an answer, not a database fault.
            let ok = !matches!(&done, Err(e) if e.code_and_status().1.is_server_error()
                && !matches!(e, Error::Busy(_)));
            crate::metrics::Metrics::record(
                &metrics.db_ops,
                &metrics.db_seconds,
                A::NAME,
                ok,
                start,
            );
            done
        }
    }

    /// Runs a metadata operation, retrying while garbage collection holds the
    /// content it needs (`Busy`): collection deletes objects in small batches,
    /// so the wait is short.
    async fn retry_busy<A: Area + ?Sized, T: Send + 'static>(
        &self,
        f: impl Fn(&A) -> Result<T> + Send + Sync + Clone + 'static,
    ) -> Result<T> {
        let deadline = std::time::Instant::now() + BUSY_WAIT;
        loop {
            match self.meta(f.clone()).await {
                Err(Error::Busy(_)) if std::time::Instant::now() < deadline => {
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
                other => return other,
            }
        }
    }

    /// Whether this process runs the background work now, taking the lead
    /// if no one has it (see [`crate::meta::Leadership`]); shown in the
    /// `berth_leader` gauge.
    pub async fn lead(&self) -> bool {
        let leads = self
            .meta(|m: &crate::meta::LeaderArea| m.lead())
            .await
            .unwrap_or(false);
        self.metrics.leader.set(i64::from(leads));
        leads
    }

    /// Tells webhook deliveries that the event log grew.
    fn events_changed(&self) {
        self.events.notify_waiters();
    }

    fn ensure_deletes_enabled(&self) -> Result<()> {
        if self.settings.delete_enabled {
            Ok(())
        } else {
            Err(Error::Unsupported(
                "deletes are disabled on this registry".into(),
            ))
        }
    }
}
