//! The metadata database: everything mutable (repositories, which blobs each
//! repository holds, manifests and their references, tags and their history,
//! upload sessions, events).
//!
//! The traits are atomic domain operations, not table access, split by area.
//! They are synchronous: callers run them on the blocking pool. SQLite is the
//! embedded default; PostgreSQL serves several replicas sharing one database
//! (`[metadata] backend = "postgres"`). The two do not know each other.

pub mod copy;
pub mod postgres;
pub mod sqlite;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::glob::Glob;
use crate::oci::{Digest, RepoName, Tag, UploadId};

/// File name of the SQLite database inside the data directory.
pub const DATABASE_FILE: &str = "berth.db";

/// Which database holds the metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// `berth.db` in the data directory.
    #[default]
    Sqlite,
    Postgres,
}

/// The `[metadata]` section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetadataConfig {
    pub backend: Backend,
    /// PostgreSQL: `postgres://user:password@host:port/database` (or the
    /// key=value form). A credential: never printed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<crate::secret::Secret>,
    /// PostgreSQL: connections open at most for queries (one more listens).
    pub pool_size: usize,
}

impl Default for MetadataConfig {
    fn default() -> Self {
        MetadataConfig {
            backend: Backend::Sqlite,
            url: None,
            pool_size: 16,
        }
    }
}

/// Opens the configured metadata database: SQLite in `data_dir`, or
/// PostgreSQL at the configured URL (connected, migrated and listening).
pub async fn open(config: &MetadataConfig, data_dir: &Path) -> Result<Arc<dyn MetaStore>> {
    Ok(match config.backend {
        Backend::Sqlite => Arc::new(sqlite::Sqlite::open(&data_dir.join(DATABASE_FILE))?),
        Backend::Postgres => {
            let url = config.url.as_ref().ok_or_else(|| {
                Error::Config("metadata backend \"postgres\" needs metadata.url".into())
            })?;
            Arc::new(postgres::Postgres::connect(url.expose(), config.pool_size).await?)
        }
    })
}

/// An upload session as the database keeps it between requests.
#[derive(Debug, Clone)]
pub struct UploadSession {
    pub repo: RepoName,
    /// The user who opened it, when there is authentication.
    pub owner: Option<String>,
    /// Bytes received and committed so far.
    pub offset: u64,
    /// The serialised running sha256 over those bytes.
    pub hash_state: Vec<u8>,
    /// Parts storage keeps for the session, in order: a name only storage
    /// reads, and a length.
    pub parts: Vec<(String, u64)>,
    /// The rest of what storage keeps for the session, opaque here.
    pub storage_state: Vec<u8>,
}

/// What one written chunk adds to its session.
#[derive(Debug, Clone)]
pub struct ChunkCommit<'a> {
    /// Bytes the chunk held.
    pub len: u64,
    /// The running sha256 after them.
    pub hash_state: &'a [u8],
    /// Parts storage kept for this chunk, after the session's others.
    pub new_parts: &'a [(String, u64)],
    /// Storage's state after this chunk, replacing the one before.
    pub storage_state: &'a [u8],
}

/// A manifest to record, already validated and stored as bytes.
#[derive(Debug, Clone)]
pub struct NewManifest {
    pub digest: Digest,
    pub media_type: String,
    pub artifact_type: Option<String>,
    pub subject: Option<Digest>,
    pub size: u64,
    pub annotations: BTreeMap<String, String>,
    /// Blobs (config, layers) that must be held by the repository, with sizes.
    pub blobs: Vec<(Digest, u64)>,
    /// Child manifests (index entries) that must be in the repository.
    pub manifests: Vec<Digest>,
    /// Lineage this manifest states, about itself or (a lineage document)
    /// about its subject.
    pub lineage: Option<NewLineage>,
}

impl NewManifest {
    /// Checks the blobs against what the repository holds (`held`: each
    /// digest's size there): the first one missing or of another size than
    /// its descriptor says is the refusal.
    pub fn check_blobs(&self, held: impl Fn(&Digest) -> Option<u64>) -> Result<()> {
        for (digest, claimed) in &self.blobs {
            let size = held(digest).ok_or_else(|| Error::ManifestBlobUnknown(digest.clone()))?;
            if size != *claimed {
                return Err(Error::ManifestInvalid(format!(
                    "descriptor of {digest} says {claimed} bytes, the blob has {size}"
                )));
            }
        }
        Ok(())
    }
}

/// An enum kept in the database and shown in the API as fixed words:
/// `as_str`, `parse`, `Display` and serde all use the word.
macro_rules! words {
    ($(#[$m:meta])* pub enum $name:ident { $($(#[$vm:meta])* $variant:ident = $word:literal,)+ }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vm])* $variant,)+
        }

        impl $name {
            pub const ALL: &[$name] = &[$($name::$variant,)+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $word,)+
                }
            }

            pub fn parse(s: &str) -> Option<$name> {
                Self::ALL.iter().copied().find(|v| v.as_str() == s)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(
                &self,
                s: S,
            ) -> std::result::Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
    };
}

words! {
    /// What a lineage fact is about.
    pub enum FactKind {
        /// Trained or evaluated on a dataset.
        Dataset = "dataset",
        /// Derived from another model (fine-tune, adapter, quantized, ...).
        Parent = "parent",
        /// Built from a code commit.
        Code = "code",
        /// Produced by a training run.
        Run = "run",
    }
}

words! {
    /// What moved a tag, as its history records it.
    pub enum Operation {
        Push = "push",
        DeleteManifest = "delete-manifest",
        DeleteTag = "delete-tag",
        Promote = "promote",
        Rollback = "rollback",
    }
}

words! {
    /// What an event in the log says happened.
    pub enum EventAction {
        /// A manifest was pushed.
        Push = "push",
        /// A manifest was deleted.
        Delete = "delete",
        /// A tag was set or moved (by a push).
        Tag = "tag",
        /// A tag was removed.
        Untag = "untag",
        Promote = "promote",
        Rollback = "rollback",
        /// A promotion was refused by its gates.
        PromoteRefused = "promote-refused",
        /// A version's pickle scan finished (its verdict in the reason).
        Scan = "scan",
    }
}

/// How a fact names the content it points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineageRef {
    /// A digest, wherever it lives.
    Digest(Digest),
    /// A digest in a named repository.
    InRepo(RepoName, Digest),
    /// A tag, resolved to its digest when the fact is recorded.
    Tagged(RepoName, Tag),
}

/// One fact of a model version's lineage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineageFact {
    pub kind: FactKind,
    /// For parents: finetune, adapter, quantized, merge, distill, derived.
    pub relation: Option<String>,
    pub target: Option<LineageRef>,
    /// An external dataset's URI, the code repository's URL, a run's URL.
    pub uri: Option<String>,
    /// A dataset's name, a run's id.
    pub name: Option<String>,
    /// The code commit.
    pub revision: Option<String>,
    /// Extra JSON (a run's parameters).
    pub detail: Option<String>,
}

/// Lineage facts about `model`, stated by the manifest being recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLineage {
    pub model: Digest,
    pub facts: Vec<LineageFact>,
}

/// A recorded lineage fact.
#[derive(Debug, Clone)]
pub struct StoredFact {
    /// Repository of the manifest that stated it.
    pub repo: RepoName,
    pub model: Digest,
    pub kind: FactKind,
    pub relation: Option<String>,
    pub target: Option<Digest>,
    pub target_repo: Option<RepoName>,
    pub uri: Option<String>,
    pub name: Option<String>,
    pub revision: Option<String>,
    pub detail: Option<String>,
}

/// A manifest as lineage answers describe it: one per repository holding it.
#[derive(Debug, Clone)]
pub struct ManifestInfo {
    pub repo: RepoName,
    pub digest: Digest,
    pub artifact_type: Option<String>,
    pub created_ms: i64,
    pub tags: Vec<Tag>,
}

/// A stored manifest, as a GET or HEAD needs it.
#[derive(Debug, Clone)]
pub struct StoredManifest {
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
}

/// One entry of a referrers listing.
#[derive(Debug, Clone)]
pub struct Referrer {
    pub digest: Digest,
    pub media_type: String,
    pub artifact_type: Option<String>,
    pub size: u64,
    pub annotations: BTreeMap<String, String>,
}

/// A repository as a listing of repositories shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoSummary {
    pub name: RepoName,
    pub tags: u64,
    pub manifests: u64,
    /// Bytes of the blobs it may serve.
    pub size: u64,
    /// When its newest manifest was pushed.
    pub last_push_ms: Option<i64>,
    /// Media type and artifact type of its newest manifest that is not
    /// attached to another (not a referrer).
    pub latest: Option<(String, Option<String>)>,
}

/// A tag with what it points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagDetail {
    pub name: String,
    pub digest: Digest,
    pub media_type: String,
    pub artifact_type: Option<String>,
    /// The manifest's bytes and the blobs it names.
    pub size: u64,
    /// When the tag last moved, and who moved it.
    pub updated_at_ms: i64,
    pub actor: Option<String>,
    /// Whether it was ever promoted or rolled back: an environment tag.
    pub environment: bool,
}

/// What became of a repository's set of tag names after a version of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagNameChanges {
    /// The version now.
    pub version: u64,
    /// Every change after the version asked about, oldest first; `None` when
    /// they are not all kept any more (the names must be read again).
    pub changes: Option<Vec<TagNameChange>>,
}

/// A tag name created (`present`) or deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagNameChange {
    pub name: String,
    pub present: bool,
}

/// Who did something and why, for tag history and events.
#[derive(Debug, Clone, Default)]
pub struct Actor {
    pub name: Option<String>,
    pub reason: Option<String>,
}

/// One move of a tag.
#[derive(Debug, Clone)]
pub struct HistoryEntry {
    pub id: i64,
    pub tag: Tag,
    pub old: Option<Digest>,
    pub new: Option<Digest>,
    pub at_ms: i64,
    pub actor: Option<String>,
    pub operation: Operation,
    pub reason: Option<String>,
}

/// One entry of the event log.
#[derive(Debug, Clone)]
pub struct Event {
    pub id: i64,
    pub at_ms: i64,
    pub action: EventAction,
    pub repo: RepoName,
    pub digest: Option<Digest>,
    pub tag: Option<Tag>,
    pub media_type: Option<String>,
    pub size: Option<u64>,
    pub actor: Option<String>,
    pub old_digest: Option<Digest>,
    pub reason: Option<String>,
}

/// An event to append that no other operation writes (a refused promotion).
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub action: EventAction,
    pub repo: RepoName,
    pub digest: Option<Digest>,
    pub tag: Option<Tag>,
    pub old_digest: Option<Digest>,
}

/// What a guarded tag move expects the tag to point at now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// No expectation.
    Anything,
    /// The tag must point at this digest (compare-and-swap).
    Digest(Digest),
}

/// Blobs and which repository holds them.
pub trait BlobMeta {
    /// The blob's size if `repo` holds it.
    fn repo_blob(&self, repo: &RepoName, digest: &Digest) -> Result<Option<u64>>;
    /// The sizes of those of `digests` that `repo` holds (one look-up for
    /// all of a manifest's layers).
    fn repo_blobs(&self, repo: &RepoName, digests: &[Digest]) -> Result<BTreeMap<Digest, u64>>;
    /// Repositories holding `digest` (for automatic mounts), at most `limit`.
    fn repos_holding(&self, digest: &Digest, limit: usize) -> Result<Vec<RepoName>>;
    /// Lets `repo` serve a blob that `from` holds; the size, or `None` if `from` lacks it.
    fn mount_blob(&self, repo: &RepoName, digest: &Digest, from: &RepoName) -> Result<Option<u64>>;
    /// Whether the blob's bytes are recorded as stored (any repository).
    fn blob_size(&self, digest: &Digest) -> Result<Option<u64>>;
    /// Stops `repo` from serving the blob; false if it did not hold it.
    fn unlink_blob(&self, repo: &RepoName, digest: &Digest) -> Result<bool>;
}

/// Upload sessions.
pub trait UploadMeta {
    /// Opens a session. Its record may reach the disk only with the next
    /// durable write (an empty session lost in a power cut costs nothing
    /// acknowledged: the client starts again); so may [`Self::begin_finish`]
    /// and [`Self::start_single_push`], whose marks guard a running process.
    fn create_upload(
        &self,
        id: &UploadId,
        repo: &RepoName,
        owner: Option<&str>,
        hash_state: &[u8],
    ) -> Result<()>;
    fn upload(&self, id: &UploadId) -> Result<Option<UploadSession>>;
    /// Records a written chunk if the session still stands at `expected_offset`;
    /// false if another request moved it first.
    fn commit_chunk(
        &self,
        id: &UploadId,
        expected_offset: u64,
        chunk: &ChunkCommit<'_>,
    ) -> Result<bool>;
    /// Marks the session as moving `digest` into place, so that garbage
    /// collection leaves that digest alone; `Busy` while a collection of it is
    /// under way. Returns the size if the content is already stored and sound.
    fn begin_finish(&self, id: &UploadId, digest: &Digest) -> Result<Option<u64>>;
    /// [`Self::begin_finish`] if the session belongs to `repo` and holds no
    /// bytes yet (the blob comes whole in the finishing request): then
    /// `Some`, with the stored size if any. `None` leaves the session as it
    /// was.
    fn begin_finish_if_empty(
        &self,
        id: &UploadId,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<Option<Option<u64>>>;
    /// Opens a session for a single-request push of `digest` (POST with
    /// `?digest=`), already marked as finishing it: [`Self::create_upload`]
    /// and [`Self::begin_finish`] in one transaction.
    fn start_single_push(
        &self,
        id: &UploadId,
        repo: &RepoName,
        owner: Option<&str>,
        hash_state: &[u8],
        digest: &Digest,
    ) -> Result<Option<u64>>;
    /// Ends the session and records the verified blob as held by its repository,
    /// in one transaction. `stored` says the bytes were (re)written just now.
    fn finish_upload(&self, id: &UploadId, digest: &Digest, size: u64, stored: bool) -> Result<()>;
    /// Ends the session; false if there was none.
    fn cancel_upload(&self, id: &UploadId) -> Result<bool>;
}

/// Manifests and tags.
pub trait ManifestMeta {
    /// Records a manifest, its references and tag moves in one transaction,
    /// after checking inside it that every referenced blob and child manifest
    /// is in the repository (`MANIFEST_BLOB_UNKNOWN` otherwise).
    /// A tag matching `immutable` that points elsewhere is not moved
    /// (`TagImmutable`).
    fn record_manifest(
        &self,
        repo: &RepoName,
        manifest: &NewManifest,
        tags: &[Tag],
        immutable: &[Glob],
        actor: &Actor,
    ) -> Result<()>;
    fn manifest_by_digest(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<Option<StoredManifest>>;
    fn manifest_by_tag(&self, repo: &RepoName, tag: &Tag) -> Result<Option<StoredManifest>>;
    /// Deletes a manifest and every tag on it; false if it was not there.
    /// Refused (`TagImmutable`) while an immutable tag points at it.
    fn delete_manifest(
        &self,
        repo: &RepoName,
        digest: &Digest,
        immutable: &[Glob],
        actor: &Actor,
    ) -> Result<bool>;
    /// Deletes a tag, not the manifest; false if it was not there.
    fn delete_tag(
        &self,
        repo: &RepoName,
        tag: &Tag,
        immutable: &[Glob],
        actor: &Actor,
    ) -> Result<bool>;
}

/// Listings: tags, catalog, referrers.
pub trait ListingMeta {
    /// Tags in lexical order after `last`, at most `n`, with the version of
    /// the repository's set of tag names read before them (see
    /// [`Self::tag_name_changes`]); `None` if the repository is unknown.
    fn tags(
        &self,
        repo: &RepoName,
        last: Option<&str>,
        n: usize,
    ) -> Result<Option<(Vec<String>, u64)>>;
    /// The tags of `repo` created and deleted since version `since` of its
    /// set of tag names, a number that changes whenever a tag is created or
    /// deleted (not when one moves); `None` if the repository is unknown.
    fn tag_name_changes(&self, repo: &RepoName, since: u64) -> Result<Option<TagNameChanges>>;
    /// [`Self::tag_name_changes`] answered at once, without blocking the
    /// calling thread, when the implementation can (the caller may be on an
    /// async runtime's thread, where a read of a few rows costs less than a
    /// trip to the blocking pool); `None`, without reading, when it cannot,
    /// and the caller reads through [`Self::tag_name_changes`] instead. By
    /// default it never can.
    fn tag_name_changes_now(
        &self,
        _repo: &RepoName,
        _since: u64,
    ) -> Option<Result<Option<TagNameChanges>>> {
        None
    }
    /// Repository names in lexical order after `last`, at most `n`.
    fn catalog(&self, last: Option<&str>, n: usize) -> Result<Vec<RepoName>>;
    /// Repositories whose names contain `contains`, in lexical order after
    /// `last`, at most `n`, each with its counts, size and newest push.
    fn repositories(
        &self,
        contains: &str,
        last: Option<&str>,
        n: usize,
    ) -> Result<Vec<RepoSummary>>;
    /// Tags of `repo` in lexical order after `last`, at most `n`, with what
    /// each points at and its last move.
    fn tag_details(&self, repo: &RepoName, last: Option<&str>, n: usize) -> Result<Vec<TagDetail>>;
    /// Manifests in `repo` whose subject is `subject`, optionally of one artifact type.
    fn referrers(
        &self,
        repo: &RepoName,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Referrer>>;
}

/// Lineage queries; facts are written by `record_manifest`.
pub trait LineageMeta {
    /// Facts about `model` (a digest, in any repository).
    fn facts_about(&self, model: &Digest) -> Result<Vec<StoredFact>>;
    /// Facts that point at `target` (of one kind, if given): what was built from it.
    fn facts_pointing_at(&self, target: &Digest, kind: Option<FactKind>)
    -> Result<Vec<StoredFact>>;
    /// Code facts whose commit starts with `prefix`.
    fn facts_with_revision(&self, prefix: &str) -> Result<Vec<StoredFact>>;
    /// The manifests with this digest, one per repository, with their tags.
    fn describe(&self, digest: &Digest) -> Result<Vec<ManifestInfo>>;
}

/// Release history: guarded tag moves, history, events and webhook cursors.
pub trait ReleaseMeta {
    /// Points `tag` at `to` (a manifest of the repository) if it points at what
    /// `expect` says (`PreconditionFailed` otherwise) and is not an immutable tag
    /// pointing elsewhere. Records history and an event with `operation`.
    /// Returns the digest the tag pointed at before.
    #[allow(clippy::too_many_arguments)]
    fn set_tag(
        &self,
        repo: &RepoName,
        tag: &Tag,
        to: &Digest,
        expect: &Expect,
        immutable: &[Glob],
        operation: Operation,
        actor: &Actor,
    ) -> Result<Option<Digest>>;
    /// A tag's moves, newest first, before history id `before`, at most `n`.
    fn tag_history(
        &self,
        repo: &RepoName,
        tag: &Tag,
        before: Option<i64>,
        n: usize,
    ) -> Result<Vec<HistoryEntry>>;
    /// The move in force at `at_ms`.
    fn tag_at(&self, repo: &RepoName, tag: &Tag, at_ms: i64) -> Result<Option<HistoryEntry>>;
    /// Tags of `repo` that point at `digest`.
    fn tags_on(&self, repo: &RepoName, digest: &Digest) -> Result<Vec<Tag>>;
    fn record_event(&self, event: &NewEvent, actor: &Actor) -> Result<()>;
    /// Events after id `after`, oldest first, at most `n`.
    fn events_after(&self, after: i64, n: usize) -> Result<Vec<Event>>;
    /// The promotions to `tag` that gates refused, newest first, at most `n`.
    fn refusals(&self, repo: &RepoName, tag: &Tag, n: usize) -> Result<Vec<Event>>;
    /// Events after `after` not yet delivered: how far a webhook with that
    /// cursor lags.
    fn events_since(&self, after: i64) -> Result<u64>;
    /// The last event a webhook has delivered (0 for none).
    fn webhook_cursor(&self, name: &str) -> Result<i64>;
    fn set_webhook_cursor(&self, name: &str, last_event: i64) -> Result<()>;
}

/// What garbage collection may remove.
#[derive(Debug, Clone)]
pub struct GcPolicy {
    /// Nothing younger than this (by when it was pushed or linked) is removed.
    pub grace_ms: i64,
    /// Digests a tag pointed at within its last N history entries are kept
    /// (rollback targets).
    pub keep_history: usize,
    /// Remove manifests no tag, index, kept subject, lineage or history needs.
    pub delete_untagged: bool,
    /// Rows per transaction.
    pub batch: usize,
    /// Upload sessions idle longer than this expire.
    pub upload_ttl_ms: i64,
}

/// Collection: each write is one short transaction over at most `batch`
/// rows, re-checking inside it that nothing needs what it removes.
pub trait GcMeta {
    /// Content whose rows are gone and whose objects may still need deleting.
    fn tombstones(&self) -> Result<Vec<Digest>>;
    fn clear_tombstones(&self, digests: &[Digest]) -> Result<()>;
    /// Upload sessions idle since before `cutoff_ms`; removed unless `dry_run`.
    /// Each comes with its storage state, for storage to remove what it holds.
    fn sweep_uploads(
        &self,
        cutoff_ms: i64,
        batch: usize,
        dry_run: bool,
    ) -> Result<Vec<(UploadId, Vec<u8>)>>;
    /// Manifests nothing needs (see [`GcPolicy::delete_untagged`]); removed unless `dry_run`.
    fn sweep_manifests(
        &self,
        now_ms: i64,
        policy: &GcPolicy,
        dry_run: bool,
    ) -> Result<Vec<(String, Digest)>>;
    /// What manifests point at, for a collection to check its content
    /// against: the newest event id is read first, then every reference, so
    /// that a manifest recorded after the first read is found among the push
    /// events after that id (ids commit in order; see [`References`]).
    fn references(&self) -> Result<References>;
    /// The next `n` contents in digest order after `from` (which moves past
    /// them): digest, size, and whether nothing but a manifest's reference
    /// may need it (it is not a manifest, not a lineage target, not being
    /// finished by an upload, and neither it nor a repository's link to it
    /// is younger than the grace period). A page of fewer than `n` is the
    /// last. Reads only; each content costs a few index look-ups by digest.
    fn content_candidates(
        &self,
        now_ms: i64,
        policy: &GcPolicy,
        from: &mut SweepCursor,
        n: usize,
    ) -> Result<Vec<(String, u64, bool)>>;
    /// Removes those of `digests` that nothing needs now, in one
    /// transaction: the candidates' checks again, and no manifest pushed
    /// after event `after_event` points at them (the caller checked those
    /// recorded before it against [`References`]). Their rows go and are
    /// tombstoned. Returns digests and sizes.
    fn sweep_contents(
        &self,
        now_ms: i64,
        policy: &GcPolicy,
        digests: &[String],
        after_event: i64,
    ) -> Result<Vec<(Digest, u64)>>;
}

/// What manifests pointed at when a collection began, read once so that
/// collecting stays linear in the store's size (references are not indexed
/// by child: an index would cost a page write per layer on every push).
/// Each child digest is kept as a 64-bit fingerprint, keyed anew per run:
/// 8 bytes a reference, and a fingerprint two digests share by chance keeps
/// garbage for a run, never removes what is referenced.
pub struct References {
    fingerprints: Vec<u64>,
    keys: std::hash::RandomState,
    /// The newest event when the references were read: manifests pushed
    /// after it are checked by [`GcMeta::sweep_contents`] itself.
    pub after_event: i64,
}

impl References {
    /// Builds the set from what `read` hands to the function it is given,
    /// one child digest at a time; it is sorted before anyone can ask it.
    pub fn read(
        after_event: i64,
        read: impl FnOnce(&mut dyn FnMut(&str)) -> Result<()>,
    ) -> Result<Self> {
        use std::hash::BuildHasher;
        let keys = std::hash::RandomState::new();
        let mut fingerprints = Vec::new();
        read(&mut |child| fingerprints.push(keys.hash_one(child)))?;
        fingerprints.sort_unstable();
        fingerprints.dedup();
        fingerprints.shrink_to_fit();
        Ok(References {
            fingerprints,
            keys,
            after_event,
        })
    }

    /// Whether a manifest may point at `digest` (true for every digest one
    /// does; rarely for one none does).
    pub fn holds(&self, digest: &str) -> bool {
        use std::hash::BuildHasher;
        self.fingerprints
            .binary_search(&self.keys.hash_one(digest))
            .is_ok()
    }
}

/// Where a collection's walk over contents stands: the last digest it
/// looked at. Each page starts after it, so a collection reads each content
/// once, in digest order: the look-ups each content needs (is it a
/// manifest, linked lately, ...) go to indexes by digest, whose pages a walk
/// in that order reads one after another instead of at random.
#[derive(Debug, Clone, Default)]
pub struct SweepCursor {
    pub digest: String,
}

/// A page of contents (digest, size, unneeded), `from` moved past the last.
pub(crate) fn taken(
    rows: Vec<(String, i64, bool)>,
    from: &mut SweepCursor,
) -> Vec<(String, u64, bool)> {
    if let Some((digest, _, _)) = rows.last() {
        from.digest = digest.clone();
    }
    rows.into_iter()
        .map(|(d, size, unneeded)| (d, to_u64(size), unneeded))
        .collect()
}

/// What `fsck` reads and repairs.
pub trait IntegrityMeta {
    /// Recorded content after `after` (by digest), at most `n`: digest, size, corrupt.
    fn contents_page(&self, after: Option<&str>, n: usize) -> Result<Vec<(Digest, u64, bool)>>;
    fn contents_count(&self) -> Result<u64>;
    /// Marks content as corrupt: it is not served until pushed again.
    fn mark_corrupt(&self, digest: &Digest) -> Result<()>;
    /// References, tags, history and lineage rows that point at nothing.
    fn dangling(&self) -> Result<Vec<String>>;
    /// SQLite's own check; empty when sound.
    fn database_check(&self) -> Result<Vec<String>>;
    /// Every upload session id.
    fn upload_ids(&self) -> Result<Vec<String>>;
    /// Makes a write that changes nothing, to learn whether writes work
    /// (readiness); not synced.
    fn probe_write(&self) -> Result<()>;
    /// Whether a digest is recorded content, tombstoned, or what an upload
    /// session is finishing (a finish that crashed after moving its bytes to
    /// their address and before recording them: its retry records them).
    fn knows_content(&self, digest: &Digest) -> Result<bool>;
}

/// A number that changes whenever a write of manifests or tags (or anything
/// else an answer kept in memory depends on) is committed to the database.
/// An answer read while it stood is still right while it stands: the
/// registry keeps manifest look-ups and tag pages in memory keyed by it, and
/// trusts nothing else to invalidate them. So the contract is the
/// database's, not the process's: SQLite, owned by one `berth serve`, counts
/// its own commits (all of them); an implementation shared by several
/// processes must move it on their commits too (PostgreSQL: a NOTIFY with
/// each such commit, counted on receipt), or those caches would serve what
/// another replica changed. Writes of upload sessions and of the blobs a
/// repository holds change no such answer and may leave it.
pub trait Changes {
    fn generation(&self) -> u64;
}

/// Background work (scheduled garbage collection and upload expiry, webhook
/// deliveries) runs in one process at a time, the leader, chosen through the
/// database. SQLite belongs to one process, which always leads; on
/// PostgreSQL a session advisory lock is the lease: it goes when its
/// holder's connection does (a killed process, a lost network), and another
/// replica takes it on its next try.
pub trait Leadership {
    /// Whether this process leads now, becoming the leader if no one is.
    /// Called every second or so; cheap when nothing changes.
    fn lead(&self) -> Result<bool>;
}

/// What talking to the database costs, for `/metrics`.
pub trait Traffic {
    /// Requests sent to a database server and answered, so far (none for
    /// an embedded database).
    fn round_trips(&self) -> u64 {
        0
    }
}

/// One area of the metadata database, for a part of the registry that needs
/// only that area (see `Registry::meta`): the whole store seen through one
/// of its traits.
pub trait Area: 'static {
    /// The area's name in metrics.
    const NAME: &'static str;
    fn of<'a>(store: &'a (dyn MetaStore + 'static)) -> &'a Self;
}

macro_rules! areas {
    ($($area:ident => $name:literal),+) => {$(
        impl Area for dyn $area {
            const NAME: &'static str = $name;
            fn of<'a>(store: &'a (dyn MetaStore + 'static)) -> &'a Self {
                store
            }
        }
    )+};
}

/// The areas as closures passed to `Registry::meta` name them
/// (`|m: &UploadArea| ...`): the trait objects, bound `'static`.
pub type BlobArea = dyn BlobMeta;
pub type UploadArea = dyn UploadMeta;
pub type ManifestArea = dyn ManifestMeta;
pub type ListingArea = dyn ListingMeta;
pub type LineageArea = dyn LineageMeta;
pub type ReleaseArea = dyn ReleaseMeta;
pub type GcArea = dyn GcMeta;
pub type IntegrityArea = dyn IntegrityMeta;
pub type LeaderArea = dyn Leadership;

areas!(
    BlobMeta => "blobs",
    UploadMeta => "uploads",
    ManifestMeta => "manifests",
    ListingMeta => "listing",
    LineageMeta => "lineage",
    ReleaseMeta => "releases",
    GcMeta => "gc",
    IntegrityMeta => "integrity",
    Leadership => "leader"
);

/// Everything the registry needs from its metadata database.
pub trait MetaStore:
    Changes
    + Leadership
    + Traffic
    + BlobMeta
    + UploadMeta
    + ManifestMeta
    + ListingMeta
    + LineageMeta
    + ReleaseMeta
    + GcMeta
    + IntegrityMeta
    + Send
    + Sync
{
}

impl<T> MetaStore for T where
    T: Changes
        + Leadership
        + Traffic
        + BlobMeta
        + UploadMeta
        + ManifestMeta
        + ListingMeta
        + LineageMeta
        + ReleaseMeta
        + GcMeta
        + IntegrityMeta
        + Send
        + Sync
{
}

// Columns as both databases keep them: text, read back into value types.

/// Reads a stored digest column; a malformed one is database corruption.
pub(crate) fn digest_column(s: String) -> Result<Digest> {
    Digest::parse(&s).map_err(|_| Error::Internal(format!("corrupt digest in database: {s}")))
}

pub(crate) fn repo_column(s: String) -> Result<RepoName> {
    RepoName::parse(&s)
        .map_err(|_| Error::Internal(format!("corrupt repository name in database: {s}")))
}

pub(crate) fn tag_column(s: String) -> Result<Tag> {
    Tag::parse(&s).map_err(|_| Error::Internal(format!("corrupt tag in database: {s}")))
}

/// A column holding one of an enum's words (see `meta::words!`).
pub(crate) fn word_column<T>(s: String, parse: fn(&str) -> Option<T>) -> Result<T> {
    parse(&s).ok_or_else(|| Error::Internal(format!("unknown word in database: {s}")))
}

pub(crate) fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

pub(crate) fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}
