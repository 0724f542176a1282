//! The one error type. Every condition a client can see is a variant here, and
//! [`Error::code_and_status`] is the only place where a variant meets its OCI
//! error code and HTTP status (distribution-spec v1.1, "Error Codes").

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::oci::Digest;

/// The error codes of the distribution spec, plus `UNKNOWN` for server faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    BlobUnknown,
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    NameInvalid,
    NameUnknown,
    SizeInvalid,
    Unauthorized,
    Denied,
    Unsupported,
    TooManyRequests,
    Unknown,
    /// Berth's own API (`/api/v1`): a guarded move found the tag elsewhere.
    PreconditionFailed,
    /// Berth's own API: a promotion gate is not met.
    GateFailed,
    /// Berth's own API: a version has no scan report (yet).
    ScanUnknown,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BlobUnknown => "BLOB_UNKNOWN",
            ErrorCode::BlobUploadInvalid => "BLOB_UPLOAD_INVALID",
            ErrorCode::BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            ErrorCode::DigestInvalid => "DIGEST_INVALID",
            ErrorCode::ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            ErrorCode::ManifestInvalid => "MANIFEST_INVALID",
            ErrorCode::ManifestUnknown => "MANIFEST_UNKNOWN",
            ErrorCode::NameInvalid => "NAME_INVALID",
            ErrorCode::NameUnknown => "NAME_UNKNOWN",
            ErrorCode::SizeInvalid => "SIZE_INVALID",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::Denied => "DENIED",
            ErrorCode::Unsupported => "UNSUPPORTED",
            ErrorCode::TooManyRequests => "TOOMANYREQUESTS",
            ErrorCode::Unknown => "UNKNOWN",
            ErrorCode::PreconditionFailed => "PRECONDITION_FAILED",
            ErrorCode::GateFailed => "GATE_FAILED",
            ErrorCode::ScanUnknown => "SCAN_UNKNOWN",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("blob unknown to registry: {0}")]
    BlobUnknown(Digest),
    #[error("blob upload invalid: {0}")]
    BlobUploadInvalid(String),
    #[error("blob upload unknown to registry")]
    BlobUploadUnknown,
    /// A chunk that does not start where the upload stands (`offset` bytes so far).
    #[error("chunk out of order: the upload has {offset} bytes, the chunk starts at {start}")]
    ChunkOutOfOrder { offset: u64, start: u64 },
    #[error("provided digest did not match uploaded content: {0}")]
    DigestInvalid(String),
    #[error("manifest references a blob or manifest unknown to the repository: {0}")]
    ManifestBlobUnknown(Digest),
    #[error("manifest invalid: {0}")]
    ManifestInvalid(String),
    #[error("manifest unknown: {0}")]
    ManifestUnknown(String),
    #[error("manifest larger than the limit of {limit} bytes")]
    ManifestTooLarge { limit: u64 },
    #[error("invalid repository name: {0}")]
    NameInvalid(String),
    #[error("repository name not known to registry: {0}")]
    NameUnknown(String),
    #[error("invalid tag: {0}")]
    TagInvalid(String),
    #[error("provided length did not match content length: {0}")]
    SizeInvalid(String),
    /// A `Range` on a blob GET that lies outside its `size` bytes.
    #[error("range not satisfiable for a blob of {size} bytes")]
    RangeNotSatisfiable { size: u64 },
    #[error("tag {0} is immutable: it cannot be moved or removed")]
    TagImmutable(String),
    /// A compare-and-swap tag move found the tag pointing elsewhere.
    #[error("tag {tag} points at {current}, not the expected {expected}")]
    PreconditionFailed {
        tag: String,
        expected: String,
        current: String,
    },
    /// A promotion refused by its gates; every unmet requirement is listed.
    #[error("promotion refused: {}", unmet.join("; "))]
    GateFailed { unmet: Vec<String> },
    #[error("no scan report on {0}")]
    ScanUnknown(String),
    #[error("invalid request: {0}")]
    BadRequest(String),
    /// No (or bad) credentials; the challenge says how to authenticate.
    #[error("authentication required")]
    Unauthorized { challenge: String },
    /// A user name and password that do not match (what `docker login`
    /// shows, as Docker Hub words it).
    #[error("incorrect username or password")]
    BadCredentials { challenge: String },
    /// Too many requests in flight; retry shortly.
    #[error("too many requests in flight")]
    TooManyRequests,
    /// This client is over its configured request rate.
    #[error("too many requests from this client; retry after {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    /// Authenticated, but not allowed.
    #[error("requested access to the resource is denied: {0}")]
    Denied(String),
    /// Content caught between garbage collection and a push; retry shortly.
    #[error("busy, retry: {0}")]
    Busy(String),
    /// The disk (or object store) is full; the push left nothing behind.
    #[error("storage is full: {0}")]
    StorageFull(String),
    #[error("invalid query parameter: {0}")]
    QueryInvalid(String),
    #[error("the operation is unsupported: {0}")]
    Unsupported(String),
    #[error("method not allowed here; allowed: {allow}")]
    MethodNotAllowed { allow: &'static str },
    #[error("no such endpoint")]
    RouteUnknown,
    #[error("storage: {0}")]
    Storage(object_store::Error),
    #[error("metadata database: {0}")]
    Database(rusqlite::Error),
    #[error("metadata database: {}", postgres_detail(.0))]
    Postgres(tokio_postgres::Error),
    /// The metadata database cannot be reached now; retry shortly.
    #[error("metadata database unavailable: {0}")]
    Unavailable(String),
    #[error("i/o: {0}")]
    Io(std::io::Error),
    #[error("internal: {0}")]
    Internal(String),
    /// Bad configuration; stops start-up, never reaches a client.
    #[error("configuration: {0}")]
    Config(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What PostgreSQL said, with its code ("db error" alone says nothing).
fn postgres_detail(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({}): {}", db.severity(), db.code().code(), db.message()),
        None => e.to_string(),
    }
}

/// Whether an error, or anything it wraps, is a full disk.
fn is_disk_full(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && (io.kind() == std::io::ErrorKind::StorageFull || io.raw_os_error() == Some(28))
        {
            return true;
        }
        cur = err.source();
    }
    false
}

impl From<crate::oci::Invalid> for Error {
    fn from(e: crate::oci::Invalid) -> Self {
        use crate::oci::Invalid;
        match e {
            Invalid::Name(m) => Error::NameInvalid(m),
            Invalid::Tag(m) => Error::TagInvalid(m),
            Invalid::Digest(m) => Error::DigestInvalid(m),
            Invalid::Manifest(m) => Error::ManifestInvalid(m),
            Invalid::UploadId => Error::BlobUploadUnknown,
        }
    }
}

impl From<object_store::Error> for Error {
    fn from(e: object_store::Error) -> Self {
        if is_disk_full(&e) {
            Error::StorageFull(e.to_string())
        } else {
            Error::Storage(e)
        }
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        match &e {
            rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::DiskFull => {
                Error::StorageFull(e.to_string())
            }
            _ => Error::Database(e),
        }
    }
}

impl From<tokio_postgres::Error> for Error {
    /// A lost or refused connection is `Unavailable` (503, retried by
    /// clients); a full disk is `StorageFull`; the rest are faults.
    fn from(e: tokio_postgres::Error) -> Self {
        use tokio_postgres::error::SqlState;
        let Some(code) = e.code() else {
            return Error::Unavailable(e.to_string());
        };
        match code.code() {
            c if c.starts_with("08") => Error::Unavailable(e.to_string()),
            _ if *code == SqlState::DISK_FULL => Error::StorageFull(e.to_string()),
            _ if [
                SqlState::ADMIN_SHUTDOWN,
                SqlState::CRASH_SHUTDOWN,
                SqlState::CANNOT_CONNECT_NOW,
                SqlState::TOO_MANY_CONNECTIONS,
                SqlState::READ_ONLY_SQL_TRANSACTION,
            ]
            .contains(code) =>
            {
                Error::Unavailable(e.to_string())
            }
            _ => Error::Postgres(e),
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        if is_disk_full(&e) {
            Error::StorageFull(e.to_string())
        } else {
            Error::Io(e)
        }
    }
}

impl Error {
    /// Whether storage said the object does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Storage(object_store::Error::NotFound { .. }))
    }

    /// The one table of OCI code and HTTP status per variant.
    pub fn code_and_status(&self) -> (ErrorCode, StatusCode) {
        use ErrorCode as C;
        use StatusCode as S;
        match self {
            Error::BlobUnknown(_) => (C::BlobUnknown, S::NOT_FOUND),
            Error::BlobUploadInvalid(_) => (C::BlobUploadInvalid, S::BAD_REQUEST),
            Error::BlobUploadUnknown => (C::BlobUploadUnknown, S::NOT_FOUND),
            Error::ChunkOutOfOrder { .. } => (C::BlobUploadInvalid, S::RANGE_NOT_SATISFIABLE),
            Error::DigestInvalid(_) => (C::DigestInvalid, S::BAD_REQUEST),
            Error::ManifestBlobUnknown(_) => (C::ManifestBlobUnknown, S::BAD_REQUEST),
            Error::ManifestInvalid(_) => (C::ManifestInvalid, S::BAD_REQUEST),
            Error::ManifestUnknown(_) => (C::ManifestUnknown, S::NOT_FOUND),
            Error::ManifestTooLarge { .. } => (C::SizeInvalid, S::PAYLOAD_TOO_LARGE),
            Error::NameInvalid(_) => (C::NameInvalid, S::BAD_REQUEST),
            Error::NameUnknown(_) => (C::NameUnknown, S::NOT_FOUND),
            Error::TagInvalid(_) => (C::ManifestInvalid, S::BAD_REQUEST),
            Error::SizeInvalid(_) => (C::SizeInvalid, S::BAD_REQUEST),
            Error::RangeNotSatisfiable { .. } => (C::SizeInvalid, S::RANGE_NOT_SATISFIABLE),
            Error::QueryInvalid(_) | Error::BadRequest(_) => (C::Unsupported, S::BAD_REQUEST),
            Error::TagImmutable(_) => (C::Denied, S::CONFLICT),
            Error::Unauthorized { .. } | Error::BadCredentials { .. } => {
                (C::Unauthorized, S::UNAUTHORIZED)
            }
            Error::Denied(_) => (C::Denied, S::FORBIDDEN),
            Error::TooManyRequests | Error::RateLimited { .. } => {
                (C::TooManyRequests, S::TOO_MANY_REQUESTS)
            }
            Error::Busy(_) | Error::Unavailable(_) => (C::Unknown, S::SERVICE_UNAVAILABLE),
            Error::StorageFull(_) => (C::Unknown, S::INSUFFICIENT_STORAGE),
            Error::PreconditionFailed { .. } => (C::PreconditionFailed, S::PRECONDITION_FAILED),
            Error::GateFailed { .. } => (C::GateFailed, S::CONFLICT),
            Error::ScanUnknown(_) => (C::ScanUnknown, S::NOT_FOUND),
            Error::Unsupported(_) => (C::Unsupported, S::METHOD_NOT_ALLOWED),
            Error::MethodNotAllowed { .. } => (C::Unsupported, S::METHOD_NOT_ALLOWED),
            Error::RouteUnknown => (C::Unsupported, S::NOT_FOUND),
            Error::Storage(_)
            | Error::Database(_)
            | Error::Postgres(_)
            | Error::Io(_)
            | Error::Internal(_)
            | Error::Config(_) => (C::Unknown, S::INTERNAL_SERVER_ERROR),
        }
    }

    /// Structured detail for the error body, where there is something to add.
    fn detail(&self) -> serde_json::Value {
        match self {
            Error::BlobUnknown(d) | Error::ManifestBlobUnknown(d) => {
                serde_json::json!({ "digest": d.to_string() })
            }
            Error::ChunkOutOfOrder { offset, start } => {
                serde_json::json!({ "offset": offset, "start": start })
            }
            Error::ManifestTooLarge { limit } => serde_json::json!({ "limit": limit }),
            Error::PreconditionFailed {
                current, expected, ..
            } => {
                serde_json::json!({ "current": current, "expected": expected })
            }
            Error::GateFailed { unmet } => serde_json::json!({ "unmet": unmet }),
            _ => serde_json::Value::Null,
        }
    }
}

/// Put on a response's extensions so that the request's trace span can log a
/// server fault once, with its cause, without the cause reaching the client.
#[derive(Debug, Clone)]
pub struct ServerFault(pub String);

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (code, status) = self.code_and_status();
        let message = match &self {
            Error::Busy(_) => "busy; retry shortly".to_owned(),
            Error::Unavailable(_) => {
                "the metadata database is unavailable; retry shortly".to_owned()
            }
            Error::StorageFull(_) => {
                "storage is full; nothing was kept, retry when space is freed".to_owned()
            }
            _ if status.is_server_error() => "internal server error".to_owned(),
            _ => self.to_string(),
        };
        let body = serde_json::json!({
            "errors": [{ "code": code.as_str(), "message": message, "detail": self.detail() }]
        });
        let mut response = (status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        match &self {
            Error::ChunkOutOfOrder { offset, .. } => {
                let range = format!("0-{}", offset.saturating_sub(1));
                if let Ok(v) = HeaderValue::from_str(&range) {
                    headers.insert(header::RANGE, v);
                }
            }
            Error::RangeNotSatisfiable { size } => {
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                    headers.insert(header::CONTENT_RANGE, v);
                }
            }
            Error::MethodNotAllowed { allow } => {
                headers.insert(header::ALLOW, HeaderValue::from_static(allow));
            }
            Error::Unauthorized { challenge } | Error::BadCredentials { challenge } => {
                if let Ok(v) = HeaderValue::from_str(challenge) {
                    headers.insert(header::WWW_AUTHENTICATE, v);
                }
            }
            Error::Busy(_)
            | Error::Unavailable(_)
            | Error::StorageFull(_)
            | Error::TooManyRequests => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            Error::RateLimited { retry_after_secs } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            _ => {}
        }
        if status.is_server_error() {
            response
                .extensions_mut()
                .insert(ServerFault(self.to_string()));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_variant() -> Vec<Error> {
        let d = Digest::sha256_of(b"");
        vec![
            Error::BlobUnknown(d.clone()),
            Error::BlobUploadInvalid("x".into()),
            Error::BlobUploadUnknown,
            Error::ChunkOutOfOrder {
                offset: 10,
                start: 0,
            },
            Error::DigestInvalid("x".into()),
            Error::ManifestBlobUnknown(d),
            Error::ManifestInvalid("x".into()),
            Error::ManifestUnknown("x".into()),
            Error::ManifestTooLarge { limit: 1 },
            Error::NameInvalid("x".into()),
            Error::NameUnknown("x".into()),
            Error::TagInvalid("x".into()),
            Error::SizeInvalid("x".into()),
            Error::RangeNotSatisfiable { size: 1 },
            Error::QueryInvalid("x".into()),
            Error::BadRequest("x".into()),
            Error::Busy("x".into()),
            Error::Unauthorized {
                challenge: "Basic realm=\"x\"".into(),
            },
            Error::BadCredentials {
                challenge: "Basic realm=\"x\"".into(),
            },
            Error::Denied("x".into()),
            Error::TooManyRequests,
            Error::RateLimited {
                retry_after_secs: 2,
            },
            Error::StorageFull("x".into()),
            Error::TagImmutable("x".into()),
            Error::PreconditionFailed {
                tag: "t".into(),
                expected: "a".into(),
                current: "b".into(),
            },
            Error::GateFailed {
                unmet: vec!["auc >= 0.9".into()],
            },
            Error::ScanUnknown("r@sha256:x".into()),
            Error::Unsupported("x".into()),
            Error::MethodNotAllowed { allow: "GET" },
            Error::RouteUnknown,
            Error::Io(std::io::Error::other("disk")),
            Error::Internal("x".into()),
            Error::Config("x".into()),
        ]
    }

    #[test]
    fn every_variant_has_a_spec_code_and_a_fitting_status() {
        for e in every_variant() {
            let (code, status) = e.code_and_status();
            assert!(
                status.is_client_error() || status.is_server_error(),
                "{e:?}"
            );
            assert_eq!(
                code == ErrorCode::Unknown,
                status.is_server_error(),
                "{e:?}"
            );
            let response = e.into_response();
            assert_eq!(response.status(), status);
        }
    }

    #[test]
    fn out_of_order_chunk_reports_the_current_range() {
        let r = Error::ChunkOutOfOrder {
            offset: 10,
            start: 0,
        }
        .into_response();
        assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(
            r.headers().get(header::RANGE).map(|v| v.as_bytes()),
            Some(&b"0-9"[..])
        );
    }

    #[test]
    fn server_faults_do_not_leak_their_cause() {
        let r = Error::Internal("secret path /var/x".into()).into_response();
        assert!(r.extensions().get::<ServerFault>().is_some());
    }
}
