//! Scale-out benchmark: one Berth on SQLite, one on PostgreSQL, and two
//! replicas on PostgreSQL behind nginx (round-robin), in the same run, with
//! workloads interleaved (SQLite, PostgreSQL, two replicas; each repetition
//! starting one setup later than the one before; the reads after every
//! setup's writes, once the database has settled). Reports
//! medians and spreads, and for the PostgreSQL replica the database round
//! trips each kind of request costs (from `berth_db_round_trips_total`).
//!
//! Run: `cargo bench --bench scale_out` (about five minutes). Starts its own
//! PostgreSQL (Debian's, installed if missing, through
//! conformance/postgres.sh) and nginx (installed if missing). Knobs:
//! `BENCH_REPS` (default 3), `BENCH_SECONDS` per load run (default 10),
//! `BENCH_READ_ROUNDS` (default 2: each setup's GETs four times per
//! repetition, back and forth). The
//! table is also written to `target/bench-scale-out.md`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use bytes::Bytes;
use futures_util::StreamExt;

mod common;
use common::*;

/// PostgreSQL of its own, stopped (immediately) on drop.
struct Postgres {
    url: String,
    ctl: Vec<String>,
    _dir: tempfile::TempDir,
}

impl Postgres {
    fn start() -> Postgres {
        let dir = tempfile::tempdir().expect("dir");
        let mut perms = std::fs::metadata(dir.path()).expect("meta").permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
        std::fs::set_permissions(dir.path(), perms).expect("chmod");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("conformance/postgres.sh");
        let out = Command::new("bash")
            .arg("-c")
            .arg(format!(
                ". '{}' && start_postgres '{}/pg' {} && echo \"$pg_url\" && printf '%s\\n' \"${{pg_ctl[@]}}\"",
                script.display(),
                dir.path().display(),
                free_port()
            ))
            .output()
            .expect("start postgres");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let mut lines = text.lines().filter(|l| !l.starts_with('#'));
        let url = lines.next().expect("url").to_owned();
        Postgres {
            url,
            ctl: lines.map(str::to_owned).collect(),
            _dir: dir,
        }
    }

    /// `sql` run by psql on the `postgres` database: its output, trimmed,
    /// if it succeeded.
    fn psql(&self, sql: &str) -> Option<String> {
        let out = Command::new("psql")
            .args([&self.url, "-qAtc", sql])
            .output()
            .ok()
            .filter(|o| o.status.success())?;
        Some(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// Waits for the cluster to be quiet: a checkpoint (so that none
    /// starts during the next load run), the file systems synced, and no
    /// autovacuum worker running (for at most 30 seconds).
    fn settle(&self) {
        self.psql("CHECKPOINT");
        let _ = Command::new("sync").status();
        let started = Instant::now();
        while started.elapsed().as_secs() < 30
            && self
                .psql("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'")
                .is_some_and(|n| n != "0")
        {
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }

    /// A fresh database; its URL.
    fn database(&self, name: &str) -> String {
        let made = self.psql(&format!("CREATE DATABASE {name}"));
        assert!(made.is_some(), "create database {name}");
        self.url.replace("/postgres", &format!("/{name}"))
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = Command::new(&self.ctl[0])
            .args(&self.ctl[1..])
            .args(["-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .status();
    }
}

/// `berth serve` on `data` with `env`, its log in `target/scale-out-<name>.log`.
async fn berth(name: &str, data: &Path, env: &[(&str, &str)]) -> Server {
    let log = std::fs::File::create(
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("target/scale-out-{name}.log")),
    )
    .expect("log file");
    let (child, base) = spawn_berth(data, env, log.into());
    wait_ready(&base).await;
    Server {
        base,
        child,
        _dir: tempfile::tempdir().expect("dir"),
    }
}

/// nginx, stopped with SIGTERM: a SIGKILLed master leaves its worker
/// running (found spinning a core's tenth minutes after a bench ended).
struct Nginx(Server);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.child.id().to_string()])
            .status();
        let _ = self.0.child.wait();
    }
}

/// nginx round-robin over `upstreams`, as replicas.sh runs it.
fn nginx(upstreams: &[&str]) -> (Nginx, String) {
    if Command::new("nginx").arg("-v").output().is_err() {
        eprintln!("installing nginx");
        let ok = Command::new("sh")
            .args(["-c", "apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx >/dev/null"])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "could not install nginx");
    }
    let dir = tempfile::tempdir().expect("dir");
    let port = free_port();
    let d = dir.path().display();
    let servers: String = upstreams
        .iter()
        .map(|u| format!("server {};", u.trim_start_matches("http://")))
        .collect();
    let conf = format!(
        "worker_processes 1; pid {d}/nginx.pid; error_log {d}/error.log;
         events {{ worker_connections 4096; }}
         http {{ access_log off; client_body_temp_path {d}; proxy_temp_path {d};
           upstream berth {{ {servers} keepalive 64; }}
           server {{ listen 127.0.0.1:{port}; client_max_body_size 0;
             proxy_request_buffering off; proxy_buffering off; proxy_http_version 1.1;
             proxy_set_header Connection \"\"; proxy_set_header Host $http_host;
             location / {{ proxy_pass http://berth; }} }} }}"
    );
    std::fs::write(dir.path().join("nginx.conf"), conf).expect("conf");
    let child = Command::new("nginx")
        .args([
            "-p",
            &d.to_string(),
            "-c",
            &format!("{d}/nginx.conf"),
            "-g",
            "daemon off;",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nginx");
    let base = format!("http://127.0.0.1:{port}");
    (
        Nginx(Server {
            base: base.clone(),
            child,
            _dir: dir,
        }),
        base,
    )
}

/// The PostgreSQL round trips a server has made so far.
async fn round_trips(c: &reqwest::Client, base: &str) -> f64 {
    let text = c
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    text.lines()
        .find(|l| l.starts_with("berth_db_round_trips_total "))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0.0)
}

struct Table {
    names: Vec<String>,
    units: Vec<&'static str>,
    /// Per row, per setup, the values of each repetition.
    values: Vec<[Vec<f64>; 3]>,
}

impl Table {
    fn add(&mut self, name: &str, unit: &'static str, setup: usize, v: f64) {
        let i = match self.names.iter().position(|n| n == name) {
            Some(i) => i,
            None => {
                self.names.push(name.to_owned());
                self.units.push(unit);
                self.values.push(Default::default());
                self.names.len() - 1
            }
        };
        self.values[i][setup].push(v);
    }
}

/// The environment of a Berth on the PostgreSQL database at `url`.
fn on_pg(url: &str) -> [(&'static str, &str); 2] {
    [
        ("BERTH_METADATA__BACKEND", "postgres"),
        ("BERTH_METADATA__URL", url),
    ]
}

#[tokio::main]
async fn main() {
    let reps = env_or("BENCH_REPS", 3);
    let secs = env_or("BENCH_SECONDS", 10) as u64;
    let read_rounds = env_or("BENCH_READ_ROUNDS", 2);
    let c = bench_client();
    let pg = Postgres::start();
    let (one, two) = (pg.database("single"), pg.database("replicas"));
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().expect("dir")).collect();
    let sqlite = berth("sqlite", dirs[0].path(), &[]).await;
    let single = berth("postgres", dirs[1].path(), &on_pg(&one)).await;
    // Two replicas on one data directory: local disk shared as a POSIX
    // file system would be (object storage in production).
    let r1 = berth("replica-1", dirs[2].path(), &on_pg(&two)).await;
    let r2 = berth("replica-2", dirs[2].path(), &on_pg(&two)).await;
    let (_lb, lb) = nginx(&[&r1.base, &r2.base]);
    wait_ready(&lb).await;
    let setups = [sqlite.base.clone(), single.base.clone(), lb.clone()];
    let labels = ["SQLite", "PostgreSQL", "2 replicas + nginx"];
    let mut t = Table {
        names: Vec::new(),
        units: Vec::new(),
        values: Vec::new(),
    };
    let mut trips: Vec<(String, f64)> = Vec::new();

    for rep in 0..reps {
        eprintln!("repetition {}/{reps}", rep + 1);
        // Each repetition starts with the next setup: none always runs
        // first, or right after another's heavy writes.
        for k in 0..setups.len() {
            let i = (k + rep) % setups.len();
            let base = &setups[i];
            let before = round_trips(&c, &single.base).await;
            let started = Instant::now();
            let repo = format!("small{rep}");
            let blobs: Vec<Vec<u8>> = (0..2000u64)
                .map(|n| {
                    let mut v = vec![0u8; 4096];
                    v[..8].copy_from_slice(
                        &(n + 1_000_000 * (rep as u64 + 1) + 10_000_000 * i as u64).to_le_bytes(),
                    );
                    v
                })
                .collect();
            futures_util::stream::iter(blobs.into_iter().map(|b| push_small(&c, base, &repo, b)))
                .buffer_unordered(8)
                .collect::<Vec<_>>()
                .await;
            t.add(
                "2,000 blobs of 4 KiB, c8",
                "blobs/s",
                i,
                2000.0 / started.elapsed().as_secs_f64(),
            );
            if i == 1 && rep == 0 {
                let n = round_trips(&c, &single.base).await - before;
                trips.push(("blob push (POST + PUT with the bytes)".into(), n / 2000.0));
            }

            let before = round_trips(&c, &single.base).await;
            let started = Instant::now();
            let repo = format!("images{rep}");
            futures_util::stream::iter(
                (0..500u64).map(|n| {
                    let (c, base, repo) = (&c, base, &repo);
                    async move {
                        push_image(c, base, repo, &format!("t{n}"), n + 1000 * rep as u64).await
                    }
                }),
            )
            .buffer_unordered(8)
            .collect::<Vec<_>>()
            .await;
            t.add(
                "500 small images (2 blobs + manifest), c8",
                "images/s",
                i,
                500.0 / started.elapsed().as_secs_f64(),
            );
            if i == 1 && rep == 0 {
                let n = round_trips(&c, &single.base).await - before;
                trips.push(("image push (2 blobs + a tagged manifest)".into(), n / 500.0));
            }

            // Tag moves: eight tags, each moved between two manifests.
            let first = push_image(&c, base, "moves", "seed-a", 77).await;
            let second = push_image(&c, base, "moves", "seed-b", 78).await;
            let bodies: Vec<Bytes> = futures_util::future::join_all([&first, &second].map(|d| {
                let c = &c;
                async move {
                    c.get(format!("{base}/v2/moves/manifests/{d}"))
                        .header("accept", "application/vnd.oci.image.manifest.v1+json")
                        .send()
                        .await
                        .expect("GET")
                        .bytes()
                        .await
                        .expect("bytes")
                }
            }))
            .await;
            let before = round_trips(&c, &single.base).await;
            let started = Instant::now();
            futures_util::stream::iter((0..400usize).map(|n| {
                // Each of 8 tags moves to the other manifest every time.
                let (c, body) = (&c, bodies[(n / 8) % 2].clone());
                async move { put_manifest(c, base, "moves", &format!("env{}", n % 8), body).await }
            }))
            .buffer_unordered(8)
            .collect::<Vec<_>>()
            .await;
            t.add(
                "tag moves (PUT by tag), c8",
                "moves/s",
                i,
                400.0 / started.elapsed().as_secs_f64(),
            );
            if i == 1 && rep == 0 {
                let n = round_trips(&c, &single.base).await - before;
                trips.push(("tag move (manifest PUT by tag)".into(), n / 400.0));
            }

            push_image(&c, base, "lookups", "latest", 7).await;
        }

        // Reads in a phase of their own, the setups taking turns at each
        // concurrency, once what the writes left running has settled: a
        // GET run right after its own setup's writes shared the two cores
        // with PostgreSQL's checkpoint and autovacuum (or the page cache's
        // write-back) and measured those more than the cached path.
        pg.settle();
        for conc in [1, 64] {
            // Back and forth: each setup twice per round, the second time
            // in the other order.
            let order = (0..setups.len()).map(|k| (k + rep) % setups.len());
            let there_and_back = order.clone().chain(order.rev());
            for i in std::iter::repeat_n(there_and_back, read_rounds).flatten() {
                let base = &setups[i];
                let before = round_trips(&c, &single.base).await;
                let (rps, _, p99) = load(
                    &c,
                    reqwest::Method::GET,
                    &format!("{base}/v2/lookups/manifests/latest"),
                    conc,
                    secs,
                )
                .await;
                t.add(&format!("manifest GET by tag, c{conc}"), "req/s", i, rps);
                t.add(&format!("  p99, c{conc}"), "ms", i, p99);
                let name = "cached manifest GET by tag";
                if i == 1 && conc == 64 && !trips.iter().any(|(n, _)| n == name) {
                    let n = round_trips(&c, &single.base).await - before;
                    trips.push((name.into(), n / (rps * secs as f64)));
                }
            }
        }
    }

    let mut out = format!(
        "Berth {} on SQLite, on PostgreSQL, and as two replicas on PostgreSQL behind nginx; {} cores, {reps} repetitions, {secs} s per load run, GETs {} times per setup and repetition; {}\n\n| workload | {} | {} | {} | PostgreSQL/SQLite |\n| --- | --- | --- | --- | --- |\n",
        env!("CARGO_PKG_VERSION"),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        2 * read_rounds,
        chrono::Utc::now().format("%Y-%m-%d"),
        labels[0],
        labels[1],
        labels[2]
    );
    for (k, name) in t.names.iter().enumerate() {
        let cells: Vec<String> = t.values[k]
            .iter()
            .map(|v| format!("{:.2} {}{}", median(v), t.units[k], spread(v)))
            .collect();
        // Each run on PostgreSQL against the SQLite run of the same turn
        // (measured minutes apart at most): the machine's drift, which
        // moves both, cancels out of each pair.
        let pairs: Vec<f64> = t.values[k][0]
            .iter()
            .zip(&t.values[k][1])
            .map(|(s, p)| if t.units[k] == "ms" { s / p } else { p / s })
            .collect();
        let ratio = median(&pairs);
        out.push_str(&format!(
            "| {name} | {} | {} | {} | {ratio:.2}x |\n",
            cells[0], cells[1], cells[2]
        ));
    }
    out.push_str("\n| PostgreSQL round trips per request | count |\n| --- | --- |\n");
    for (name, n) in &trips {
        out.push_str(&format!("| {name} | {n:.2} |\n"));
    }
    out.push_str("\nRatios: the median over turns of PostgreSQL's run against SQLite's run of the same turn; above 1, PostgreSQL does better (for latency, SQLite/PostgreSQL).\n");
    println!("{out}");
    let _ = std::fs::write(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-scale-out.md"),
        &out,
    );
    drop((sqlite, single, r1, r2, pg));
}
