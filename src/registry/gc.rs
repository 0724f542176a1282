//! Online garbage collection, from the metadata: expired upload sessions,
//! manifests nothing needs (by policy), then content nothing needs. Each step
//! is a short transaction that re-checks what it removes (what manifests
//! reference is read once per run, so a run is linear in the store's size,
//! and each transaction adds the pushes since); objects are deleted
//! only after their rows are gone and tombstoned, and a failed delete keeps the
//! tombstone, so the next run tries again. Pushes and pulls never wait on it.

use std::sync::Arc;

use serde::Serialize;

use super::Registry;
use crate::error::{Error, Result};
use crate::meta::{GcArea, GcPolicy, SweepCursor};
use crate::oci::Digest;
use crate::storage::{StorageKey, UploadState};
use crate::time::now_ms;

/// What a collection removed (or, for a dry run, would remove).
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GcReport {
    pub dry_run: bool,
    pub uploads_expired: usize,
    pub manifests_deleted: Vec<String>,
    pub blobs_deleted: usize,
    pub bytes_freed: u64,
    /// Objects whose delete failed; their tombstones stay for the next run.
    pub errors: Vec<String>,
}

/// Contents read per look while walking the store.
const CANDIDATE_PAGE: usize = 2000;

impl Registry {
    /// Runs one collection; only one runs at a time. Counted in the metrics
    /// (a dry run or a refused start is not a run).
    pub async fn collect_garbage(&self, policy: &GcPolicy, dry_run: bool) -> Result<GcReport> {
        let start = std::time::Instant::now();
        let result = self.collect(policy, dry_run).await;
        let m = &self.metrics;
        match &result {
            Ok(report) if !dry_run => {
                m.gc_run(report.errors.is_empty(), start.elapsed());
                m.gc_freed_bytes.inc_by(report.bytes_freed);
                m.gc_deleted_blobs.inc_by(report.blobs_deleted as u64);
                m.gc_deleted_manifests
                    .inc_by(report.manifests_deleted.len() as u64);
                m.gc_expired_uploads.inc_by(report.uploads_expired as u64);
            }
            Err(Error::Busy(_)) | Ok(_) => {}
            Err(_) => m.gc_run(false, start.elapsed()),
        }
        result
    }

    /// Whether a collection was interrupted: its tombstones remain, their
    /// objects maybe not deleted yet.
    pub async fn unfinished_collection(&self) -> bool {
        self.meta(|m: &GcArea| m.tombstones())
            .await
            .is_ok_and(|t| !t.is_empty())
    }

    async fn collect(&self, policy: &GcPolicy, dry_run: bool) -> Result<GcReport> {
        // One collection at a time in a process: a second waits briefly for
        // the first (a scheduled one, or one finishing what a crash left).
        let _running = tokio::time::timeout(super::BUSY_WAIT, self.gc_lock.lock())
            .await
            .map_err(|_| Error::Busy("a garbage collection is already running".into()))?;
        let mut report = GcReport {
            dry_run,
            ..GcReport::default()
        };
        if !dry_run {
            // Finish what an interrupted run left: rows gone, objects maybe not.
            let stale = self.meta(|m: &GcArea| m.tombstones()).await?;
            self.delete_contents(stale, &mut report).await?;
        }

        let cutoff = now_ms() - policy.upload_ttl_ms;
        loop {
            let batch = policy.batch;
            let ids = self
                .meta(move |m: &GcArea| m.sweep_uploads(cutoff, batch, dry_run))
                .await?;
            report.uploads_expired += ids.len();
            if !dry_run {
                for (id, resume) in ids.iter().cloned() {
                    let state = UploadState {
                        parts: Vec::new(),
                        resume,
                    };
                    if let Err(e) = self.blobs.remove_upload(&id, &state).await {
                        report.errors.push(format!("upload {id}: {e}"));
                    }
                }
            }
            if dry_run || ids.len() < batch {
                break;
            }
        }

        loop {
            let (p, now) = (policy.clone(), now_ms());
            let gone = self
                .meta(move |m: &GcArea| m.sweep_manifests(now, &p, dry_run))
                .await?;
            report
                .manifests_deleted
                .extend(gone.iter().map(|(repo, d)| format!("{repo}@{d}")));
            if dry_run || gone.is_empty() {
                break;
            }
        }

        self.sweep_contents(policy, dry_run, &mut report).await?;
        if !dry_run && (!report.manifests_deleted.is_empty() || report.blobs_deleted > 0) {
            tracing::info!(
                manifests = report.manifests_deleted.len(),
                blobs = report.blobs_deleted,
                bytes = report.bytes_freed,
                uploads = report.uploads_expired,
                "garbage collected"
            );
        }
        Ok(report)
    }

    /// Walks all content once, in digest order, checking it against the
    /// references read at the start; what nothing needs goes `policy.batch`
    /// at a time, each batch re-checked (and checked against the pushes
    /// since the start) in its own transaction.
    async fn sweep_contents(
        &self,
        policy: &GcPolicy,
        dry_run: bool,
        report: &mut GcReport,
    ) -> Result<()> {
        let refs = Arc::new(self.meta(|m: &GcArea| m.references()).await?);
        let mut cursor = SweepCursor::default();
        let mut unneeded: Vec<(String, u64)> = Vec::new();
        loop {
            let (p, now, mut from) = (policy.clone(), now_ms(), cursor.clone());
            let (page, reached) = self
                .meta(move |m: &GcArea| {
                    let page = m.content_candidates(now, &p, &mut from, CANDIDATE_PAGE)?;
                    Ok((page, from))
                })
                .await?;
            cursor = reached;
            let last_page = page.len() < CANDIDATE_PAGE;
            unneeded.extend(
                page.into_iter()
                    .filter(|(d, _, unneeded)| *unneeded && !refs.holds(d))
                    .map(|(d, size, _)| (d, size)),
            );
            while unneeded.len() >= policy.batch || (last_page && !unneeded.is_empty()) {
                let batch: Vec<(String, u64)> =
                    unneeded.drain(..policy.batch.min(unneeded.len())).collect();
                if dry_run {
                    report.blobs_deleted += batch.len();
                    report.bytes_freed += batch.iter().map(|(_, size)| size).sum::<u64>();
                    continue;
                }
                let (p, now, after) = (policy.clone(), now_ms(), refs.after_event);
                let digests: Vec<String> = batch.into_iter().map(|(d, _)| d).collect();
                let swept = self
                    .meta(move |m: &GcArea| m.sweep_contents(now, &p, &digests, after))
                    .await?;
                report.blobs_deleted += swept.len();
                report.bytes_freed += swept.iter().map(|(_, size)| size).sum::<u64>();
                self.delete_contents(swept.into_iter().map(|(d, _)| d).collect(), report)
                    .await?;
            }
            if last_page {
                return Ok(());
            }
        }
    }

    /// Deletes tombstoned objects, then the tombstones of those that went.
    async fn delete_contents(&self, digests: Vec<Digest>, report: &mut GcReport) -> Result<()> {
        let keys: Vec<StorageKey> = digests.iter().cloned().map(StorageKey::Blob).collect();
        let outcomes = self.blobs.delete_many(&keys).await;
        let mut gone = Vec::with_capacity(digests.len());
        for (d, outcome) in digests.into_iter().zip(outcomes) {
            match outcome {
                Ok(()) => gone.push(d),
                Err(e) => report.errors.push(format!("{d}: {e}")),
            }
        }
        if !gone.is_empty() {
            self.meta(move |m: &GcArea| m.clear_tombstones(&gone))
                .await?;
        }
        Ok(())
    }
}
