//! A fault-injecting object store (in memory, with multipart uploads), for
//! tests of what a storage fault does: make the Nth put, get, delete or list
//! from now on fail, be slow, or (a get) answer short.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use object_store::memory::InMemory;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};

/// The operations a fault can be injected into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// Any write: single, multipart or a part of one.
    Put,
    Get,
    Delete,
    List,
}

/// What happens to the call a fault is planned for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// It fails with a store error.
    Fail,
    /// It waits this long first (async calls; a list or delete stream does
    /// not wait).
    Slow(Duration),
    /// A get: the stream ends, without an error, halfway through the bytes
    /// (a connection cut that the transport did not notice).
    Short,
}

#[derive(Debug, Default)]
struct Plan {
    seen: HashMap<Op, u64>,
    /// (op, the call count it happens at, what happens)
    faults: Vec<(Op, u64, Fault)>,
}

#[derive(Debug, Clone, Default)]
pub struct FaultyStore {
    inner: Arc<InMemory>,
    plan: Arc<Mutex<Plan>>,
}

impl FaultyStore {
    /// Object paths under `prefix`, looked at without counting as a list.
    pub async fn paths_under(&self, prefix: &str) -> Vec<String> {
        self.inner
            .list(Some(&Path::from(prefix)))
            .filter_map(|m| async move { m.ok().map(|m| m.location.to_string()) })
            .collect()
            .await
    }

    /// How many calls of `op` were made so far.
    pub fn calls(&self, op: Op) -> u64 {
        self.plan
            .lock()
            .map(|p| p.seen.get(&op).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    /// Makes the `n`th call of `op` from now on fail (1 = the next one).
    pub fn fail_nth(&self, op: Op, n: u64) {
        self.plan_nth(op, n, Fault::Fail);
    }

    /// Plans `fault` for the `n`th call of `op` from now on (1 = the next one).
    pub fn plan_nth(&self, op: Op, n: u64, fault: Fault) {
        if let Ok(mut plan) = self.plan.lock() {
            let at = plan.seen.get(&op).copied().unwrap_or(0) + n;
            plan.faults.push((op, at, fault));
        }
    }

    /// Counts a call of `op`: an error if it is to fail, else the fault
    /// planned for it, if any.
    fn check(plan: &Mutex<Plan>, op: Op) -> Result<Option<Fault>> {
        let Ok(mut plan) = plan.lock() else {
            return Ok(None);
        };
        let count = {
            let c = plan.seen.entry(op).or_insert(0);
            *c += 1;
            *c
        };
        let Some(i) = plan
            .faults
            .iter()
            .position(|&(o, at, _)| o == op && at == count)
        else {
            return Ok(None);
        };
        match plan.faults.remove(i).2 {
            Fault::Fail => Err(object_store::Error::Generic {
                store: "faulty",
                source: format!("injected fault on {op:?} #{count}").into(),
            }),
            other => Ok(Some(other)),
        }
    }

    /// [`Self::check`] for an async call: waits out a slow fault.
    async fn enter(&self, op: Op) -> Result<Option<Fault>> {
        let fault = Self::check(&self.plan, op)?;
        if let Some(Fault::Slow(wait)) = fault {
            tokio::time::sleep(wait).await;
        }
        Ok(fault)
    }
}

impl fmt::Display for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Faulty({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for FaultyStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.enter(Op::Put).await?;
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.enter(Op::Put).await?;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let fault = self.enter(Op::Get).await?;
        let mut result = self.inner.get_opts(location, options).await?;
        if fault != Some(Fault::Short) {
            return Ok(result);
        }
        // Everything the answer says (its length, its range) stays; half the
        // bytes come.
        let empty = futures_util::stream::empty().boxed();
        let GetResultPayload::Stream(stream) =
            std::mem::replace(&mut result.payload, GetResultPayload::Stream(empty))
        else {
            return Ok(result);
        };
        let mut bytes: Vec<u8> = Vec::new();
        let chunks: Vec<_> = stream.collect().await;
        for chunk in chunks {
            bytes.extend_from_slice(&chunk?);
        }
        bytes.truncate(bytes.len() / 2);
        let half = bytes::Bytes::from(bytes);
        result.payload =
            GetResultPayload::Stream(futures_util::stream::once(async move { Ok(half) }).boxed());
        Ok(result)
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        let plan = Arc::clone(&self.plan);
        let inner = Arc::clone(&self.inner);
        let checked = locations
            .map(move |p| {
                let p = p?;
                Self::check(&plan, Op::Delete)?;
                Ok(p)
            })
            .boxed();
        // Paths that passed the check are deleted; injected failures pass through.
        let (ok_tx, errors) = split(checked);
        inner.delete_stream(ok_tx).chain(errors).boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        if let Err(e) = Self::check(&self.plan, Op::List) {
            return futures_util::stream::once(async move { Err(e) }).boxed();
        }
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.enter(Op::List).await?;
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.enter(Op::Put).await?;
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(
        &self,
        from: &Path,
        to: &Path,
        options: object_store::RenameOptions,
    ) -> Result<()> {
        self.enter(Op::Put).await?;
        self.inner.rename_opts(from, to, options).await
    }
}

#[async_trait]
impl MultipartStore for FaultyStore {
    async fn create_multipart(&self, path: &Path) -> Result<String> {
        self.enter(Op::Put).await?;
        self.inner.create_multipart(path).await
    }

    async fn put_part(
        &self,
        path: &Path,
        id: &String,
        part_idx: usize,
        data: PutPayload,
    ) -> Result<PartId> {
        self.enter(Op::Put).await?;
        self.inner.put_part(path, id, part_idx, data).await
    }

    async fn complete_multipart(
        &self,
        path: &Path,
        id: &String,
        parts: Vec<PartId>,
    ) -> Result<PutResult> {
        self.enter(Op::Put).await?;
        self.inner.complete_multipart(path, id, parts).await
    }

    async fn abort_multipart(&self, path: &Path, id: &String) -> Result<()> {
        self.enter(Op::Delete).await?;
        self.inner.abort_multipart(path, id).await
    }
}

/// Splits a stream of results into its successes (as a stream of paths to
/// delete) and its errors (replayed after), collecting eagerly: delete
/// streams in this crate are small batches.
fn split(
    items: BoxStream<'static, Result<Path>>,
) -> (
    BoxStream<'static, Result<Path>>,
    BoxStream<'static, Result<Path>>,
) {
    let shared = Arc::new(tokio::sync::Mutex::new(Vec::new()));
    let errors_out = Arc::clone(&shared);
    let ok = items
        .filter_map(move |r| {
            let errs = Arc::clone(&shared);
            async move {
                match r {
                    Ok(p) => Some(Ok(p)),
                    Err(e) => {
                        errs.lock().await.push(e);
                        None
                    }
                }
            }
        })
        .boxed();
    let errors =
        futures_util::stream::once(async move { std::mem::take(&mut *errors_out.lock().await) })
            .flat_map(|v| futures_util::stream::iter(v.into_iter().map(Err)))
            .boxed();
    (ok, errors)
}
