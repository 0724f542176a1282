//! Lineage: read from what users already push (annotations, a lineage document
//! attached as a referrer, a CNCF ModelPack config), recorded in the same
//! transaction as the manifest, and queried both ways: what a model came from,
//! and what was built from a dataset, a commit or a parent model.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use serde::{Deserialize, Serialize};

use super::Registry;
use crate::error::{Error, Result};
use crate::meta::{
    FactKind, LineageFact, LineageRef, ManifestInfo, MetaStore, NewLineage, StoredFact,
};
use crate::oci::{Digest, Manifest, Reference, RepoName, Tag};
use crate::storage::StorageKey;
use crate::time::rfc3339;

/// Artifact type of a lineage document attached to a model.
pub const LINEAGE_ARTIFACT: &str = "application/vnd.berth.lineage.v1+json";
/// CNCF ModelPack artifact type and config media type.
pub const MODELPACK_MANIFEST: &str = "application/vnd.cncf.model.manifest.v1+json";
pub const MODELPACK_CONFIG: &str = "application/vnd.cncf.model.config.v1+json";
/// Manifest annotations that carry lineage.
pub const ANNOTATION_REVISION: &str = "org.opencontainers.image.revision";
pub const ANNOTATION_SOURCE: &str = "org.opencontainers.image.source";
pub const ANNOTATION_DATASETS: &str = "io.berth.lineage.datasets";
pub const ANNOTATION_PARENTS: &str = "io.berth.lineage.parents";
/// Largest lineage document or ModelPack config read at push time.
const MAX_DOCUMENT_BYTES: u64 = 1024 * 1024;
/// Deepest graph a query may ask for.
pub const MAX_DEPTH: usize = 32;

/// Parses one lineage reference: `sha256:...`, `repository@sha256:...` or `repository:tag`.
pub fn parse_reference(item: &str) -> Result<LineageRef> {
    let invalid =
        |why: String| Error::ManifestInvalid(format!("lineage reference {item:?}: {why}"));
    let item = item.trim();
    if let Some((repo, digest)) = item.split_once('@') {
        let repo = RepoName::parse(repo).map_err(|e| invalid(e.to_string()))?;
        let digest = Digest::parse(digest).map_err(|e| invalid(e.to_string()))?;
        return Ok(LineageRef::InRepo(repo, digest));
    }
    if item.starts_with("sha256:") || item.starts_with("sha512:") {
        return Digest::parse(item)
            .map(LineageRef::Digest)
            .map_err(|e| invalid(e.to_string()));
    }
    let (repo, tag) = item
        .rsplit_once(':')
        .ok_or_else(|| invalid("expected a digest, repository@digest or repository:tag".into()))?;
    let repo = RepoName::parse(repo).map_err(|e| invalid(e.to_string()))?;
    let tag = Tag::parse(tag).map_err(|e| invalid(e.to_string()))?;
    Ok(LineageRef::Tagged(repo, tag))
}

fn fact(kind: FactKind) -> LineageFact {
    LineageFact {
        kind,
        relation: None,
        target: None,
        uri: None,
        name: None,
        revision: None,
        detail: None,
    }
}

fn code_fact(revision: Option<&str>, source: Option<&str>) -> Option<LineageFact> {
    let revision = revision.map(str::trim).filter(|r| !r.is_empty());
    let source = source.map(str::trim).filter(|s| !s.is_empty());
    (revision.is_some() || source.is_some()).then(|| LineageFact {
        revision: revision.map(str::to_owned),
        uri: source.map(str::to_owned),
        ..fact(FactKind::Code)
    })
}

/// Lineage stated by manifest annotations.
pub fn from_annotations(annotations: &BTreeMap<String, String>) -> Result<Vec<LineageFact>> {
    let mut facts = Vec::new();
    let list = |key: &str| {
        annotations
            .get(key)
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    };
    for item in list(ANNOTATION_DATASETS) {
        facts.push(LineageFact {
            target: Some(parse_reference(item)?),
            ..fact(FactKind::Dataset)
        });
    }
    for item in list(ANNOTATION_PARENTS) {
        facts.push(LineageFact {
            relation: Some("derived".into()),
            target: Some(parse_reference(item)?),
            ..fact(FactKind::Parent)
        });
    }
    facts.extend(code_fact(
        annotations.get(ANNOTATION_REVISION).map(String::as_str),
        annotations.get(ANNOTATION_SOURCE).map(String::as_str),
    ));
    Ok(facts)
}

/// A lineage document (`schemas/lineage.v1.schema.json`). Parsing enforces the
/// schema: unknown fields, wrong types and missing alternatives are refused.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineageDocument {
    #[serde(default)]
    datasets: Vec<DocDataset>,
    code: Option<DocCode>,
    #[serde(default)]
    parents: Vec<DocParent>,
    run: Option<DocRun>,
    parameters: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DocDataset {
    digest: Option<Digest>,
    repository: Option<String>,
    uri: Option<String>,
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DocCode {
    repository: Option<String>,
    commit: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DocParent {
    reference: String,
    #[serde(default)]
    relation: Relation,
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Relation {
    Finetune,
    Adapter,
    Quantized,
    Merge,
    Distill,
    #[default]
    Derived,
}

impl Relation {
    fn as_str(self) -> &'static str {
        match self {
            Relation::Finetune => "finetune",
            Relation::Adapter => "adapter",
            Relation::Quantized => "quantized",
            Relation::Merge => "merge",
            Relation::Distill => "distill",
            Relation::Derived => "derived",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DocRun {
    id: Option<String>,
    url: Option<String>,
}

impl LineageDocument {
    /// Parses and validates a document; the error says what is wrong.
    pub fn parse(bytes: &[u8]) -> Result<LineageDocument> {
        let invalid = |why: String| Error::ManifestInvalid(format!("lineage document: {why}"));
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let doc: LineageDocument = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if path == "." {
                invalid(inner.to_string())
            } else {
                invalid(format!("{path}: {inner}"))
            }
        })?;
        if doc.datasets.is_empty()
            && doc.code.is_none()
            && doc.parents.is_empty()
            && doc.run.is_none()
            && doc.parameters.is_none()
        {
            return Err(invalid(
                "states nothing: expected datasets, code, parents, run or parameters".into(),
            ));
        }
        for (i, d) in doc.datasets.iter().enumerate() {
            if d.digest.is_none() && d.uri.as_deref().is_none_or(str::is_empty) {
                return Err(invalid(format!("datasets[{i}] needs a digest or a uri")));
            }
            if d.repository.is_some() && d.digest.is_none() {
                return Err(invalid(format!(
                    "datasets[{i}] names a repository but no digest"
                )));
            }
            if let Some(r) = &d.repository {
                RepoName::parse(r)
                    .map_err(|e| invalid(format!("datasets[{i}].repository: {e}")))?;
            }
        }
        if let Some(code) = &doc.code {
            let ok = !code.commit.is_empty()
                && code.commit.len() <= 128
                && code
                    .commit
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
            if !ok {
                return Err(invalid(format!(
                    "code.commit {:?} is not a revision",
                    code.commit
                )));
            }
        }
        for (i, p) in doc.parents.iter().enumerate() {
            parse_reference(&p.reference).map_err(|e| invalid(format!("parents[{i}]: {e}")))?;
        }
        if let Some(run) = &doc.run
            && run.id.is_none()
            && run.url.is_none()
        {
            return Err(invalid("run needs an id or a url".into()));
        }
        Ok(doc)
    }

    fn facts(self) -> Result<Vec<LineageFact>> {
        let mut facts = Vec::new();
        for d in self.datasets {
            let target = match (d.repository, d.digest) {
                (Some(r), Some(digest)) => Some(LineageRef::InRepo(RepoName::parse(&r)?, digest)),
                (None, Some(digest)) => Some(LineageRef::Digest(digest)),
                (_, None) => None,
            };
            facts.push(LineageFact {
                target,
                uri: d.uri,
                name: d.name,
                ..fact(FactKind::Dataset)
            });
        }
        if let Some(code) = self.code {
            facts.extend(code_fact(Some(&code.commit), code.repository.as_deref()));
        }
        for p in self.parents {
            facts.push(LineageFact {
                relation: Some(p.relation.as_str().into()),
                target: Some(parse_reference(&p.reference)?),
                ..fact(FactKind::Parent)
            });
        }
        if self.run.is_some() || self.parameters.is_some() {
            let run = self.run.unwrap_or(DocRun {
                id: None,
                url: None,
            });
            facts.push(LineageFact {
                name: run.id,
                uri: run.url,
                detail: self
                    .parameters
                    .map(|p| serde_json::Value::Object(p).to_string()),
                ..fact(FactKind::Run)
            });
        }
        Ok(facts)
    }
}

/// The fields of a ModelPack config that carry lineage.
#[derive(Debug, Deserialize)]
struct ModelPackConfig {
    descriptor: Option<ModelPackDescriptor>,
}

#[derive(Debug, Deserialize)]
struct ModelPackDescriptor {
    #[serde(rename = "sourceURL")]
    source_url: Option<String>,
    revision: Option<String>,
}

/// Which way a graph query walks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// What the model came from.
    Upstream,
    /// What was built from it.
    Downstream,
    Both,
}

impl Direction {
    pub fn parse(s: &str) -> Option<Direction> {
        match s {
            "upstream" => Some(Direction::Upstream),
            "downstream" => Some(Direction::Downstream),
            "both" => Some(Direction::Both),
            _ => None,
        }
    }
}

/// A lineage graph: nodes are manifests (models, datasets), external
/// datasets, code commits and training runs; an edge goes from an input to
/// what was made from it.
#[derive(Debug, Clone, Serialize)]
pub struct Graph {
    pub root: String,
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Node {
    pub id: String,
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    pub tags: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// False for a digest this registry does not hold (deleted, or never pushed).
    pub present: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameters: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq, Hash)]
pub struct Edge {
    pub from: String,
    pub to: String,
    pub relation: String,
}

/// A model version in a query answer.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelVersion {
    pub repository: String,
    pub digest: String,
    pub tags: Vec<String>,
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
            if let Some(d) = parsed.descriptor
                && !facts.iter().any(|f| f.kind == FactKind::Code)
            {
                facts.extend(code_fact(d.revision.as_deref(), d.source_url.as_deref()));
            }
            for layer in manifest
                .children
                .iter()
                .filter(|l| l.media_type.contains(".dataset."))
            {
                facts.push(LineageFact {
                    target: Some(LineageRef::InRepo(repo.clone(), layer.digest.clone())),
                    name: layer
                        .annotations
                        .get("org.opencontainers.image.title")
                        .cloned(),
                    ..fact(FactKind::Dataset)
                });
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
        self.meta(move |m| walk(m, &repo, &root, direction, depth.min(MAX_DEPTH)))
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
        self.meta(move |m| {
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

/// Breadth-first walk from `root`, at most `depth` steps each way.
fn walk(
    m: &dyn MetaStore,
    repo: &RepoName,
    root: &Digest,
    direction: Direction,
    depth: usize,
) -> Result<Graph> {
    let mut g = Builder::new(m, repo);
    g.digest_node(root, "model")?;
    let mut queue = VecDeque::new();
    if matches!(direction, Direction::Upstream | Direction::Both) {
        queue.push_back((root.clone(), Direction::Upstream, 0));
    }
    if matches!(direction, Direction::Downstream | Direction::Both) {
        queue.push_back((root.clone(), Direction::Downstream, 0));
    }
    let mut visited = HashSet::new();
    while let Some((digest, dir, level)) = queue.pop_front() {
        if level >= depth || !visited.insert((digest.clone(), dir)) {
            continue;
        }
        let id = digest.to_string();
        match dir {
            Direction::Upstream => {
                for f in m.facts_about(&digest)? {
                    let (from, next) = g.source_node(&f)?;
                    g.edge(from, id.clone(), relation(&f));
                    if let Some(next) = next {
                        queue.push_back((next, dir, level + 1));
                    }
                }
            }
            _ => {
                for f in m.facts_pointing_at(&digest, None)? {
                    g.digest_node(&f.model, "model")?;
                    g.edge(id.clone(), f.model.to_string(), relation(&f));
                    queue.push_back((f.model.clone(), dir, level + 1));
                }
            }
        }
    }
    Ok(g.finish(root.to_string()))
}

fn relation(f: &StoredFact) -> String {
    f.relation
        .clone()
        .unwrap_or_else(|| f.kind.as_str().to_owned())
}

struct Builder<'a> {
    meta: &'a dyn MetaStore,
    repo: &'a RepoName,
    nodes: Vec<Node>,
    index: HashMap<String, usize>,
    edges: Vec<Edge>,
    edge_set: HashSet<Edge>,
}

impl<'a> Builder<'a> {
    fn new(meta: &'a dyn MetaStore, repo: &'a RepoName) -> Self {
        Builder {
            meta,
            repo,
            nodes: Vec::new(),
            index: HashMap::new(),
            edges: Vec::new(),
            edge_set: HashSet::new(),
        }
    }

    /// Adds a manifest node, described from the repository that holds it
    /// (this query's repository first).
    fn digest_node(&mut self, digest: &Digest, kind: &'static str) -> Result<String> {
        self.digest_node_in(digest, kind, None)
    }

    fn digest_node_in(
        &mut self,
        digest: &Digest,
        kind: &'static str,
        prefer: Option<&str>,
    ) -> Result<String> {
        let id = digest.to_string();
        if self.index.contains_key(&id) {
            return Ok(id);
        }
        let infos: Vec<ManifestInfo> = self.meta.describe(digest)?;
        let info = infos
            .iter()
            .find(|i| Some(i.repo.as_str()) == prefer)
            .or_else(|| infos.iter().find(|i| i.repo == self.repo.as_str()))
            .or_else(|| infos.first());
        let node = Node {
            id: id.clone(),
            kind,
            digest: Some(id.clone()),
            repository: info
                .map(|i| i.repo.clone())
                .or_else(|| prefer.map(str::to_owned)),
            tags: info.map(|i| i.tags.clone()).unwrap_or_default(),
            artifact_type: info.and_then(|i| i.artifact_type.clone()),
            created: info.map(|i| rfc3339(i.created_ms)),
            present: info.is_some(),
            uri: None,
            name: None,
            parameters: None,
        };
        self.push(node);
        Ok(id)
    }

    /// The node a fact points at, and the digest to walk on from, if any.
    fn source_node(&mut self, f: &StoredFact) -> Result<(String, Option<Digest>)> {
        let plain = |id: String, kind: &'static str| Node {
            id,
            kind,
            digest: None,
            repository: None,
            tags: Vec::new(),
            artifact_type: None,
            created: None,
            present: true,
            uri: f.uri.clone(),
            name: f.name.clone(),
            parameters: None,
        };
        match (f.kind, &f.target) {
            (FactKind::Code, _) => {
                let id = format!("commit:{}", f.revision.as_deref().unwrap_or("unknown"));
                self.push(Node {
                    name: f.revision.clone(),
                    ..plain(id.clone(), "code")
                });
                Ok((id, None))
            }
            (FactKind::Run, _) => {
                let id = format!(
                    "run:{}",
                    f.name.as_deref().or(f.uri.as_deref()).unwrap_or("unknown")
                );
                self.push(Node {
                    parameters: f
                        .detail
                        .as_deref()
                        .and_then(|d| serde_json::from_str(d).ok()),
                    ..plain(id.clone(), "run")
                });
                Ok((id, None))
            }
            (kind, Some(target)) => {
                let node_kind = if kind == FactKind::Dataset {
                    "dataset"
                } else {
                    "model"
                };
                let id = self.digest_node_in(target, node_kind, f.target_repo.as_deref())?;
                if let Some(i) = self.index.get(&id).copied() {
                    let n = &mut self.nodes[i];
                    if n.uri.is_none() {
                        n.uri.clone_from(&f.uri);
                    }
                    if n.name.is_none() {
                        n.name.clone_from(&f.name);
                    }
                    if !n.present && f.uri.is_some() {
                        n.kind = "external";
                    }
                }
                Ok((id, Some(target.clone())))
            }
            (_, None) => {
                let id = format!("uri:{}", f.uri.as_deref().unwrap_or("unknown"));
                self.push(plain(id.clone(), "external"));
                Ok((id, None))
            }
        }
    }

    fn push(&mut self, node: Node) {
        if !self.index.contains_key(&node.id) {
            self.index.insert(node.id.clone(), self.nodes.len());
            self.nodes.push(node);
        }
    }

    fn edge(&mut self, from: String, to: String, relation: String) {
        let e = Edge { from, to, relation };
        if self.edge_set.insert(e.clone()) {
            self.edges.push(e);
        }
    }

    fn finish(self, root: String) -> Graph {
        Graph {
            root,
            nodes: self.nodes,
            edges: self.edges,
        }
    }
}

impl Graph {
    /// Keeps only the nodes `keep` accepts (and the root), and the edges between them.
    pub fn retain_nodes(&mut self, keep: impl Fn(&Node) -> bool) {
        let root = self.root.clone();
        self.nodes.retain(|n| n.id == root || keep(n));
        let ids: HashSet<&str> = self.nodes.iter().map(|n| n.id.as_str()).collect();
        self.edges
            .retain(|e| ids.contains(e.from.as_str()) && ids.contains(e.to.as_str()));
    }

    /// Graphviz DOT.
    pub fn to_dot(&self) -> String {
        let quote = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
        let mut out = String::from(
            "digraph lineage {\n  rankdir=LR;\n  node [shape=box, fontname=\"Helvetica\"];\n",
        );
        for n in &self.nodes {
            let shape = match n.kind {
                "dataset" | "external" => "cylinder",
                "code" => "note",
                "run" => "ellipse",
                _ => "box",
            };
            out.push_str(&format!(
                "  \"{}\" [label=\"{}\", shape={shape}{}];\n",
                quote(&n.id),
                quote(&n.label()),
                if n.id == self.root {
                    ", style=bold"
                } else {
                    ""
                }
            ));
        }
        for e in &self.edges {
            out.push_str(&format!(
                "  \"{}\" -> \"{}\" [label=\"{}\"];\n",
                quote(&e.from),
                quote(&e.to),
                quote(&e.relation)
            ));
        }
        out.push_str("}\n");
        out
    }
}

impl Node {
    /// A short human label: `repo:tag`, `repo@sha256:1234abcd`, a commit, a URI.
    pub fn label(&self) -> String {
        let short = |d: &str| d.chars().take(19).collect::<String>();
        match (&self.repository, &self.digest) {
            (Some(r), _) if !self.tags.is_empty() => format!("{r}:{}", self.tags.join(",")),
            (Some(r), Some(d)) => format!("{r}@{}", short(d)),
            (None, Some(d)) => self.uri.clone().unwrap_or_else(|| short(d)),
            _ => self
                .name
                .clone()
                .or_else(|| self.uri.clone())
                .unwrap_or_else(|| self.id.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn references_in_three_spellings() {
        assert!(matches!(parse_reference(D), Ok(LineageRef::Digest(_))));
        assert!(matches!(
            parse_reference(&format!("data/imagenet@{D}")),
            Ok(LineageRef::InRepo(..))
        ));
        assert!(matches!(
            parse_reference("data/imagenet:2024"),
            Ok(LineageRef::Tagged(..))
        ));
        for bad in ["", "sha256:abc", "Data/X:1", "nocolon", "data@sha256:zz"] {
            assert!(parse_reference(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn annotations_give_datasets_parents_and_code() {
        let ann: BTreeMap<String, String> = [
            (ANNOTATION_DATASETS, format!("{D}, data/a:v1")),
            (ANNOTATION_PARENTS, format!("models/base@{D}")),
            (ANNOTATION_REVISION, "abc123".to_owned()),
            (ANNOTATION_SOURCE, "https://git.example/x".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let facts = from_annotations(&ann).expect("valid");
        let kinds: Vec<_> = facts.iter().map(|f| f.kind).collect();
        assert_eq!(
            kinds,
            [
                FactKind::Dataset,
                FactKind::Dataset,
                FactKind::Parent,
                FactKind::Code
            ]
        );
        assert_eq!(facts[3].revision.as_deref(), Some("abc123"));
    }

    #[test]
    fn documents_are_validated_like_the_schema() {
        let ok = [
            format!(r#"{{"datasets":[{{"digest":"{D}","repository":"data/x","name":"x"}}]}}"#),
            r#"{"datasets":[{"uri":"s3://bucket/x"}],"code":{"commit":"abc","repository":"https://g/x"}}"#.to_owned(),
            format!(r#"{{"parents":[{{"reference":"m/base@{D}","relation":"finetune"}}],"run":{{"id":"r1"}},"parameters":{{"lr":0.1}}}}"#),
        ];
        for doc in &ok {
            assert!(LineageDocument::parse(doc.as_bytes()).is_ok(), "{doc}");
        }
        let bad = [
            "{}",
            "[]",
            r#"{"datasets":[{"name":"no digest nor uri"}]}"#,
            r#"{"datasets":[{"uri":"s3://x","repository":"data/x"}]}"#,
            r#"{"code":{"commit":"has space"}}"#,
            r#"{"parents":[{"reference":"m:1","relation":"cousin"}]}"#,
            r#"{"run":{}}"#,
            r#"{"unknown":1}"#,
            r#"{"datasets":[{"digest":"sha256:short"}]}"#,
        ];
        for doc in bad {
            assert!(LineageDocument::parse(doc.as_bytes()).is_err(), "{doc}");
        }
    }
}
