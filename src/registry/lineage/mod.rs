//! Lineage: read from what users already push (annotations, a lineage document
//! attached as a referrer, a CNCF ModelPack config), recorded in the same
//! transaction as the manifest, and queried both ways: what a model came from,
//! and what was built from a dataset, a commit or a parent model. The
//! reading is extract.rs, the walk graph.rs; rendering is the API's.

use std::collections::HashSet;

use super::Registry;
use crate::error::{Error, Result};
use crate::meta::{FactKind, LineageArea, LineageFact, LineageRef, NewLineage};
use crate::oci::{Digest, Manifest, Reference, RepoName, Tag};
use crate::storage::StorageKey;
use crate::time::rfc3339;
use serde::Serialize;

mod extract;
mod graph;
mod kitfile;

pub use extract::{LineageDocument, from_annotations, parse_reference};
use extract::{ModelPackConfig, code_fact, fact};
pub use graph::{Direction, Edge, Graph, Node, NodeKind};
pub use kitfile::KITOPS_CONFIG;
use kitfile::{KitParent, Kitfile};

/// Artifact type of a lineage document attached to a model.
pub const LINEAGE_ARTIFACT: &str = "application/vnd.berth.lineage.v1+json";
/// CNCF ModelPack artifact type and config media type.
pub const MODELPACK_MANIFEST: &str = "application/vnd.cncf.model.manifest.v1+json";
pub const MODELPACK_CONFIG: &str = "application/vnd.cncf.model.config.v1+json";
/// Prefix of ModelPack dataset layers (`raw`, `tar`, `tar+gzip`, `tar+zstd`).
const MODELPACK_DATASET: &str = "application/vnd.cncf.model.dataset.v1.";
/// ModelPack's layer annotation for the file a layer holds.
const MODELPACK_FILEPATH: &str = "org.cncf.model.filepath";
/// Manifest annotations that carry lineage.
pub const ANNOTATION_REVISION: &str = "org.opencontainers.image.revision";
pub const ANNOTATION_SOURCE: &str = "org.opencontainers.image.source";
pub const ANNOTATION_DATASETS: &str = "io.berth.lineage.datasets";
pub const ANNOTATION_PARENTS: &str = "io.berth.lineage.parents";
/// Largest lineage document or ModelPack config read at push time.
const MAX_DOCUMENT_BYTES: u64 = 1024 * 1024;
/// Deepest graph a query may ask for.
pub const MAX_DEPTH: usize = 32;

/// A model version in a query answer.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelVersion {
    pub repository: RepoName,
    pub digest: String,
    pub tags: Vec<Tag>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    pub pushed: String,
}

/// What a model-list query selects on.
#[derive(Debug, Clone)]
pub enum ModelQuery {
    Dataset(Digest),
    Commit(String),
    Parent(Digest),
}

/// What a ModelPack config and its dataset layers state: code from the
/// descriptor (unless annotations gave it), each dataset layer (named by its
/// file path), and each of `descriptor.datasetsURL`.
fn modelpack_facts(
    repo: &RepoName,
    config: ModelPackConfig,
    manifest: &Manifest,
    stated: &[LineageFact],
) -> Vec<LineageFact> {
    let mut facts = Vec::new();
    if let Some(d) = config.descriptor {
        if !stated.iter().any(|f| f.kind == FactKind::Code) {
            facts.extend(code_fact(d.revision.as_deref(), d.source_url.as_deref()));
        }
        for url in d.datasets_url.into_iter().filter(|u| !u.trim().is_empty()) {
            facts.push(LineageFact {
                uri: Some(url),
                ..fact(FactKind::Dataset)
            });
        }
    }
    for layer in manifest
        .children
        .iter()
        .filter(|l| l.media_type.starts_with(MODELPACK_DATASET))
    {
        let name = [MODELPACK_FILEPATH, "org.opencontainers.image.title"]
            .iter()
            .find_map(|k| layer.annotations.get(*k).cloned());
        facts.push(LineageFact {
            target: Some(LineageRef::InRepo(repo.clone(), layer.digest.clone())),
            name,
            ..fact(FactKind::Dataset)
        });
    }
    facts
}

impl Registry {
    /// A ModelKit's base: the version it names when this registry holds
    /// it, else an external model known by the reference as written.
    async fn modelkit_parent(&self, parent: KitParent) -> Result<LineageFact> {
        let found = match self.stat_manifest(&parent.repo, &parent.reference).await {
            Ok(stat) => Some(stat.digest),
            Err(Error::ManifestUnknown(_) | Error::NameUnknown(_)) => None,
            Err(e) => return Err(e),
        };
        Ok(LineageFact {
            relation: Some("derived".into()),
            target: found.map(|d| LineageRef::InRepo(parent.repo, d)),
            uri: Some(parent.written),
            ..fact(FactKind::Parent)
        })
    }
}

impl Registry {
    /// The lineage a manifest being pushed states, if any.
    pub(super) async fn lineage_of_push(
        &self,
        repo: &RepoName,
        digest: &Digest,
        manifest: &Manifest,
    ) -> Result<Option<NewLineage>> {
        if manifest.artifact_type.as_deref() == Some(LINEAGE_ARTIFACT) {
            let subject = manifest.subject.as_ref().ok_or_else(|| {
                Error::ManifestInvalid(
                    "a lineage document must have a subject: the model it describes".into(),
                )
            })?;
            let layer = manifest
                .children
                .iter()
                .find(|d| d.media_type == LINEAGE_ARTIFACT)
                .or_else(|| manifest.children.first())
                .ok_or_else(|| {
                    Error::ManifestInvalid(
                        "a lineage document needs the document as a layer".into(),
                    )
                })?;
            let bytes = self.small_blob(repo, &layer.digest, layer.size).await?;
            let facts = LineageDocument::parse(&bytes)?.facts()?;
            return Ok(Some(NewLineage {
                model: subject.digest.clone(),
                facts,
            }));
        }
        let mut facts = from_annotations(&manifest.annotations)?;
        let config = manifest.config.as_ref();
        if let Some(config) = config.filter(|c| c.media_type == MODELPACK_CONFIG) {
            let bytes = self.small_blob(repo, &config.digest, config.size).await?;
            let parsed: ModelPackConfig = serde_json::from_slice(&bytes)
                .map_err(|e| Error::ManifestInvalid(format!("ModelPack config: {e}")))?;
            facts.extend(modelpack_facts(repo, parsed, manifest, &facts));
        }
        if let Some(config) = config.filter(|c| c.media_type == KITOPS_CONFIG) {
            let bytes = self.small_blob(repo, &config.digest, config.size).await?;
            let kitfile = Kitfile::parse(&bytes)
                .map_err(|e| Error::ManifestInvalid(format!("Kitfile (ModelKit config): {e}")))?;
            // Annotations that state the code win over the Kitfile's URL.
            let has_code = facts.iter().any(|f| f.kind == FactKind::Code);
            let stated = kitfile.facts(repo, &manifest.children);
            facts.extend(
                stated
                    .into_iter()
                    .filter(|f| !has_code || f.kind != FactKind::Code),
            );
            if let Some(parent) = kitfile.parent() {
                facts.push(self.modelkit_parent(parent).await?);
            }
        }
        Ok((!facts.is_empty()).then(|| NewLineage {
            model: digest.clone(),
            facts,
        }))
    }

    /// A small blob of `repo`, read whole (lineage documents, ModelPack configs).
    pub(super) async fn small_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
        claimed: u64,
    ) -> Result<bytes::Bytes> {
        if claimed > MAX_DOCUMENT_BYTES {
            return Err(Error::ManifestInvalid(format!(
                "{digest} is larger than the {MAX_DOCUMENT_BYTES} bytes read for lineage"
            )));
        }
        let size = match self.stat_blob(repo, digest).await {
            Ok(size) => size,
            Err(Error::BlobUnknown(d)) => return Err(Error::ManifestBlobUnknown(d)),
            Err(e) => return Err(e),
        };
        if size != claimed {
            return Err(Error::ManifestInvalid(format!(
                "{digest} has {size} bytes, not {claimed}"
            )));
        }
        self.blobs.read_all(&StorageKey::Blob(digest.clone())).await
    }

    /// The lineage graph around a model version.
    pub async fn lineage_graph(
        &self,
        repo: &RepoName,
        reference: &Reference,
        direction: Direction,
        depth: usize,
    ) -> Result<Graph> {
        let root = self.stat_manifest(repo, reference).await?.digest;
        let repo = repo.clone();
        self.meta(move |m: &LineageArea| {
            graph::walk(m, &repo, &root, direction, depth.min(MAX_DEPTH))
        })
        .await
    }

    /// Model versions trained on a dataset, built from a commit, or derived from a parent.
    pub async fn lineage_models(&self, query: ModelQuery) -> Result<Vec<ModelVersion>> {
        if let ModelQuery::Commit(prefix) = &query {
            let ok = prefix.len() >= 4
                && prefix.len() <= 128
                && prefix
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
            if !ok {
                return Err(Error::QueryInvalid(
                    "commit must be at least 4 characters of a revision".into(),
                ));
            }
        }
        self.meta(move |m: &LineageArea| {
            let facts = match &query {
                ModelQuery::Dataset(d) => m.facts_pointing_at(d, Some(FactKind::Dataset))?,
                ModelQuery::Parent(d) => m.facts_pointing_at(d, Some(FactKind::Parent))?,
                ModelQuery::Commit(p) => m.facts_with_revision(p)?,
            };
            let mut seen = HashSet::new();
            let mut out = Vec::new();
            for f in facts {
                if !seen.insert((f.repo.clone(), f.model.clone())) {
                    continue;
                }
                if let Some(info) = m.describe(&f.model)?.into_iter().find(|i| i.repo == f.repo) {
                    out.push(ModelVersion {
                        repository: info.repo,
                        digest: info.digest.to_string(),
                        tags: info.tags,
                        artifact_type: info.artifact_type,
                        pushed: rfc3339(info.created_ms),
                    });
                }
            }
            Ok(out)
        })
        .await
    }
}
