use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth::glob::Glob;
use berth::registry::events::Webhook;
use berth::registry::releases::{Comparison, MetricRule};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

const EVAL: &str = "application/vnd.berth.evaluation.v1+json";

async fn promote(s: &TestServer, repo: &str, body: Value) -> reqwest::Response {
    s.client
        .post(s.url(&format!("/api/v1/repositories/{repo}/promote")))
        .json_body(&body)
        .send()
        .await
        .expect("promote")
}

async fn rollback(s: &TestServer, repo: &str, body: Value) -> reqwest::Response {
    s.client
        .post(s.url(&format!("/api/v1/repositories/{repo}/rollback")))
        .json_body(&body)
        .send()
        .await
        .expect("rollback")
}

trait JsonBody {
    fn json_body(self, v: &Value) -> Self;
}

impl JsonBody for reqwest::RequestBuilder {
    fn json_body(self, v: &Value) -> Self {
        self.header("content-type", "application/json")
            .body(v.to_string())
    }
}

async fn current(s: &TestServer, repo: &str, tag: &str) -> Option<String> {
    header(
        &s.head(&format!("/v2/{repo}/manifests/{tag}")).await,
        "docker-content-digest",
    )
}

async fn history(s: &TestServer, repo: &str, tag: &str) -> Vec<Value> {
    let r = s
        .get(&format!("/api/v1/repositories/{repo}/tags/{tag}/history"))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    json_body(r).await["history"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Attaches an evaluation report with `metrics` to `subject` (a manifest of `repo`).
async fn evaluate(s: &TestServer, repo: &str, subject: &str, metrics: Value) -> reqwest::Response {
    let report = serde_json::to_vec(&json!({ "metrics": metrics, "dataset": sha256(b"holdout") }))
        .expect("json");
    s.attach(repo, subject, EVAL, &report).await
}

fn rule(metric: &str, op: Comparison, threshold: f64) -> MetricRule {
    MetricRule {
        repositories: vec![Glob::new("models/**")],
        tags: vec![Glob::new("production")],
        metric: metric.into(),
        op,
        threshold,
    }
}

// A promote/rollback round trip, read back by tag as a client pulls it.
#[tokio::test]
async fn promote_then_rollback_moves_the_environment_tag_and_records_history() {
    let s = TestServer::start().await;
    let (_, v1) = s.push_image("models/churn", "v1", 1).await;
    let (_, v2) = s.push_image("models/churn", "v2", 2).await;

    let r = promote(
        &s,
        "models/churn",
        json!({ "reference": "v1", "to": "production", "reason": "first release" }),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let moved = json_body(r).await;
    assert_eq!(
        (moved["from"].clone(), moved["to"].clone()),
        (Value::Null, json!(v1))
    );
    assert_eq!(
        current(&s, "models/churn", "production").await,
        Some(v1.clone())
    );

    let r = promote(
        &s,
        "models/churn",
        json!({ "reference": v2, "to": "production", "expect": v1 }),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let moved = json_body(r).await;
    assert_eq!(moved["from"], v1.as_str());
    assert_eq!(
        moved["diff"]["layers"]["added"].as_array().map(Vec::len),
        Some(1),
        "release notes in the answer"
    );
    assert_eq!(
        current(&s, "models/churn", "production").await,
        Some(v2.clone())
    );

    let r = rollback(
        &s,
        "models/churn",
        json!({ "tag": "production", "reason": "bad canary" }),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        current(&s, "models/churn", "production").await,
        Some(v1.clone())
    );
    let bytes = s
        .get("/v2/models/churn/manifests/production")
        .await
        .bytes()
        .await
        .expect("b");
    assert_eq!(sha256(&bytes), v1);

    let h = history(&s, "models/churn", "production").await;
    let ops: Vec<_> = h
        .iter()
        .map(|e| e["operation"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(ops, ["rollback", "promote", "promote"]);
    assert_eq!(h[0]["from"], v2.as_str());
    assert_eq!(h[0]["to"], v1.as_str());
    assert_eq!(h[0]["reason"], "bad canary");
    assert_eq!(h[2]["reason"], "first release");

    // "What was production then?"
    let at = h[1]["at"].as_str().expect("at");
    let r = s
        .get(&format!(
            "/api/v1/repositories/models/churn/tags/production/history?at={}",
            urlencode(at)
        ))
        .await;
    assert_eq!(json_body(r).await["digest"], v2.as_str());
    let r = s
        .get("/api/v1/repositories/models/churn/tags/production/history?at=2000-01-01T00:00:00Z")
        .await;
    assert_eq!(json_body(r).await["digest"], Value::Null);

    // Paginated, newest first, with a Link to the older ones.
    let r = s
        .get("/api/v1/repositories/models/churn/tags/production/history?n=2")
        .await;
    let link = header(&r, "link").expect("Link");
    assert_eq!(
        json_body(r).await["history"].as_array().map(Vec::len),
        Some(2)
    );
    let next = link
        .trim_start_matches('<')
        .split('>')
        .next()
        .expect("url")
        .to_owned();
    let older = json_body(s.get(&next).await).await;
    assert_eq!(older["history"][0]["operation"], "promote");
    assert_eq!(older["history"][0]["from"], Value::Null);
}

fn urlencode(s: &str) -> String {
    s.replace(':', "%3A").replace('+', "%2B")
}

// Two pipelines promoting with `expect` at once: exactly one wins.
#[tokio::test]
async fn concurrent_promotes_with_expect_let_exactly_one_win() {
    let s = TestServer::start().await;
    let (_, v1) = s.push_image("models/race", "v1", 3).await;
    let (_, v2) = s.push_image("models/race", "v2", 4).await;
    let (_, v3) = s.push_image("models/race", "v3", 5).await;
    assert_eq!(
        promote(
            &s,
            "models/race",
            json!({ "reference": "v1", "to": "production" })
        )
        .await
        .status(),
        StatusCode::OK
    );
    let a = promote(
        &s,
        "models/race",
        json!({ "reference": v2, "to": "production", "expect": v1 }),
    );
    let b = promote(
        &s,
        "models/race",
        json!({ "reference": v3, "to": "production", "expect": v1 }),
    );
    let (a, b) = tokio::join!(a, b);
    let mut statuses = [a.status(), b.status()];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::OK, StatusCode::PRECONDITION_FAILED]);
    let loser = if a.status() == StatusCode::OK { b } else { a };
    assert_eq!(error_code(loser).await, "PRECONDITION_FAILED");
    let h = history(&s, "models/race", "production").await;
    assert_eq!(h.len(), 2, "one chain: v1, then the winner");
    assert_eq!(h[0]["from"], v1.as_str());
    assert_eq!(
        current(&s, "models/race", "production").await.as_deref(),
        h[0]["to"].as_str()
    );
}

// A gate refuses a promotion until an evaluation meets it.
#[tokio::test]
async fn a_gate_refuses_then_allows_a_promotion() {
    let s = TestServer::with_config(|c| {
        c.releases.gates = vec![
            rule("auc", Comparison::AtLeast, 0.9),
            rule("latency_ms", Comparison::AtMost, 50.0),
        ];
    })
    .await;
    let (_, v1) = s.push_image("models/gated", "v1", 6).await;

    let r = promote(
        &s,
        "models/gated",
        json!({ "reference": "v1", "to": "production" }),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let err = json_body(r).await;
    assert_eq!(err["errors"][0]["code"], "GATE_FAILED");
    assert_eq!(
        err["errors"][0]["detail"]["unmet"].as_array().map(Vec::len),
        Some(2),
        "{err}"
    );

    assert_eq!(
        evaluate(
            &s,
            "models/gated",
            &v1,
            json!({ "auc": 0.85, "latency_ms": 20 })
        )
        .await
        .status(),
        StatusCode::CREATED
    );
    let r = promote(
        &s,
        "models/gated",
        json!({ "reference": "v1", "to": "production" }),
    )
    .await;
    let err = json_body(r).await;
    let unmet = err["errors"][0]["detail"]["unmet"].to_string();
    assert!(
        unmet.contains("auc >= 0.9 (measured 0.85)") && !unmet.contains("latency"),
        "{unmet}"
    );

    // Staging has no gate.
    assert_eq!(
        promote(
            &s,
            "models/gated",
            json!({ "reference": "v1", "to": "staging" })
        )
        .await
        .status(),
        StatusCode::OK
    );

    assert_eq!(
        evaluate(&s, "models/gated", &v1, json!({ "auc": 0.93 }))
            .await
            .status(),
        StatusCode::CREATED
    );
    assert_eq!(
        promote(
            &s,
            "models/gated",
            json!({ "reference": "v1", "to": "production" })
        )
        .await
        .status(),
        StatusCode::OK
    );
    assert_eq!(
        current(&s, "models/gated", "production").await,
        Some(v1.clone())
    );

    let events = json_body(s.get("/api/v1/events").await).await;
    let refused = events["events"].as_array().map_or(0, |e| {
        e.iter()
            .filter(|e| e["action"] == "promote-refused")
            .count()
    });
    assert_eq!(refused, 2, "refused promotions are recorded");
    // And shown with the tag's history, newest first, with their reasons.
    let r = s
        .get("/api/v1/repositories/models/gated/tags/production/history")
        .await;
    let timeline = json_body(r).await;
    let reasons: Vec<_> = timeline["refused"]
        .as_array()
        .expect("refused")
        .iter()
        .map(|e| e["reason"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(reasons.len(), 2, "{timeline}");
    assert!(
        reasons[0].contains("auc >= 0.9 (measured 0.85)") && reasons[1].contains("latency"),
        "{reasons:?}"
    );
    assert_eq!(timeline["refused"][0]["digest"], json!(v1));
}

// Live metrics past the rollback policy roll the environment tag back.
#[tokio::test]
async fn a_bad_live_metric_rolls_production_back() {
    let s = TestServer::with_config(|c| {
        c.releases.rollback = vec![rule("error_rate", Comparison::AtMost, 0.05)]
    })
    .await;
    let (_, v1) = s.push_image("models/live", "v1", 7).await;
    let (_, v2) = s.push_image("models/live", "v2", 8).await;
    promote(
        &s,
        "models/live",
        json!({ "reference": "v1", "to": "production" }),
    )
    .await;
    promote(
        &s,
        "models/live",
        json!({ "reference": "v2", "to": "production" }),
    )
    .await;

    assert_eq!(
        evaluate(&s, "models/live", &v2, json!({ "error_rate": 0.01 }))
            .await
            .status(),
        StatusCode::CREATED
    );
    assert_eq!(
        current(&s, "models/live", "production").await,
        Some(v2.clone()),
        "within the policy"
    );

    assert_eq!(
        evaluate(&s, "models/live", &v2, json!({ "error_rate": 0.2 }))
            .await
            .status(),
        StatusCode::CREATED
    );
    assert_eq!(
        current(&s, "models/live", "production").await,
        Some(v1.clone())
    );
    let h = history(&s, "models/live", "production").await;
    assert_eq!(h[0]["operation"], "rollback");
    assert_eq!(h[0]["actor"], "berth");
    assert!(
        h[0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("automatic rollback: error_rate = 0.2")),
        "{}",
        h[0]
    );
    let events = json_body(s.get("/api/v1/events").await).await;
    assert!(
        events["events"]
            .as_array()
            .is_some_and(|e| e.iter().any(|e| e["action"] == "rollback"))
    );
}

#[tokio::test]
async fn immutable_tags_never_move() {
    let s =
        TestServer::with_config(|c| c.releases.immutable_tags = vec![Glob::new("v*.*.*")]).await;
    let (m1, d1) = s.push_image("models/imm", "v1.0.0", 9).await;
    let (m2, d2) = s.push_image("models/imm", "latest", 10).await;
    assert_eq!(
        s.put_manifest("models/imm", "v1.0.0", OCI_MANIFEST, &m1)
            .await
            .status(),
        StatusCode::CREATED,
        "same digest: no move"
    );
    let r = s
        .put_manifest("models/imm", "v1.0.0", OCI_MANIFEST, &m2)
        .await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let err = json_body(r).await;
    assert_eq!(err["errors"][0]["code"], "DENIED");
    assert!(
        err["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("immutable"))
    );
    assert_eq!(
        s.delete("/v2/models/imm/manifests/v1.0.0").await.status(),
        StatusCode::CONFLICT
    );
    assert_eq!(
        s.delete(&format!("/v2/models/imm/manifests/{d1}"))
            .await
            .status(),
        StatusCode::CONFLICT
    );
    let r = promote(&s, "models/imm", json!({ "reference": d2, "to": "v1.0.0" })).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert_eq!(current(&s, "models/imm", "v1.0.0").await, Some(d1));
    assert_eq!(
        s.put_manifest("models/imm", "latest", OCI_MANIFEST, &m1)
            .await
            .status(),
        StatusCode::CREATED,
        "other tags move"
    );
}

#[tokio::test]
async fn history_survives_a_manifest_delete() {
    let s = TestServer::start().await;
    let (_, v1) = s.push_image("models/gone", "v1", 11).await;
    promote(
        &s,
        "models/gone",
        json!({ "reference": "v1", "to": "production" }),
    )
    .await;
    assert_eq!(
        s.delete(&format!("/v2/models/gone/manifests/{v1}"))
            .await
            .status(),
        StatusCode::ACCEPTED
    );
    let h = history(&s, "models/gone", "production").await;
    let ops: Vec<_> = h
        .iter()
        .map(|e| e["operation"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(ops, ["delete-manifest", "promote"]);
    assert_eq!(h[1]["to"], v1.as_str());
    let r = rollback(&s, "models/gone", json!({ "tag": "production" })).await;
    assert_eq!(
        r.status(),
        StatusCode::NOT_FOUND,
        "nothing to roll back from"
    );
}

// Release notes: layers, annotations, lineage and metrics between two versions.
#[tokio::test]
async fn diff_reports_layers_annotations_lineage_and_metrics() {
    let s = TestServer::start().await;
    let config = b"{\"c\":1}".to_vec();
    let (shared, old_layer, new_layer) = (blob(20, 1000), blob(21, 2000), blob(22, 3000));
    for b in [&config, &shared, &old_layer, &new_layer] {
        s.push_blob("models/d", b).await;
    }
    let data_a = sha256(b"dataset a");
    let data_b = sha256(b"dataset b");
    let m1 = image_manifest(
        &config,
        &[&shared, &old_layer],
        Some(json!({ "annotations": {
        "keep": "x", "gone": "y", "changed": "1",
        "io.berth.lineage.datasets": data_a, "org.opencontainers.image.revision": "aaaa1111" } })),
    );
    let m2 = image_manifest(
        &config,
        &[&shared, &new_layer],
        Some(json!({ "annotations": {
        "keep": "x", "new": "z", "changed": "2",
        "io.berth.lineage.datasets": data_b, "org.opencontainers.image.revision": "bbbb2222" } })),
    );
    assert_eq!(
        s.put_manifest("models/d", "v1", OCI_MANIFEST, &m1)
            .await
            .status(),
        StatusCode::CREATED
    );
    assert_eq!(
        s.put_manifest("models/d", "v2", OCI_MANIFEST, &m2)
            .await
            .status(),
        StatusCode::CREATED
    );
    evaluate(&s, "models/d", &sha256(&m1), json!({ "auc": 0.80 })).await;
    evaluate(&s, "models/d", &sha256(&m2), json!({ "auc": 0.90 })).await;

    let d = json_body(
        s.get("/api/v1/repositories/models/d/diff?from=v1&to=v2")
            .await,
    )
    .await;
    assert_eq!(
        d["layers"]["added"][0]["digest"],
        sha256(&new_layer).as_str()
    );
    assert_eq!(
        d["layers"]["removed"][0]["digest"],
        sha256(&old_layer).as_str()
    );
    assert_eq!(d["layers"]["bytesAdded"], 3000);
    assert_eq!(d["annotations"]["added"], json!({ "new": "z" }));
    assert_eq!(d["annotations"]["removed"], json!({ "gone": "y" }));
    assert_eq!(
        d["annotations"]["changed"]["changed"],
        json!({ "from": "1", "to": "2" })
    );
    assert_eq!(d["lineage"]["datasets"]["added"], json!([data_b]));
    assert_eq!(d["lineage"]["datasets"]["removed"], json!([data_a]));
    assert_eq!(
        d["lineage"]["commit"],
        json!({ "from": "aaaa1111", "to": "bbbb2222" })
    );
    let delta = d["metrics"]["auc"]["delta"].as_f64().expect("delta");
    assert!((delta - 0.1).abs() < 1e-9, "{delta}");
}

#[tokio::test]
async fn the_event_log_lists_pushes_and_tag_moves_in_order() {
    let s = TestServer::start().await;
    let (_, d) = s.push_image("models/ev", "v1", 12).await;
    promote(
        &s,
        "models/ev",
        json!({ "reference": "v1", "to": "production" }),
    )
    .await;
    let events = json_body(s.get("/api/v1/events").await).await["events"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let actions: Vec<_> = events
        .iter()
        .map(|e| e["action"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(actions, ["push", "tag", "promote"]);
    assert_eq!(events[0]["target"]["digest"], d.as_str());
    assert_eq!(events[0]["target"]["repository"], "models/ev");
    assert_eq!(events[0]["target"]["mediaType"], OCI_MANIFEST);
    assert_eq!(events[2]["target"]["tag"], "production");
    let after = events[0]["id"].as_str().expect("id");
    let later = json_body(s.get(&format!("/api/v1/events?after={after}")).await).await;
    assert_eq!(later["events"].as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn release_requests_are_validated() {
    let s = TestServer::start().await;
    s.push_image("models/v", "v1", 13).await;
    let cases = [
        (json!({ "reference": "v1" }), StatusCode::BAD_REQUEST),
        (
            json!({ "reference": "v1", "to": "-bad" }),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({ "reference": "nope", "to": "production" }),
            StatusCode::NOT_FOUND,
        ),
        (
            json!({ "reference": "v1", "to": "production", "expect": "sha256:zz" }),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({ "reference": "v1", "to": "production", "colour": "red" }),
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (body, want) in cases {
        let r = promote(&s, "models/v", body.clone()).await;
        assert_eq!(r.status(), want, "{body}");
        error_code(r).await;
    }
    let r = rollback(&s, "models/v", json!({ "tag": "production" })).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = s.get("/api/v1/repositories/models/v/promote").await;
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
}

/// A webhook receiver on loopback that answers 503 to its first `down`
/// deliveries, then 200; it checks every body's signature.
async fn receiver(
    down: usize,
    secret: &'static str,
) -> (String, Arc<Mutex<Vec<Value>>>, Arc<Mutex<usize>>) {
    let got: Arc<Mutex<Vec<Value>>> = Arc::default();
    let calls: Arc<Mutex<usize>> = Arc::default();
    let (g, c) = (Arc::clone(&got), Arc::clone(&calls));
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let (g, c) = (Arc::clone(&g), Arc::clone(&c));
                async move {
                    let n = {
                        let mut c = c.lock().expect("lock");
                        *c += 1;
                        *c
                    };
                    if n <= down {
                        return axum::http::StatusCode::SERVICE_UNAVAILABLE;
                    }
                    let signed = headers
                        .get("x-berth-signature")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("");
                    assert_eq!(signed, berth::registry::events::signature(secret, &body));
                    assert_eq!(
                        headers.get("content-type").and_then(|v| v.to_str().ok()),
                        Some("application/vnd.docker.distribution.events.v1+json")
                    );
                    let v: Value = serde_json::from_slice(&body).expect("json");
                    g.lock()
                        .expect("lock")
                        .extend(v["events"].as_array().cloned().unwrap_or_default());
                    axum::http::StatusCode::OK
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, got, calls)
}

// A receiver that is down for a while still gets every event, in order, once.
#[tokio::test]
async fn webhooks_deliver_every_event_after_the_receiver_comes_back() {
    let (url, got, calls) = receiver(3, "hook-secret").await;
    let s = TestServer::with_config(move |c| {
        c.webhooks = vec![Webhook {
            name: "deploy".into(),
            url,
            secret: Some("hook-secret".into()),
            timeout_ms: 2000,
        }]
    })
    .await;
    s.push_image("models/hook", "v1", 14).await;
    promote(
        &s,
        "models/hook",
        json!({ "reference": "v1", "to": "production" }),
    )
    .await;
    s.push_image("models/hook", "v2", 15).await;
    let all: Vec<String> = json_body(s.get("/api/v1/events").await).await["events"]
        .as_array()
        .map(|e| {
            e.iter()
                .filter_map(|e| e["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ids: Vec<String> = got
            .lock()
            .expect("lock")
            .iter()
            .filter_map(|e| e["id"].as_str().map(str::to_owned))
            .collect();
        if ids.len() >= all.len() {
            assert_eq!(ids, all, "every event, in order, once");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "webhook got {} of {} events",
            ids.len(),
            all.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(*calls.lock().expect("lock") > 3, "deliveries were retried");
}

// The outbox survives a restart: events a stopped server could not deliver
// reach the receiver from the next server on the same data directory.
#[tokio::test]
async fn undelivered_events_are_sent_after_a_restart() {
    let dir = tempfile::tempdir().expect("dir");
    let hook = |url: String| Webhook {
        name: "deploy".into(),
        url,
        secret: Some("s".into()),
        timeout_ms: 2000,
    };
    let (down_url, _, down_calls) = receiver(usize::MAX, "s").await;
    let s = TestServer::in_dir(dir.path(), {
        let h = hook(down_url);
        move |c| c.webhooks = vec![h]
    })
    .await;
    s.push_image("models/outbox", "v1", 16).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while *down_calls.lock().expect("lock") == 0 {
        assert!(Instant::now() < deadline, "no delivery attempted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(s);

    let (up_url, got, _) = receiver(0, "s").await;
    let s = TestServer::in_dir(dir.path(), move |c| c.webhooks = vec![hook(up_url)]).await;
    let want = json_body(s.get("/api/v1/events").await).await["events"]
        .as_array()
        .map_or(0, Vec::len);
    assert!(want >= 2);
    while got.lock().expect("lock").len() < want {
        assert!(
            Instant::now() < deadline,
            "events not delivered after restart"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(got.lock().expect("lock").len(), want, "each event once");
}
