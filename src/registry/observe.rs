//! The metrics exposition: counters kept as the registry works, and the
//! gauges read from the database at scrape time.

use super::Registry;
use crate::error::Result;
use crate::meta::{IntegrityArea, ReleaseArea};
use crate::oci::Digest;
use crate::storage::StorageKey;

/// Below this much free space for content, the registry is not ready.
pub const MIN_FREE_BYTES: u64 = 64 * 1024 * 1024;
use crate::metrics::NameLabels;

impl Registry {
    /// Names the webhooks whose outbox lag `/metrics` shows.
    pub fn watch_webhooks(&self, names: Vec<String>) {
        if let Ok(mut w) = self.metrics.webhooks.lock() {
            *w = names;
        }
    }

    /// The Prometheus text: uploads open and each webhook's lag are read now.
    pub async fn metrics_text(&self) -> Result<String> {
        let open = self
            .meta(|m: &IntegrityArea| m.upload_ids().map(|ids| ids.len()))
            .await?;
        self.metrics.uploads_in_progress.set(open as i64);
        self.metrics.db_round_trips.inner().store(
            self.meta.round_trips(),
            std::sync::atomic::Ordering::Relaxed,
        );
        let names = self
            .metrics
            .webhooks
            .lock()
            .map(|w| w.clone())
            .unwrap_or_default();
        for name in names {
            let n = name.clone();
            let lag = self
                .meta(move |m: &ReleaseArea| m.events_since(m.webhook_cursor(&n)?))
                .await?;
            self.metrics
                .webhook_lag
                .get_or_create(&NameLabels { webhook: name })
                .set(lag as i64);
        }
        Ok(self.metrics.encode())
    }
}

impl Registry {
    /// What keeps the registry from serving: the metadata database refuses
    /// a write, the store does not answer, or the disk is nearly full.
    /// Empty when ready.
    pub async fn unready(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Err(e) = self.meta(|m: &IntegrityArea| m.probe_write()).await {
            problems.push(format!("metadata database not writable: {e}"));
        }
        let probe = StorageKey::Blob(Digest::sha256_of(b""));
        if let Err(e) = self.blobs.size(&probe).await {
            problems.push(format!("object store not reachable: {e}"));
        }
        let blobs = self.blobs.clone();
        match tokio::task::spawn_blocking(move || blobs.free_space()).await {
            Ok(Ok(Some(free))) if free < MIN_FREE_BYTES => {
                problems.push(format!("disk nearly full: {free} bytes free"));
            }
            Ok(Err(e)) => problems.push(format!("free space unknown: {e}")),
            _ => {}
        }
        problems
    }
}
