//! A [`Storage`] that counts and times every operation of the one it wraps
//! (`berth_storage_operations_total`, `berth_storage_operation_duration_seconds`).
//! A read is timed until its stream is open; a blob writer until it exists.

use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;

use super::{
    Appended, Area, Assembled, BlobWriter, Body, Listed, Storage, StorageKey, UploadState,
};
use crate::error::Result;
use crate::metrics::Metrics;
use crate::oci::UploadId;

#[derive(Debug)]
pub struct Observed {
    inner: Arc<dyn Storage>,
    metrics: Arc<Metrics>,
}

impl Observed {
    pub fn new(inner: Arc<dyn Storage>, metrics: Arc<Metrics>) -> Observed {
        Observed { inner, metrics }
    }

    fn done<T>(&self, op: &'static str, start: Instant, result: Result<T>) -> Result<T> {
        let m = &self.metrics;
        Metrics::record(
            &m.storage_ops,
            &m.storage_seconds,
            op,
            result.is_ok(),
            start,
        );
        result
    }
}

#[async_trait]
impl Storage for Observed {
    async fn size(&self, key: &StorageKey) -> Result<Option<u64>> {
        let start = Instant::now();
        self.done("size", start, self.inner.size(key).await)
    }

    async fn read(&self, key: &StorageKey, range: Option<Range<u64>>) -> Result<Body<'static>> {
        let start = Instant::now();
        self.done("read", start, self.inner.read(key, range).await)
    }

    async fn put_small(&self, key: &StorageKey, bytes: Bytes) -> Result<()> {
        let start = Instant::now();
        self.done("put", start, self.inner.put_small(key, bytes).await)
    }

    async fn delete(&self, key: &StorageKey) -> Result<()> {
        let start = Instant::now();
        self.done("delete", start, self.inner.delete(key).await)
    }

    async fn delete_many(&self, keys: &[StorageKey]) -> Vec<Result<()>> {
        let start = Instant::now();
        let outcomes = self.inner.delete_many(keys).await;
        outcomes
            .into_iter()
            .map(|outcome| self.done("delete", start, outcome))
            .collect()
    }

    async fn list(&self, area: Area) -> Result<Vec<Listed>> {
        let start = Instant::now();
        self.done("list", start, self.inner.list(area).await)
    }

    async fn delete_listed(&self, listed: &Listed) -> Result<()> {
        let start = Instant::now();
        self.done("delete", start, self.inner.delete_listed(listed).await)
    }

    async fn redirect_url(&self, key: &StorageKey) -> Result<Option<String>> {
        let start = Instant::now();
        self.done("presign", start, self.inner.redirect_url(key).await)
    }

    fn redirects(&self) -> bool {
        self.inner.redirects()
    }

    fn min_chunk(&self) -> u64 {
        self.inner.min_chunk()
    }

    fn free_space(&self) -> Result<Option<u64>> {
        self.inner.free_space()
    }

    async fn blob_writer(
        &self,
        upload: &UploadId,
        target: &StorageKey,
    ) -> Result<Box<dyn BlobWriter>> {
        let start = Instant::now();
        self.done("write", start, self.inner.blob_writer(upload, target).await)
    }

    async fn append(
        &self,
        upload: &UploadId,
        offset: u64,
        state: &UploadState,
        body: Body<'_>,
    ) -> Result<Appended> {
        let start = Instant::now();
        let appended = self.inner.append(upload, offset, state, body).await;
        self.done("append", start, appended)
    }

    async fn release(&self, upload: &UploadId, dropped: &UploadState, kept: &UploadState) {
        self.inner.release(upload, dropped, kept).await;
    }

    async fn assemble(
        &self,
        upload: &UploadId,
        state: &UploadState,
        len: u64,
    ) -> Result<Assembled> {
        let start = Instant::now();
        self.done(
            "assemble",
            start,
            self.inner.assemble(upload, state, len).await,
        )
    }

    async fn place(
        &self,
        upload: &UploadId,
        assembled: &Assembled,
        target: &StorageKey,
        len: u64,
    ) -> Result<()> {
        let start = Instant::now();
        let placed = self.inner.place(upload, assembled, target, len).await;
        self.done("place", start, placed)
    }

    async fn remove_upload(&self, upload: &UploadId, state: &UploadState) -> Result<()> {
        let start = Instant::now();
        self.done(
            "remove_upload",
            start,
            self.inner.remove_upload(upload, state).await,
        )
    }
}
