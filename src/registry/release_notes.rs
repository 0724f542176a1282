//! Release notes between two versions of a repository: layers added and
//! removed, annotations, lineage and evaluation metrics, as typed values
//! (the API serialises them as they are).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::Registry;
use crate::error::Result;
use crate::meta::{FactKind, LineageArea, StoredFact};
use crate::oci::{Descriptor, Digest, Manifest, Reference, RepoName};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReleaseNotes {
    pub from: Digest,
    pub to: Digest,
    pub layers: LayerChanges,
    pub annotations: AnnotationChanges,
    pub lineage: LineageChanges,
    pub metrics: BTreeMap<String, MetricChange>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LayerChanges {
    pub added: Vec<Layer>,
    pub removed: Vec<Layer>,
    pub bytes_added: u64,
    pub bytes_removed: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Layer {
    pub digest: Digest,
    pub size: u64,
    pub media_type: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AnnotationChanges {
    pub added: BTreeMap<String, String>,
    pub removed: BTreeMap<String, String>,
    pub changed: BTreeMap<String, Change>,
}

/// An annotation's value before and after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub from: String,
    pub to: String,
}

/// A metric's latest evaluated value before and after, and the difference
/// when both versions have one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricChange {
    pub from: Option<f64>,
    pub to: Option<f64>,
    pub delta: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LineageChanges {
    pub datasets: SetChange,
    pub parents: SetChange,
    pub commit: CommitChange,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SetChange {
    pub added: Vec<String>,
    pub removed: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommitChange {
    pub from: Option<String>,
    pub to: Option<String>,
}

impl From<&Descriptor> for Layer {
    fn from(d: &Descriptor) -> Layer {
        Layer {
            digest: d.digest.clone(),
            size: d.size,
            media_type: d.media_type.clone(),
        }
    }
}

/// Children of `b` that `a` does not have.
fn layers_only_in(b: &Manifest, a: &Manifest) -> Vec<Layer> {
    let in_a: BTreeSet<&Digest> = a.children.iter().map(|d| &d.digest).collect();
    b.children
        .iter()
        .filter(|d| !in_a.contains(&d.digest))
        .map(Layer::from)
        .collect()
}

fn annotation_changes(a: &Manifest, b: &Manifest) -> AnnotationChanges {
    let mut changes = AnnotationChanges::default();
    for (k, v) in &b.annotations {
        match a.annotations.get(k) {
            None => {
                changes.added.insert(k.clone(), v.clone());
            }
            Some(old) if old != v => {
                let change = Change {
                    from: old.clone(),
                    to: v.clone(),
                };
                changes.changed.insert(k.clone(), change);
            }
            Some(_) => {}
        }
    }
    for (k, v) in &a.annotations {
        if !b.annotations.contains_key(k) {
            changes.removed.insert(k.clone(), v.clone());
        }
    }
    changes
}

fn lineage_changes(a: &[StoredFact], b: &[StoredFact]) -> LineageChanges {
    let set = |facts: &[StoredFact], kind: FactKind| -> BTreeSet<String> {
        facts
            .iter()
            .filter(|f| f.kind == kind)
            .filter_map(|f| {
                f.target
                    .as_ref()
                    .map(Digest::to_string)
                    .or_else(|| f.uri.clone())
            })
            .collect()
    };
    let changes = |kind: FactKind| {
        let (x, y) = (set(a, kind), set(b, kind));
        SetChange {
            added: y.difference(&x).cloned().collect(),
            removed: x.difference(&y).cloned().collect(),
        }
    };
    let commit = |facts: &[StoredFact]| facts.iter().find_map(|f| f.revision.clone());
    LineageChanges {
        datasets: changes(FactKind::Dataset),
        parents: changes(FactKind::Parent),
        commit: CommitChange {
            from: commit(a),
            to: commit(b),
        },
    }
}

impl Registry {
    /// Release notes from one version to another.
    pub async fn release_notes(
        &self,
        repo: &RepoName,
        from: &Digest,
        to: &Digest,
    ) -> Result<ReleaseNotes> {
        let (_, from_bytes) = self
            .read_manifest(repo, &Reference::Digest(from.clone()))
            .await?;
        let (_, to_bytes) = self
            .read_manifest(repo, &Reference::Digest(to.clone()))
            .await?;
        let (a, b) = (
            Manifest::parse(&from_bytes, None)?,
            Manifest::parse(&to_bytes, None)?,
        );
        let (added, removed) = (layers_only_in(&b, &a), layers_only_in(&a, &b));
        let (fa, fb) = (from.clone(), to.clone());
        let (facts_a, facts_b) = self
            .meta(move |m: &LineageArea| Ok((m.facts_about(&fa)?, m.facts_about(&fb)?)))
            .await?;
        let (ma, mb) = (
            self.latest_metrics(repo, from).await?,
            self.latest_metrics(repo, to).await?,
        );
        let names: BTreeSet<&String> = ma.keys().chain(mb.keys()).collect();
        let metrics = names
            .into_iter()
            .map(|name| {
                let (x, y) = (ma.get(name).copied(), mb.get(name).copied());
                let delta = x.zip(y).map(|(x, y)| y - x);
                (
                    name.clone(),
                    MetricChange {
                        from: x,
                        to: y,
                        delta,
                    },
                )
            })
            .collect();
        Ok(ReleaseNotes {
            from: from.clone(),
            to: to.clone(),
            layers: LayerChanges {
                bytes_added: added.iter().map(|l| l.size).sum(),
                bytes_removed: removed.iter().map(|l| l.size).sum(),
                added,
                removed,
            },
            annotations: annotation_changes(&a, &b),
            lineage: lineage_changes(&facts_a, &facts_b),
            metrics,
        })
    }
}
