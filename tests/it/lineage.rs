use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

const EMPTY_MT: &str = "application/vnd.oci.empty.v1+json";
const LINEAGE: &str = "application/vnd.berth.lineage.v1+json";

/// Pushes an artifact (one layer of `content`) with annotations; returns its digest.
async fn artifact(
    s: &TestServer,
    repo: &str,
    tag: &str,
    content: &[u8],
    annotations: Value,
) -> String {
    s.push_blob(repo, b"{}").await;
    s.push_blob(repo, content).await;
    let body = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/vnd.example.model.v1",
        "config": descriptor(EMPTY_MT, b"{}"),
        "layers": [descriptor("application/octet-stream", content)],
        "annotations": annotations,
    }))
    .expect("json");
    let r = s.put_manifest(repo, tag, OCI_MANIFEST, &body).await;
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "{}",
        r.text().await.unwrap_or_default()
    );
    sha256(&body)
}

/// Attaches a lineage document to `subject` (digest of a manifest of `repo`).
async fn attach_lineage(
    s: &TestServer,
    repo: &str,
    subject: &str,
    doc: &Value,
) -> reqwest::Response {
    s.attach(
        repo,
        subject,
        LINEAGE,
        &serde_json::to_vec(doc).expect("json"),
    )
    .await
}

async fn graph(s: &TestServer, path: &str) -> Value {
    let r = s.get(&format!("/api/v1/lineage/{path}")).await;
    assert_eq!(r.status(), StatusCode::OK, "{path}");
    json_body(r).await
}

async fn models(s: &TestServer, query: &str) -> Vec<String> {
    let r = s.get(&format!("/api/v1/lineage?{query}")).await;
    assert_eq!(r.status(), StatusCode::OK, "{query}");
    json_body(r).await["models"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|m| {
                    format!(
                        "{}@{}",
                        m["repository"].as_str().unwrap_or(""),
                        m["digest"].as_str().unwrap_or("")
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn node<'a>(g: &'a Value, id: &str) -> &'a Value {
    g["nodes"]
        .as_array()
        .and_then(|n| n.iter().find(|n| n["id"] == id))
        .unwrap_or(&Value::Null)
}

fn has_edge(g: &Value, from: &str, to: &str, relation: &str) -> bool {
    g["edges"].as_array().is_some_and(|e| {
        e.iter()
            .any(|e| e["from"] == from && e["to"] == to && e["relation"] == relation)
    })
}

// Ingestion from annotations, with repository:tag resolved at push time.
#[tokio::test]
async fn annotations_link_a_model_to_its_dataset_and_commit_both_ways() {
    let s = TestServer::start().await;
    let dataset = artifact(&s, "data/churn", "2026-11", &blob(1, 5000), json!({})).await;
    let model = artifact(
        &s,
        "models/churn",
        "v1",
        &blob(2, 4000),
        json!({
            "io.berth.lineage.datasets": "data/churn:2026-11",
            "org.opencontainers.image.revision": "3f2c1e0b9a8d",
            "org.opencontainers.image.source": "https://git.example/churn",
        }),
    )
    .await;

    let g = graph(&s, "models/churn/v1").await;
    assert_eq!(g["root"], model.as_str());
    assert_eq!(node(&g, &dataset)["kind"], "dataset");
    assert_eq!(node(&g, &dataset)["repository"], "data/churn");
    assert_eq!(node(&g, &dataset)["tags"], json!(["2026-11"]));
    assert_eq!(
        node(&g, "commit:3f2c1e0b9a8d")["uri"],
        "https://git.example/churn"
    );
    assert!(has_edge(&g, &dataset, &model, "dataset"));
    assert!(has_edge(&g, "commit:3f2c1e0b9a8d", &model, "code"));

    assert_eq!(
        models(&s, &format!("dataset={dataset}")).await,
        [format!("models/churn@{model}")]
    );
    assert_eq!(
        models(&s, "commit=3f2c").await,
        [format!("models/churn@{model}")]
    );
    assert!(models(&s, "commit=ffff").await.is_empty());

    let down = graph(&s, &format!("data/churn/{dataset}?direction=downstream")).await;
    assert!(has_edge(&down, &dataset, &model, "dataset"));
    assert_eq!(node(&down, &model)["tags"], json!(["v1"]));
}

// A chain of fine-tunes, queried both ways and with a depth limit.
#[tokio::test]
async fn a_chain_of_fine_tunes_is_walked_both_ways() {
    let s = TestServer::start().await;
    let base = artifact(&s, "llm/base", "v1", &blob(3, 100), json!({})).await;
    let ft1 = artifact(
        &s,
        "llm/ft",
        "a",
        &blob(4, 100),
        json!({ "io.berth.lineage.parents": format!("llm/base@{base}") }),
    )
    .await;
    let ft2 = artifact(
        &s,
        "llm/ft",
        "b",
        &blob(5, 100),
        json!({ "io.berth.lineage.parents": ft1.clone() }),
    )
    .await;

    let up = graph(&s, "llm/ft/b").await;
    assert!(has_edge(&up, &ft1, &ft2, "derived") && has_edge(&up, &base, &ft1, "derived"));
    let shallow = graph(&s, "llm/ft/b?depth=1").await;
    assert!(has_edge(&shallow, &ft1, &ft2, "derived"));
    assert!(
        !has_edge(&shallow, &base, &ft1, "derived"),
        "depth 1 stops after one step"
    );

    let down = graph(&s, "llm/base/v1?direction=downstream").await;
    assert!(has_edge(&down, &base, &ft1, "derived") && has_edge(&down, &ft1, &ft2, "derived"));
    let both = graph(&s, "llm/ft/a?direction=both").await;
    assert!(has_edge(&both, &base, &ft1, "derived") && has_edge(&both, &ft1, &ft2, "derived"));
    assert_eq!(
        models(&s, &format!("parent={base}")).await,
        [format!("llm/ft@{ft1}")]
    );

    let dot = s.get("/api/v1/lineage/llm/ft/b?format=dot").await;
    assert_eq!(
        header(&dot, "content-type").as_deref(),
        Some("text/vnd.graphviz")
    );
    let dot = dot.text().await.expect("text");
    assert!(
        dot.starts_with("digraph lineage {") && dot.contains(&format!("\"{ft1}\" -> \"{ft2}\"")),
        "{dot}"
    );
}

// A lineage document attached later, as a referrer of the model.
#[tokio::test]
async fn a_lineage_document_attached_later_adds_datasets_parents_and_run() {
    let s = TestServer::start().await;
    let base = artifact(&s, "m/base", "v1", &blob(6, 100), json!({})).await;
    let data = artifact(&s, "data/x", "v1", &blob(7, 100), json!({})).await;
    let model = artifact(&s, "m/tuned", "v1", &blob(8, 100), json!({})).await;
    let ext = sha256(b"external data");
    let doc = json!({
        "datasets": [
            { "digest": data, "repository": "data/x", "name": "x" },
            { "uri": "s3://lake/clicks/2026-11", "digest": ext, "name": "clicks" },
            { "uri": "https://example.org/wiki.tar" },
        ],
        "code": { "repository": "https://git.example/tune", "commit": "c0ffee42" },
        "parents": [{ "reference": "m/base:v1", "relation": "finetune" }],
        "run": { "id": "run-17", "url": "https://ml.example/runs/17" },
        "parameters": { "lr": 0.0003, "epochs": 3 },
    });
    let r = attach_lineage(&s, "m/tuned", &model, &doc).await;
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "{}",
        r.text().await.unwrap_or_default()
    );

    let g = graph(&s, "m/tuned/v1").await;
    assert!(has_edge(&g, &base, &model, "finetune"));
    assert!(has_edge(&g, &data, &model, "dataset"));
    assert_eq!(node(&g, &ext)["kind"], "external");
    assert_eq!(node(&g, &ext)["uri"], "s3://lake/clicks/2026-11");
    assert_eq!(node(&g, &ext)["present"], false);
    assert!(has_edge(
        &g,
        "uri:https://example.org/wiki.tar",
        &model,
        "dataset"
    ));
    assert!(has_edge(&g, "commit:c0ffee42", &model, "code"));
    assert_eq!(
        node(&g, "run:run-17")["parameters"],
        json!({ "lr": 0.0003, "epochs": 3 })
    );
    assert_eq!(
        models(&s, &format!("parent={base}")).await,
        [format!("m/tuned@{model}")]
    );
    assert_eq!(
        models(&s, &format!("dataset={ext}")).await,
        [format!("m/tuned@{model}")]
    );
}

#[tokio::test]
async fn malformed_lineage_is_refused_with_a_clear_error() {
    let s = TestServer::start().await;
    let model = artifact(&s, "m/x", "v1", &blob(9, 100), json!({})).await;
    let bad_docs = [
        (
            json!({ "datasets": [{ "name": "neither digest nor uri" }] }),
            "digest or a uri",
        ),
        (
            json!({ "parents": [{ "reference": "m/x:v1", "relation": "cousin" }] }),
            "relation",
        ),
        (json!({ "colour": "blue" }), "unknown field"),
        (json!({}), "states nothing"),
        (
            json!({ "parents": [{ "reference": "m/x:missing" }] }),
            "not a tag",
        ),
    ];
    for (doc, why) in bad_docs {
        let r = attach_lineage(&s, "m/x", &model, &doc).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{doc}");
        let err = json_body(r).await;
        assert_eq!(err["errors"][0]["code"], "MANIFEST_INVALID");
        let msg = err["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(msg.contains(why), "{msg:?} should say {why:?}");
    }
    for (annotation, value) in [
        ("io.berth.lineage.datasets", "sha256:short"),
        ("io.berth.lineage.parents", "Not/A:Name"),
        ("io.berth.lineage.datasets", "data/none:v9"),
    ] {
        s.push_blob("m/x", b"{}").await;
        let body = serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": descriptor(EMPTY_MT, b"{}"), "layers": [],
            "annotations": { annotation: value },
        }))
        .expect("json");
        let r = s.put_manifest("m/x", "bad", OCI_MANIFEST, &body).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{value}");
        assert_eq!(error_code(r).await, "MANIFEST_INVALID");
    }
    assert_eq!(
        s.get("/v2/m/x/manifests/bad").await.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn modelpack_manifests_contribute_revision_source_and_datasets() {
    let s = TestServer::start().await;
    let config = serde_json::to_vec(&json!({
        "descriptor": { "name": "xyz", "sourceURL": "https://git.example/xyz", "revision": "deadbeef01" },
        "config": { "format": "safetensors" },
        "modelfs": { "type": "layers", "diff_ids": [] },
    }))
    .expect("json");
    let weights = blob(10, 3000);
    let data = blob(11, 2000);
    for b in [&config, &weights, &data] {
        s.push_blob("mp/xyz", b).await;
    }
    let body = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.cncf.model.manifest.v1+json",
        "config": descriptor("application/vnd.cncf.model.config.v1+json", &config),
        "layers": [
            descriptor("application/vnd.cncf.model.weight.v1.raw", &weights),
            descriptor("application/vnd.cncf.model.dataset.v1.tar", &data),
        ],
    }))
    .expect("json");
    assert_eq!(
        s.put_manifest("mp/xyz", "v1", OCI_MANIFEST, &body)
            .await
            .status(),
        StatusCode::CREATED
    );
    let model = sha256(&body);
    assert_eq!(
        models(&s, "commit=deadbeef").await,
        [format!("mp/xyz@{model}")]
    );
    assert_eq!(
        models(&s, &format!("dataset={}", sha256(&data))).await,
        [format!("mp/xyz@{model}")]
    );
    let g = graph(&s, "mp/xyz/v1").await;
    assert_eq!(
        node(&g, "commit:deadbeef01")["uri"],
        "https://git.example/xyz"
    );
}

// Deleting a model version removes its edges; a child keeps its own fact and
// shows the parent as no longer present.
#[tokio::test]
async fn deleting_a_model_removes_its_lineage() {
    let s = TestServer::start().await;
    let data = sha256(b"some dataset");
    let parent = artifact(
        &s,
        "m/p",
        "v1",
        &blob(12, 10),
        json!({ "io.berth.lineage.datasets": data.clone() }),
    )
    .await;
    let child = artifact(
        &s,
        "m/c",
        "v1",
        &blob(13, 10),
        json!({ "io.berth.lineage.parents": format!("m/p@{parent}") }),
    )
    .await;
    assert_eq!(models(&s, &format!("dataset={data}")).await.len(), 1);
    assert_eq!(
        s.delete(&format!("/v2/m/p/manifests/{parent}"))
            .await
            .status(),
        StatusCode::ACCEPTED
    );
    assert!(models(&s, &format!("dataset={data}")).await.is_empty());
    let g = graph(&s, "m/c/v1").await;
    assert!(has_edge(&g, &parent, &child, "derived"));
    assert_eq!(node(&g, &parent)["present"], false);
}

#[tokio::test]
async fn lineage_queries_validate_their_input() {
    let s = TestServer::start().await;
    artifact(&s, "m/q", "v1", &blob(14, 10), json!({})).await;
    let cases = [
        ("/api/v1/lineage?commit=ab", StatusCode::BAD_REQUEST),
        ("/api/v1/lineage", StatusCode::BAD_REQUEST),
        ("/api/v1/lineage?dataset=sha256:zz", StatusCode::BAD_REQUEST),
        (
            "/api/v1/lineage/m/q/v1?direction=sideways",
            StatusCode::BAD_REQUEST,
        ),
        ("/api/v1/lineage/m/q/v1?format=png", StatusCode::BAD_REQUEST),
        ("/api/v1/lineage/m/q/nope", StatusCode::NOT_FOUND),
        ("/api/v1/lineage/m%2Fq/v1", StatusCode::BAD_REQUEST),
    ];
    for (path, want) in cases {
        let r = s.get(path).await;
        assert_eq!(r.status(), want, "{path}");
        error_code(r).await;
    }
}

// The CLI prints the same graph as a readable tree.
#[tokio::test]
async fn the_cli_prints_a_tree() {
    let s = TestServer::start().await;
    let data = artifact(&s, "data/t", "v1", &blob(15, 10), json!({})).await;
    let model = artifact(&s, "m/t", "v1", &blob(16, 10), json!({
        "io.berth.lineage.datasets": "data/t:v1", "org.opencontainers.image.revision": "abcdef12",
    }))
    .await;
    let base = s.base.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
            .args(["lineage", "m/t:v1", "--url", &base])
            .output()
            .expect("run berth lineage")
    })
    .await
    .expect("join");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Tags move, so each tagged node shows its short digest too.
    let short = |d: &str| d[..7 + 12].to_owned();
    assert!(
        text.starts_with(&format!("[model] m/t:v1 ({})\n", short(&model))),
        "{text}"
    );
    assert!(
        text.contains(&format!("dataset: [dataset] data/t:v1 ({})", short(&data))),
        "{text}"
    );
    assert!(text.contains("code: [code] abcdef12"), "{text}");
}

// A ModelKit as `kit push` sends it: the Kitfile as JSON config, naming its
// dataset layers (by digest, or in order), a remote dataset, code at a URL,
// and its base ModelKit by reference; a base held elsewhere is external.
#[tokio::test]
async fn a_modelkit_states_datasets_code_and_its_base() {
    const KIT_CONFIG: &str = "application/vnd.kitops.modelkit.config.v1+json";
    const KIT_MODEL: &str = "application/vnd.kitops.modelkit.model.v1.tar+gzip";
    const KIT_DATA: &str = "application/vnd.kitops.modelkit.dataset.v1.tar+gzip";
    let s = TestServer::start().await;
    let base = artifact(&s, "kits/base", "v1", &blob(40, 100), json!({})).await;
    let (model, train, holdout) = (blob(41, 300), blob(42, 200), blob(43, 200));
    let push = async |tag: &str, base_path: &str| {
        let kitfile = serde_json::to_vec(&json!({
            "manifestVersion": "1.0.0",
            "package": { "name": "churn", "version": "2.0.0", "authors": ["ml team"] },
            "model": { "name": "churn", "path": base_path, "framework": "sklearn", "digest": sha256(&model) },
            "code": [{ "path": "https://git.example/churn", "description": "training code" }],
            "datasets": [
                { "name": "train", "path": "data/train.csv", "digest": sha256(&train) },
                { "name": "holdout", "path": "data/holdout.csv" },
                { "name": "web", "path": "data/web", "remotePath": "s3://bucket/web.parquet" },
            ],
        }))
        .expect("json");
        for b in [&kitfile, &model, &holdout, &train] {
            s.push_blob("kits/churn", b).await;
        }
        let body = serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": descriptor(KIT_CONFIG, &kitfile),
            "layers": [descriptor(KIT_MODEL, &model), descriptor(KIT_DATA, &holdout), descriptor(KIT_DATA, &train)],
        }))
        .expect("json");
        let r = s.put_manifest("kits/churn", tag, OCI_MANIFEST, &body).await;
        assert_eq!(
            r.status(),
            StatusCode::CREATED,
            "{}",
            r.text().await.unwrap_or_default()
        );
        sha256(&body)
    };
    let v2 = push("v2", "localhost:5000/kits/base:v1").await;
    let mine = [format!("kits/churn@{v2}")];
    assert_eq!(
        models(&s, &format!("dataset={}", sha256(&train))).await,
        mine
    );
    assert_eq!(
        models(&s, &format!("dataset={}", sha256(&holdout))).await,
        mine
    );
    assert_eq!(models(&s, &format!("parent={base}")).await, mine);
    let g = graph(&s, "kits/churn/v2").await;
    assert_eq!(
        node(&g, "uri:s3://bucket/web.parquet")["kind"],
        "external",
        "{g}"
    );
    assert!(g.to_string().contains("https://git.example/churn"), "{g}");

    let v3 = push("v3", "docker.io/other/base:v9").await;
    let g = graph(&s, "kits/churn/v3").await;
    assert_eq!(
        node(&g, "uri:docker.io/other/base:v9")["kind"],
        "external",
        "{g}"
    );
    assert_eq!(models(&s, &format!("parent={base}")).await, mine, "{v3}");
}
