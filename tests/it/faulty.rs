//! A fault-injecting object store (in memory, with multipart uploads), for
//! tests of what a storage error does: fail the Nth put, get, delete or list
//! from now on.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use object_store::memory::InMemory;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
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

#[derive(Debug, Default)]
struct Plan {
    seen: HashMap<Op, u64>,
    /// (op, the call count at which it fails)
    faults: Vec<(Op, u64)>,
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

    /// Makes the `n`th call of `op` from now on fail (1 = the next one).
    pub fn fail_nth(&self, op: Op, n: u64) {
        if let Ok(mut plan) = self.plan.lock() {
            let at = plan.seen.get(&op).copied().unwrap_or(0) + n;
            plan.faults.push((op, at));
        }
    }

    fn check(plan: &Mutex<Plan>, op: Op) -> Result<()> {
        let Ok(mut plan) = plan.lock() else {
            return Ok(());
        };
        let count = {
            let c = plan.seen.entry(op).or_insert(0);
            *c += 1;
            *c
        };
        if let Some(i) = plan
            .faults
            .iter()
            .position(|&(o, at)| o == op && at == count)
        {
            plan.faults.remove(i);
            return Err(object_store::Error::Generic {
                store: "faulty",
                source: format!("injected fault on {op:?} #{count}").into(),
            });
        }
        Ok(())
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
        Self::check(&self.plan, Op::Put)?;
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        Self::check(&self.plan, Op::Put)?;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        Self::check(&self.plan, Op::Get)?;
        self.inner.get_opts(location, options).await
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
        Self::check(&self.plan, Op::List)?;
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        Self::check(&self.plan, Op::Put)?;
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(
        &self,
        from: &Path,
        to: &Path,
        options: object_store::RenameOptions,
    ) -> Result<()> {
        Self::check(&self.plan, Op::Put)?;
        self.inner.rename_opts(from, to, options).await
    }
}

#[async_trait]
impl MultipartStore for FaultyStore {
    async fn create_multipart(&self, path: &Path) -> Result<String> {
        Self::check(&self.plan, Op::Put)?;
        self.inner.create_multipart(path).await
    }

    async fn put_part(
        &self,
        path: &Path,
        id: &String,
        part_idx: usize,
        data: PutPayload,
    ) -> Result<PartId> {
        Self::check(&self.plan, Op::Put)?;
        self.inner.put_part(path, id, part_idx, data).await
    }

    async fn complete_multipart(
        &self,
        path: &Path,
        id: &String,
        parts: Vec<PartId>,
    ) -> Result<PutResult> {
        Self::check(&self.plan, Op::Put)?;
        self.inner.complete_multipart(path, id, parts).await
    }

    async fn abort_multipart(&self, path: &Path, id: &String) -> Result<()> {
        Self::check(&self.plan, Op::Delete)?;
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
