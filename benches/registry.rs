//! Side-by-side benchmark: Berth against CNCF Distribution 2.8.2 (Debian's
//! `docker-registry`, installed here if missing) and against the machine's own
//! limits, on loopback. Workloads run interleaved (Berth, Distribution, Berth,
//! ...) and report medians, spreads (min–max) and the ratio Berth/Distribution.
//!
//! Run: `cargo bench --bench registry` (about six minutes). Knobs:
//! `BENCH_REPS` (default 3), `BENCH_SECONDS` per load run (default 10),
//! `BENCH_BLOB_MIB` (default 1024), `BENCH_ONLY` (a comma-separated subset
//! of `big`, `small`, `layers`, `lookups`, `tags`, `s3`; default all;
//! `s3` runs moto's S3 server from test.sh's virtualenv, `BENCH_S3_MIB`
//! of it, default 256). The table
//! is also written to `target/bench-registry.md`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use sha2::Digest as _;

mod common;
use common::*;

/// Whether the workload group `name` runs (`BENCH_ONLY` unset means all).
fn selected(name: &str) -> bool {
    std::env::var("BENCH_ONLY").map_or(true, |only| only.split(',').any(|g| g.trim() == name))
}

// ---------------------------------------------------------------- servers

async fn start_berth() -> Server {
    let dir = tempfile::tempdir().expect("dir");
    let (child, base) = spawn_berth(dir.path(), &[], Stdio::null());
    wait_ready(&base).await;
    Server {
        base,
        child,
        _dir: dir,
    }
}

async fn start_distribution() -> Server {
    if Command::new("docker-registry")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("installing Debian's docker-registry (CNCF Distribution 2.8.2)");
        let ok = Command::new("sh")
            .args(["-c", "apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker-registry >/dev/null"])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "could not install docker-registry");
    }
    let dir = tempfile::tempdir().expect("dir");
    let port = free_port();
    let config = dir.path().join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        ),
    )
    .expect("config");
    let child = Command::new("docker-registry")
        .args(["serve"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn docker-registry");
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&base).await;
    Server {
        base,
        child,
        _dir: dir,
    }
}

// ---------------------------------------------------------------- client

/// The blob: an 8-byte prefix making it unique, then the shared body.
#[derive(Clone)]
struct Blob {
    prefix: Bytes,
    body: Bytes,
    digest: String,
}

impl Blob {
    fn new(prefix: u64, body: &Bytes) -> Blob {
        let prefix = Bytes::copy_from_slice(&prefix.to_le_bytes());
        let digest = sha256(&[&prefix, body]);
        Blob {
            prefix,
            body: body.clone(),
            digest,
        }
    }

    fn len(&self) -> usize {
        self.prefix.len() + self.body.len()
    }

    /// The bytes from `start` to `end`, as 1 MiB slices (no copies).
    fn stream(&self, start: usize, end: usize) -> reqwest::Body {
        let mut chunks = Vec::new();
        let mut at = start;
        while at < end {
            if at < self.prefix.len() {
                chunks.push(self.prefix.slice(at..self.prefix.len().min(end)));
                at = self.prefix.len().min(end);
            } else {
                let o = at - self.prefix.len();
                let stop = (o + MIB).min(end - self.prefix.len());
                chunks.push(self.body.slice(o..stop));
                at = stop + self.prefix.len();
            }
        }
        reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks.into_iter().map(Ok::<_, std::io::Error>),
        ))
    }
}

async fn finish(c: &reqwest::Client, url: &str, digest: &str, body: Option<reqwest::Body>) {
    let mut req = c.put(with_query(url, &format!("digest={digest}")));
    if let Some(b) = body {
        req = req.body(b);
    }
    let r = req.send().await.expect("PUT");
    assert_eq!(
        r.status(),
        201,
        "PUT {}",
        r.text().await.unwrap_or_default()
    );
}

async fn push_monolithic(c: &reqwest::Client, base: &str, repo: &str, blob: &Blob) {
    let url = start_upload(c, base, repo).await;
    finish(c, &url, &blob.digest, Some(blob.stream(0, blob.len()))).await;
}

async fn push_chunked(c: &reqwest::Client, base: &str, repo: &str, blob: &Blob, chunk: usize) {
    let mut url = start_upload(c, base, repo).await;
    let mut at = 0;
    while at < blob.len() {
        let end = (at + chunk).min(blob.len());
        let r = c
            .patch(&url)
            .header("content-type", "application/octet-stream")
            .header("content-range", format!("{at}-{}", end - 1))
            .header("content-length", (end - at).to_string())
            .body(blob.stream(at, end))
            .send()
            .await
            .expect("PATCH");
        assert_eq!(r.status(), 202, "PATCH");
        url = abs(base, r.headers()["location"].to_str().expect("location"));
        at = end;
    }
    finish(c, &url, &blob.digest, None).await;
}

async fn push_streamed(c: &reqwest::Client, base: &str, repo: &str, blob: &Blob) {
    let url = start_upload(c, base, repo).await;
    let r = c
        .patch(&url)
        .header("content-type", "application/octet-stream")
        .body(blob.stream(0, blob.len()))
        .send()
        .await
        .expect("PATCH");
    assert_eq!(r.status(), 202, "PATCH");
    let url = abs(base, r.headers()["location"].to_str().expect("location"));
    finish(c, &url, &blob.digest, None).await;
}

async fn pull(c: &reqwest::Client, url: &str) -> usize {
    let r = c.get(url).send().await.expect("GET");
    assert!(r.status().is_success(), "GET {url}");
    let mut n = 0;
    let mut s = r.bytes_stream();
    while let Some(chunk) = s.next().await {
        n += chunk.expect("body").len();
    }
    n
}

/// Points `tag` of the repository `tagged` at the manifest `body`.
async fn put_tag(c: &reqwest::Client, base: &str, tag: &str, body: &Bytes) {
    put_manifest(c, base, "tagged", tag, body.clone()).await;
}

/// Lists the tags of `tagged` whole, timed to the last byte received (ms);
/// checking the answer (parsing the names) is the client's work, not timed.
async fn list_tags_timed(c: &reqwest::Client, base: &str, expected: usize) -> f64 {
    let t = Instant::now();
    let r = c
        .get(format!("{base}/v2/tagged/tags/list"))
        .send()
        .await
        .expect("tags");
    let answer = r.bytes().await.expect("b");
    let took = t.elapsed().as_secs_f64() * 1e3;
    let v: serde_json::Value = serde_json::from_slice(&answer).expect("json");
    assert_eq!(v["tags"].as_array().map(Vec::len), Some(expected));
    took
}

/// Pushes `layers` small blobs and a config to `repo` once, then puts
/// `count` image manifests naming all of them (each made unique by an
/// annotation) with `conc` clients: manifests per second and the p50 of a
/// PUT (ms). The blobs' pushes are not timed.
async fn push_manifests(
    c: &reqwest::Client,
    base: &str,
    repo: &str,
    layers: usize,
    count: usize,
    conc: usize,
) -> (f64, f64) {
    let seeds = (0..=layers as u64).map(|n| {
        let mut v = vec![0u8; 1024];
        v[..8].copy_from_slice(&(n + 7_000_000).to_le_bytes());
        v
    });
    let digests: Vec<String> =
        futures_util::stream::iter(seeds.map(|b| push_small(c, base, repo, b)))
            .buffered(8)
            .collect()
            .await;
    let descriptor =
        |mt: &str, d: &str| format!(r#"{{"mediaType":"{mt}","digest":"{d}","size":1024}}"#);
    let layer_list: Vec<String> = digests[1..]
        .iter()
        .map(|d| descriptor("application/vnd.oci.image.layer.v1.tar", d))
        .collect();
    let head = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{},"layers":[{}],"annotations":{{"n":""#,
        descriptor("application/vnd.oci.image.config.v1+json", &digests[0]),
        layer_list.join(",")
    );
    let started = Instant::now();
    let mut took: Vec<f64> = futures_util::stream::iter((0..count).map(|n| {
        let body = Bytes::from(format!("{head}{n}\"}}}}"));
        async move {
            let t = Instant::now();
            put_manifest(c, base, repo, &format!("v{n}"), body).await;
            t.elapsed().as_secs_f64() * 1e3
        }
    }))
    .buffer_unordered(conc)
    .collect()
    .await;
    let rate = count as f64 / started.elapsed().as_secs_f64();
    took.sort_by(|a, b| a.total_cmp(b));
    (rate, took[took.len() / 2])
}

// ---------------------------------------------------------------- machine limits

fn sha256_speed(buf: &[u8]) -> f64 {
    let t = Instant::now();
    let mut h = sha2::Sha256::new();
    h.update(buf);
    let _ = h.finalize();
    buf.len() as f64 / t.elapsed().as_secs_f64() / 1e9
}

fn disk_write_speed(dir: &Path, buf: &[u8]) -> f64 {
    use std::io::Write;
    let path = dir.join("disk-probe");
    let t = Instant::now();
    let mut f = std::fs::File::create(&path).expect("create");
    for chunk in buf.chunks(8 * MIB) {
        f.write_all(chunk).expect("write");
    }
    f.sync_data().expect("fdatasync");
    let speed = buf.len() as f64 / t.elapsed().as_secs_f64() / 1e9;
    let _ = std::fs::remove_file(path);
    speed
}

/// Writes `len` bytes with O_DIRECT in 1 MiB writes from one 16 MiB aligned
/// buffer (filled from `data`, written over and over: no copy per write),
/// then fsync: the disk without the page cache. `None` where the file
/// system refuses O_DIRECT.
fn direct_write_speed(dir: &Path, data: &[u8], len: usize) -> Option<f64> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    const ALIGN: usize = 4096;
    let span = (16 * MIB).min(data.len() / MIB * MIB);
    let mut block = vec![0u8; span + ALIGN];
    let at = block.as_ptr().align_offset(ALIGN);
    let aligned = &mut block[at..at + span];
    aligned.copy_from_slice(&data[..span]);
    let path = dir.join("direct-probe");
    let t = Instant::now();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(rustix::fs::OFlags::DIRECT.bits() as i32)
        .open(&path)
        .ok()?;
    let mut written = 0;
    while written < len {
        for chunk in aligned.chunks_exact(MIB) {
            f.write_all(chunk).expect("O_DIRECT write");
        }
        written += span;
    }
    f.sync_all().expect("fsync");
    let speed = written as f64 / t.elapsed().as_secs_f64() / 1e9;
    let _ = std::fs::remove_file(path);
    Some(speed)
}

// ------------------------------------------------------ object storage

/// moto's S3 server on loopback, from the virtualenv test.sh keeps
/// (installed there if missing), or the server at `BENCH_S3_ENDPOINT`.
fn s3_server() -> (String, Option<std::process::Child>) {
    if let Ok(endpoint) = std::env::var("BENCH_S3_ENDPOINT") {
        return (endpoint, None);
    }
    let venv = std::env::var("TEST_VENV").map_or_else(
        |_| PathBuf::from(std::env::var("HOME").expect("HOME")).join(".cache/berth-test-venv"),
        PathBuf::from,
    );
    let moto = venv.join("bin/moto_server");
    if !moto.exists() {
        eprintln!("installing moto into {}", venv.display());
        let ok = Command::new("python3")
            .arg("-m")
            .arg("venv")
            .arg(&venv)
            .status();
        assert!(ok.is_ok_and(|s| s.success()), "python3 -m venv");
        let ok = Command::new(venv.join("bin/pip"))
            .args(["install", "-q", "moto[server]==5.2.5"])
            .status();
        assert!(ok.is_ok_and(|s| s.success()), "pip install moto");
    }
    let port = free_port();
    let child = Command::new(moto)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("moto_server");
    (format!("http://127.0.0.1:{port}"), Some(child))
}

/// Pushes and pulls a blob through Berth on S3, and puts and gets the same
/// bytes straight to the S3 server with object_store (8 MiB parts, as many in
/// flight as Berth) for its own limit; all into `limits`, as there is no
/// Distribution column for these.
async fn object_storage(
    c: &reqwest::Client,
    data: &Bytes,
    limits: &mut Vec<(String, f64, &'static str)>,
) {
    use object_store::ObjectStoreExt as _;
    let mib = env_or("BENCH_S3_MIB", 256).min(data.len() / MIB);
    let body = data.slice(..mib * MIB);
    let gb = body.len() as f64 / 1e9;
    let (endpoint, mut moto) = s3_server();
    for _ in 0..600 {
        if c.get(format!("{endpoint}/")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let bucket = format!("bench-{}", std::process::id());
    let r = c
        .put(format!("{endpoint}/{bucket}"))
        .send()
        .await
        .expect("bucket");
    assert!(r.status().is_success(), "create bucket");

    let store = Arc::new(
        object_store::aws::AmazonS3Builder::new()
            .with_endpoint(&endpoint)
            .with_allow_http(true)
            .with_bucket_name(&bucket)
            .with_region("us-east-1")
            .with_access_key_id("test")
            .with_secret_access_key("test")
            .build()
            .expect("s3 client"),
    );
    let path = object_store::path::Path::from("limit/blob");
    let t = Instant::now();
    let mut writer =
        object_store::buffered::BufWriter::with_capacity(store.clone(), path.clone(), 8 * MIB)
            .with_max_concurrency(2);
    for piece in body.chunks(MIB) {
        writer.put(body.slice_ref(piece)).await.expect("put");
    }
    tokio::io::AsyncWriteExt::shutdown(&mut writer)
        .await
        .expect("complete");
    let put = gb / t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut got = 0;
    let mut stream = store.get(&path).await.expect("get").into_stream();
    while let Some(piece) = stream.next().await {
        got += piece.expect("get").len();
    }
    assert_eq!(got, body.len());
    let get = gb / t.elapsed().as_secs_f64();

    let dir = tempfile::tempdir().expect("dir");
    let env = [
        ("BERTH_STORAGE__BACKEND", "s3"),
        ("BERTH_STORAGE__BUCKET", bucket.as_str()),
        ("BERTH_STORAGE__PREFIX", "registry"),
        ("BERTH_STORAGE__ENDPOINT", endpoint.as_str()),
        ("BERTH_STORAGE__ALLOW_HTTP", "true"),
        ("BERTH_STORAGE__REGION", "us-east-1"),
        ("BERTH_STORAGE__ACCESS_KEY_ID", "test"),
        ("BERTH_STORAGE__SECRET_ACCESS_KEY", "test"),
    ];
    let (child, base) = spawn_berth(dir.path(), &env, Stdio::null());
    wait_ready(&base).await;
    let berth = Server {
        base,
        child,
        _dir: dir,
    };
    let blob = Blob::new(u64::MAX, &body.slice(8..));
    let t = Instant::now();
    push_monolithic(c, &berth.base, "s3", &blob).await;
    let push = gb / t.elapsed().as_secs_f64();
    let t = Instant::now();
    pull(c, &format!("{}/v2/s3/blobs/{}", berth.base, blob.digest)).await;
    let pulled = gb / t.elapsed().as_secs_f64();
    drop(berth);
    if let Some(moto) = moto.as_mut() {
        let _ = moto.kill();
        let _ = moto.wait();
    }
    let size = format!("{mib} MiB");
    limits.push((
        format!("S3 server (moto): put {size}, 8 MiB parts, 2 in flight"),
        put,
        "GB/s",
    ));
    limits.push((format!("S3 server (moto): get {size}"), get, "GB/s"));
    limits.push((
        format!("  Berth on it: push {size}, monolithic"),
        push,
        "GB/s",
    ));
    limits.push((format!("  Berth on it: pull {size}"), pulled, "GB/s"));
}

/// A plain static file server on its own thread and runtime: the best a pull can be.
fn static_server(file: PathBuf) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    listener.set_nonblocking(true).expect("nonblocking");
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("rt");
        rt.block_on(async move {
            let file = Arc::new(file);
            let app = axum::Router::new()
                .route(
                    "/file",
                    axum::routing::get({
                        let file = Arc::clone(&file);
                        move || {
                            let file = Arc::clone(&file);
                            async move {
                                let f = tokio::fs::File::open(&*file).await.expect("open");
                                let stream = futures_util::stream::unfold(f, |mut f| async move {
                                    use tokio::io::AsyncReadExt;
                                    let mut buf = vec![0u8; MIB];
                                    match f.read(&mut buf).await {
                                        Ok(0) | Err(_) => None,
                                        Ok(n) => {
                                            buf.truncate(n);
                                            Some((Ok::<_, std::io::Error>(Bytes::from(buf)), f))
                                        }
                                    }
                                });
                                axum::body::Body::from_stream(stream)
                            }
                        }
                    }),
                )
                .route(
                    "/v2/x/manifests/ok",
                    axum::routing::get(|| async { "{}" }).head(|| async { "" }),
                );
            let l = tokio::net::TcpListener::from_std(listener).expect("listener");
            axum::serve(l, app).await.expect("serve");
        });
    });
    format!("http://{addr}")
}

/// A server that answers every request with the file, sent by the kernel
/// (`std::io::copy` from a file to a socket is sendfile on Linux): no copy
/// through the server's memory, which a server streaming through an HTTP
/// library (Berth, Distribution, the one above) cannot avoid.
fn sendfile_server(file: PathBuf) -> String {
    use std::io::{BufRead, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let Ok(mut f) = std::fs::File::open(&file) else {
                continue;
            };
            let len = f.metadata().map_or(0, |m| m.len());
            let mut request = std::io::BufReader::new(stream.try_clone().expect("clone"));
            let mut line = String::new();
            while request.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let head =
                format!("HTTP/1.1 200 OK\r\ncontent-length: {len}\r\nconnection: close\r\n\r\n");
            if stream.write_all(head.as_bytes()).is_ok() {
                let _ = std::io::copy(&mut f, &mut stream);
            }
        }
    });
    format!("http://{addr}")
}

// ---------------------------------------------------------------- report

struct Row {
    name: String,
    unit: &'static str,
    higher_is_better: bool,
    berth: Vec<f64>,
    dist: Vec<f64>,
}

fn render(rows: &[Row], limits: &[(String, f64, &'static str)], header: &str) -> String {
    let mut out = format!(
        "{header}\n\n| workload | Berth | Distribution | Berth/Distribution |\n| --- | --- | --- | --- |\n"
    );
    for r in rows {
        let (b, d) = (median(&r.berth), median(&r.dist));
        let ratio = if r.higher_is_better { b / d } else { d / b };
        out.push_str(&format!(
            "| {} | {b:.2} {u}{} | {d:.2} {u}{} | {ratio:.2}x |\n",
            r.name,
            spread(&r.berth),
            spread(&r.dist),
            u = r.unit
        ));
    }
    out.push_str("\n| machine limit | value |\n| --- | --- |\n");
    for (name, v, unit) in limits {
        out.push_str(&format!("| {name} | {v:.2} {unit} |\n"));
    }
    out.push_str("\nRatios are oriented so that above 1 means Berth is better (for latency and memory, Distribution/Berth).\n");
    out
}

#[tokio::main]
async fn main() {
    let reps = env_or("BENCH_REPS", 3);
    let secs = env_or("BENCH_SECONDS", 10) as u64;
    let blob_mib = env_or("BENCH_BLOB_MIB", 1024);
    let c = bench_client();

    eprintln!("preparing {blob_mib} MiB of data");
    let mut data = vec![0u8; blob_mib * MIB];
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for w in data.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let b = x.to_le_bytes();
        w.copy_from_slice(&b[..w.len()]);
    }
    let data = Bytes::from(data);
    let gb = data.len() as f64 / 1e9;
    let size = if blob_mib.is_multiple_of(1024) {
        format!("{} GiB", blob_mib / 1024)
    } else {
        format!("{blob_mib} MiB")
    };

    let mut limits = Vec::new();
    limits.push(("sha256, one core".to_owned(), sha256_speed(&data), "GB/s"));
    let scratch = tempfile::tempdir().expect("scratch");
    limits.push((
        "disk write, buffered + fdatasync".to_owned(),
        disk_write_speed(scratch.path(), &data),
        "GB/s",
    ));
    if let Some(speed) = direct_write_speed(scratch.path(), &data, data.len()) {
        limits.push((
            "disk write, O_DIRECT 1 MiB + fsync".to_owned(),
            speed,
            "GB/s",
        ));
        // Issue 21's goals for a push: 75% of the lesser of the two, and
        // server CPU within 1.5 times sha256's own.
        limits.push((
            "  push goal: 75% of the lesser of sha256 and O_DIRECT".to_owned(),
            0.75 * speed.min(limits[0].1),
            "GB/s",
        ));
        limits.push((
            "  CPU goal: 1.5 times sha256's seconds per GB".to_owned(),
            1.5 / limits[0].1,
            "s",
        ));
    }
    let file = scratch.path().join("static.bin");
    std::fs::write(&file, &data).expect("static file");
    let plain = static_server(file.clone());
    let zero_copy = sendfile_server(file);
    let (mut ceiling, mut ceiling_sendfile) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        for (url, speeds) in [
            (format!("{plain}/file"), &mut ceiling),
            (format!("{zero_copy}/file"), &mut ceiling_sendfile),
        ] {
            let t = Instant::now();
            assert_eq!(pull(&c, &url).await, data.len());
            speeds.push(gb / t.elapsed().as_secs_f64());
        }
    }
    limits.push((
        "static file server, one pull stream".to_owned(),
        median(&ceiling),
        "GB/s",
    ));
    limits.push((
        "  the same file with sendfile (no copy in the server)".to_owned(),
        median(&ceiling_sendfile),
        "GB/s",
    ));
    let (rps, _, p99) = load(
        &c,
        reqwest::Method::GET,
        &format!("{plain}/v2/x/manifests/ok"),
        64,
        secs.min(5),
    )
    .await;
    limits.push((
        "load generator ceiling (trivial GET, c64)".to_owned(),
        rps,
        "req/s",
    ));
    limits.push(("  its p99".to_owned(), p99, "ms"));

    let servers = [start_berth().await, start_distribution().await];
    let mut rows: Vec<Row> = Vec::new();
    let row =
        |rows: &mut Vec<Row>, name: &str, unit: &'static str, higher: bool, i: usize, v: f64| {
            if !rows.iter().any(|r| r.name == name) {
                rows.push(Row {
                    name: name.to_owned(),
                    unit,
                    higher_is_better: higher,
                    berth: Vec::new(),
                    dist: Vec::new(),
                });
            }
            let r = rows.iter_mut().find(|r| r.name == name).expect("row");
            if i == 0 {
                r.berth.push(v)
            } else {
                r.dist.push(v)
            }
        };
    let mut cpu_per_gb = [Vec::new(), Vec::new()];
    let mut prefix = 0u64;

    for rep in 0..reps {
        eprintln!("repetition {}/{reps}", rep + 1);
        for (i, s) in servers.iter().enumerate() {
            if selected("big") {
                let cpu0 = s.cpu_seconds();
                let mut moved = 0.0;
                for (name, kind) in [
                    (format!("push {size}, monolithic"), 0),
                    (format!("push {size}, 16 MiB chunks"), 1),
                    (format!("push {size}, streamed"), 2),
                ] {
                    prefix += 1;
                    let blob = Blob::new(prefix, &data);
                    let t = Instant::now();
                    match kind {
                        0 => push_monolithic(&c, &s.base, "big", &blob).await,
                        1 => push_chunked(&c, &s.base, "big", &blob, 16 * MIB).await,
                        _ => push_streamed(&c, &s.base, "big", &blob).await,
                    }
                    row(
                        &mut rows,
                        &name,
                        "GB/s",
                        true,
                        i,
                        gb / t.elapsed().as_secs_f64(),
                    );
                    moved += gb;
                }
                let pushed = s.cpu_seconds() - cpu0;
                row(
                    &mut rows,
                    "  server CPU seconds per GB pushed",
                    "s",
                    false,
                    i,
                    pushed / moved,
                );
                let pull_url = format!(
                    "{}/v2/big/blobs/{}",
                    s.base,
                    Blob::new(prefix, &data).digest
                );
                let t = Instant::now();
                pull(&c, &pull_url).await;
                row(
                    &mut rows,
                    &format!("pull {size}, one stream"),
                    "GB/s",
                    true,
                    i,
                    gb / t.elapsed().as_secs_f64(),
                );
                let t = Instant::now();
                futures_util::future::join_all((0..4).map(|_| pull(&c, &pull_url))).await;
                row(
                    &mut rows,
                    &format!("pull {size}, four streams (total)"),
                    "GB/s",
                    true,
                    i,
                    4.0 * gb / t.elapsed().as_secs_f64(),
                );
                moved += 5.0 * gb;
                cpu_per_gb[i].push((s.cpu_seconds() - cpu0) / moved);
            }
            if selected("layers") {
                for layers in [2, 100] {
                    let cpu0 = s.cpu_seconds();
                    let (rate, p50) = push_manifests(
                        &c,
                        &s.base,
                        &format!("layers{layers}-{rep}"),
                        layers,
                        1000,
                        8,
                    )
                    .await;
                    let cpu = s.cpu_seconds() - cpu0;
                    let name = format!("1,000 manifests of {layers} layers, c8");
                    row(&mut rows, &name, "manifests/s", true, i, rate);
                    row(
                        &mut rows,
                        &format!("  p50, {layers} layers"),
                        "ms",
                        false,
                        i,
                        p50,
                    );
                    // CPU of the blobs' pushes included: 101 blobs of 1 KiB
                    // at most, against 1,000 manifests.
                    row(
                        &mut rows,
                        &format!("  server CPU ms per manifest, {layers} layers"),
                        "ms",
                        false,
                        i,
                        cpu * 1e3 / 1000.0,
                    );
                }
            }
            if !selected("small") {
                continue;
            }

            let t = Instant::now();
            let cpu0 = s.cpu_seconds();
            let repo = format!("small{rep}");
            let work: Vec<Vec<u8>> = (0..2000u64)
                .map(|n| {
                    let mut v = vec![0u8; 4096];
                    v[..8].copy_from_slice(
                        &(n + 1_000_000 * (rep as u64 + 1) + 10_000_000 * i as u64).to_le_bytes(),
                    );
                    v
                })
                .collect();
            futures_util::stream::iter(work.into_iter().map(|b| push_small(&c, &s.base, &repo, b)))
                .buffer_unordered(8)
                .collect::<Vec<_>>()
                .await;
            row(
                &mut rows,
                "2,000 blobs of 4 KiB, c8",
                "blobs/s",
                true,
                i,
                2000.0 / t.elapsed().as_secs_f64(),
            );
            row(
                &mut rows,
                "  server CPU ms per blob",
                "ms",
                false,
                i,
                (s.cpu_seconds() - cpu0) * 1e3 / 2000.0,
            );

            let t = Instant::now();
            let repo = format!("images{rep}");
            futures_util::stream::iter(
                (0..500u64).map(|n| {
                    let (c, base, repo) = (&c, &s.base, &repo);
                    async move {
                        push_image(c, base, repo, &format!("t{n}"), n + 1000 * rep as u64).await
                    }
                }),
            )
            .buffer_unordered(8)
            .collect::<Vec<_>>()
            .await;
            row(
                &mut rows,
                "500 small images, c8",
                "images/s",
                true,
                i,
                500.0 / t.elapsed().as_secs_f64(),
            );
        }
    }

    for (i, s) in servers.iter().enumerate() {
        if !selected("lookups") {
            break;
        }
        eprintln!("manifest look-ups");
        let digest = push_image(&c, &s.base, "lookups", "latest", 7).await;
        for conc in [1, 16, 64] {
            let (rps, p50, p99) = load(
                &c,
                reqwest::Method::GET,
                &format!("{}/v2/lookups/manifests/latest", s.base),
                conc,
                secs,
            )
            .await;
            row(
                &mut rows,
                &format!("manifest GET by tag, c{conc}"),
                "req/s",
                true,
                i,
                rps,
            );
            row(&mut rows, &format!("  p50, c{conc}"), "ms", false, i, p50);
            row(&mut rows, &format!("  p99, c{conc}"), "ms", false, i, p99);
            let (rps, _, p99) = load(
                &c,
                reqwest::Method::HEAD,
                &format!("{}/v2/lookups/manifests/{digest}", s.base),
                conc,
                secs,
            )
            .await;
            row(
                &mut rows,
                &format!("manifest HEAD by digest, c{conc}"),
                "req/s",
                true,
                i,
                rps,
            );
            row(
                &mut rows,
                &format!("  HEAD p99, c{conc}"),
                "ms",
                false,
                i,
                p99,
            );
        }
    }
    for (i, s) in servers.iter().enumerate() {
        if !selected("tags") {
            break;
        }
        eprintln!("tag listings");
        let manifest_digest = push_image(&c, &s.base, "tagged", "t0", 9).await;
        let body = c
            .get(format!("{}/v2/tagged/manifests/{manifest_digest}", s.base))
            .header("accept", "application/vnd.oci.image.manifest.v1+json")
            .send()
            .await
            .expect("GET")
            .bytes()
            .await
            .expect("b");
        // Set-up, not timed, one tag at a time: Distribution answers 500 to
        // concurrent tag writes of one manifest.
        for n in 1..5000 {
            put_tag(&c, &s.base, &format!("t{n}"), &body).await;
        }
        // A second manifest (the first with an annotation), untagged, for t0
        // to move to and fro.
        let mut doc: serde_json::Value = serde_json::from_slice(&body).expect("manifest json");
        doc["annotations"] = serde_json::json!({ "bench": "other" });
        let other = Bytes::from(serde_json::to_vec(&doc).expect("json"));
        put_tag(&c, &s.base, &sha256(&[&other]), &other).await;
        let mut names = 5000;
        for rep in 0..reps {
            // A new tag (the names change), then a tag moved to another
            // manifest (they do not), each followed by one listing, five
            // times each; then the same listing again and again.
            let (mut after_new, mut after_move) = (Vec::new(), Vec::new());
            for k in 0..5 {
                names += 1;
                put_tag(&c, &s.base, &format!("new{rep}-{k}"), &body).await;
                after_new.push(list_tags_timed(&c, &s.base, names).await);
            }
            for k in 0..5 {
                let to = if (rep * 5 + k) % 2 == 0 {
                    &other
                } else {
                    &body
                };
                put_tag(&c, &s.base, "t0", to).await;
                after_move.push(list_tags_timed(&c, &s.base, names).await);
            }
            let mut again = Vec::new();
            for _ in 0..20 {
                again.push(list_tags_timed(&c, &s.base, names).await);
            }
            let whole = [
                (
                    "list 5,000 tags, whole, after a new tag (median of 5)",
                    median(&after_new),
                ),
                (
                    "list 5,000 tags, whole, after a tag moved (median of 5)",
                    median(&after_move),
                ),
                (
                    "list 5,000 tags, whole, again (median of 20)",
                    median(&again),
                ),
            ];
            for (name, ms) in whole {
                row(&mut rows, name, "ms", false, i, ms);
            }
            let mut took = Duration::ZERO;
            let mut url = format!("{}/v2/tagged/tags/list?n=100", s.base);
            let (mut got, mut requests) = (0, 0);
            loop {
                let t = Instant::now();
                let r = c.get(&url).send().await.expect("page");
                let link = r
                    .headers()
                    .get("link")
                    .and_then(|l| l.to_str().ok())
                    .map(str::to_owned);
                let body = r.bytes().await.expect("b");
                took += t.elapsed();
                requests += 1;
                let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
                got += v["tags"].as_array().map_or(0, Vec::len);
                match link {
                    Some(l) => {
                        url = abs(
                            &s.base,
                            l.trim_start_matches('<').split('>').next().unwrap_or(""),
                        )
                    }
                    None => break,
                }
            }
            assert_eq!(got, names);
            row(
                &mut rows,
                "list 5,000 tags, pages of 100",
                "ms",
                false,
                i,
                took.as_secs_f64() * 1e3,
            );
            // Distribution 2.8.2 ignores `n`: it answers all 5,000 at once.
            row(
                &mut rows,
                "  requests it took",
                "requests",
                false,
                i,
                f64::from(requests),
            );
        }
    }
    for (i, s) in servers.iter().enumerate() {
        row(
            &mut rows,
            "peak resident memory",
            "MiB",
            false,
            i,
            s.peak_rss_mib(),
        );
        if cpu_per_gb[i].is_empty() {
            continue;
        }
        let per_gb = median(&cpu_per_gb[i]);
        row(
            &mut rows,
            "server CPU seconds per GB moved",
            "s",
            false,
            i,
            per_gb,
        );
    }

    if selected("s3") {
        object_storage(&c, &data, &mut limits).await;
    }

    let header = format!(
        "Berth {} vs {} on {} cores, {}; {reps} repetitions, {secs} s per load run, {blob_mib} MiB blobs; {}",
        env!("CARGO_PKG_VERSION"),
        "CNCF Distribution 2.8.2 (Debian docker-registry)",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(
                |c| c.lines().find(|l| l.starts_with("model name")).map(|l| l
                    .split(':')
                    .nth(1)
                    .unwrap_or("")
                    .trim()
                    .to_owned())
            )
            .unwrap_or_default(),
        chrono::Utc::now().format("%Y-%m-%d"),
    );
    let table = render(&rows, &limits, &header);
    println!("{table}");
    let _ = std::fs::write(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-registry.md"),
        &table,
    );
    drop(servers);
}
