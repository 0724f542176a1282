//! Pushing, pulling and deleting manifests.

use bytes::Bytes;

use super::Registry;
use crate::error::{Error, Result};
use crate::meta::{Actor, BlobArea, ManifestArea, NewManifest, StoredManifest};
use crate::oci::{Digest, Manifest, Reference, RepoName, Tag};
use crate::storage::StorageKey;

/// What a manifest push came to.
#[derive(Debug, Clone)]
pub struct PushedManifest {
    pub digest: Digest,
    /// The subject's digest, echoed as `OCI-Subject`.
    pub subject: Option<Digest>,
    /// Every tag the push set.
    pub tags: Vec<Tag>,
}

impl Registry {
    /// Stores a manifest's exact bytes and records it, with every tag in
    /// `reference` and `extra_tags`, all or none.
    ///
    /// Spec: the digest is that of the bytes as pushed; a push by digest must
    /// match it; every blob and child manifest must already be in the
    /// repository, while a `subject` need not be.
    pub async fn push_manifest(
        &self,
        repo: &RepoName,
        reference: &Reference,
        content_type: Option<&str>,
        body: Bytes,
        extra_tags: Vec<Tag>,
        actor: Actor,
    ) -> Result<PushedManifest> {
        let limit = self.settings.max_manifest_bytes;
        if body.len() as u64 > limit {
            return Err(Error::ManifestTooLarge { limit });
        }
        let manifest = Manifest::parse(&body, content_type)?;
        let (digest, mut tags) = match reference {
            Reference::Digest(d) => {
                let actual = d.algorithm().digest_of(&body);
                if &actual != d {
                    return Err(Error::DigestInvalid(format!(
                        "the manifest's content has digest {actual}, not {d}"
                    )));
                }
                (d.clone(), Vec::new())
            }
            Reference::Tag(t) => (Digest::sha256_of(&body), vec![t.clone()]),
        };
        for t in extra_tags {
            if !tags.contains(&t) {
                tags.push(t);
            }
        }
        let record = NewManifest {
            digest: digest.clone(),
            media_type: manifest.media_type.clone(),
            artifact_type: manifest.artifact_type.clone(),
            subject: manifest.subject.as_ref().map(|s| s.digest.clone()),
            size: body.len() as u64,
            annotations: manifest.annotations.clone(),
            blobs: manifest
                .required_blobs()
                .map(|d| (d.digest.clone(), d.size))
                .collect(),
            manifests: manifest
                .required_manifests()
                .iter()
                .map(|d| d.digest.clone())
                .collect(),
            lineage: self.lineage_of_push(repo, &digest, &manifest).await?,
        };
        self.references_present(repo, &record).await?;
        let scanned_first = self.scan_before_push(repo, &digest, &manifest).await?;
        let key = StorageKey::Blob(digest.clone());
        let bytes_for_policy = body.clone();
        let immutable = self.settings.releases.immutable_tags.clone();
        let deadline = std::time::Instant::now() + super::BUSY_WAIT;
        loop {
            // Written (again) unless the same bytes are there: garbage
            // collection may have taken them while this push waited.
            self.blobs.put_small(&key, body.clone()).await?;
            let who = actor.clone();
            let (r, t, rec, imm) = (
                repo.clone(),
                tags.clone(),
                record.clone(),
                immutable.clone(),
            );
            match self
                .meta(move |m: &ManifestArea| m.record_manifest(&r, &rec, &t, &imm, &who))
                .await
            {
                Err(Error::Busy(_)) if std::time::Instant::now() < deadline => {
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
                other => break other?,
            }
        }
        self.events_changed();
        tracing::info!(repo = %repo, digest = %digest, media_type = %record.media_type, "manifest pushed");
        let subject = super::scan::Subject {
            media_type: record.media_type.clone(),
            digest: digest.clone(),
            size: record.size,
        };
        self.after_push_scan(repo, subject, &manifest, scanned_first);
        if manifest.artifact_type.as_deref() == Some(super::releases::EVALUATION_ARTIFACT)
            && let Err(e) = self
                .after_evaluation(repo, &manifest, &bytes_for_policy)
                .await
        {
            tracing::warn!(repo = %repo, digest = %digest, error = %e, "evaluation not applied to rollback policies");
        }
        Ok(PushedManifest {
            digest,
            subject: record.subject,
            tags,
        })
    }

    /// Checks, before the bytes are stored, what `record_manifest` checks
    /// again in its transaction: that the repository holds every blob with
    /// the size the manifest claims, and every child manifest. A manifest
    /// refused for these (the common refusal) leaves no object behind.
    async fn references_present(&self, repo: &RepoName, record: &NewManifest) -> Result<()> {
        let (r, digests) = (
            repo.clone(),
            record
                .blobs
                .iter()
                .map(|(d, _)| d.clone())
                .collect::<Vec<_>>(),
        );
        let held = self
            .meta(move |m: &BlobArea| m.repo_blobs(&r, &digests))
            .await?;
        record.check_blobs(|d| held.get(d).copied())?;
        if record.manifests.is_empty() {
            return Ok(());
        }
        let (r, children) = (repo.clone(), record.manifests.clone());
        self.meta(move |m: &ManifestArea| {
            for digest in &children {
                if m.manifest_by_digest(&r, digest)?.is_none() {
                    return Err(Error::ManifestBlobUnknown(digest.clone()));
                }
            }
            Ok(())
        })
        .await
    }

    /// Resolves a tag or digest to a manifest in `repo`.
    pub async fn stat_manifest(
        &self,
        repo: &RepoName,
        reference: &Reference,
    ) -> Result<StoredManifest> {
        // The generation is read first: an answer cached under it can only
        // be older than the database, never newer, and goes at the next write.
        let generation = self.meta.generation();
        let key = (repo.clone(), reference.clone());
        let cached = self.lookups.get(&key, generation);
        self.metrics.cache("lookups", cached.is_some());
        if let Some(found) = cached {
            return Ok(found);
        }
        let (r, rf) = key.clone();
        let found = self
            .meta(move |m: &ManifestArea| match &rf {
                Reference::Tag(t) => m.manifest_by_tag(&r, t),
                Reference::Digest(d) => m.manifest_by_digest(&r, d),
            })
            .await?
            .ok_or_else(|| Error::ManifestUnknown(reference.in_repo(repo)))?;
        self.lookups.insert(key, generation, found.clone());
        Ok(found)
    }

    /// A manifest and its exact bytes.
    pub async fn read_manifest(
        &self,
        repo: &RepoName,
        reference: &Reference,
    ) -> Result<(StoredManifest, Bytes)> {
        let stored = self.stat_manifest(repo, reference).await?;
        let cached = self.manifests.get(&stored.digest);
        self.metrics.cache("manifests", cached.is_some());
        if let Some(bytes) = cached {
            return Ok((stored, bytes));
        }
        let bytes = self
            .blobs
            .read_all(&StorageKey::Blob(stored.digest.clone()))
            .await?;
        // Checked before it is kept or served: bytes that are not the
        // manifest (a store's short or damaged answer) would be cached, and
        // served under a digest they do not have.
        if bytes.len() as u64 != stored.size
            || stored.digest.algorithm().digest_of(&bytes) != stored.digest
        {
            return Err(Error::Internal(format!(
                "manifest {} read back {} bytes that are not it",
                stored.digest,
                bytes.len()
            )));
        }
        self.manifests.insert(stored.digest.clone(), bytes.clone());
        Ok((stored, bytes))
    }

    /// Deletes a tag (by tag) or a manifest with all its tags (by digest).
    pub async fn delete_manifest(
        &self,
        repo: &RepoName,
        reference: &Reference,
        actor: Actor,
    ) -> Result<()> {
        self.ensure_deletes_enabled()?;
        let (r, rf) = (repo.clone(), reference.clone());
        let immutable = self.settings.releases.immutable_tags.clone();
        let deleted = self
            .meta(move |m: &ManifestArea| match &rf {
                Reference::Tag(t) => m.delete_tag(&r, t, &immutable, &actor),
                Reference::Digest(d) => m.delete_manifest(&r, d, &immutable, &actor),
            })
            .await?;
        self.events_changed();
        if !deleted {
            return Err(Error::ManifestUnknown(reference.in_repo(repo)));
        }
        tracing::info!(repo = %repo, reference = %reference, "manifest deleted");
        Ok(())
    }
}
