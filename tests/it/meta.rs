//! The metadata suite: the contract every implementation of the metadata
//! traits must keep, checked through `dyn MetaStore` only (no SQL), so that
//! the same checks run on SQLite and on PostgreSQL.
//! `open` gives a new handle on the same database each time it is called: a
//! restarted process, or another replica.

use std::sync::Arc;

use berth::error::Error;
use berth::glob::Glob;
use berth::meta::postgres::Postgres;
use berth::meta::sqlite::Sqlite;
use berth::meta::{
    Actor, ChunkCommit, EventAction, Expect, FactKind, GcPolicy, LineageFact, LineageRef,
    ListingMeta, MetaStore, NewEvent, NewLineage, NewManifest, Operation, Traffic,
};
use berth::oci::{Digest, RepoName, Tag, UploadId};

fn repo(s: &str) -> RepoName {
    RepoName::parse(s).expect("repository name")
}

fn tag(s: &str) -> Tag {
    Tag::parse(s).expect("tag")
}

fn actor(name: &str) -> Actor {
    Actor {
        name: Some(name.into()),
        reason: None,
    }
}

/// A far-future cutoff: every session is idle before it.
const LATER: i64 = i64::MAX / 2;

/// Every check, on one implementation.
fn suite(open: impl Fn() -> Arc<dyn MetaStore>) {
    uploads_commit_in_order_and_finish_once(&open);
    blobs_belong_to_repositories_and_mount_between_them(open());
    manifests_need_their_blobs_and_tags_keep_history_and_events(open());
    look_ups_of_several_keys_answer_for_each_key(open());
    lineage_is_recorded_with_the_manifest_and_found_both_ways(open());
    every_write_of_what_is_cached_moves_the_generation(open());
    repositories_and_tags_are_listed_with_what_they_hold(open());
    collection_checks_references_read_once_and_pushes_after_them(open());
    racing_pushes_to_one_tag_chain_its_history(&open);
    pushes_racing_deletes_of_their_manifest_succeed(&open);
}

/// Pushes a blob of `len` bytes into `r` through an upload session.
fn push_blob(m: &dyn MetaStore, r: &RepoName, seed: &str, len: u64) -> Digest {
    let digest = Digest::sha256_of(seed.as_bytes());
    let id = UploadId::new_random();
    m.create_upload(&id, r, None, b"h").expect("create");
    let chunk = ChunkCommit {
        len,
        hash_state: b"h2",
        new_parts: &[],
        storage_state: b"",
    };
    assert!(m.commit_chunk(&id, 0, &chunk).expect("commit"));
    assert_eq!(m.begin_finish(&id, &digest).expect("begin"), None);
    m.finish_upload(&id, &digest, len, false).expect("finish");
    digest
}

fn uploads_commit_in_order_and_finish_once(open: &impl Fn() -> Arc<dyn MetaStore>) {
    let (m, r) = (open(), repo("suite/uploads"));
    let id = UploadId::new_random();
    m.create_upload(&id, &r, Some("alice"), &[1, 2, 3])
        .expect("create");
    let s = m.upload(&id).expect("read").expect("the session");
    assert_eq!((s.repo.clone(), s.offset), (r.clone(), 0));
    assert_eq!(s.owner.as_deref(), Some("alice"));
    assert_eq!(s.hash_state, [1, 2, 3]);
    assert!(s.parts.is_empty() && s.storage_state.is_empty());

    let commit = |m: &dyn MetaStore, at: u64, len: u64, part: &str, state: &[u8]| {
        let parts = [(part.to_owned(), len)];
        m.commit_chunk(
            &id,
            at,
            &ChunkCommit {
                len,
                hash_state: &[9],
                new_parts: &parts,
                storage_state: state,
            },
        )
        .expect("commit")
    };
    assert!(
        !commit(&*m, 5, 10, "p0", b"x"),
        "not where the session stands"
    );
    assert!(commit(&*m, 0, 10, "p1", b"s1"));
    // Another handle on the same database carries on from there.
    let other = open();
    assert!(commit(&*other, 10, 5, "p2", b"s2"));
    assert!(!commit(&*m, 10, 5, "p3", b"s3"), "that offset is taken");
    let s = m.upload(&id).expect("read").expect("the session");
    assert_eq!(s.offset, 15);
    assert_eq!(s.hash_state, [9]);
    assert_eq!(
        s.parts,
        [("p1".to_owned(), 10), ("p2".to_owned(), 5)],
        "parts append in order"
    );
    assert_eq!(s.storage_state, b"s2", "storage's state is replaced whole");

    let digest = Digest::sha256_of(b"uploads");
    assert_eq!(m.begin_finish(&id, &digest).expect("begin"), None);
    m.finish_upload(&id, &digest, 15, false).expect("finish");
    assert!(m.upload(&id).expect("read").is_none(), "finishing ends it");
    assert_eq!(m.repo_blob(&r, &digest).expect("held"), Some(15));
    assert!(!m.cancel_upload(&id).expect("cancel"), "already gone");
    assert!(matches!(
        m.begin_finish(&id, &digest),
        Err(Error::BlobUploadUnknown)
    ));
    // The same content finished again is known to be stored.
    let again = UploadId::new_random();
    m.create_upload(&again, &r, None, b"").expect("create");
    assert_eq!(m.begin_finish(&again, &digest).expect("begin"), Some(15));
    assert!(m.cancel_upload(&again).expect("cancel"));

    // Expiry hands back each session's storage state, for storage to clean.
    let idle = UploadId::new_random();
    m.create_upload(&idle, &r, None, b"").expect("create");
    let idle_chunk = ChunkCommit {
        len: 3,
        hash_state: &[],
        new_parts: &[],
        storage_state: b"resume-me",
    };
    assert!(m.commit_chunk(&idle, 0, &idle_chunk).expect("commit"));
    let dry = m.sweep_uploads(LATER, 100, true).expect("dry run");
    assert!(dry.iter().any(|(i, _)| *i == idle));
    assert!(
        m.upload(&idle).expect("read").is_some(),
        "a dry run removes nothing"
    );
    let swept = m.sweep_uploads(LATER, 100, false).expect("sweep");
    let state = swept
        .iter()
        .find(|(i, _)| *i == idle)
        .map(|(_, s)| s.clone());
    assert_eq!(state.as_deref(), Some(&b"resume-me"[..]));
    assert!(m.upload(&idle).expect("read").is_none());
}

fn blobs_belong_to_repositories_and_mount_between_them(m: Arc<dyn MetaStore>) {
    let (a, b, c) = (repo("suite/a"), repo("suite/b"), repo("suite/c"));
    let digest = push_blob(&*m, &a, "mounted", 7);
    assert_eq!(m.repo_blob(&a, &digest).expect("a"), Some(7));
    assert_eq!(m.repo_blob(&b, &digest).expect("b"), None, "not b's");
    assert_eq!(m.blob_size(&digest).expect("size"), Some(7));
    assert_eq!(
        m.mount_blob(&b, &digest, &c).expect("mount"),
        None,
        "c has none"
    );
    assert_eq!(m.mount_blob(&b, &digest, &a).expect("mount"), Some(7));
    assert_eq!(m.repo_blob(&b, &digest).expect("b"), Some(7));
    let holding = m.repos_holding(&digest, 10).expect("holding");
    assert!(holding.contains(&a) && holding.contains(&b), "{holding:?}");
    assert!(m.unlink_blob(&b, &digest).expect("unlink"));
    assert!(!m.unlink_blob(&b, &digest).expect("again"));
    assert_eq!(m.repo_blob(&b, &digest).expect("b"), None);
    assert_eq!(m.repo_blob(&a, &digest).expect("a"), Some(7), "a keeps it");
}

fn manifest(config: &Digest, seed: &str) -> NewManifest {
    NewManifest {
        digest: Digest::sha256_of(seed.as_bytes()),
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        artifact_type: None,
        subject: None,
        size: 100,
        annotations: Default::default(),
        blobs: vec![(config.clone(), 7)],
        manifests: Vec::new(),
        lineage: None,
    }
}

fn manifests_need_their_blobs_and_tags_keep_history_and_events(m: Arc<dyn MetaStore>) {
    let r = repo("suite/releases");
    let before = m.events_after(0, 100_000).expect("events").len();
    let missing = Digest::sha256_of(b"never pushed");
    let refused = m.record_manifest(&r, &manifest(&missing, "m0"), &[], &[], &actor("ci"));
    assert!(
        matches!(refused, Err(Error::ManifestBlobUnknown(_))),
        "{refused:?}"
    );
    let catalog = m.catalog(None, 1000).expect("catalog");
    assert!(!catalog.contains(&r), "a refused push leaves no repository");

    let config = push_blob(&*m, &r, "config", 7);
    let (v1, v2) = (manifest(&config, "m1"), manifest(&config, "m2"));
    m.record_manifest(&r, &v1, &[tag("v1")], &[], &actor("ci"))
        .expect("v1");
    m.record_manifest(&r, &v2, &[tag("v2")], &[], &actor("ci"))
        .expect("v2");
    m.record_manifest(&r, &v1, &[tag("v1")], &[], &actor("ci"))
        .expect("v1 again");
    let v1_history = m.tag_history(&r, &tag("v1"), None, 10).expect("history");
    assert_eq!(
        v1_history.len(),
        1,
        "pushing again where a tag points moves nothing"
    );
    let by_tag = m.manifest_by_tag(&r, &tag("v1")).expect("by tag");
    assert_eq!(by_tag.map(|s| s.digest), Some(v1.digest.clone()));
    let by_digest = m.manifest_by_digest(&r, &v2.digest).expect("by digest");
    assert_eq!(by_digest.map(|s| s.size), Some(100));
    assert!(m.catalog(None, 1000).expect("catalog").contains(&r));
    let (tags, _) = m.tags(&r, None, 10).expect("tags").expect("known");
    assert_eq!(tags, ["v1", "v2"]);

    let prod = tag("production");
    let set_prod = |to: &Digest, expect: Expect, operation: Operation, who: &str| {
        m.set_tag(&r, &prod, to, &expect, &[], operation, &actor(who))
    };
    let moved = set_prod(&v1.digest, Expect::Anything, Operation::Promote, "alice");
    assert_eq!(moved.expect("promote"), None, "pointed at nothing before");
    let stale = Expect::Digest(v2.digest.clone());
    let cas = set_prod(&v2.digest, stale, Operation::Promote, "bob");
    assert!(
        matches!(cas, Err(Error::PreconditionFailed { .. })),
        "{cas:?}"
    );
    let fresh = Expect::Digest(v1.digest.clone());
    let moved = set_prod(&v2.digest, fresh, Operation::Promote, "bob");
    assert_eq!(moved.expect("promote"), Some(v1.digest.clone()));
    let moved = set_prod(&v1.digest, Expect::Anything, Operation::Rollback, "bob");
    assert_eq!(moved.expect("rollback"), Some(v2.digest.clone()));

    let history = m.tag_history(&r, &prod, None, 10).expect("history");
    let ops: Vec<_> = history.iter().map(|h| h.operation).collect();
    assert_eq!(
        ops,
        [Operation::Rollback, Operation::Promote, Operation::Promote],
        "newest first"
    );
    assert_eq!(history[0].old.as_ref(), Some(&v2.digest));
    assert_eq!(history[0].new.as_ref(), Some(&v1.digest));
    assert_eq!(history[0].tag, prod);
    assert_eq!(history[0].actor.as_deref(), Some("bob"));
    let older = m
        .tag_history(&r, &prod, Some(history[0].id), 10)
        .expect("page");
    assert_eq!(older.len(), 2, "paging goes on before an id");
    let at = m.tag_at(&r, &prod, LATER).expect("at").expect("in force");
    assert_eq!(at.id, history[0].id);
    assert_eq!(
        m.tags_on(&r, &v1.digest).expect("tags on"),
        [prod.clone(), tag("v1")]
    );

    assert!(
        m.delete_tag(&r, &tag("v2"), &[], &actor("ci"))
            .expect("delete")
    );
    assert!(
        !m.delete_tag(&r, &tag("v2"), &[], &actor("ci"))
            .expect("again")
    );
    let events = m.events_after(0, 100_000).expect("events");
    let ours: Vec<_> = events[before..].iter().filter(|e| e.repo == r).collect();
    let actions: Vec<_> = ours.iter().map(|e| e.action).collect();
    assert_eq!(
        actions,
        [
            EventAction::Push,
            EventAction::Tag,
            EventAction::Push,
            EventAction::Tag,
            EventAction::Promote,
            EventAction::Promote,
            EventAction::Rollback,
            EventAction::Untag,
        ],
        "in order, once each"
    );
    assert!(events.windows(2).all(|w| w[0].id < w[1].id), "ids ascend");
    let rollback = ours[6];
    assert_eq!(rollback.digest.as_ref(), Some(&v1.digest));
    assert_eq!(rollback.old_digest.as_ref(), Some(&v2.digest));
    assert_eq!(rollback.tag.as_ref(), Some(&prod));

    assert_eq!(m.webhook_cursor("suite").expect("cursor"), 0);
    m.set_webhook_cursor("suite", rollback.id).expect("set");
    assert_eq!(m.webhook_cursor("suite").expect("cursor"), rollback.id);
}

/// A push asks about several keys at once (the blobs a manifest names, an
/// index's children, the tags an immutable rule covers), in a repository
/// that holds much else: each key is answered, whether it is named once or
/// twice, and one key missing or wrong is found among present ones.
fn look_ups_of_several_keys_answer_for_each_key(m: Arc<dyn MetaStore>) {
    let r = repo("suite/keys");
    let ci = actor("ci");
    for i in 0..20 {
        let other = push_blob(&*m, &r, &format!("keys-other-{i}"), 7);
        m.record_manifest(&r, &manifest(&other, &format!("keys-m{i}")), &[], &[], &ci)
            .expect("another manifest");
    }
    let a = push_blob(&*m, &r, "keys-a", 7);
    let b = push_blob(&*m, &r, "keys-b", 9);
    let with_blobs = |seed: &str, blobs: Vec<(Digest, u64)>| NewManifest {
        blobs,
        ..manifest(&a, seed)
    };
    let twice = with_blobs(
        "keys-twice",
        vec![(a.clone(), 7), (b.clone(), 9), (a.clone(), 7)],
    );
    m.record_manifest(&r, &twice, &[], &[], &ci)
        .expect("a blob named twice");
    let wrong = m.record_manifest(
        &r,
        &with_blobs("keys-wrong", vec![(a.clone(), 7), (b.clone(), 7)]),
        &[],
        &[],
        &ci,
    );
    assert!(matches!(wrong, Err(Error::ManifestInvalid(_))), "{wrong:?}");
    // Refused as naming `absent`, which the repository does not hold.
    let refused_for = |pushed: &NewManifest, absent: &Digest| {
        let refused = m.record_manifest(&r, pushed, &[], &[], &ci);
        assert!(
            matches!(&refused, Err(Error::ManifestBlobUnknown(d)) if d == absent),
            "{refused:?}"
        );
    };
    let gone = Digest::sha256_of(b"keys-never-pushed");
    refused_for(
        &with_blobs("keys-unknown", vec![(a.clone(), 7), (gone.clone(), 7)]),
        &gone,
    );

    let child = manifest(&a, "keys-child");
    m.record_manifest(&r, &child, &[], &[], &ci).expect("child");
    let index = |seed: &str, children: Vec<Digest>| NewManifest {
        media_type: "application/vnd.oci.image.index.v1+json".into(),
        blobs: Vec::new(),
        manifests: children,
        ..manifest(&a, seed)
    };
    let named = vec![
        child.digest.clone(),
        twice.digest.clone(),
        child.digest.clone(),
    ];
    m.record_manifest(&r, &index("keys-index", named), &[], &[], &ci)
        .expect("an index naming a child twice");
    let missing = Digest::sha256_of(b"keys-missing-child");
    refused_for(
        &index(
            "keys-bad-index",
            vec![child.digest.clone(), missing.clone()],
        ),
        &missing,
    );

    let rules = [Glob::new("v*")];
    m.record_manifest(&r, &child, &[tag("v1"), tag("latest")], &rules, &ci)
        .expect("a new tag that a rule covers");
    m.record_manifest(&r, &child, &[tag("v1")], &rules, &ci)
        .expect("pushed again where it points");
    let moved = m.record_manifest(&r, &twice, &[tag("latest"), tag("v1")], &rules, &ci);
    assert!(matches!(moved, Err(Error::TagImmutable(_))), "{moved:?}");
    let v1 = m.manifest_by_tag(&r, &tag("v1")).expect("by tag");
    assert_eq!(v1.map(|s| s.digest), Some(child.digest.clone()));
}

/// Pushes that move one tag, from several handles at once (replicas, on
/// PostgreSQL): each move reads where the tag pointed under the same turn
/// as it writes, so the history is one chain, every move in it once, and
/// the tag ends where the last link says.
fn racing_pushes_to_one_tag_chain_its_history(open: &impl Fn() -> Arc<dyn MetaStore>) {
    let (m, r, t) = (open(), repo("suite/racing"), tag("latest"));
    let config = push_blob(&*m, &r, "racing config", 7);
    let (writers, each) = (4, 15);
    std::thread::scope(|s| {
        for w in 0..writers {
            let (m, r, t, config) = (open(), &r, &t, &config);
            s.spawn(move || {
                for n in 0..each {
                    let v = manifest(config, &format!("racing {w} {n}"));
                    m.record_manifest(r, &v, std::slice::from_ref(t), &[], &actor("ci"))
                        .expect("push");
                }
            });
        }
    });
    let history = m.tag_history(&r, &t, None, 1000).expect("history");
    assert_eq!(history.len(), writers * each, "every move, once");
    for pair in history.windows(2) {
        assert_eq!(
            pair[0].old, pair[1].new,
            "each move starts where the one before ended"
        );
    }
    assert_eq!(history.last().and_then(|h| h.old.clone()), None);
    let now = m.manifest_by_tag(&r, &t).expect("by tag").map(|s| s.digest);
    assert_eq!(now, history[0].new);
}

/// A manifest pushed by tag again and again while another handle deletes
/// it again and again: every push succeeds (one whose checks saw the row
/// that a delete then took puts it back), and the last one leaves it there.
fn pushes_racing_deletes_of_their_manifest_succeed(open: &impl Fn() -> Arc<dyn MetaStore>) {
    let (m, r, t) = (open(), repo("suite/undeleted"), tag("latest"));
    let config = push_blob(&*m, &r, "undeleted config", 7);
    let v = manifest(&config, "undeleted");
    let rounds = 150;
    std::thread::scope(|s| {
        let (pusher, deleter) = (open(), open());
        let (r, t, v) = (&r, &t, &v);
        s.spawn(move || {
            for _ in 0..rounds {
                pusher
                    .record_manifest(r, v, std::slice::from_ref(t), &[], &actor("ci"))
                    .expect("a push racing a delete");
            }
        });
        s.spawn(move || {
            for _ in 0..rounds {
                deleter
                    .delete_manifest(r, &v.digest, &[], &actor("ci"))
                    .expect("a delete racing a push");
            }
        });
    });
    m.record_manifest(&r, &v, std::slice::from_ref(&t), &[], &actor("ci"))
        .expect("the last push");
    let now = m.manifest_by_tag(&r, &t).expect("by tag").map(|s| s.digest);
    assert_eq!(now, Some(v.digest.clone()));
}

fn repositories_and_tags_are_listed_with_what_they_hold(m: Arc<dyn MetaStore>) {
    let r = repo("suite/listed/model");
    let other = repo("suite/listed/image");
    let config = push_blob(&*m, &r, "listed config", 7);
    let mut v1 = manifest(&config, "listed v1");
    v1.artifact_type = Some("application/vnd.example.model".into());
    m.record_manifest(&r, &v1, &[tag("v1")], &[], &actor("ci"))
        .expect("v1");
    let mut eval = manifest(&config, "listed eval");
    eval.subject = Some(v1.digest.clone());
    m.record_manifest(&r, &eval, &[], &[], &actor("ci"))
        .expect("eval");
    let prod = tag("production");
    m.set_tag(
        &r,
        &prod,
        &v1.digest,
        &Expect::Anything,
        &[],
        Operation::Promote,
        &actor("alice"),
    )
    .expect("promote");
    push_blob(&*m, &other, "listed layer", 3);

    let listed = m
        .repositories("suite/listed/", None, 10)
        .expect("repositories");
    let names: Vec<_> = listed.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["suite/listed/image", "suite/listed/model"]);
    let model = &listed[1];
    assert_eq!((model.tags, model.manifests, model.size), (2, 2, 7));
    assert!(model.last_push_ms.is_some());
    assert_eq!(
        model.latest,
        Some((v1.media_type.clone(), v1.artifact_type.clone())),
        "the newest manifest that is not a referrer"
    );
    assert_eq!(
        (listed[0].tags, listed[0].size, listed[0].latest.clone()),
        (0, 3, None)
    );
    let after = m
        .repositories("listed", Some("suite/listed/image"), 10)
        .expect("page");
    assert_eq!(after.len(), 1, "paging goes on after a name");
    assert!(
        m.repositories("no such name", None, 10)
            .expect("none")
            .is_empty()
    );

    let tags = m.tag_details(&r, None, 10).expect("tags");
    let names: Vec<_> = tags.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["production", "v1"]);
    let (p, v) = (&tags[0], &tags[1]);
    assert_eq!(p.digest, v1.digest);
    assert_eq!(p.size, 100 + 7, "the manifest and its blobs");
    assert_eq!(p.artifact_type, v1.artifact_type);
    assert_eq!((p.actor.as_deref(), p.environment), (Some("alice"), true));
    assert_eq!((v.actor.as_deref(), v.environment), (Some("ci"), false));
    assert_eq!(
        m.tag_details(&r, Some("production"), 10)
            .expect("page")
            .len(),
        1
    );

    for reason in ["accuracy 0.5 < 0.9", "dangerous imports"] {
        let refusal = NewEvent {
            action: EventAction::PromoteRefused,
            repo: r.clone(),
            digest: Some(v1.digest.clone()),
            tag: Some(prod.clone()),
            old_digest: None,
        };
        let who = Actor {
            name: Some("bob".into()),
            reason: Some(reason.into()),
        };
        m.record_event(&refusal, &who).expect("refusal");
    }
    let refused = m.refusals(&r, &prod, 10).expect("refusals");
    let reasons: Vec<_> = refused.iter().map(|e| e.reason.as_deref()).collect();
    assert_eq!(
        reasons,
        [Some("dangerous imports"), Some("accuracy 0.5 < 0.9")],
        "newest first"
    );
    assert!(m.refusals(&r, &tag("v1"), 10).expect("none").is_empty());
}

fn lineage_is_recorded_with_the_manifest_and_found_both_ways(m: Arc<dyn MetaStore>) {
    let r = repo("suite/models");
    let config = push_blob(&*m, &r, "model-config", 7);
    let dataset = Digest::sha256_of(b"a dataset");
    let mut model = manifest(&config, "model");
    model.lineage = Some(NewLineage {
        model: model.digest.clone(),
        facts: vec![
            LineageFact {
                kind: FactKind::Dataset,
                relation: None,
                target: Some(LineageRef::Digest(dataset.clone())),
                uri: None,
                name: None,
                revision: None,
                detail: None,
            },
            LineageFact {
                kind: FactKind::Code,
                relation: None,
                target: None,
                uri: Some("https://git.example/model".into()),
                name: None,
                revision: Some("0123abcd".into()),
                detail: None,
            },
        ],
    });
    m.record_manifest(&r, &model, &[tag("v1")], &[], &actor("ci"))
        .expect("model");
    let facts = m.facts_about(&model.digest).expect("facts");
    let kinds: Vec<_> = facts.iter().map(|f| f.kind).collect();
    assert!(kinds.contains(&FactKind::Dataset) && kinds.contains(&FactKind::Code));
    assert!(facts.iter().all(|f| f.repo == r && f.model == model.digest));
    let trained = m
        .facts_pointing_at(&dataset, Some(FactKind::Dataset))
        .expect("downstream");
    assert_eq!(trained.len(), 1);
    assert_eq!(trained[0].model, model.digest);
    let built = m.facts_with_revision("0123").expect("by commit");
    assert_eq!(built.len(), 1);
    let info = m.describe(&model.digest).expect("describe");
    assert_eq!(info.len(), 1);
    assert_eq!(
        (info[0].repo.clone(), info[0].tags.clone()),
        (r, vec![tag("v1")])
    );
}

/// Manifests and tags are what the registry keeps in memory: every write
/// of them moves the generation. Upload sessions and blobs need not.
fn every_write_of_what_is_cached_moves_the_generation(m: Arc<dyn MetaStore>) {
    let r = repo("suite/generation");
    let layer = push_blob(&*m, &r, "generation", 7);
    let before = m.generation();
    m.record_manifest(&r, &manifest(&layer, "g1"), &[tag("g")], &[], &actor("ci"))
        .expect("manifest");
    let pushed = m.generation();
    assert!(pushed > before, "{before} -> {pushed}");
    m.record_manifest(&r, &manifest(&layer, "g2"), &[tag("g")], &[], &actor("ci"))
        .expect("tag moved");
    let moved = m.generation();
    assert!(moved > pushed, "{pushed} -> {moved}");
    m.catalog(None, 10).expect("a read");
    assert_eq!(m.generation(), moved, "reads do not move it");
}

/// Garbage collection reads what manifests point at once, then walks
/// content in pages; a manifest recorded after that read still keeps its
/// blobs, because the sweep checks pushes after the read's event id.
fn collection_checks_references_read_once_and_pushes_after_them(m: Arc<dyn MetaStore>) {
    let r = repo("suite/gc");
    let policy = GcPolicy {
        grace_ms: 0,
        keep_history: 0,
        delete_untagged: true,
        batch: 100,
        upload_ttl_ms: 0,
    };
    let [kept, late, loose] = ["kept", "late", "loose"].map(|s| push_blob(&*m, &r, s, 7));
    let held = manifest(&kept, "gc-m1");
    m.record_manifest(&r, &held, &[], &[], &actor("ci"))
        .expect("m1");
    let refs = m.references().expect("references");
    assert!(refs.holds(&kept.to_string()), "m1 points at it");
    assert!(!refs.holds(&loose.to_string()) && !refs.holds(&late.to_string()));

    // Pages of two, in digest order: each content once; a manifest is
    // never a candidate, a blob only a reference keeps is.
    let mut from = Default::default();
    let mut walked = Vec::new();
    loop {
        let page = m
            .content_candidates(LATER, &policy, &mut from, 2)
            .expect("page");
        let last = page.len() < 2;
        walked.extend(page);
        if last {
            break;
        }
    }
    let digests: Vec<&String> = walked.iter().map(|(d, _, _)| d).collect();
    assert!(
        digests.is_sorted(),
        "in digest order, each once: {digests:?}"
    );
    assert!(digests.windows(2).all(|w| w[0] != w[1]));
    let unneeded = |d: &Digest| walked.iter().find(|w| w.0 == d.to_string()).map(|w| w.2);
    for blob in [&kept, &late, &loose] {
        assert_eq!(unneeded(blob), Some(true), "{blob}");
    }
    assert_eq!(unneeded(&held.digest), Some(false), "a manifest");

    // `late` gets a manifest after the references were read.
    m.record_manifest(&r, &manifest(&late, "gc-m2"), &[], &[], &actor("ci"))
        .expect("m2");
    let candidates = [late.to_string(), loose.to_string()];
    let swept = m
        .sweep_contents(LATER, &policy, &candidates, refs.after_event)
        .expect("sweep");
    assert_eq!(swept, vec![(loose.clone(), 7)], "only what nothing needs");
    assert_eq!(m.blob_size(&late).expect("size"), Some(7), "late stays");
    assert_eq!(m.blob_size(&loose).expect("size"), None, "loose goes");
    assert!(m.tombstones().expect("tombstones").contains(&loose));
    let again = m
        .sweep_contents(LATER, &policy, &candidates, refs.after_event)
        .expect("again");
    assert!(again.is_empty(), "gone once");
    m.clear_tombstones(&[loose]).expect("clear");
}

#[test]
fn sqlite() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("meta.db");
    suite(|| Arc::new(Sqlite::open(&path).expect("open")) as Arc<dyn MetaStore>);
}

#[test]
fn postgres() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let key = format!("meta-suite-{}", std::process::id());
    let url = rt.block_on(crate::support::postgres_schema(&key));
    suite(|| {
        let db = rt.block_on(Postgres::connect(&url, 4)).expect("connect");
        Arc::new(db) as Arc<dyn MetaStore>
    });
    // Each statement is a round trip, counted for /metrics.
    let db = rt.block_on(Postgres::connect(&url, 1)).expect("connect");
    let before = db.round_trips();
    db.catalog(None, 1).expect("a read");
    assert_eq!(db.round_trips(), before + 2, "prepared once, then run");
    db.catalog(None, 1).expect("a read");
    assert_eq!(db.round_trips(), before + 3, "then only run");
}
