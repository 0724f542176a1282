//! Value types of the OCI specs: digests, names, references, media types and
//! manifests. Each validates on construction; nothing here does I/O.

pub mod digest;
pub mod manifest;
pub mod media_type;
pub mod name;

pub use digest::{Algorithm, Digest};
pub use manifest::{Descriptor, Manifest};
pub use media_type::ManifestKind;
pub use name::{Reference, RepoName, Tag, UploadId};
