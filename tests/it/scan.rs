//! Pickle scans: real files made by Python (tests/it/scan_fixtures.py; never
//! loaded), pushed as model versions, scanned in the background, reported
//! through the referrers API, the extension API, events and the CLI, and used
//! to refuse promotions and pushes.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use berth::glob::Glob;
use berth::registry::scan::ScanGate;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::*;

const SCAN: &str = "application/vnd.berth.scan.v1+json";
const MODEL_CONFIG: &str = "application/vnd.example.model.config.v1+json";
const KIT_CONFIG: &str = "application/vnd.kitops.modelkit.config.v1+json";
const KIT_MODEL: &str = "application/vnd.kitops.modelkit.model.v1.tar+gzip";
const PICKLE: &str = "application/octet-stream";

/// The fixtures, by file name, made by Python in this test run.
fn fixtures() -> HashMap<String, Vec<u8>> {
    fixtures_by("python3", "tests/it/scan_fixtures.py")
}

/// What `script` writes into a fresh directory when `python` runs it.
fn fixtures_by(python: &str, script: &str) -> HashMap<String, Vec<u8>> {
    let dir = tempfile::tempdir().expect("temp dir");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join(script);
    let out = std::process::Command::new(python)
        .arg(&script)
        .arg(dir.path())
        .output()
        .unwrap_or_else(|e| panic!("{python} runs (test.sh installs it): {e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_dir(dir.path())
        .expect("fixtures")
        .map(|e| {
            let path = e.expect("entry").path();
            let name = path
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned();
            (name, std::fs::read(&path).expect("read"))
        })
        .collect()
}

/// Files written by NumPy, scikit-learn and joblib, made in this run by the
/// Python that `TEST_PYTHON` names (test.sh installs the packages).
fn ml_fixtures() -> HashMap<String, Vec<u8>> {
    let python = std::env::var("TEST_PYTHON")
        .expect("TEST_PYTHON names a Python with numpy, scikit-learn and joblib (test.sh sets it)");
    fixtures_by(&python, "tests/it/scan_ml_fixtures.py")
}

/// Pushes a model version: `config` of `config_type`, then one layer per
/// fixture, titled with its name; returns the manifest PUT's answer and the
/// manifest's digest.
async fn push_model(
    s: &TestServer,
    repo: &str,
    tag: &str,
    config: (&str, &[u8]),
    layers: &[(&str, &str, &[u8])],
) -> (reqwest::Response, String) {
    s.push_blob(repo, config.1).await;
    let mut descriptors = Vec::new();
    for (title, media_type, bytes) in layers {
        s.push_blob(repo, bytes).await;
        let mut d = descriptor(media_type, bytes);
        d["annotations"] = json!({ "org.opencontainers.image.title": title });
        descriptors.push(d);
    }
    let body = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": descriptor(config.0, config.1), "layers": descriptors,
    }))
    .expect("json");
    let r = s.put_manifest(repo, tag, OCI_MANIFEST, &body).await;
    (r, sha256(&body))
}

async fn push_pickles(s: &TestServer, repo: &str, tag: &str, files: &[(&str, &[u8])]) -> String {
    let layers: Vec<(&str, &str, &[u8])> = files.iter().map(|(n, b)| (*n, PICKLE, *b)).collect();
    let (r, digest) = push_model(s, repo, tag, (MODEL_CONFIG, b"{}"), &layers).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    digest
}

/// Waits for the version's report (202 while it is being made).
async fn report(s: &TestServer, repo: &str, reference: &str) -> (Value, String) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = s
            .get(&format!(
                "/api/v1/repositories/{repo}/manifests/{reference}/scan"
            ))
            .await;
        match r.status() {
            StatusCode::OK => {
                let at = header(&r, "berth-scan-report").expect("Berth-Scan-Report");
                return (json_body(r).await, at);
            }
            StatusCode::ACCEPTED => {}
            other => panic!("scan of {repo}:{reference}: {other}"),
        }
        assert!(Instant::now() < deadline, "no report on {repo}:{reference}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn layer<'a>(report: &'a Value, title: &str) -> &'a Value {
    report["layers"]
        .as_array()
        .and_then(|l| l.iter().find(|l| l["title"] == title))
        .unwrap_or_else(|| panic!("no layer {title} in {report}"))
}

/// Every import the report names for files of the layer, as module.name.
fn imports(layer: &Value) -> Vec<String> {
    layer["files"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|f| f["imports"].as_array().cloned().unwrap_or_default())
        .map(|i| {
            format!(
                "{}.{}",
                i["module"].as_str().unwrap_or(""),
                i["name"].as_str().unwrap_or("")
            )
        })
        .collect()
}

async fn post(s: &TestServer, path: &str, body: Value) -> reqwest::Response {
    s.request(Method::POST, path)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("POST")
}

// Each kind of file, alone in its layer, gets the verdict it deserves, and
// the report is a referrer of the version, announced by a `scan` event.
#[tokio::test]
async fn every_kind_of_pickle_is_read_and_classed() {
    let f = fixtures();
    let s = TestServer::start().await;
    let names = [
        "clean.pkl",
        "evil0.pkl",
        "evil2.pkl",
        "evil4.pkl",
        "stacked.pkl",
        "unknown.pkl",
        "truncated.pkl",
        "garbage.pkl",
        "model.pt",
        "evil.pt",
        "bundle.tar.gz",
        "objects.npy",
        "floats.npy",
        "good.safetensors",
        "lying.safetensors",
    ];
    let files: Vec<(&str, &[u8])> = names.iter().map(|n| (*n, f[*n].as_slice())).collect();
    let digest = push_pickles(&s, "models/zoo", "v1", &files).await;
    let (report, at) = report(&s, "models/zoo", "v1").await;

    assert_eq!(report["subject"], digest);
    assert_eq!(report["verdict"], "dangerous");
    let verdict = |title: &str| {
        layer(&report, title)["verdict"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    };
    for clean in ["clean.pkl", "model.pt", "floats.npy", "good.safetensors"] {
        assert_eq!(
            verdict(clean),
            "clean",
            "{clean}: {}",
            layer(&report, clean)
        );
    }
    for evil in ["evil0.pkl", "evil2.pkl", "evil4.pkl"] {
        assert_eq!(verdict(evil), "dangerous", "{evil}");
        assert!(
            imports(layer(&report, evil)).contains(&"posix.system".to_owned()),
            "{evil}"
        );
    }
    assert_eq!(verdict("stacked.pkl"), "dangerous");
    assert!(imports(layer(&report, "stacked.pkl")).contains(&"builtins.eval".to_owned()));
    assert_eq!(verdict("unknown.pkl"), "unknown");
    assert_eq!(imports(layer(&report, "unknown.pkl")), ["mylib.Model"]);
    for broken in ["truncated.pkl", "garbage.pkl", "lying.safetensors"] {
        assert_eq!(
            verdict(broken),
            "malformed",
            "{broken}: {}",
            layer(&report, broken)
        );
    }

    // Inside archives: the path says where.
    let torch = layer(&report, "model.pt");
    assert_eq!(torch["files"][0]["path"], "model.pt!/archive/data.pkl");
    assert!(imports(torch).contains(&"torch._utils._rebuild_tensor_v2".to_owned()));
    assert_eq!(verdict("evil.pt"), "dangerous");
    let bundle = layer(&report, "bundle.tar.gz");
    assert_eq!(bundle["verdict"], "dangerous");
    let by_path: HashMap<String, String> = bundle["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap_or("").to_owned(),
                f["verdict"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        by_path["bundle.tar.gz!/bundle/weights.pkl"], "clean",
        "{bundle}"
    );
    assert_eq!(
        by_path["bundle.tar.gz!/bundle/hook.pkl"], "dangerous",
        "{bundle}"
    );
    assert_eq!(bundle["otherFiles"], 1, "README.md");
    assert_eq!(verdict("objects.npy"), "dangerous");

    // A referrer of the version, with the verdict in its annotations.
    let referrers = json_body(
        s.get(&format!(
            "/v2/models/zoo/referrers/{digest}?artifactType={SCAN}"
        ))
        .await,
    )
    .await;
    let listed = &referrers["manifests"][0];
    assert_eq!(listed["digest"], at, "{referrers}");
    assert_eq!(listed["artifactType"], SCAN);
    assert_eq!(listed["annotations"]["io.berth.scan.verdict"], "dangerous");
    // The report is an ordinary artifact: its document is readable by digest.
    let manifest = json_body(s.get(&format!("/v2/models/zoo/manifests/{at}")).await).await;
    let document = s
        .fetch_blob(
            "models/zoo",
            manifest["layers"][0]["digest"].as_str().expect("layer"),
        )
        .await;
    assert_eq!(
        serde_json::from_slice::<Value>(&document).expect("json"),
        report
    );

    let events = json_body(s.get("/api/v1/events").await).await;
    let scan = events["events"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["action"] == "scan"))
        .cloned()
        .unwrap_or_else(|| panic!("no scan event in {events}"));
    assert_eq!(scan["target"]["digest"], digest, "{scan}");
    assert_eq!(scan["actor"]["name"], "berth-scan");
    assert_eq!(
        scan["berth"]["reason"],
        format!("dangerous (report {at})"),
        "{scan}"
    );

    let metrics = s.get("/metrics").await.text().await.expect("metrics");
    assert!(
        metrics.contains("berth_scans_total{outcome=\"dangerous\"} 1"),
        "{metrics}"
    );
}

// What ML engineers push: models saved by joblib (arrays raw in the stream,
// aligned, compressed with zlib or gzip; object arrays as nested pickles),
// by plain pickle, and NumPy's own files. Real models read clean; a call to
// os.system hidden in a nested pickle, an .npz or the bytes of an array
// that pickle.load (but not joblib.load) would run as opcodes is found.
#[tokio::test]
async fn files_saved_by_numpy_sklearn_and_joblib_are_read_as_their_loaders_read_them() {
    let f = ml_fixtures();
    let s = TestServer::start().await;
    let clean = [
        "pipeline.joblib",
        "forest.joblib",
        "forest-zlib.joblib",
        "forest.joblib.gz",
        "labels.joblib",
        "pipeline.pkl",
        "forest-p2.pkl",
        "weights.npy",
        "objects.npy",
        "pipeline.tar.zst",
    ];
    let dangerous = [
        "nested-evil.joblib",
        "evil.npz",
        "hidden-in-array.joblib",
        "evil.tar.zst",
    ];
    let files: Vec<(&str, &[u8])> = clean
        .iter()
        .chain(&dangerous)
        .map(|n| (*n, f[*n].as_slice()))
        .collect();
    push_pickles(&s, "models/sklearn", "v1", &files).await;
    let (report, _) = report(&s, "models/sklearn", "v1").await;

    for name in clean {
        let l = layer(&report, name);
        assert_eq!(l["verdict"], "clean", "{name}: {l}");
    }
    let pipeline = imports(layer(&report, "pipeline.joblib"));
    for expected in [
        "joblib.numpy_pickle.NumpyArrayWrapper",
        "sklearn.pipeline.Pipeline",
        "sklearn.linear_model._logistic.LogisticRegression",
        "sklearn.preprocessing._data.StandardScaler",
    ] {
        assert!(
            pipeline.contains(&expected.to_owned()),
            "{expected}: {pipeline:?}"
        );
    }
    let zstd = imports(layer(&report, "pipeline.tar.zst"));
    assert!(
        zstd.contains(&"sklearn.pipeline.Pipeline".to_owned()),
        "{zstd:?}"
    );
    let forest = imports(layer(&report, "forest-zlib.joblib"));
    assert!(
        forest.contains(&"sklearn.ensemble._forest.RandomForestClassifier".to_owned()),
        "{forest:?}"
    );

    for name in dangerous {
        let l = layer(&report, name);
        assert_eq!(l["verdict"], "dangerous", "{name}: {l}");
    }
    assert!(imports(layer(&report, "nested-evil.joblib")).contains(&"posix.system".to_owned()));
    assert!(imports(layer(&report, "evil.npz")).contains(&"posix.system".to_owned()));
    assert!(imports(layer(&report, "evil.tar.zst")).contains(&"posix.system".to_owned()));
    let hidden = layer(&report, "hidden-in-array.joblib");
    assert!(
        imports(hidden).contains(&"os.system".to_owned()),
        "{hidden}"
    );
    assert!(
        hidden["files"][0]["problem"]
            .as_str()
            .is_some_and(|p| p.contains("pickle.load would run them")),
        "{hidden}"
    );
}

// A ModelKit (KitOps' config and model layer media types) is a model
// version like any other: its tar.gz model layer is opened and read.
#[tokio::test]
async fn a_modelkit_model_layer_is_scanned() {
    let f = fixtures();
    let s = TestServer::start().await;
    let kitfile = serde_json::to_vec(&json!({
        "manifestVersion": "1.0.0",
        "package": { "name": "churn", "version": "1.0.0" },
        "model": { "name": "churn", "path": "model" },
    }))
    .expect("json");
    let (r, _) = push_model(
        &s,
        "kits/churn",
        "v1",
        (KIT_CONFIG, &kitfile),
        &[("model", KIT_MODEL, &f["modelkit-model.tar.gz"])],
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let (report, _) = report(&s, "kits/churn", "v1").await;
    let model = layer(&report, "model");
    assert_eq!(model["verdict"], "dangerous", "{report}");
    assert_eq!(model["files"][0]["path"], "model!/model/model.joblib");
    assert_eq!(imports(model), ["posix.system"]);
}

// Container images are root file systems, not models: not scanned by
// default, and the report API says so.
#[tokio::test]
async fn container_images_are_not_scanned_by_default() {
    let s = TestServer::start().await;
    s.push_image("apps/web", "v1", 3).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = s
        .get("/api/v1/repositories/apps/web/manifests/v1/scan")
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(r).await, "SCAN_UNKNOWN");
}

fn gate(tags: &str, refuse_unknown: bool) -> ScanGate {
    ScanGate {
        repositories: vec![Glob::new("models/**")],
        tags: vec![Glob::new(tags)],
        refuse_unknown,
    }
}

// A gate refuses to promote a version with dangerous imports, naming the
// layer and the imports; a strict gate refuses unknown imports too.
#[tokio::test]
async fn scan_gates_refuse_promotion_naming_layer_and_imports() {
    let f = fixtures();
    let s = TestServer::with_config(|c| {
        c.scan.gates = vec![gate("production", false), gate("strict", true)];
    })
    .await;
    let repo = "models/gated";
    push_pickles(&s, repo, "good", &[("clean.pkl", &f["clean.pkl"])]).await;
    push_pickles(&s, repo, "odd", &[("unknown.pkl", &f["unknown.pkl"])]).await;
    push_pickles(
        &s,
        repo,
        "bad",
        &[
            ("weights.pkl", &f["clean.pkl"]),
            ("hook.pkl", &f["evil2.pkl"]),
        ],
    )
    .await;
    let evil_layer = sha256(&f["evil2.pkl"]);

    let path = format!("/api/v1/repositories/{repo}/promote");
    let r = post(&s, &path, json!({ "reference": "bad", "to": "production" })).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let err = json_body(r).await;
    assert_eq!(err["errors"][0]["code"], "GATE_FAILED");
    let unmet = err["errors"][0]["detail"]["unmet"]
        .as_array()
        .expect("unmet");
    assert_eq!(unmet.len(), 1, "only the bad layer: {err}");
    let line = unmet[0].as_str().expect("line");
    assert!(
        line.starts_with(&format!("scan: layer {evil_layer} (hook.pkl): "))
            && line.contains("hook.pkl is dangerous, imports posix.system"),
        "{line}"
    );
    let tags = json_body(s.get(&format!("/v2/{repo}/tags/list")).await).await;
    assert!(!tags["tags"].to_string().contains("production"), "{tags}");

    for (reference, to, status) in [
        ("odd", "production", StatusCode::OK),
        ("odd", "strict", StatusCode::CONFLICT),
        ("good", "strict", StatusCode::OK),
        ("bad", "staging", StatusCode::OK),
    ] {
        let r = post(&s, &path, json!({ "reference": reference, "to": to })).await;
        assert_eq!(r.status(), status, "{reference} to {to}");
    }
}

// For a guarded repository the push waits for the scan: a dangerous model
// is refused with 400 naming it and leaves no manifest or tag; a clean one
// lands with its report.
#[tokio::test]
async fn guarded_repositories_refuse_dangerous_pushes() {
    let f = fixtures();
    let s = TestServer::with_config(|c| c.scan.refuse_push = vec![Glob::new("guarded/*")]).await;
    let (r, digest) = push_model(
        &s,
        "guarded/m",
        "v1",
        (MODEL_CONFIG, b"{}"),
        &[("model.pt", PICKLE, &f["evil.pt"])],
    )
    .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let err = json_body(r).await;
    assert_eq!(err["errors"][0]["code"], "MANIFEST_INVALID");
    let message = err["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("refused by the pickle scan")
            && message.contains(&sha256(&f["evil.pt"]))
            && message.contains("model.pt!/archive/data.pkl is dangerous, imports posix.system"),
        "{message}"
    );
    assert_eq!(
        s.head(&format!("/v2/guarded/m/manifests/{digest}"))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        s.head("/v2/guarded/m/manifests/v1").await.status(),
        StatusCode::NOT_FOUND
    );

    let (r, _) = push_model(
        &s,
        "guarded/m",
        "v2",
        (MODEL_CONFIG, b"{}"),
        &[("model.pt", PICKLE, &f["model.pt"])],
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(report(&s, "guarded/m", "v2").await.0["verdict"], "clean");

    // Unknown imports pass unless the policy says otherwise.
    let (r, _) = push_model(
        &s,
        "guarded/m",
        "v3",
        (MODEL_CONFIG, b"{}"),
        &[("u.pkl", PICKLE, &f["unknown.pkl"])],
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    // Elsewhere pushes are not held.
    let (r, _) = push_model(
        &s,
        "open/m",
        "v1",
        (MODEL_CONFIG, b"{}"),
        &[("e.pkl", PICKLE, &f["evil4.pkl"])],
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);

    let metrics = s.get("/metrics").await.text().await.expect("metrics");
    assert!(
        metrics.contains("berth_scans_total{outcome=\"refused_push\"} 1"),
        "{metrics}"
    );
}

// With scanning off at push, a version is scanned on request (the API and
// the CLI), and `POST /api/v1/scan` queues whatever has no report yet.
#[tokio::test]
async fn scans_on_request_and_of_the_whole_store() {
    let f = fixtures();
    let s = TestServer::with_config(|c| c.scan.enabled = false).await;
    push_pickles(&s, "models/a", "v1", &[("e.pkl", &f["evil0.pkl"])]).await;
    push_pickles(&s, "models/b", "v1", &[("c.pkl", &f["clean.pkl"])]).await;
    push_pickles(&s, "models/c", "v1", &[("c.pkl", &f["clean.pkl"])]).await;
    s.push_image("apps/web", "v1", 4).await;
    let r = s
        .get("/api/v1/repositories/models/a/manifests/v1/scan")
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(r).await, "SCAN_UNKNOWN");

    let r = post(
        &s,
        "/api/v1/repositories/models/a/scan",
        json!({ "reference": "v1" }),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let now = json_body(r).await;
    assert_eq!(now["verdict"], "dangerous");
    assert_eq!(report(&s, "models/a", "v1").await.0, now);

    // The CLI scans and waits; a dangerous verdict fails the command.
    let base = s.base.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
            .args(["scan", "models/b:v1", "--url", &base])
            .output()
            .expect("run berth scan")
    })
    .await
    .expect("join");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.starts_with("models/b:v1 (sha256:") && text.contains("): clean\n"),
        "{text}"
    );
    assert!(text.contains("c.pkl [pickle] clean"), "{text}");
    let base = s.base.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
            .args(["scan", "models/a:v1", "--url", &base])
            .output()
            .expect("run berth scan")
    })
    .await
    .expect("join");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("posix.system (dangerous)"));

    // Only models/c is left: the image and the reports are not scanned.
    let r = post(&s, "/api/v1/scan", json!({})).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(json_body(r).await["queued"], 1);
    assert_eq!(report(&s, "models/c", "v1").await.0["verdict"], "clean");
    let r = s
        .get("/api/v1/repositories/apps/web/manifests/v1/scan")
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // A forced scan makes a new report; the latest is the one served.
    let r = post(
        &s,
        "/api/v1/repositories/models/c/scan",
        json!({ "reference": "v1", "force": true }),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let referrers = json_body(
        s.get(&format!(
            "/v2/models/c/referrers/{}?artifactType={SCAN}",
            header(
                &s.head("/v2/models/c/manifests/v1").await,
                "docker-content-digest"
            )
            .expect("digest")
        ))
        .await,
    )
    .await;
    assert_eq!(
        referrers["manifests"].as_array().map(Vec::len),
        Some(2),
        "{referrers}"
    );
}
