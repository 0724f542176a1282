//! Releases: environment tags moved by promote and rollback (guarded by
//! compare-and-swap, immutability and gates on evaluation results), automatic
//! rollback when live metrics fall past a threshold, tag history, and release
//! notes between two versions.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Registry;
use super::release_notes::ReleaseNotes;
use crate::error::{Error, Result};
use crate::glob::{Glob, any_matches};
use crate::meta::{
    Actor, Event, EventAction, Expect, HistoryEntry, NewEvent, Operation, ReleaseArea,
};
use crate::oci::{Digest, Manifest, Reference, RepoName, Tag};

/// Artifact type of an evaluation report attached to a model.
pub const EVALUATION_ARTIFACT: &str = "application/vnd.berth.evaluation.v1+json";
/// Evaluation reports read per candidate, newest first.
const EVALUATIONS_READ: usize = 32;

/// How a metric is compared with its threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Comparison {
    #[serde(rename = ">=")]
    AtLeast,
    #[serde(rename = "<=")]
    AtMost,
}

impl Comparison {
    fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Comparison::AtLeast => value >= threshold,
            Comparison::AtMost => value <= threshold,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Comparison::AtLeast => ">=",
            Comparison::AtMost => "<=",
        }
    }
}

/// A metric requirement for repositories and tags matching globs: a promotion
/// gate, or a rollback policy on live metrics.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricRule {
    pub repositories: Vec<Glob>,
    pub tags: Vec<Glob>,
    pub metric: String,
    pub op: Comparison,
    pub threshold: f64,
}

impl MetricRule {
    fn applies(&self, repo: &RepoName, tag: &str) -> bool {
        any_matches(&self.repositories, repo.as_str()) && any_matches(&self.tags, tag)
    }

    fn describe(&self) -> String {
        format!("{} {} {}", self.metric, self.op.as_str(), self.threshold)
    }
}

/// The `[releases]` config section.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReleasePolicy {
    /// Tags that, once set, never move (globs over tag names).
    pub immutable_tags: Vec<Glob>,
    /// A promotion to a matching tag needs an evaluation meeting the rule.
    pub gates: Vec<MetricRule>,
    /// An evaluation of a live version past the rule rolls the tag back.
    pub rollback: Vec<MetricRule>,
}

/// An evaluation report: metrics by name, and what they were measured on.
#[derive(Debug, Clone, Deserialize)]
pub struct Evaluation {
    pub metrics: BTreeMap<String, f64>,
    #[serde(default)]
    pub dataset: Option<String>,
}

/// What a promote or rollback did.
#[derive(Debug, Clone, Serialize)]
pub struct TagMove {
    pub repository: String,
    pub tag: String,
    pub from: Option<String>,
    pub to: String,
    pub operation: Operation,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<ReleaseNotes>,
}

impl Registry {
    /// Points the environment tag `to` at `reference`, if the gates pass and,
    /// with `expect`, the tag still points where the caller thinks.
    pub async fn promote(
        &self,
        repo: &RepoName,
        reference: &Reference,
        to: &Tag,
        expect: Option<Digest>,
        actor: Actor,
    ) -> Result<TagMove> {
        let candidate = self.stat_manifest(repo, reference).await?.digest;
        let mut unmet = self.unmet_gates(repo, to, &candidate).await?;
        unmet.extend(self.unmet_scan_gates(repo, to, &candidate).await?);
        if !unmet.is_empty() {
            let (r, event) = (
                repo.clone(),
                NewEvent {
                    action: EventAction::PromoteRefused,
                    repo: repo.clone(),
                    digest: Some(candidate.clone()),
                    tag: Some(to.clone()),
                    old_digest: None,
                },
            );
            let refused = Actor {
                reason: Some(unmet.join("; ")),
                ..actor.clone()
            };
            self.meta(move |m: &ReleaseArea| m.record_event(&event, &refused))
                .await?;
            self.events_changed();
            tracing::info!(repo = %r, tag = %to, digest = %candidate, "promotion refused");
            self.metrics.release("promote_refused");
            return Err(Error::GateFailed { unmet });
        }
        let expect = expect.map_or(Expect::Anything, Expect::Digest);
        let moved = self
            .move_env_tag(repo, to, &candidate, expect, Operation::Promote, actor)
            .await?;
        self.metrics.release("promote");
        Ok(moved)
    }

    /// Moves `tag` back: to `to`, or by default to the digest it pointed at
    /// before its current one.
    pub async fn rollback(
        &self,
        repo: &RepoName,
        tag: &Tag,
        to: Option<Digest>,
        actor: Actor,
    ) -> Result<TagMove> {
        let current = self
            .stat_manifest(repo, &Reference::Tag(tag.clone()))
            .await?
            .digest;
        let target = match to {
            Some(d) => d,
            None => self
                .previous_digest(repo, tag, &current)
                .await?
                .ok_or_else(|| {
                    Error::BadRequest(format!(
                        "{repo}:{tag} has no earlier version to roll back to"
                    ))
                })?,
        };
        let moved = self
            .move_env_tag(
                repo,
                tag,
                &target,
                Expect::Digest(current),
                Operation::Rollback,
                actor,
            )
            .await?;
        self.metrics.release("rollback");
        Ok(moved)
    }

    async fn move_env_tag(
        &self,
        repo: &RepoName,
        tag: &Tag,
        to: &Digest,
        expect: Expect,
        operation: Operation,
        actor: Actor,
    ) -> Result<TagMove> {
        let (r, t, d, immutable) = (
            repo.clone(),
            tag.clone(),
            to.clone(),
            self.settings.releases.immutable_tags.clone(),
        );
        let from = self
            .meta(move |m: &ReleaseArea| {
                m.set_tag(&r, &t, &d, &expect, &immutable, operation, &actor)
            })
            .await?;
        self.events_changed();
        tracing::info!(repo = %repo, tag = %tag, to = %to, operation = %operation, "tag moved");
        let diff = match &from {
            Some(f) if f != to => Some(self.release_notes(repo, f, to).await?),
            _ => None,
        };
        Ok(TagMove {
            repository: repo.to_string(),
            tag: tag.to_string(),
            from: from.map(|d| d.to_string()),
            to: to.to_string(),
            operation,
            diff,
        })
    }

    /// The digest a tag pointed at before it moved to `current`, if it is still here.
    async fn previous_digest(
        &self,
        repo: &RepoName,
        tag: &Tag,
        current: &Digest,
    ) -> Result<Option<Digest>> {
        let (r, t) = (repo.clone(), tag.clone());
        let history = self
            .meta(move |m: &ReleaseArea| m.tag_history(&r, &t, None, 1000))
            .await?;
        for entry in history.iter().filter(|e| e.new.as_ref() == Some(current)) {
            if let Some(old) = entry.old.as_ref().filter(|o| *o != current)
                && self
                    .stat_manifest(repo, &Reference::Digest(old.clone()))
                    .await
                    .is_ok()
            {
                return Ok(Some(old.clone()));
            }
        }
        Ok(None)
    }

    /// Every gate on (`repo`, `tag`) that `candidate`'s evaluations do not meet.
    async fn unmet_gates(
        &self,
        repo: &RepoName,
        tag: &Tag,
        candidate: &Digest,
    ) -> Result<Vec<String>> {
        let rules: Vec<&MetricRule> = self
            .settings
            .releases
            .gates
            .iter()
            .filter(|g| g.applies(repo, tag.as_str()))
            .collect();
        if rules.is_empty() {
            return Ok(Vec::new());
        }
        let metrics = self.latest_metrics(repo, candidate).await?;
        Ok(rules
            .into_iter()
            .filter_map(|rule| match metrics.get(&rule.metric) {
                Some(v) if rule.op.holds(*v, rule.threshold) => None,
                Some(v) => Some(format!("{} (measured {v})", rule.describe())),
                None => Some(format!(
                    "{} (no evaluation of {candidate} reports {})",
                    rule.describe(),
                    rule.metric
                )),
            })
            .collect())
    }

    /// The newest value of each metric over the evaluations attached to `digest`.
    pub async fn latest_metrics(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<BTreeMap<String, f64>> {
        let mut referrers = self
            .list_referrers(repo, digest, Some(EVALUATION_ARTIFACT.to_owned()))
            .await?;
        referrers.reverse();
        let mut metrics = BTreeMap::new();
        for r in referrers.into_iter().take(EVALUATIONS_READ) {
            let (_, bytes) = self
                .read_manifest(repo, &Reference::Digest(r.digest.clone()))
                .await?;
            if let Ok(eval) = self.evaluation(repo, &bytes).await {
                for (k, v) in eval.metrics {
                    metrics.entry(k).or_insert(v);
                }
            }
        }
        Ok(metrics)
    }

    /// Reads the evaluation document carried by an evaluation manifest.
    async fn evaluation(&self, repo: &RepoName, manifest_bytes: &[u8]) -> Result<Evaluation> {
        let manifest = Manifest::parse(manifest_bytes, None)?;
        let layer = manifest
            .children
            .iter()
            .find(|l| l.media_type == EVALUATION_ARTIFACT)
            .or_else(|| manifest.children.first())
            .ok_or_else(|| {
                Error::ManifestInvalid("an evaluation needs its report as a layer".into())
            })?;
        let bytes = self.small_blob(repo, &layer.digest, layer.size).await?;
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::ManifestInvalid(format!("evaluation report: {e}")))
    }

    /// After an evaluation is pushed: if it measures a version that an
    /// environment tag points at and a rollback policy's metric is past its
    /// threshold, the tag goes back to its previous version.
    pub(super) async fn after_evaluation(
        &self,
        repo: &RepoName,
        manifest: &Manifest,
        bytes: &[u8],
    ) -> Result<()> {
        let Some(subject) = manifest.subject.as_ref().map(|s| s.digest.clone()) else {
            return Ok(());
        };
        let policies = &self.settings.releases.rollback;
        if policies.is_empty() {
            return Ok(());
        }
        let evaluation = self.evaluation(repo, bytes).await?;
        let (r, s) = (repo.clone(), subject.clone());
        let tags = self.meta(move |m: &ReleaseArea| m.tags_on(&r, &s)).await?;
        for tag in tags {
            let breached: Vec<String> = policies
                .iter()
                .filter(|p| p.applies(repo, tag.as_str()))
                .filter_map(|p| {
                    let v = evaluation.metrics.get(&p.metric)?;
                    (!p.op.holds(*v, p.threshold))
                        .then(|| format!("{} = {v}, policy {}", p.metric, p.describe()))
                })
                .collect();
            if breached.is_empty() {
                continue;
            }
            let actor = Actor {
                name: Some("berth".into()),
                reason: Some(format!("automatic rollback: {}", breached.join("; "))),
            };
            match self.rollback(repo, &tag, None, actor).await {
                Ok(m) => {
                    self.metrics.release("automatic_rollback");
                    tracing::warn!(repo = %repo, tag = %tag, from = ?m.from, to = %m.to, "automatic rollback")
                }
                Err(e) => {
                    tracing::warn!(repo = %repo, tag = %tag, error = %e, "automatic rollback not possible")
                }
            }
        }
        Ok(())
    }

    /// A tag's moves, newest first.
    pub async fn tag_history(
        &self,
        repo: &RepoName,
        tag: &Tag,
        before: Option<i64>,
        n: usize,
    ) -> Result<Vec<HistoryEntry>> {
        let (r, t) = (repo.clone(), tag.clone());
        self.meta(move |m: &ReleaseArea| m.tag_history(&r, &t, before, n))
            .await
    }

    /// Promotions to `tag` that gates refused, newest first.
    pub async fn refusals(&self, repo: &RepoName, tag: &Tag, n: usize) -> Result<Vec<Event>> {
        let (r, t) = (repo.clone(), tag.clone());
        self.meta(move |m: &ReleaseArea| m.refusals(&r, &t, n))
            .await
    }

    /// The move in force at a time ("what was production on Tuesday").
    pub async fn tag_at(
        &self,
        repo: &RepoName,
        tag: &Tag,
        at_ms: i64,
    ) -> Result<Option<HistoryEntry>> {
        let (r, t) = (repo.clone(), tag.clone());
        self.meta(move |m: &ReleaseArea| m.tag_at(&r, &t, at_ms))
            .await
    }
}
