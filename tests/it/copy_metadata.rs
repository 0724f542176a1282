//! Moving up: `berth copy-metadata` takes a registry that started on SQLite
//! to PostgreSQL with its tags, history, events and open uploads; fsck finds
//! nothing wrong after, and new ids follow the copied ones.

use berth::meta::MetadataConfig;
use reqwest::StatusCode;

use crate::support::*;

fn berth(args: &[&str], env: Vec<(String, String)>) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(args)
        .envs(env)
        .output()
        .expect("run berth")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_metadata_moves_to_postgres_with_its_history() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().to_string_lossy().into_owned();
    let history = "/api/v1/repositories/app/model/tags/prod/history";
    let (events, moves, upload, second) = {
        let s = TestServer::in_dir(dir.path(), |c| c.metadata = MetadataConfig::default()).await;
        s.push_image("app/model", "prod", 1).await;
        let (_, second) = s.push_image("app/model", "prod", 2).await;
        s.push_image("app/data", "v1", 3).await;
        let upload = s.open_upload("app/model").await;
        assert_eq!(
            s.patch(&upload, 0, &blob(9, 1000)).await.status(),
            StatusCode::ACCEPTED
        );
        (
            json_body(s.get("/api/v1/events?n=1000").await).await,
            json_body(s.get(history).await).await,
            upload,
            second,
        )
    };

    let url = postgres_schema(&format!("copy-metadata {data}")).await;
    let out = berth(
        &["copy-metadata", "--data-dir", &data, "--to", &url],
        Vec::new(),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("report");
    let copied = |table: &str| {
        report["tables"]
            .as_array()
            .and_then(|t| t.iter().find(|r| r[0] == table))
            .map(|r| r[1].clone())
    };
    assert_eq!(copied("tags"), Some(2.into()));
    assert_eq!(copied("uploads"), Some(1.into()));
    assert!(!stderr.contains("password"), "{stderr}");

    let again = berth(
        &["copy-metadata", "--data-dir", &data, "--to", &url],
        Vec::new(),
    );
    assert!(
        !again.status.success(),
        "a second copy into a used database is refused"
    );
    assert!(String::from_utf8_lossy(&again.stderr).contains("holds repositories already"));

    let postgres = postgres_config(&url);
    let config = postgres.clone();
    let s = TestServer::in_dir(dir.path(), move |c| c.metadata = config).await;
    assert_eq!(json_body(s.get(history).await).await, moves);
    assert_eq!(
        json_body(s.get("/api/v1/events?n=1000").await).await,
        events
    );
    let tags = json_body(s.get("/v2/app/model/tags/list").await).await;
    assert_eq!(tags["tags"], serde_json::json!(["prod"]));
    let r = s.head("/v2/app/model/manifests/prod").await;
    assert_eq!(header(&r, "docker-content-digest"), Some(second));
    let r = s.get(&upload).await;
    assert_eq!(
        header(&r, "range").as_deref(),
        Some("0-999"),
        "the open upload goes on"
    );

    // New events follow the copied ones.
    let last = events["events"].as_array().and_then(|e| e.last()).cloned();
    let last: i64 = last
        .and_then(|e| e["id"].as_str()?.parse().ok())
        .expect("an id");
    s.push_image("app/model", "v2", 4).await;
    let after = json_body(s.get(&format!("/api/v1/events?after={last}")).await).await;
    let first: i64 = after["events"][0]["id"]
        .as_str()
        .and_then(|i| i.parse().ok())
        .expect("id");
    assert!(first > last, "{first} after {last}");

    let mut env = metadata_env(&postgres);
    env.extend(storage_env(&suite_storage(dir.path())));
    let out = berth(&["fsck", "--data-dir", &data], env);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
