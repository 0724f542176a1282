//! Lineage query benchmark: 1,000 datasets and 10,000 model versions (each
//! trained on two datasets, 40% fine-tuned from an earlier model), then
//! downstream graph queries at depth 5 from random datasets, upstream queries
//! from random models, and "what was trained on this dataset" lists.
//!
//! Run: `cargo bench --bench lineage`. Prints medians, p95 and maxima.

use std::sync::Arc;
use std::time::{Duration, Instant};

use berth::meta::sqlite::Sqlite;
use berth::meta::{
    Actor, FactKind, LineageFact, LineageRef, ManifestMeta, NewLineage, NewManifest,
};
use berth::oci::{Digest, Reference, RepoName, Tag};
use berth::registry::lineage::{Direction, ModelQuery};
use berth::registry::{Registry, Settings};
use berth::storage::{BlobStore, ObjectStorage};

const DATASETS: usize = 1_000;
const MODELS: usize = 10_000;
const QUERIES: usize = 300;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn manifest(digest: Digest, lineage: Option<NewLineage>) -> NewManifest {
    NewManifest {
        digest,
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        artifact_type: Some("application/vnd.example.model.v1".into()),
        subject: None,
        size: 100,
        annotations: Default::default(),
        blobs: Vec::new(),
        manifests: Vec::new(),
        lineage,
    }
}

fn dataset_fact(d: &Digest) -> LineageFact {
    LineageFact {
        kind: FactKind::Dataset,
        relation: None,
        target: Some(LineageRef::Digest(d.clone())),
        uri: None,
        name: None,
        revision: None,
        detail: None,
    }
}

fn stats(label: &str, mut samples: Vec<Duration>, nodes: usize) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
    println!(
        "{label:<48} median {:>8.3} ms   p95 {:>8.3} ms   max {:>8.3} ms   ({} queries, {:.1} nodes avg)",
        at(0.5).as_secs_f64() * 1e3,
        at(0.95).as_secs_f64() * 1e3,
        at(1.0).as_secs_f64() * 1e3,
        samples.len(),
        nodes as f64 / samples.len() as f64,
    );
}

#[tokio::main]
async fn main() {
    let base = std::path::Path::new("/dev/shm");
    let dir = if base.is_dir() {
        tempfile::tempdir_in(base)
    } else {
        tempfile::tempdir()
    }
    .expect("temp dir");
    let db = Arc::new(Sqlite::open(&dir.path().join("berth.db")).expect("open db"));
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let actor = Actor::default();

    let started = Instant::now();
    let datasets: Vec<(RepoName, Digest)> = (0..DATASETS)
        .map(|i| {
            let repo = RepoName::parse(&format!("data/d{}", i % 50)).expect("name");
            (repo, Digest::sha256_of(format!("dataset {i}").as_bytes()))
        })
        .collect();
    for (i, (repo, d)) in datasets.iter().enumerate() {
        let tag = Tag::parse(&format!("v{i}")).expect("tag");
        db.record_manifest(repo, &manifest(d.clone(), None), &[tag], &[], &actor)
            .expect("dataset");
    }
    let mut models: Vec<(RepoName, Digest)> = Vec::with_capacity(MODELS);
    for i in 0..MODELS {
        let repo = RepoName::parse(&format!("models/m{}", i % 100)).expect("name");
        let digest = Digest::sha256_of(format!("model {i}").as_bytes());
        let mut facts = vec![
            dataset_fact(&datasets[rng.below(DATASETS)].1),
            dataset_fact(&datasets[rng.below(DATASETS)].1),
            LineageFact {
                kind: FactKind::Code,
                revision: Some(format!("{:016x}", rng.next())),
                ..dataset_fact(&digest)
            },
        ];
        facts[2].target = None;
        if i > 0 && rng.below(10) < 4 {
            let parent = &models[rng.below(i)];
            facts.push(LineageFact {
                kind: FactKind::Parent,
                relation: Some("finetune".into()),
                target: Some(LineageRef::InRepo(parent.0.clone(), parent.1.clone())),
                ..dataset_fact(&digest)
            });
        }
        let lineage = NewLineage {
            model: digest.clone(),
            facts,
        };
        let tag = Tag::parse(&format!("v{i}")).expect("tag");
        db.record_manifest(
            &repo,
            &manifest(digest.clone(), Some(lineage)),
            &[tag],
            &[],
            &actor,
        )
        .expect("model");
        models.push((repo, digest));
    }
    println!(
        "populated {DATASETS} datasets and {MODELS} models in {:.1} s ({})",
        started.elapsed().as_secs_f64(),
        dir.path().display()
    );

    let registry = Registry::new(
        BlobStore::new(ObjectStorage::new(
            Arc::new(object_store::memory::InMemory::new()),
            0,
        )),
        db,
        Settings::default(),
    );
    let mut down = Vec::new();
    let mut down_nodes = 0;
    for _ in 0..QUERIES {
        let (repo, d) = &datasets[rng.below(DATASETS)];
        let t = Instant::now();
        let g = registry
            .lineage_graph(
                repo,
                &Reference::Digest(d.clone()),
                Direction::Downstream,
                5,
            )
            .await
            .expect("graph");
        down.push(t.elapsed());
        down_nodes += g.nodes.len();
    }
    stats("downstream graph from a dataset, depth 5", down, down_nodes);

    let mut up = Vec::new();
    let mut up_nodes = 0;
    for _ in 0..QUERIES {
        let (repo, d) = &models[rng.below(MODELS)];
        let t = Instant::now();
        let g = registry
            .lineage_graph(repo, &Reference::Digest(d.clone()), Direction::Upstream, 5)
            .await
            .expect("graph");
        up.push(t.elapsed());
        up_nodes += g.nodes.len();
    }
    stats("upstream graph from a model, depth 5", up, up_nodes);

    let mut list = Vec::new();
    let mut listed = 0;
    for _ in 0..QUERIES {
        let d = datasets[rng.below(DATASETS)].1.clone();
        let t = Instant::now();
        listed += registry
            .lineage_models(ModelQuery::Dataset(d))
            .await
            .expect("list")
            .len();
        list.push(t.elapsed());
    }
    stats("models trained on a dataset (?dataset=)", list, listed);
}
