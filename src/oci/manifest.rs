//! Parsing and checking manifests (OCI image manifest and index, Docker schema 2
//! manifest and manifest list) without re-serialising them: the pushed bytes are
//! what gets stored and served.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::Invalid;
use super::digest::Digest;
use super::media_type::{self, ManifestKind};

/// A content descriptor inside a manifest.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default)]
    pub urls: Vec<String>,
    #[serde(default)]
    pub artifact_type: Option<String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

impl Descriptor {
    /// Foreign (non-distributable) layers live elsewhere, named by `urls`; the
    /// registry does not hold them, so a manifest may point at them freely.
    pub fn is_foreign(&self) -> bool {
        !self.urls.is_empty()
            && (self.media_type.contains("nondistributable") || self.media_type.contains("foreign"))
    }
}

/// The fields of any manifest that the registry looks at. Unknown fields are
/// ignored: the bytes are kept as pushed.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    schema_version: Option<i64>,
    media_type: Option<String>,
    artifact_type: Option<String>,
    config: Option<Descriptor>,
    layers: Option<Vec<Descriptor>>,
    manifests: Option<Vec<Descriptor>>,
    subject: Option<Descriptor>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    // Schema 1 manifests carry these instead.
    fs_layers: Option<serde_json::Value>,
}

/// A manifest that has passed validation.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub media_type: String,
    pub kind: ManifestKind,
    /// The artifact type as the referrers API reports it: `artifactType`, or
    /// for an image manifest without one, its config's media type.
    pub artifact_type: Option<String>,
    pub config: Option<Descriptor>,
    /// Layers (image) or child manifests (index).
    pub children: Vec<Descriptor>,
    pub subject: Option<Descriptor>,
    pub annotations: BTreeMap<String, String>,
}

impl Manifest {
    /// Parses `body` sent with `content_type` (which may be absent).
    ///
    /// The media type comes from the body's `mediaType` or the Content-Type; when
    /// both are given they must agree. A body that has both `manifests` and
    /// `config`/`layers` could be read two ways and is refused, as is schema 1.
    pub fn parse(body: &[u8], content_type: Option<&str>) -> Result<Manifest, Invalid> {
        let invalid = |why: String| Invalid::Manifest(why);
        let raw: Raw = serde_json::from_slice(body)
            .map_err(|e| invalid(format!("not a valid manifest: {e}")))?;
        let header = content_type.map(media_type::essence).filter(|t| {
            !t.is_empty() && *t != "application/json" && *t != "application/octet-stream"
        });

        if raw.schema_version == Some(1)
            || raw.fs_layers.is_some()
            || [header, raw.media_type.as_deref()]
                .into_iter()
                .flatten()
                .any(|t| t == media_type::DOCKER_SCHEMA1 || t == media_type::DOCKER_SCHEMA1_SIGNED)
        {
            return Err(Invalid::Manifest(
                "Docker schema 1 manifests are not supported; push schema 2 or OCI".into(),
            ));
        }
        if raw.schema_version != Some(2) {
            return Err(invalid("schemaVersion must be 2".into()));
        }
        if let (Some(h), Some(b)) = (header, raw.media_type.as_deref())
            && h != b
        {
            return Err(invalid(format!(
                "Content-Type {h} contradicts the body's mediaType {b}"
            )));
        }
        let looks_index = raw.manifests.is_some();
        let looks_image = raw.config.is_some() || raw.layers.is_some();
        if looks_index && looks_image {
            return Err(invalid(
                "ambiguous: has both manifests and config/layers".into(),
            ));
        }
        let media_type = match header.or(raw.media_type.as_deref()) {
            Some(t) => t.to_owned(),
            None if looks_index => media_type::OCI_INDEX.to_owned(),
            None if looks_image => media_type::OCI_MANIFEST.to_owned(),
            None => return Err(invalid("cannot tell the manifest's media type".into())),
        };
        let kind = media_type::manifest_kind(&media_type)
            .ok_or_else(|| invalid(format!("unsupported manifest media type {media_type}")))?;

        let (config, children) = match kind {
            ManifestKind::Image => {
                if looks_index {
                    return Err(invalid(format!("{media_type} must not have manifests")));
                }
                let config = raw
                    .config
                    .ok_or_else(|| invalid("an image manifest needs a config".into()))?;
                (Some(config), raw.layers.unwrap_or_default())
            }
            ManifestKind::Index => {
                if looks_image {
                    return Err(invalid(format!(
                        "{media_type} must not have config or layers"
                    )));
                }
                let children = raw
                    .manifests
                    .ok_or_else(|| invalid("an index needs manifests".into()))?;
                if let Some(bad) = children
                    .iter()
                    .find(|d| media_type::manifest_kind(&d.media_type).is_none())
                {
                    return Err(invalid(format!(
                        "index entry {} has media type {}, which is not a manifest",
                        bad.digest, bad.media_type
                    )));
                }
                (None, children)
            }
        };
        let artifact_type = raw
            .artifact_type
            .clone()
            .filter(|t| !t.is_empty())
            .or_else(|| match kind {
                ManifestKind::Image => config.as_ref().map(|c| c.media_type.clone()),
                ManifestKind::Index => None,
            });
        Ok(Manifest {
            media_type,
            kind,
            artifact_type,
            config,
            children,
            subject: raw.subject,
            annotations: raw.annotations,
        })
    }

    /// The blobs this manifest needs in its repository: config and
    /// distributable layers (image manifests only).
    pub fn required_blobs(&self) -> impl Iterator<Item = &Descriptor> {
        let layers = match self.kind {
            ManifestKind::Image => self.children.as_slice(),
            ManifestKind::Index => &[],
        };
        self.config
            .iter()
            .chain(layers.iter().filter(|d| !d.is_foreign()))
    }

    /// The child manifests this index needs in its repository.
    pub fn required_manifests(&self) -> &[Descriptor] {
        match self.kind {
            ManifestKind::Image => &[],
            ManifestKind::Index => &self.children,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: &str = r#"{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","size":0}"#;

    fn image(extra: &str) -> String {
        format!(r#"{{"schemaVersion":2,"config":{CFG},"layers":[]{extra}}}"#)
    }

    #[test]
    fn media_type_comes_from_header_or_body_and_must_agree() {
        let m = Manifest::parse(image("").as_bytes(), Some(media_type::OCI_MANIFEST)).ok();
        assert_eq!(m.map(|m| m.kind), Some(ManifestKind::Image));
        let body = image(r#","mediaType":"application/vnd.oci.image.manifest.v1+json""#);
        assert!(Manifest::parse(body.as_bytes(), None).is_ok());
        assert!(Manifest::parse(body.as_bytes(), Some(media_type::OCI_INDEX)).is_err());
        assert!(Manifest::parse(body.as_bytes(), Some(media_type::DOCKER_MANIFEST)).is_err());
    }

    #[test]
    fn ambiguous_schema1_and_unknown_are_refused() {
        let both = format!(r#"{{"schemaVersion":2,"config":{CFG},"manifests":[]}}"#);
        assert!(Manifest::parse(both.as_bytes(), None).is_err());
        let s1 = r#"{"schemaVersion":1,"name":"a","tag":"b","fsLayers":[]}"#;
        let err = Manifest::parse(s1.as_bytes(), Some(media_type::DOCKER_SCHEMA1_SIGNED));
        assert!(matches!(err, Err(Invalid::Manifest(m)) if m.contains("schema 1")));
        assert!(Manifest::parse(b"{", None).is_err());
        assert!(Manifest::parse(image("").as_bytes(), Some("application/x-whatever")).is_err());
    }

    #[test]
    fn artifact_type_falls_back_to_config_media_type() {
        let m = Manifest::parse(image("").as_bytes(), None).ok();
        assert_eq!(
            m.and_then(|m| m.artifact_type).as_deref(),
            Some("application/vnd.oci.image.config.v1+json")
        );
        let m = Manifest::parse(
            image(r#","artifactType":"application/x-model""#).as_bytes(),
            None,
        )
        .ok();
        assert_eq!(
            m.and_then(|m| m.artifact_type).as_deref(),
            Some("application/x-model")
        );
    }
}
