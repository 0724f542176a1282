//! Lineage from a KitOps ModelKit: the Kitfile, carried as the manifest's
//! config (`application/vnd.kitops.modelkit.config.v1+json`), names the
//! datasets (each packed as a layer, or kept remote), the code, and the
//! model's base when `model.path` is another ModelKit's reference.

use serde::Deserialize;

use super::extract::{code_fact, fact};
use crate::meta::{FactKind, LineageFact, LineageRef};
use crate::oci::{Descriptor, Digest, Reference, RepoName};

/// Media type of a ModelKit's config, the Kitfile as JSON.
pub const KITOPS_CONFIG: &str = "application/vnd.kitops.modelkit.config.v1+json";
/// Prefix of a ModelKit's dataset layers (`.tar` or `.tar+gzip`).
const DATASET_LAYER: &str = "application/vnd.kitops.modelkit.dataset.v1.";

/// The parts of a Kitfile that carry lineage; everything else in it is
/// the Kitfile's own business and ignored.
#[derive(Debug, Deserialize)]
pub(super) struct Kitfile {
    model: Option<KitModel>,
    #[serde(default)]
    code: Vec<KitCode>,
    #[serde(default)]
    datasets: Vec<KitDataset>,
}

#[derive(Debug, Deserialize)]
struct KitModel {
    path: Option<String>,
}

#[derive(Debug, Deserialize)]
struct KitCode {
    path: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct KitDataset {
    name: Option<String>,
    path: Option<String>,
    /// The layer packed from it (kit writes it into the config it pushes).
    digest: Option<String>,
    /// A dataset kept outside the ModelKit.
    remote_path: Option<String>,
}

/// A base model named by another ModelKit's reference: `[host/]repo:tag`
/// or `[host/]repo@digest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct KitParent {
    /// As the Kitfile writes it.
    pub(super) written: String,
    pub(super) repo: RepoName,
    pub(super) reference: Reference,
}

impl Kitfile {
    pub(super) fn parse(bytes: &[u8]) -> serde_json::Result<Kitfile> {
        serde_json::from_slice(bytes)
    }

    /// Datasets and code (a source URL among the code paths) as facts;
    /// `layers` are the ModelKit's layers of `repo`. A dataset packed in the ModelKit points at its layer (by
    /// the digest the Kitfile gives, else the dataset layers in order); a
    /// remote one is kept by its URI. Dataset layers no entry names are
    /// datasets too.
    pub(super) fn facts(&self, repo: &RepoName, layers: &[Descriptor]) -> Vec<LineageFact> {
        let dataset_layers: Vec<&Descriptor> = layers
            .iter()
            .filter(|l| l.media_type.starts_with(DATASET_LAYER))
            .collect();
        let mut claimed = vec![false; dataset_layers.len()];
        let mut unnamed = (0..dataset_layers.len()).peekable();
        let mut facts = Vec::new();
        for d in &self.datasets {
            let name = d.name.clone().or_else(|| d.path.clone());
            let remote = d
                .remote_path
                .clone()
                .or_else(|| d.path.clone().filter(|p| is_url(p)));
            let by_digest = d.digest.as_deref().and_then(|digest| {
                dataset_layers
                    .iter()
                    .position(|l| l.digest.to_string() == digest)
            });
            let at = by_digest.or_else(|| {
                if remote.is_some() || d.digest.is_some() {
                    return None;
                }
                while unnamed.peek().is_some_and(|&i| claimed[i]) {
                    unnamed.next();
                }
                unnamed.next()
            });
            let target = at.map(|i| {
                claimed[i] = true;
                LineageRef::InRepo(repo.clone(), dataset_layers[i].digest.clone())
            });
            if target.is_none() && remote.is_none() {
                continue;
            }
            facts.push(LineageFact {
                target,
                uri: remote,
                name,
                ..fact(FactKind::Dataset)
            });
        }
        for (i, layer) in dataset_layers.iter().enumerate() {
            if !claimed[i] {
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
        let source = self
            .code
            .iter()
            .filter_map(|c| c.path.as_deref())
            .find(|p| is_url(p));
        facts.extend(code_fact(None, source));
        facts
    }

    /// The base ModelKit `model.path` names, if it names one rather than
    /// a path inside this one.
    pub(super) fn parent(&self) -> Option<KitParent> {
        let written = self.model.as_ref()?.path.as_deref()?.trim();
        parse_modelkit_reference(written)
    }
}

fn is_url(path: &str) -> bool {
    [
        "http://", "https://", "s3://", "gs://", "git://", "git+", "hf://", "az://",
    ]
    .iter()
    .any(|scheme| path.starts_with(scheme))
}

/// `registry.example:5000/team/base:v1`, `team/base@sha256:...`: a
/// reference, with a registry host when the first part has a dot, a port
/// or is `localhost`. A local path (`./model`, `model.pkl`, `weights/`)
/// names no tag or digest and is not one.
fn parse_modelkit_reference(written: &str) -> Option<KitParent> {
    if written.starts_with(['.', '/', '~']) || is_url(written) {
        return None;
    }
    let (name, reference) = if let Some((name, digest)) = written.split_once('@') {
        (name, Reference::Digest(Digest::parse(digest).ok()?))
    } else {
        let slash = written.rfind('/').map_or(0, |i| i + 1);
        let colon = written[slash..].rfind(':')? + slash;
        (
            &written[..colon],
            Reference::parse(&written[colon + 1..]).ok()?,
        )
    };
    let path = match name.split_once('/') {
        Some((host, rest)) if host.contains(['.', ':']) || host == "localhost" => rest,
        _ => name,
    };
    Some(KitParent {
        written: written.to_owned(),
        repo: RepoName::parse(path).ok()?,
        reference,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_paths_that_name_a_modelkit() {
        let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let parsed = |s: &str| {
            parse_modelkit_reference(s).map(|p| (p.repo.to_string(), p.reference.to_string()))
        };
        assert_eq!(
            parsed("docker.io/kit-org/kit-repo:latest"),
            Some(("kit-org/kit-repo".into(), "latest".into()))
        );
        assert_eq!(
            parsed("localhost:5000/models/base:v1"),
            Some(("models/base".into(), "v1".into()))
        );
        assert_eq!(
            parsed("models/base:v1"),
            Some(("models/base".into(), "v1".into()))
        );
        assert_eq!(
            parsed(&format!("registry.internal/base@{d}")),
            Some(("base".into(), d.into()))
        );
        for local in [
            "./model",
            "model",
            "weights/model.pkl",
            "/abs/model:v1",
            "https://x/y:z",
            "Models/Base:v1",
        ] {
            assert_eq!(parsed(local), None, "{local}");
        }
    }
}
