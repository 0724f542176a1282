//! `StorageKey` is the only thing that formats object paths.

use object_store::path::Path;

use crate::oci::{Digest, UploadId};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageKey {
    /// Verified content, blob or manifest: `blobs/<alg>/<2 hex>/<hex>`.
    Blob(Digest),
    /// One part of an upload in progress: `uploads/<id>/<name>`.
    UploadPart { upload: UploadId, name: String },
    /// Every part of an upload: the prefix `uploads/<id>`.
    Upload(UploadId),
}

impl StorageKey {
    pub fn path(&self) -> Path {
        match self {
            StorageKey::Blob(d) => Path::from(format!(
                "blobs/{}/{}/{}",
                d.algorithm().as_str(),
                &d.hex()[..2],
                d.hex()
            )),
            StorageKey::UploadPart { upload, name } => {
                Path::from(format!("uploads/{upload}/{name}"))
            }
            StorageKey::Upload(upload) => Path::from(format!("uploads/{upload}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_the_documented_layout() {
        let d = Digest::sha256_of(b"");
        assert_eq!(
            StorageKey::Blob(d).path().as_ref(),
            "blobs/sha256/e3/e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let id = UploadId::parse("0123456789abcdef0123456789abcdef").ok();
        let id = id.expect("valid id");
        let part = StorageKey::UploadPart {
            upload: id.clone(),
            name: "0-a".into(),
        };
        assert_eq!(
            part.path().as_ref(),
            "uploads/0123456789abcdef0123456789abcdef/0-a"
        );
        assert_eq!(
            StorageKey::Upload(id).path().as_ref(),
            "uploads/0123456789abcdef0123456789abcdef"
        );
    }
}
