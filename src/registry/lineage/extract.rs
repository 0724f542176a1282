//! Reading lineage out of what is pushed: annotations, a lineage document
//! (validated like its JSON Schema), a ModelPack config; kitfile.rs reads
//! a KitOps Kitfile.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::meta::{FactKind, LineageFact, LineageRef};
use crate::oci::{Digest, RepoName, Tag};

use super::{ANNOTATION_DATASETS, ANNOTATION_PARENTS, ANNOTATION_REVISION, ANNOTATION_SOURCE};

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

pub(super) fn fact(kind: FactKind) -> LineageFact {
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

pub(super) fn code_fact(revision: Option<&str>, source: Option<&str>) -> Option<LineageFact> {
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

    pub(super) fn facts(self) -> Result<Vec<LineageFact>> {
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
pub(super) struct ModelPackConfig {
    pub(super) descriptor: Option<ModelPackDescriptor>,
}

#[derive(Debug, Deserialize)]
pub(super) struct ModelPackDescriptor {
    #[serde(rename = "sourceURL")]
    pub(super) source_url: Option<String>,
    pub(super) revision: Option<String>,
    #[serde(rename = "datasetsURL", default)]
    pub(super) datasets_url: Vec<String>,
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
