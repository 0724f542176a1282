//! Value types of the OCI specs: digests, names, references, media types and
//! manifests. Each validates on construction; nothing here does I/O, and
//! nothing here depends on the rest of the crate: a value that does not
//! validate is an [`Invalid`], which error.rs maps to the spec's error codes.

pub mod digest;
pub mod manifest;
pub mod media_type;
pub mod name;

pub use digest::{Algorithm, Digest};
pub use manifest::{Descriptor, Manifest};
pub use media_type::ManifestKind;
pub use name::{Reference, RepoName, Tag, UploadId};

/// Why a text is not a valid value, with a message for the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("{0}")]
    Name(String),
    #[error("{0}")]
    Tag(String),
    #[error("{0}")]
    Digest(String),
    #[error("{0}")]
    Manifest(String),
    /// Not an upload id Berth makes: no such session.
    #[error("not an upload session id")]
    UploadId,
}
