//! Responses named for what happened; each sets the headers the spec asks for.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::stream::BoxStream;

use crate::error::Result;
use crate::oci::{Digest, RepoName, Tag, UploadId};

pub const DOCKER_CONTENT_DIGEST: HeaderName = HeaderName::from_static("docker-content-digest");
pub const DOCKER_UPLOAD_UUID: HeaderName = HeaderName::from_static("docker-upload-uuid");
pub const OCI_CHUNK_MIN_LENGTH: HeaderName = HeaderName::from_static("oci-chunk-min-length");
pub const OCI_SUBJECT: HeaderName = HeaderName::from_static("oci-subject");
pub const OCI_TAG: HeaderName = HeaderName::from_static("oci-tag");
pub const OCI_FILTERS_APPLIED: HeaderName = HeaderName::from_static("oci-filters-applied");

fn value(s: impl AsRef<str>) -> HeaderValue {
    // Every value set here is built from validated names, digests and numbers.
    HeaderValue::from_str(s.as_ref()).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn with_headers(
    status: StatusCode,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Body,
) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let map: &mut HeaderMap = response.headers_mut();
    for (k, v) in headers {
        map.append(k, v);
    }
    response
}

fn upload_range(offset: u64) -> HeaderValue {
    value(format!("0-{}", offset.saturating_sub(1)))
}

/// `GET /v2/`: the API is here.
pub struct ApiVersionCheck;

impl IntoResponse for ApiVersionCheck {
    fn into_response(self) -> Response {
        let headers = vec![(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )];
        with_headers(StatusCode::OK, headers, Body::from("{}"))
    }
}

/// A blob (or range of one), or for HEAD just its headers.
pub struct BlobContent {
    pub digest: Digest,
    pub size: u64,
    pub range: Option<std::ops::Range<u64>>,
    /// `None` for HEAD.
    pub body: Option<BoxStream<'static, Result<Bytes>>>,
}

impl IntoResponse for BlobContent {
    fn into_response(self) -> Response {
        let mut headers = vec![
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            ),
            (header::ACCEPT_RANGES, HeaderValue::from_static("bytes")),
            (DOCKER_CONTENT_DIGEST, value(self.digest.to_string())),
            (header::ETAG, value(format!("\"{}\"", self.digest))),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("max-age=31536000"),
            ),
        ];
        let (status, length) = match &self.range {
            Some(r) => {
                headers.push((
                    header::CONTENT_RANGE,
                    value(format!("bytes {}-{}/{}", r.start, r.end - 1, self.size)),
                ));
                (StatusCode::PARTIAL_CONTENT, r.end - r.start)
            }
            None => (StatusCode::OK, self.size),
        };
        headers.push((header::CONTENT_LENGTH, value(length.to_string())));
        let body = self.body.map_or_else(Body::empty, Body::from_stream);
        with_headers(status, headers, body)
    }
}

/// A blob served from object storage by a presigned URL.
pub struct BlobRedirect {
    pub digest: Digest,
    pub url: String,
}

impl IntoResponse for BlobRedirect {
    fn into_response(self) -> Response {
        let headers = vec![
            (header::LOCATION, value(&self.url)),
            (DOCKER_CONTENT_DIGEST, value(self.digest.to_string())),
        ];
        with_headers(StatusCode::TEMPORARY_REDIRECT, headers, Body::empty())
    }
}

/// A manifest's exact bytes, or for HEAD just its headers.
pub struct ManifestContent {
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
    /// `None` for HEAD.
    pub body: Option<Bytes>,
}

impl IntoResponse for ManifestContent {
    fn into_response(self) -> Response {
        let headers = vec![
            (header::CONTENT_TYPE, value(&self.media_type)),
            (header::CONTENT_LENGTH, value(self.size.to_string())),
            (DOCKER_CONTENT_DIGEST, value(self.digest.to_string())),
            (header::ETAG, value(format!("\"{}\"", self.digest))),
        ];
        with_headers(
            StatusCode::OK,
            headers,
            self.body.map_or_else(Body::empty, Body::from),
        )
    }
}

/// 201: a blob is stored (upload finished, or mounted).
pub struct BlobCreated {
    pub repo: RepoName,
    pub digest: Digest,
}

impl IntoResponse for BlobCreated {
    fn into_response(self) -> Response {
        let headers = vec![
            (
                header::LOCATION,
                value(format!("/v2/{}/blobs/{}", self.repo, self.digest)),
            ),
            (DOCKER_CONTENT_DIGEST, value(self.digest.to_string())),
            (header::CONTENT_LENGTH, HeaderValue::from_static("0")),
        ];
        with_headers(StatusCode::CREATED, headers, Body::empty())
    }
}

/// 202 (after POST or PATCH) or 204 (status GET): where an upload stands and
/// where to send the next chunk.
pub struct UploadProgress {
    pub repo: RepoName,
    pub id: UploadId,
    pub offset: u64,
    pub status: StatusCode,
    /// Advertised on a new session.
    pub chunk_min_length: Option<u64>,
}

impl IntoResponse for UploadProgress {
    fn into_response(self) -> Response {
        let mut headers = vec![
            (
                header::LOCATION,
                value(format!("/v2/{}/blobs/uploads/{}", self.repo, self.id)),
            ),
            (header::RANGE, upload_range(self.offset)),
            (DOCKER_UPLOAD_UUID, value(self.id.as_str())),
            (header::CONTENT_LENGTH, HeaderValue::from_static("0")),
        ];
        if let Some(n) = self.chunk_min_length {
            headers.push((OCI_CHUNK_MIN_LENGTH, value(n.to_string())));
        }
        with_headers(self.status, headers, Body::empty())
    }
}

/// 201: a manifest is stored.
pub struct ManifestCreated {
    pub repo: RepoName,
    pub digest: Digest,
    pub subject: Option<Digest>,
    pub tags: Vec<Tag>,
}

impl IntoResponse for ManifestCreated {
    fn into_response(self) -> Response {
        let mut headers = vec![
            (
                header::LOCATION,
                value(format!("/v2/{}/manifests/{}", self.repo, self.digest)),
            ),
            (DOCKER_CONTENT_DIGEST, value(self.digest.to_string())),
            (header::CONTENT_LENGTH, HeaderValue::from_static("0")),
        ];
        if let Some(s) = self.subject {
            headers.push((OCI_SUBJECT, value(s.to_string())));
        }
        for t in self.tags {
            headers.push((OCI_TAG, value(t.as_str())));
        }
        with_headers(StatusCode::CREATED, headers, Body::empty())
    }
}

/// 202: a delete was accepted.
pub struct Deleted;

impl IntoResponse for Deleted {
    fn into_response(self) -> Response {
        let headers = vec![(header::CONTENT_LENGTH, HeaderValue::from_static("0"))];
        with_headers(StatusCode::ACCEPTED, headers, Body::empty())
    }
}

/// 204: an upload session was cancelled.
pub struct UploadCancelled;

impl IntoResponse for UploadCancelled {
    fn into_response(self) -> Response {
        with_headers(StatusCode::NO_CONTENT, Vec::new(), Body::empty())
    }
}

/// 200 with a JSON document, an optional `Link` to the next page and extra headers.
pub struct JsonPage {
    /// The serialised JSON document.
    pub body: bytes::Bytes,
    pub content_type: &'static str,
    pub next_link: Option<String>,
    pub extra: Vec<(HeaderName, HeaderValue)>,
}

impl IntoResponse for JsonPage {
    fn into_response(self) -> Response {
        let mut headers = vec![(
            header::CONTENT_TYPE,
            HeaderValue::from_static(self.content_type),
        )];
        if let Some(link) = self.next_link {
            headers.push((header::LINK, value(format!("<{link}>; rel=\"next\""))));
        }
        headers.extend(self.extra);
        with_headers(StatusCode::OK, headers, Body::from(self.body))
    }
}
