//! The lineage graph around a model version: a breadth-first walk over the
//! recorded facts, both ways, into nodes and edges.

use std::collections::{HashMap, HashSet, VecDeque};

use serde::Serialize;

use crate::error::Result;
use crate::meta::{FactKind, LineageArea, ManifestInfo, StoredFact};
use crate::oci::{Digest, RepoName, Tag};
use crate::time::rfc3339;

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
    pub kind: NodeKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repository: Option<RepoName>,
    pub tags: Vec<Tag>,
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

/// What a node of the graph is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    /// A manifest in the registry that is not a dataset.
    Model,
    /// A dataset held in the registry.
    Dataset,
    /// A dataset known only by digest or URI.
    External,
    /// A code commit.
    Code,
    /// A training run.
    Run,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq, Hash)]
pub struct Edge {
    pub from: String,
    pub to: String,
    pub relation: String,
}

/// Breadth-first walk from `root`, at most `depth` steps each way.
pub(super) fn walk(
    m: &LineageArea,
    repo: &RepoName,
    root: &Digest,
    direction: Direction,
    depth: usize,
) -> Result<Graph> {
    let mut g = Builder::new(m, repo);
    g.digest_node(root, NodeKind::Model)?;
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
                    g.digest_node(&f.model, NodeKind::Model)?;
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
    meta: &'a LineageArea,
    repo: &'a RepoName,
    nodes: Vec<Node>,
    index: HashMap<String, usize>,
    edges: Vec<Edge>,
    edge_set: HashSet<Edge>,
}

impl<'a> Builder<'a> {
    fn new(meta: &'a LineageArea, repo: &'a RepoName) -> Self {
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
    fn digest_node(&mut self, digest: &Digest, kind: NodeKind) -> Result<String> {
        self.digest_node_in(digest, kind, None)
    }

    fn digest_node_in(
        &mut self,
        digest: &Digest,
        kind: NodeKind,
        prefer: Option<&RepoName>,
    ) -> Result<String> {
        let id = digest.to_string();
        if self.index.contains_key(&id) {
            return Ok(id);
        }
        let infos: Vec<ManifestInfo> = self.meta.describe(digest)?;
        let info = infos
            .iter()
            .find(|i| Some(&i.repo) == prefer)
            .or_else(|| infos.iter().find(|i| i.repo == *self.repo))
            .or_else(|| infos.first());
        let node = Node {
            id: id.clone(),
            kind,
            digest: Some(id.clone()),
            repository: info.map(|i| i.repo.clone()).or_else(|| prefer.cloned()),
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
        let plain = |id: String, kind: NodeKind| Node {
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
                    ..plain(id.clone(), NodeKind::Code)
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
                    ..plain(id.clone(), NodeKind::Run)
                });
                Ok((id, None))
            }
            (kind, Some(target)) => {
                let node_kind = if kind == FactKind::Dataset {
                    NodeKind::Dataset
                } else {
                    NodeKind::Model
                };
                let id = self.digest_node_in(target, node_kind, f.target_repo.as_ref())?;
                if let Some(i) = self.index.get(&id).copied() {
                    let n = &mut self.nodes[i];
                    if n.uri.is_none() {
                        n.uri.clone_from(&f.uri);
                    }
                    if n.name.is_none() {
                        n.name.clone_from(&f.name);
                    }
                    if !n.present && f.uri.is_some() {
                        n.kind = NodeKind::External;
                    }
                }
                Ok((id, Some(target.clone())))
            }
            (_, None) => {
                let id = format!("uri:{}", f.uri.as_deref().unwrap_or("unknown"));
                self.push(plain(id.clone(), NodeKind::External));
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
}

impl Node {
    /// A short human label: `repo:tag`, `repo@sha256:1234abcd`, a commit, a URI.
    pub fn label(&self) -> String {
        let short = |d: &str| d.chars().take(19).collect::<String>();
        match (&self.repository, &self.digest) {
            (Some(r), _) if !self.tags.is_empty() => format!(
                "{r}:{}",
                self.tags
                    .iter()
                    .map(Tag::as_str)
                    .collect::<Vec<_>>()
                    .join(",")
            ),
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
