//! Model safety: every layer of a pushed model version that is or holds a
//! pickle is read opcode by opcode (never unpickled) in the background, and
//! what it would import is classed safe, unknown or dangerous. The report is
//! attached to the version as a referrer (`application/vnd.berth.scan.v1+json`),
//! announced by a `scan` event, and used by promotion gates and, for chosen
//! repositories, to refuse the push itself.
//!
//! formats.rs walks a layer (archives, PyTorch zips, NumPy, safetensors;
//! zstd.rs inflates Zstandard),
//! pickle.rs reads opcodes (joblib.rs: the arrays joblib writes among them),
//! imports.rs classes what they import, report.rs is the document.

mod formats;
mod imports;
mod joblib;
mod pickle;
mod report;
mod safetensors;
mod zstd;

use std::collections::{HashMap, HashSet};
use std::io::{self, Read};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use super::Registry;
use crate::error::{Error, Result};
use crate::glob::{Glob, any_matches};
use crate::meta::{Actor, EventAction, NewEvent, ReleaseArea};
use crate::oci::media_type::IMAGE_CONFIGS;
use crate::oci::{Descriptor, Digest, Manifest, ManifestKind, Reference, RepoName, Tag};
use crate::storage::StorageKey;

pub use formats::{ClassedImport, Found};
pub use imports::Verdict;
pub use report::{LayerReport, ScanReport};

/// Artifact type (and layer media type) of a scan report.
pub const SCAN_ARTIFACT: &str = "application/vnd.berth.scan.v1+json";
/// Who a report's push and its event are recorded as.
const SCANNER: &str = "berth-scan";
/// Documents Berth reads itself; never scanned.
const OWN_DOCUMENTS: &[&str] = &[
    SCAN_ARTIFACT,
    super::releases::EVALUATION_ARTIFACT,
    super::lineage::LINEAGE_ARTIFACT,
];

/// The `[scan]` config section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScanPolicy {
    /// Scan model versions as they are pushed.
    pub enabled: bool,
    /// Also scan container images (root file systems; slower).
    pub images: bool,
    /// Bytes read per layer at most, compressed and unpacked together.
    pub max_layer_bytes: u64,
    /// Time one layer's scan may take, in seconds.
    pub timeout_seconds: u64,
    /// Scans running at once in this process.
    pub concurrency: usize,
    /// A promotion to a matching tag needs a report with nothing dangerous
    /// or malformed (and, with `refuse_unknown`, nothing unknown).
    pub gates: Vec<ScanGate>,
    /// Repositories where a push waits for the scan of its layers and is
    /// refused (400) if the report would fail a gate.
    pub refuse_push: Vec<Glob>,
    /// With `refuse_push`, refuse unknown imports too.
    pub refuse_push_unknown: bool,
}

impl Default for ScanPolicy {
    fn default() -> Self {
        ScanPolicy {
            enabled: true,
            images: false,
            max_layer_bytes: 64 << 30,
            timeout_seconds: 600,
            concurrency: 1,
            gates: Vec::new(),
            refuse_push: Vec::new(),
            refuse_push_unknown: false,
        }
    }
}

/// A promotion gate on the scan report.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScanGate {
    pub repositories: Vec<Glob>,
    pub tags: Vec<Glob>,
    #[serde(default)]
    pub refuse_unknown: bool,
}

fn refused_from(refuse_unknown: bool) -> Verdict {
    if refuse_unknown {
        Verdict::Unknown
    } else {
        Verdict::Malformed
    }
}

/// The version a report is about, as its `subject` descriptor says.
#[derive(Debug, Clone)]
pub struct Subject {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
}

/// Where a version's scan stands.
#[derive(Debug, Clone)]
pub enum ScanStatus {
    /// Its latest report, and the report manifest's digest.
    Done(Box<ScanReport>, Digest),
    /// Queued or running here.
    Pending,
    /// Never scanned (or not a version that is scanned).
    Absent,
}

/// A version: its repository and manifest digest.
type Version = (RepoName, Digest);

/// Scans queued or running in this process.
#[derive(Debug)]
pub struct Scans {
    running: tokio::sync::Semaphore,
    pending: Mutex<HashSet<Version>>,
    /// One lock per version being scanned, so a scan is not done twice at once.
    locks: Mutex<HashMap<Version, Arc<tokio::sync::Mutex<()>>>>,
}

impl Scans {
    pub fn new(concurrency: usize) -> Scans {
        Scans {
            running: tokio::sync::Semaphore::new(concurrency.max(1)),
            pending: Mutex::default(),
            locks: Mutex::default(),
        }
    }
}

/// Whether a manifest is a version the policy scans.
fn scanned(policy: &ScanPolicy, manifest: &Manifest) -> bool {
    if manifest.kind != ManifestKind::Image || manifest.children.is_empty() {
        return false;
    }
    let artifact = manifest.artifact_type.as_deref().unwrap_or_default();
    if OWN_DOCUMENTS.contains(&artifact) {
        return false;
    }
    // A container image's layers are root file systems: only with `images`.
    policy.images || !IMAGE_CONFIGS.contains(&artifact)
}

impl Registry {
    fn policy(&self) -> &ScanPolicy {
        &self.settings.scan
    }

    /// Queues a version's scan (off the request path); false if one is
    /// queued or running here already.
    fn queue_scan(&self, repo: &RepoName, digest: &Digest) -> bool {
        let key = (repo.clone(), digest.clone());
        if !self.scans.pending.lock().expect("scans").insert(key) {
            return false;
        }
        let (registry, repo, digest) = (self.clone(), repo.clone(), digest.clone());
        tokio::spawn(async move {
            let permit = registry.scans.running.acquire().await;
            let done = registry.scan(&repo, &digest, false).await;
            drop(permit);
            registry
                .scans
                .pending
                .lock()
                .expect("scans")
                .remove(&(repo.clone(), digest.clone()));
            if let Err(e) = done {
                tracing::warn!(repo = %repo, digest = %digest, error = %e, "scan failed");
            }
        });
        true
    }

    /// Queues every scanned version in the store that has no report yet;
    /// answers how many were queued.
    pub async fn queue_unscanned(&self) -> Result<u64> {
        let mut queued = 0;
        let mut after: Option<String> = None;
        loop {
            let a = after.clone();
            let page = self
                .meta(move |m: &crate::meta::IntegrityArea| m.contents_page(a.as_deref(), 500))
                .await?;
            let Some(last) = page.last() else {
                return Ok(queued);
            };
            after = Some(last.0.to_string());
            // Blobs are held by no manifest record: `describe` finds none.
            for (digest, _, _) in page {
                let d = digest.clone();
                let holders = self
                    .meta(move |m: &crate::meta::LineageArea| m.describe(&d))
                    .await?;
                for info in holders {
                    let own = info
                        .artifact_type
                        .as_deref()
                        .is_some_and(|t| OWN_DOCUMENTS.contains(&t));
                    if !own
                        && matches!(
                            self.scan_status(&info.repo, &digest).await?,
                            ScanStatus::Absent
                        )
                    {
                        let parsed = self.parsed_manifest(&info.repo, &digest).await?;
                        if scanned(self.policy(), &parsed) && self.queue_scan(&info.repo, &digest) {
                            queued += 1;
                        }
                    }
                }
            }
        }
    }

    async fn parsed_manifest(&self, repo: &RepoName, digest: &Digest) -> Result<Manifest> {
        let (stored, bytes) = self
            .read_manifest(repo, &Reference::Digest(digest.clone()))
            .await?;
        Ok(Manifest::parse(&bytes, Some(&stored.media_type))?)
    }

    /// The latest report on a version, or whether one is on its way.
    pub async fn scan_status(&self, repo: &RepoName, digest: &Digest) -> Result<ScanStatus> {
        if let Some(done) = self.latest_report(repo, digest).await? {
            return Ok(done);
        }
        let key = (repo.clone(), digest.clone());
        if self.scans.pending.lock().expect("scans").contains(&key) {
            return Ok(ScanStatus::Pending);
        }
        // A scan leaves `pending` only once its report is committed: one
        // that finished since the look above has its report there now.
        Ok(self
            .latest_report(repo, digest)
            .await?
            .unwrap_or(ScanStatus::Absent))
    }

    /// The latest report attached to a version, if any.
    async fn latest_report(&self, repo: &RepoName, digest: &Digest) -> Result<Option<ScanStatus>> {
        let referrers = self
            .list_referrers(repo, digest, Some(SCAN_ARTIFACT.to_owned()))
            .await?;
        let Some(latest) = referrers.last() else {
            return Ok(None);
        };
        let report = self.read_report(repo, &latest.digest).await?;
        Ok(Some(ScanStatus::Done(
            Box::new(report),
            latest.digest.clone(),
        )))
    }

    async fn read_report(&self, repo: &RepoName, report: &Digest) -> Result<ScanReport> {
        let (_, bytes) = self
            .read_manifest(repo, &Reference::Digest(report.clone()))
            .await?;
        let manifest = Manifest::parse(&bytes, None)?;
        let layer = manifest
            .children
            .iter()
            .find(|l| l.media_type == SCAN_ARTIFACT)
            .ok_or_else(|| Error::ManifestInvalid("a scan report needs its document".into()))?;
        let document = self.small_blob(repo, &layer.digest, layer.size).await?;
        serde_json::from_slice(&document)
            .map_err(|e| Error::Internal(format!("scan report {report}: {e}")))
    }

    /// Scans a version now, unless (without `force`) it has a report
    /// already, and attaches the report. A scan of the same version running
    /// here is waited for, not repeated.
    pub async fn scan(
        &self,
        repo: &RepoName,
        digest: &Digest,
        force: bool,
    ) -> Result<(Digest, ScanReport)> {
        let key = (repo.clone(), digest.clone());
        let lock = Arc::clone(
            self.scans
                .locks
                .lock()
                .expect("scans")
                .entry(key.clone())
                .or_default(),
        );
        let held = lock.lock().await;
        let result = self.scan_locked(repo, digest, force).await;
        drop(held);
        let mut locks = self.scans.locks.lock().expect("scans");
        if Arc::strong_count(&lock) == 2 {
            locks.remove(&key);
        }
        result
    }

    async fn scan_locked(
        &self,
        repo: &RepoName,
        digest: &Digest,
        force: bool,
    ) -> Result<(Digest, ScanReport)> {
        if !force {
            let referrers = self
                .list_referrers(repo, digest, Some(SCAN_ARTIFACT.to_owned()))
                .await?;
            if let Some(latest) = referrers.last() {
                return Ok((
                    latest.digest.clone(),
                    self.read_report(repo, &latest.digest).await?,
                ));
            }
        }
        let (stored, bytes) = self
            .read_manifest(repo, &Reference::Digest(digest.clone()))
            .await?;
        let manifest = Manifest::parse(&bytes, Some(&stored.media_type))?;
        if manifest.kind != ManifestKind::Image {
            return Err(Error::BadRequest(
                "an index is not scanned: scan each manifest it lists".into(),
            ));
        }
        let report = self.scan_layers(repo, digest, &manifest).await?;
        let subject = Subject {
            media_type: stored.media_type.clone(),
            digest: digest.clone(),
            size: stored.size,
        };
        let at = self.attach_report(repo, &subject, &report).await?;
        Ok((at, report))
    }

    /// Reads every layer of `manifest` and makes the report.
    async fn scan_layers(
        &self,
        repo: &RepoName,
        digest: &Digest,
        manifest: &Manifest,
    ) -> Result<ScanReport> {
        let mut layers = Vec::with_capacity(manifest.children.len());
        for layer in &manifest.children {
            layers.push(self.scan_layer(repo, layer).await?);
        }
        let verdict = layers
            .iter()
            .map(|l| l.verdict)
            .max()
            .unwrap_or(Verdict::Clean);
        tracing::info!(repo = %repo, digest = %digest, verdict = verdict.as_str(), "scanned");
        Ok(ScanReport {
            scanner: format!("berth {}", env!("CARGO_PKG_VERSION")),
            subject: digest.to_string(),
            scanned_at: crate::time::rfc3339(crate::time::now_ms()),
            verdict,
            layers,
        })
    }

    async fn scan_layer(&self, repo: &RepoName, layer: &Descriptor) -> Result<LayerReport> {
        let title = layer
            .annotations
            .get("org.opencontainers.image.title")
            .cloned();
        // The repository must hold it; the bytes are read from the store.
        self.stat_blob(repo, &layer.digest).await?;
        let body = if layer.size == 0 {
            futures_util::stream::empty().boxed()
        } else {
            self.blobs
                .read(&StorageKey::Blob(layer.digest.clone()), None)
                .await?
        };
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes>>(4);
        let feed = tokio::spawn(async move {
            let mut body = body;
            while let Some(chunk) = body.next().await {
                if tx.send(chunk).await.is_err() {
                    break;
                }
            }
        });
        let policy = self.policy();
        let limits = formats::Limits {
            max_bytes: policy.max_layer_bytes,
            deadline: Instant::now() + Duration::from_secs(policy.timeout_seconds),
        };
        let hint = formats::Hint {
            name: title.clone().unwrap_or_default(),
            media_type: layer.media_type.clone(),
            size: Some(layer.size),
        };
        let path = title.clone().unwrap_or_else(|| "layer".into());
        let walked = tokio::task::spawn_blocking(move || {
            let mut source = Channel {
                rx,
                current: Bytes::new(),
            };
            formats::walk(&mut source, &path, hint, limits)
        })
        .await
        .map_err(|e| Error::Internal(format!("scan task failed: {e}")))?;
        feed.abort();
        let walked = walked.map_err(|e| Error::Internal(e.to_string()))?;
        let mut verdict = walked
            .found
            .iter()
            .map(|f| f.verdict)
            .max()
            .unwrap_or(Verdict::Clean);
        if walked.incomplete.is_some() {
            verdict = verdict.max(Verdict::Unknown);
        }
        Ok(LayerReport {
            digest: layer.digest.to_string(),
            media_type: layer.media_type.clone(),
            size: layer.size,
            title,
            verdict,
            files: walked.found,
            other_files: walked.other_files,
            unlisted: walked.unlisted,
            incomplete: walked.incomplete,
        })
    }

    /// Stores the report and its empty config as blobs of `repo`, the
    /// report manifest (subject: the version), and a `scan` event.
    async fn attach_report(
        &self,
        repo: &RepoName,
        subject: &Subject,
        report: &ScanReport,
    ) -> Result<Digest> {
        let document = Bytes::from(
            serde_json::to_vec_pretty(report)
                .map_err(|e| Error::Internal(format!("scan report: {e}")))?,
        );
        let empty = Bytes::from_static(b"{}");
        let (document_digest, empty_digest) =
            (Digest::sha256_of(&document), Digest::sha256_of(&empty));
        for (digest, bytes) in [(&document_digest, &document), (&empty_digest, &empty)] {
            if self.stat_blob(repo, digest).await.is_err() {
                let body = futures_util::stream::once(std::future::ready(Ok(bytes.clone())));
                self.push_blob(repo, digest, None, body).await?;
            }
        }
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": crate::oci::media_type::OCI_MANIFEST,
            "artifactType": SCAN_ARTIFACT,
            "config": {
                "mediaType": crate::oci::media_type::OCI_EMPTY,
                "digest": empty_digest.to_string(),
                "size": 2,
            },
            "layers": [{
                "mediaType": SCAN_ARTIFACT,
                "digest": document_digest.to_string(),
                "size": document.len(),
            }],
            "subject": {
                "mediaType": subject.media_type,
                "digest": subject.digest.to_string(),
                "size": subject.size,
            },
            "annotations": {
                "io.berth.scan.verdict": report.verdict.as_str(),
                "org.opencontainers.image.created": report.scanned_at,
            },
        });
        let bytes =
            Bytes::from(serde_json::to_vec(&manifest).map_err(|e| Error::Internal(e.to_string()))?);
        let digest = Digest::sha256_of(&bytes);
        let actor = Actor {
            name: Some(SCANNER.into()),
            reason: None,
        };
        self.push_manifest(
            repo,
            &Reference::Digest(digest.clone()),
            Some(crate::oci::media_type::OCI_MANIFEST),
            bytes,
            Vec::new(),
            actor.clone(),
        )
        .await?;
        let event = NewEvent {
            action: EventAction::Scan,
            repo: repo.clone(),
            digest: Some(subject.digest.clone()),
            tag: None,
            old_digest: None,
        };
        let said = Actor {
            reason: Some(format!("{} (report {digest})", report.verdict.as_str())),
            ..actor
        };
        self.meta(move |m: &ReleaseArea| m.record_event(&event, &said))
            .await?;
        self.events_changed();
        self.metrics.scan(report.verdict.as_str());
        Ok(digest)
    }

    /// For a repository that refuses unsafe pushes: scans the layers of a
    /// manifest about to be recorded, and refuses it if the report would
    /// fail. The report is returned to be attached once the push lands.
    pub(super) async fn scan_before_push(
        &self,
        repo: &RepoName,
        digest: &Digest,
        manifest: &Manifest,
    ) -> Result<Option<ScanReport>> {
        let policy = self.policy();
        if !any_matches(&policy.refuse_push, repo.as_str()) || !scanned(policy, manifest) {
            return Ok(None);
        }
        let report = self.scan_layers(repo, digest, manifest).await?;
        let problems = report.problems(refused_from(policy.refuse_push_unknown));
        if problems.is_empty() {
            Ok(Some(report))
        } else {
            self.metrics.scan("refused_push");
            Err(Error::ManifestInvalid(format!(
                "refused by the pickle scan: {}",
                problems.join("; ")
            )))
        }
    }

    /// After a push: attaches the report made before it (in the
    /// background, marked pending until there), or queues the scan.
    pub(super) fn after_push_scan(
        &self,
        repo: &RepoName,
        subject: Subject,
        manifest: &Manifest,
        made: Option<ScanReport>,
    ) {
        let Some(report) = made else {
            if self.policy().enabled && scanned(self.policy(), manifest) {
                self.queue_scan(repo, &subject.digest);
            }
            return;
        };
        let key = (repo.clone(), subject.digest.clone());
        self.scans
            .pending
            .lock()
            .expect("scans")
            .insert(key.clone());
        let (registry, repo) = (self.clone(), repo.clone());
        tokio::spawn(async move {
            if let Err(e) = registry.attach_report(&repo, &subject, &report).await {
                tracing::warn!(repo = %repo, digest = %subject.digest, error = %e, "scan report not attached");
            }
            registry.scans.pending.lock().expect("scans").remove(&key);
        });
    }

    /// What the scan gates on (`repo`, `tag`) find wrong with `candidate`
    /// (scanning it now if it has no report).
    pub(super) async fn unmet_scan_gates(
        &self,
        repo: &RepoName,
        tag: &Tag,
        candidate: &Digest,
    ) -> Result<Vec<String>> {
        let gates: Vec<&ScanGate> = self
            .policy()
            .gates
            .iter()
            .filter(|g| {
                any_matches(&g.repositories, repo.as_str()) && any_matches(&g.tags, tag.as_str())
            })
            .collect();
        if gates.is_empty() {
            return Ok(Vec::new());
        }
        let strict = gates.iter().any(|g| g.refuse_unknown);
        let manifest = self.parsed_manifest(repo, candidate).await?;
        if !scanned(self.policy(), &manifest) {
            return Ok(Vec::new());
        }
        let (_, report) = self.scan(repo, candidate, false).await?;
        Ok(report
            .problems(refused_from(strict))
            .into_iter()
            .map(|p| format!("scan: {p}"))
            .collect())
    }
}

/// The layer's bytes, handed over from the async reader to the scan's
/// blocking thread.
struct Channel {
    rx: tokio::sync::mpsc::Receiver<Result<Bytes>>,
    current: Bytes,
}

impl Read for Channel {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(e)) => return Err(io::Error::other(formats::SourceFailed(e.to_string()))),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}
