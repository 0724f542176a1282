//! `StorageKey` is the only thing that formats object paths, and the only
//! thing that reads them back.

use object_store::path::Path;

use crate::oci::{Digest, UploadId};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageKey {
    /// Verified content, blob or manifest: `blobs/<alg>/<2 hex>/<hex>`.
    Blob(Digest),
    /// One part of an upload in progress: `uploads/<id>/<name>`.
    UploadPart { upload: UploadId, name: String },
    /// An upload in progress: its file on local disk, or the prefix of
    /// its parts on object storage: `uploads/<id>`.
    Upload(UploadId),
}

/// The two halves of a store, each listed on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Area {
    Blobs,
    Uploads,
}

impl Area {
    pub fn prefix(self) -> &'static str {
        match self {
            Area::Blobs => "blobs",
            Area::Uploads => "uploads",
        }
    }
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

    /// The key a path names, if it is one [`StorageKey::path`] makes.
    pub fn parse(path: &str) -> Option<StorageKey> {
        let mut parts = path.split('/');
        let key = match (parts.next()?, parts.next()?) {
            ("blobs", alg) => {
                let (fan, hex) = (parts.next()?, parts.next()?);
                let digest = Digest::parse(&format!("{alg}:{hex}")).ok()?;
                (fan == &digest.hex()[..2] && hex == digest.hex())
                    .then_some(StorageKey::Blob(digest))?
            }
            ("uploads", id) => {
                let upload = UploadId::parse(id).ok()?;
                match parts.next() {
                    None => StorageKey::Upload(upload),
                    Some(name) if !name.is_empty() => StorageKey::UploadPart {
                        upload,
                        name: name.to_owned(),
                    },
                    Some(_) => return None,
                }
            }
            _ => return None,
        };
        parts.next().is_none().then_some(key)
    }

    /// The upload a key belongs to, if any.
    pub fn upload(&self) -> Option<&UploadId> {
        match self {
            StorageKey::Blob(_) => None,
            StorageKey::UploadPart { upload, .. } | StorageKey::Upload(upload) => Some(upload),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_the_documented_layout_and_parse_back() {
        let d = Digest::sha256_of(b"");
        let blob = StorageKey::Blob(d);
        assert_eq!(
            blob.path().as_ref(),
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
        let upload = StorageKey::Upload(id);
        assert_eq!(
            upload.path().as_ref(),
            "uploads/0123456789abcdef0123456789abcdef"
        );
        for key in [blob, part, upload] {
            assert_eq!(StorageKey::parse(key.path().as_ref()), Some(key));
        }
    }

    #[test]
    fn paths_berth_does_not_make_are_not_keys() {
        let hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        for path in [
            "",
            "blobs",
            "blobs/sha256",
            &format!("blobs/sha256/e4/{hex}"),
            &format!("blobs/md5/e3/{hex}"),
            &format!("blobs/sha256/e3/{hex}/more"),
            "blobs/sha256/e3/e3b0",
            "uploads",
            "uploads/not-an-id",
            "uploads/0123456789abcdef0123456789abcdef/",
            "uploads/0123456789abcdef0123456789abcdef/a/b",
            "elsewhere/file",
        ] {
            assert_eq!(StorageKey::parse(path), None, "{path:?}");
        }
    }
}
