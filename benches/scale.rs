//! Scale benchmark (issue 21.3): Berth with a lot in it beside Berth with
//! little, same binary, same run. The large store holds 100,000 blobs,
//! 20,000 manifests in 1,000 repositories (each tagged), a repository with
//! 50,000 tags, 10,000 lineage edges (parent chains of 20 versions) and the
//! events all that made; the small one the same shapes at a tenth
//! (`BENCH_SCALE_DIV` divides the large store too, for a quick run). Both
//! are filled through the HTTP API, then measured alike: manifest GET by tag
//! at c64, a page of tags and of the catalog, small pushes, promotions,
//! lineage queries of depth 5, GC with nothing and with 10% to free, fsck,
//! start-up, database size per manifest and peak memory.
//!
//! Run: `cargo bench --bench scale` (about eight minutes). Knobs:
//! `BENCH_SCALE_DIV` (default 1), `BENCH_SECONDS` per load run (default 5),
//! `BENCH_REPS` rounds of the request measures (default 3).
//! The table is also written to `target/bench-scale.md`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{FutureExt as _, StreamExt};

mod common;
use common::*;

/// What a store is filled with, before dividing.
const REPOS: usize = 1_000;
const VERSIONS: usize = 20;
const LAYERS: usize = 4;
const TAGS: usize = 50_000;
/// Repositories whose versions form parent chains: 527 x 19 = 10,013 edges.
const LINEAGE_REPOS: usize = 527;
/// Requests in flight while filling.
const FILL_CONCURRENCY: usize = 16;

struct Shape {
    repos: usize,
    tags: usize,
    lineage_repos: usize,
}

impl Shape {
    fn divided(div: usize) -> Shape {
        Shape {
            repos: (REPOS / div).max(1),
            tags: (TAGS / div).max(100),
            lineage_repos: (LINEAGE_REPOS / div).max(1),
        }
    }
}

/// A Berth on a data directory that outlives it (for the restart).
struct Store {
    dir: tempfile::TempDir,
    server: Option<Server>,
}

impl Store {
    async fn start(dir: tempfile::TempDir) -> Store {
        let server = serve(dir.path()).await.1;
        Store {
            dir,
            server: Some(server),
        }
    }

    fn server(&self) -> &Server {
        self.server.as_ref().expect("running")
    }

    fn base(&self) -> &str {
        &self.server().base
    }

    /// Stops the server; seconds to start it again until it answers.
    async fn restart(&mut self) -> f64 {
        self.server = None;
        let (took, server) = serve(self.dir.path()).await;
        self.server = Some(server);
        took
    }

    fn database_bytes(&self) -> u64 {
        ["berth.db", "berth.db-wal"]
            .iter()
            .filter_map(|f| std::fs::metadata(self.dir.path().join(f)).ok())
            .map(|m| m.len())
            .sum()
    }
}

/// `berth serve` on `data`; the seconds from spawn to its first answer.
async fn serve(data: &Path) -> (f64, Server) {
    let started = Instant::now();
    let (child, base) = spawn_berth(data, &[("BERTH_GC__GRACE_PERIOD", "0")], Stdio::null());
    let client = reqwest::Client::new();
    while client.get(format!("{base}/v2/")).send().await.is_err() {
        assert!(started.elapsed() < Duration::from_secs(120), "no start");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let took = started.elapsed().as_secs_f64();
    wait_ready(&base).await;
    let server = Server {
        base,
        child,
        _dir: tempfile::tempdir().expect("dir"),
    };
    (took, server)
}

/// One blob in one request (POST with `digest=`).
async fn put_blob(c: &reqwest::Client, base: &str, repo: &str, bytes: Vec<u8>) -> (String, usize) {
    let digest = sha256(&[&bytes]);
    let len = bytes.len();
    let r = c
        .post(format!("{base}/v2/{repo}/blobs/uploads/?digest={digest}"))
        .body(bytes)
        .send()
        .await
        .expect("POST blob");
    assert_eq!(r.status(), 201, "POST blob");
    (digest, len)
}

/// A version of `repo`: a config and LAYERS layers of its own, tagged
/// `v{n}`, with `parent` (a digest in `repo`) as its lineage parent.
async fn push_version(
    c: &reqwest::Client,
    base: &str,
    repo: &str,
    n: usize,
    parent: Option<&str>,
) -> (String, Bytes) {
    let mut descriptors = Vec::new();
    for part in 0..=LAYERS {
        let body = format!("{repo} {n} {part} {}", "x".repeat(200)).into_bytes();
        descriptors.push(put_blob(c, base, repo, body).await);
    }
    let layers: Vec<String> = descriptors[1..]
        .iter()
        .map(|(d, l)| {
            format!(r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{d}","size":{l}}}"#)
        })
        .collect();
    let annotations = parent.map_or(String::new(), |p| {
        format!(r#","annotations":{{"io.berth.lineage.parents":"{repo}@{p}"}}"#)
    });
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[{}]{annotations}}}"#,
        descriptors[0].0,
        descriptors[0].1,
        layers.join(",")
    );
    let digest = sha256(&[manifest.as_bytes()]);
    let manifest = Bytes::from(manifest);
    put_manifest(c, base, repo, &format!("v{n}"), manifest.clone()).await;
    (digest, manifest)
}

/// Fills a store; returns the newest version of the first lineage chain.
async fn fill(c: &reqwest::Client, base: &str, shape: &Shape) -> String {
    let chains = futures_util::stream::iter(0..shape.repos)
        .map(|r| async move {
            let repo = format!("team{}/app{r}", r % 10);
            let chained = r < shape.lineage_repos;
            let mut parent: Option<String> = None;
            for n in 0..VERSIONS {
                let (digest, _) = push_version(c, base, &repo, n, parent.as_deref()).await;
                parent = chained.then_some(digest);
            }
            (r, repo, parent)
        })
        .buffer_unordered(FILL_CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
    let (_, manifest) = push_version(c, base, "tagged", 0, None).await;
    futures_util::stream::iter(0..shape.tags)
        .map(|t| {
            let manifest = manifest.clone();
            async move { put_manifest(c, base, "tagged", &format!("t{t:05}"), manifest).await }
        })
        .buffer_unordered(FILL_CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
    let (_, repo, last) = chains
        .into_iter()
        .find(|(r, _, _)| *r == 0)
        .expect("first repository");
    format!("{repo}@{}", last.expect("a chain"))
}

/// Shows the server's peak memory so far, to tell which phase set it.
fn note_peak(store: &Store, phase: &str) {
    eprintln!(
        "  peak memory after {phase}: {:.1} MiB",
        store.server().peak_rss_mib()
    );
}

/// Milliseconds each call of `f` took: median and p99 over `n` calls.
async fn timed<F, Fut>(n: usize, mut f: F) -> (f64, f64)
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut ms = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        f(i).await;
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    ms.sort_by(|a, b| a.total_cmp(b));
    (median(&ms), ms[((ms.len() - 1) as f64 * 0.99) as usize])
}

async fn get_ok(c: &reqwest::Client, url: &str) -> Bytes {
    let r = c.get(url).send().await.expect("GET");
    assert!(r.status().is_success(), "GET {url}: {}", r.status());
    r.bytes().await.expect("body")
}

async fn post_ok(c: &reqwest::Client, url: &str, body: String) -> Bytes {
    let r = c.post(url).body(body).send().await.expect("POST");
    assert!(r.status().is_success(), "POST {url}: {}", r.status());
    r.bytes().await.expect("body")
}

/// Measures, by name: (value, unit).
type Measures = Vec<(String, f64, &'static str)>;

/// GC with nothing to free (right after filling).
async fn measure_gc_idle(c: &reqwest::Client, store: &Store) -> Measures {
    let mut out = Vec::new();
    let base = store.base().to_owned();
    let gc = format!("{base}/api/v1/gc");
    let t = Instant::now();
    post_ok(c, &gc, String::new()).await;
    out.push(("GC, nothing to free".into(), t.elapsed().as_secs_f64(), "s"));
    note_peak(store, "gc");
    out
}

/// What a client does most; repeatable, so measured in rounds that
/// alternate between the stores.
async fn measure_requests(
    c: &reqwest::Client,
    store: &Store,
    shape: &Shape,
    chain_end: &str,
    secs: u64,
) -> Measures {
    let mut out = Vec::new();
    let base = store.base().to_owned();
    let (rps, _, p99) = load(
        c,
        reqwest::Method::GET,
        &format!("{base}/v2/tagged/manifests/t00042"),
        64,
        secs,
    )
    .await;
    out.push(("manifest GET by tag, c64".into(), rps, "req/s"));
    out.push(("  its p99".into(), p99, "ms"));

    let middle = format!("t{:05}", shape.tags / 2);
    let page = format!("{base}/v2/tagged/tags/list?n=100&last={middle}");
    let (p50, _) = timed(50, |_| get_ok(c, &page).map(drop)).await;
    out.push(("a page of 100 tags from the middle, p50".into(), p50, "ms"));
    let t = Instant::now();
    let mut next = Some(format!("{base}/v2/_catalog?n=100"));
    let mut listed = 0;
    while let Some(url) = next.take() {
        let r = c.get(&url).send().await.expect("catalog");
        next = r
            .headers()
            .get("link")
            .and_then(|l| l.to_str().ok())
            .and_then(|l| l.split(['<', '>']).nth(1))
            .map(|l| abs(&base, l));
        let page: serde_json::Value =
            serde_json::from_slice(&r.bytes().await.expect("body")).expect("catalog JSON");
        listed += page["repositories"].as_array().map_or(0, Vec::len);
    }
    // Per repository listed, not per page: the last page is partial, and
    // it is one of 2 in the small store against one of 11 in the large.
    out.push((
        "catalog walk in pages of 100, per 100 repositories".into(),
        t.elapsed().as_secs_f64() * 1e5 / listed.max(1) as f64,
        "ms",
    ));

    let promote = format!("{base}/api/v1/repositories/team0/app0/promote");
    let (p50, _) = timed(50, |i| {
        let body = format!(r#"{{"reference":"v{}","to":"production"}}"#, i % VERSIONS);
        post_ok(c, &promote, body).map(drop)
    })
    .await;
    out.push(("promotion, p50".into(), p50, "ms"));

    let (repo, digest) = chain_end.split_once('@').expect("chain end");
    let lineage = format!("{base}/api/v1/lineage/{repo}/{digest}?direction=upstream&depth=5");
    let (p50, _) = timed(50, |_| get_ok(c, &lineage).map(drop)).await;
    out.push(("lineage query, depth 5, p50".into(), p50, "ms"));

    out
}

/// A tenth of the versions deleted, then GC.
async fn measure_gc_freeing(c: &reqwest::Client, store: &Store, shape: &Shape) -> Measures {
    let mut out = Vec::new();
    let base = store.base().to_owned();
    let gc = format!("{base}/api/v1/gc");
    // A tenth of the versions untagged and deleted: their blobs are garbage.
    let doomed: Vec<(String, usize)> = (0..shape.repos)
        .flat_map(|r| (0..VERSIONS / 10).map(move |n| (format!("team{}/app{r}", r % 10), n)))
        .collect();
    futures_util::stream::iter(doomed.iter())
        .map(|(repo, n)| {
            let url = format!("{base}/v2/{repo}/manifests/v{n}");
            let base = &base;
            async move {
                let r = c
                    .get(&url)
                    .header("accept", "application/vnd.oci.image.manifest.v1+json")
                    .send()
                    .await
                    .expect("GET");
                let digest = r.headers()["docker-content-digest"]
                    .to_str()
                    .expect("digest")
                    .to_owned();
                let url = format!("{base}/v2/{repo}/manifests/{digest}");
                let r = c.delete(&url).send().await.expect("DELETE");
                assert_eq!(r.status(), 202, "DELETE {url}");
            }
        })
        .buffer_unordered(FILL_CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
    note_peak(store, "deletes");
    let t = Instant::now();
    let report = post_ok(c, &gc, String::new()).await;
    let took = t.elapsed().as_secs_f64();
    let report: serde_json::Value = serde_json::from_slice(&report).expect("gc report");
    let freed = report["blobsDeleted"].as_f64().unwrap_or(0.0);
    eprintln!(
        "gc after deleting {} versions: {freed} blobs freed",
        doomed.len()
    );
    out.push(("GC, 10% of the versions deleted".into(), took, "s"));
    out.push(("  per blob freed".into(), took * 1e3 / freed.max(1.0), "ms"));
    note_peak(store, "gc");

    out
}

/// Small pushes, after the GCs (their blobs are garbage); `round` keeps
/// each round's blobs new.
async fn measure_pushes(c: &reqwest::Client, store: &Store, round: u32) -> Measures {
    let mut out = Vec::new();
    let base = store.base().to_owned();
    let t = Instant::now();
    futures_util::stream::iter(0..1000u32)
        .map(|i| {
            let mut bytes = vec![7u8; 4096];
            bytes[..4].copy_from_slice(&i.to_le_bytes());
            bytes[4..8].copy_from_slice(&round.to_le_bytes());
            put_blob(c, &base, "pushes", bytes)
        })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await;
    out.push((
        "1,000 blobs of 4 KiB, c8".into(),
        1000.0 / t.elapsed().as_secs_f64(),
        "blobs/s",
    ));

    out
}

/// Size, memory, a restart and fsck.
async fn measure_at_rest(store: &mut Store, shape: &Shape) -> Measures {
    let mut out = Vec::new();
    out.push((
        "database size per manifest".into(),
        store.database_bytes() as f64 / (shape.repos * VERSIONS + 1) as f64 / 1024.0,
        "KiB",
    ));
    out.push((
        "peak resident memory".into(),
        store.server().peak_rss_mib(),
        "MiB",
    ));
    let took = store.restart().await;
    out.push(("start-up, spawn to first answer".into(), took, "s"));
    out.push((
        "resident memory after start-up".into(),
        proc_field(store.server().pid(), "VmRSS:") / 1024.0,
        "MiB",
    ));
    let blobs = fsck_blobs(store.dir.path());
    out.push(("fsck".into(), blobs.0, "s"));
    out.push(("  blobs re-hashed per second".into(), blobs.1, "blobs/s"));
    out
}

/// `berth fsck` on the store (beside the running server, as an operator
/// would): seconds, and blobs re-hashed per second.
fn fsck_blobs(data: &Path) -> (f64, f64) {
    let t = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["fsck", "--data-dir"])
        .arg(data)
        .env("BERTH_LOG", "warn")
        .output()
        .expect("fsck");
    let secs = t.elapsed().as_secs_f64();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "fsck: {text}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("fsck report");
    let checked = report["checked"].as_f64().unwrap_or(0.0);
    (secs, checked / secs)
}

#[tokio::main]
async fn main() {
    let div = env_or("BENCH_SCALE_DIV", 1).max(1);
    let secs = env_or("BENCH_SECONDS", 5) as u64;
    let reps = env_or("BENCH_REPS", 3);
    let c = bench_client();
    let shapes = [Shape::divided(10 * div), Shape::divided(div)];
    let mut stores = Vec::new();
    for (shape, name) in shapes.iter().zip(["small", "large"]) {
        let store = Store::start(tempfile::tempdir().expect("dir")).await;
        let t = Instant::now();
        let chain_end = fill(&c, store.base(), shape).await;
        let counts = counts(&store.dir.path().join("berth.db"));
        eprintln!(
            "{name} store filled in {:.0} s: {counts}",
            t.elapsed().as_secs_f64()
        );
        note_peak(&store, "filling");
        stores.push((store, chain_end, counts));
    }
    // Each measure's values per store: small, large.
    let mut rows: Vec<(String, &'static str, [Vec<f64>; 2])> = Vec::new();
    let mut add = |measures: Measures, i: usize| {
        for (name, value, unit) in measures {
            if !rows.iter().any(|r| r.0 == name) {
                rows.push((name.clone(), unit, [Vec::new(), Vec::new()]));
            }
            if let Some(row) = rows.iter_mut().find(|r| r.0 == name) {
                row.2[i].push(value);
            }
        }
    };
    for (i, (store, _, _)) in stores.iter().enumerate() {
        add(measure_gc_idle(&c, store).await, i);
    }
    for round in 0..reps {
        eprintln!("round {}/{reps}", round + 1);
        for (i, (store, chain_end, _)) in stores.iter().enumerate() {
            add(
                measure_requests(&c, store, &shapes[i], chain_end, secs).await,
                i,
            );
        }
    }
    for (i, (store, _, _)) in stores.iter().enumerate() {
        add(measure_gc_freeing(&c, store, &shapes[i]).await, i);
        note_peak(store, "deleting and gc");
    }
    for round in 0..reps {
        for (i, (store, _, _)) in stores.iter().enumerate() {
            add(measure_pushes(&c, store, round as u32).await, i);
        }
    }
    for (i, (store, _, _)) in stores.iter_mut().enumerate() {
        add(measure_at_rest(store, &shapes[i]).await, i);
    }

    let header = format!(
        "Berth {}: a small store beside a large one on {} cores; {reps} rounds of the request measures, alternating stores; {secs} s per load run; {}",
        env!("CARGO_PKG_VERSION"),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        chrono::Utc::now().format("%Y-%m-%d"),
    );
    let mut table = format!(
        "{header}\n\nsmall: {}\nlarge: {}\n\n| measure | small | large | large/small |\n| --- | --- | --- | --- |\n",
        stores[0].2, stores[1].2
    );
    for (name, unit, [small, large]) in &rows {
        let (s, l) = (median(small), median(large));
        table.push_str(&format!(
            "| {name} | {s:.2} {unit}{} | {l:.2} {unit}{} | {:.2} |\n",
            spread(small),
            spread(large),
            l / s
        ));
    }
    println!("{table}");
    let _ = std::fs::write(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-scale.md"),
        &table,
    );
}

/// How much a store holds, read from its database.
fn counts(db: &Path) -> String {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open database");
    let count = |table: &str| -> i64 {
        conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap_or(-1)
    };
    format!(
        "{} blobs and manifests, {} manifests, {} repositories, {} tags, {} lineage facts, {} events",
        count("contents"),
        count("manifests"),
        count("repositories"),
        count("tags"),
        count("lineage"),
        count("events")
    )
}
