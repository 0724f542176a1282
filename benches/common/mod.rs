//! What the benchmarks share: servers as child processes, the pushes and
//! the load generator, and summary statistics.
#![allow(dead_code)] // each benchmark uses a part

use std::process::Child;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sha2::Digest as _;

pub const MIB: usize = 1 << 20;

/// The load generator's client (rustls needs its crypto provider first).
pub fn bench_client() -> reqwest::Client {
    berth::install_crypto_provider();
    reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()
        .expect("client")
}

pub fn env_or(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub fn sha256(parts: &[&[u8]]) -> String {
    let mut h = sha2::Sha256::new();
    for p in parts {
        h.update(p);
    }
    let out = h.finalize();
    format!(
        "sha256:{}",
        out.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port")
}

pub struct Server {
    pub base: String,
    pub child: Child,
    pub _dir: tempfile::TempDir,
}

impl Server {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Peak resident memory, MiB.
    pub fn peak_rss_mib(&self) -> f64 {
        proc_field(self.pid(), "VmHWM:") / 1024.0
    }

    /// User + system CPU seconds so far.
    pub fn cpu_seconds(&self) -> f64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap_or_default();
        let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let f: Vec<f64> = after
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        // Fields 14 and 15 of stat; after the command name they are at 11 and 12 (0-based, state excluded).
        (f.get(10).unwrap_or(&0.0) + f.get(11).unwrap_or(&0.0)) / 100.0
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn proc_field(pid: u32, key: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// Spawns `berth serve` on `data` on a free loopback port (logging at warn,
/// scheduled GC off, then `env`), its log to `stderr`: the child and its base
/// URL, not yet answering.
pub fn spawn_berth(
    data: &std::path::Path,
    env: &[(&str, &str)],
    stderr: std::process::Stdio,
) -> (Child, String) {
    let port = free_port();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(data)
        .env("BERTH_LOG", "warn")
        .env("BERTH_GC__INTERVAL", "0")
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("spawn berth");
    (child, format!("http://127.0.0.1:{port}"))
}

pub async fn wait_ready(base: &str) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(r) = client.get(format!("{base}/v2/")).send().await
            && r.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{base} did not start");
}

pub fn abs(base: &str, location: &str) -> String {
    if location.starts_with("http") {
        location.to_owned()
    } else {
        format!("{base}{location}")
    }
}

pub fn with_query(url: &str, q: &str) -> String {
    format!("{url}{}{q}", if url.contains('?') { '&' } else { '?' })
}

pub async fn start_upload(c: &reqwest::Client, base: &str, repo: &str) -> String {
    let r = c
        .post(format!("{base}/v2/{repo}/blobs/uploads/"))
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 202, "POST uploads");
    abs(base, r.headers()["location"].to_str().expect("location"))
}

pub async fn push_small(c: &reqwest::Client, base: &str, repo: &str, bytes: Vec<u8>) -> String {
    let digest = sha256(&[&bytes]);
    let url = start_upload(c, base, repo).await;
    let r = c
        .put(with_query(&url, &format!("digest={digest}")))
        .body(bytes)
        .send()
        .await
        .expect("PUT");
    assert_eq!(r.status(), 201);
    digest
}

pub async fn push_image(
    c: &reqwest::Client,
    base: &str,
    repo: &str,
    tag: &str,
    seed: u64,
) -> String {
    let config =
        format!("{{\"architecture\":\"amd64\",\"os\":\"linux\",\"seed\":{seed}}}").into_bytes();
    let mut layer = vec![0u8; 2048];
    layer[..8].copy_from_slice(&seed.to_le_bytes());
    let (cl, ll) = (config.len(), layer.len());
    let cd = push_small(c, base, repo, config).await;
    let ld = push_small(c, base, repo, layer).await;
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{cd}","size":{cl}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{ld}","size":{ll}}}]}}"#
    );
    let md = sha256(&[manifest.as_bytes()]);
    put_manifest(c, base, repo, tag, Bytes::from(manifest)).await;
    md
}

/// Puts the image manifest `body` in `repo` under `reference`.
pub async fn put_manifest(
    c: &reqwest::Client,
    base: &str,
    repo: &str,
    reference: &str,
    body: Bytes,
) {
    let r = c
        .put(format!("{base}/v2/{repo}/manifests/{reference}"))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(body)
        .send()
        .await
        .expect("PUT manifest");
    let status = r.status();
    assert_eq!(
        status,
        201,
        "{base} manifest {repo}:{reference}: {}",
        r.text().await.unwrap_or_default()
    );
}

/// `conc` workers repeating one request for `secs`: requests/s, p50 and p99 (ms).
pub async fn load(
    c: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    conc: usize,
    secs: u64,
) -> (f64, f64, f64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let workers = (0..conc).map(|_| {
        let (c, url, method) = (c.clone(), url.to_owned(), method.clone());
        tokio::spawn(async move {
            let mut lat = Vec::new();
            while Instant::now() < deadline {
                let t = Instant::now();
                let r = c
                    .request(method.clone(), &url)
                    .header("accept", "application/vnd.oci.image.manifest.v1+json")
                    .send()
                    .await
                    .expect("req");
                assert!(r.status().is_success());
                let _ = r.bytes().await;
                lat.push(t.elapsed().as_micros() as u32);
            }
            lat
        })
    });
    let started = Instant::now();
    let mut all: Vec<u32> = Vec::new();
    for w in futures_util::future::join_all(workers).await {
        all.extend(w.expect("worker"));
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_unstable();
    let pct = |q: f64| {
        all.get(((all.len() as f64 - 1.0) * q) as usize)
            .copied()
            .unwrap_or(0) as f64
            / 1000.0
    };
    (all.len() as f64 / elapsed, pct(0.5), pct(0.99))
}

pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    match s.len() {
        0 => 0.0,
        n if n % 2 == 0 => (s[n / 2 - 1] + s[n / 2]) / 2.0,
        n => s[n / 2],
    }
}

pub fn spread(v: &[f64]) -> String {
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if v.len() < 2 {
        String::new()
    } else {
        format!(" ({min:.2}–{max:.2})")
    }
}
