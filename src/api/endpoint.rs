//! The one parser of `/v2/...` paths into typed endpoints.
//!
//! axum cannot match a repository name with `/` inside it before a fixed
//! suffix, so the path is parsed here, once, from the right. The same enum
//! says which access each endpoint needs, so authorization is one table.

use axum::http::Method;

pub use crate::auth::Action;
use crate::error::{Error, Result};
use crate::oci::{Digest, Reference, RepoName, UploadId};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `/v2/`
    Base,
    /// `/v2/_catalog`
    Catalog,
    /// `/v2/<name>/tags/list`
    Tags(RepoName),
    /// `/v2/<name>/manifests/<reference>`
    Manifest(RepoName, Reference),
    /// `/v2/<name>/manifests/<text>` where the text is neither a tag nor a
    /// digest: reading or deleting it finds nothing (404), pushing to it is
    /// refused as the parse error says (400).
    ManifestInvalid(RepoName, String),
    /// `/v2/<name>/blobs/<digest>`
    Blob(RepoName, Digest),
    /// `/v2/<name>/blobs/uploads/`
    UploadStart(RepoName),
    /// `/v2/<name>/blobs/uploads/<id>`
    Upload(RepoName, UploadId),
    /// `/v2/<name>/referrers/<digest>`
    Referrers(RepoName, Digest),
}

impl Endpoint {
    /// The endpoint's kind, for metrics and the access log (never the path).
    pub fn kind(&self) -> &'static str {
        match self {
            Endpoint::Base => "base",
            Endpoint::Catalog => "catalog",
            Endpoint::Tags(_) => "tags",
            Endpoint::Manifest(..) | Endpoint::ManifestInvalid(..) => "manifest",
            Endpoint::Blob(..) => "blob",
            Endpoint::UploadStart(_) => "upload_start",
            Endpoint::Upload(..) => "upload",
            Endpoint::Referrers(..) => "referrers",
        }
    }

    /// Parses the raw (not percent-decoded) request path.
    pub fn parse(path: &str) -> Result<Endpoint> {
        if path.contains('%') {
            return Err(Error::NameInvalid(
                "percent-encoded characters are not allowed in registry paths".into(),
            ));
        }
        let rest = match path.strip_prefix("/v2") {
            Some("" | "/") => return Ok(Endpoint::Base),
            Some(rest) => rest.strip_prefix('/').ok_or(Error::RouteUnknown)?,
            None => return Err(Error::RouteUnknown),
        };
        if rest == "_catalog" {
            return Ok(Endpoint::Catalog);
        }
        let segments: Vec<&str> = rest.split('/').collect();
        let name = |n: usize| RepoName::parse(&segments[..segments.len() - n].join("/"));
        match segments.as_slice() {
            [_, .., "tags", "list"] => Ok(Endpoint::Tags(name(2)?)),
            [_, .., "manifests", reference] => {
                let repo = name(2)?;
                Ok(match Reference::parse(reference) {
                    Ok(r) => Endpoint::Manifest(repo, r),
                    Err(_) => Endpoint::ManifestInvalid(repo, (*reference).to_owned()),
                })
            }
            [_, .., "blobs", "uploads", ""] | [_, .., "blobs", "uploads"] => {
                let n = if segments.last() == Some(&"") { 3 } else { 2 };
                Ok(Endpoint::UploadStart(name(n)?))
            }
            [_, .., "blobs", "uploads", id] => {
                let repo = name(3)?;
                Ok(Endpoint::Upload(repo, UploadId::parse(id)?))
            }
            [_, .., "blobs", digest] => {
                let repo = name(2)?;
                Ok(Endpoint::Blob(repo, Digest::parse(digest)?))
            }
            [_, .., "referrers", digest] => {
                let repo = name(2)?;
                Ok(Endpoint::Referrers(repo, Digest::parse(digest)?))
            }
            _ => Err(Error::RouteUnknown),
        }
    }

    /// The methods this endpoint answers, for `Allow` on a 405.
    pub fn allowed_methods(&self) -> &'static str {
        match self {
            Endpoint::Base | Endpoint::Catalog | Endpoint::Tags(_) | Endpoint::Referrers(..) => {
                "GET, HEAD"
            }
            Endpoint::Manifest(..) | Endpoint::ManifestInvalid(..) => "GET, HEAD, PUT, DELETE",
            Endpoint::Blob(..) => "GET, HEAD, DELETE",
            Endpoint::UploadStart(_) => "POST",
            Endpoint::Upload(..) => "GET, PATCH, PUT, DELETE",
        }
    }

    /// The repository and action a request needs, or `None` for endpoints
    /// that touch no single repository (`/v2/`, the catalog).
    pub fn scope(&self, method: &Method) -> Option<(&RepoName, Action)> {
        let write = |m: &Method| *m == Method::PUT || *m == Method::POST || *m == Method::PATCH;
        let action = if *method == Method::DELETE {
            match self {
                // Cancelling one's own upload is part of pushing.
                Endpoint::Upload(..) => Action::Push,
                _ => Action::Delete,
            }
        } else if write(method) {
            Action::Push
        } else {
            match self {
                Endpoint::Upload(..) | Endpoint::UploadStart(_) => Action::Push,
                _ => Action::Pull,
            }
        };
        match self {
            Endpoint::Base | Endpoint::Catalog => None,
            Endpoint::Tags(r)
            | Endpoint::Manifest(r, _)
            | Endpoint::ManifestInvalid(r, _)
            | Endpoint::Blob(r, _)
            | Endpoint::UploadStart(r)
            | Endpoint::Upload(r, _)
            | Endpoint::Referrers(r, _) => Some((r, action)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    const ID: &str = "0123456789abcdef0123456789abcdef";

    fn repo(s: &str) -> RepoName {
        RepoName::parse(s).expect("valid name")
    }

    #[test]
    fn paths_parse_from_the_right() {
        let d = Digest::parse(D).expect("digest");
        let id = UploadId::parse(ID).expect("id");
        let cases: Vec<(String, Endpoint)> = vec![
            ("/v2/".into(), Endpoint::Base),
            ("/v2".into(), Endpoint::Base),
            ("/v2/_catalog".into(), Endpoint::Catalog),
            ("/v2/a/b/tags/list".into(), Endpoint::Tags(repo("a/b"))),
            (
                "/v2/a/manifests/b/manifests/latest".into(),
                Endpoint::Manifest(
                    repo("a/manifests/b"),
                    Reference::parse("latest").expect("tag"),
                ),
            ),
            (
                format!("/v2/x/manifests/{D}"),
                Endpoint::Manifest(repo("x"), Reference::Digest(d.clone())),
            ),
            (
                format!("/v2/x/y/blobs/{D}"),
                Endpoint::Blob(repo("x/y"), d.clone()),
            ),
            (
                "/v2/x/blobs/uploads/".into(),
                Endpoint::UploadStart(repo("x")),
            ),
            (
                "/v2/x/blobs/uploads".into(),
                Endpoint::UploadStart(repo("x")),
            ),
            (
                format!("/v2/x/blobs/uploads/{ID}"),
                Endpoint::Upload(repo("x"), id),
            ),
            (
                format!("/v2/tags/list/referrers/{D}"),
                Endpoint::Referrers(repo("tags/list"), d),
            ),
        ];
        for (path, want) in cases {
            assert_eq!(Endpoint::parse(&path).ok(), Some(want), "{path}");
        }
    }

    #[test]
    fn malformed_paths_get_the_right_error() {
        let name_invalid = [
            "/v2/A/tags/list",
            "/v2/a%2Fb/tags/list",
            "/v2/a//b/tags/list",
            "/v2//tags/list",
        ];
        for p in name_invalid {
            assert!(
                matches!(Endpoint::parse(p), Err(Error::NameInvalid(_))),
                "{p}"
            );
        }
        let unknown = [
            "/v3/",
            "/v2x",
            "/v2/a",
            "/v2/a/tags",
            "/v2/tags/list",
            "/v2/a/tags/list/",
        ];
        for p in unknown {
            assert!(
                matches!(
                    Endpoint::parse(p),
                    Err(Error::RouteUnknown) | Err(Error::NameInvalid(_))
                ),
                "{p}"
            );
        }
        assert!(matches!(
            Endpoint::parse("/v2/a/blobs/sha256:abc"),
            Err(Error::DigestInvalid(_))
        ));
        assert!(matches!(
            Endpoint::parse("/v2/a/blobs/uploads/../x"),
            Err(Error::RouteUnknown)
        ));
        assert!(matches!(
            Endpoint::parse("/v2/a/blobs/uploads/zz"),
            Err(Error::BlobUploadUnknown)
        ));
        for bad in ["-bad", ".INVALID_MANIFEST_NAME", "sha256:abc"] {
            assert_eq!(
                Endpoint::parse(&format!("/v2/a/manifests/{bad}")).ok(),
                Some(Endpoint::ManifestInvalid(repo("a"), bad.into())),
                "a reference that names nothing is still a manifest endpoint"
            );
        }
    }

    #[test]
    fn every_endpoint_and_method_maps_to_one_scope() {
        let d = Digest::parse(D).expect("digest");
        let r = repo("team/x");
        let table = [
            (Endpoint::Tags(r.clone()), Method::GET, Some(Action::Pull)),
            (
                Endpoint::Manifest(r.clone(), Reference::Digest(d.clone())),
                Method::HEAD,
                Some(Action::Pull),
            ),
            (
                Endpoint::Manifest(r.clone(), Reference::Digest(d.clone())),
                Method::PUT,
                Some(Action::Push),
            ),
            (
                Endpoint::Manifest(r.clone(), Reference::Digest(d.clone())),
                Method::DELETE,
                Some(Action::Delete),
            ),
            (
                Endpoint::ManifestInvalid(r.clone(), ".x".into()),
                Method::GET,
                Some(Action::Pull),
            ),
            (
                Endpoint::ManifestInvalid(r.clone(), ".x".into()),
                Method::PUT,
                Some(Action::Push),
            ),
            (
                Endpoint::Blob(r.clone(), d.clone()),
                Method::GET,
                Some(Action::Pull),
            ),
            (
                Endpoint::Blob(r.clone(), d.clone()),
                Method::DELETE,
                Some(Action::Delete),
            ),
            (
                Endpoint::UploadStart(r.clone()),
                Method::POST,
                Some(Action::Push),
            ),
            (
                Endpoint::Upload(r.clone(), UploadId::new_random()),
                Method::GET,
                Some(Action::Push),
            ),
            (
                Endpoint::Upload(r.clone(), UploadId::new_random()),
                Method::DELETE,
                Some(Action::Push),
            ),
            (
                Endpoint::Referrers(r.clone(), d),
                Method::GET,
                Some(Action::Pull),
            ),
            (Endpoint::Base, Method::GET, None),
            (Endpoint::Catalog, Method::GET, None),
        ];
        for (e, m, want) in table {
            assert_eq!(e.scope(&m).map(|(_, a)| a), want, "{e:?} {m}");
        }
    }
}
