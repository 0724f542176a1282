//! Start-up in the environment a Kubernetes pod gets: the service-link
//! variables of a Service named `berth` share Berth's `BERTH_` prefix.

use std::fs::File;
use std::process::Stdio;

use reqwest::StatusCode;

use crate::process::{Process, free_port, serve_command};

/// What Kubernetes sets in every pod of a namespace with a Service `berth`
/// on port 5000 (service links), exactly.
const SERVICE_LINKS: &[(&str, &str)] = &[
    ("BERTH_SERVICE_HOST", "10.96.0.10"),
    ("BERTH_SERVICE_PORT", "5000"),
    ("BERTH_PORT", "tcp://10.96.0.10:5000"),
    ("BERTH_PORT_5000_TCP", "tcp://10.96.0.10:5000"),
    ("BERTH_PORT_5000_TCP_PROTO", "tcp"),
    ("BERTH_PORT_5000_TCP_PORT", "5000"),
    ("BERTH_PORT_5000_TCP_ADDR", "10.96.0.10"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_starts_with_kubernetes_service_links_in_its_environment() {
    let dir = tempfile::tempdir().expect("dir");
    let log = dir.path().join("stderr");
    let mut env = SERVICE_LINKS.to_vec();
    env.push(("BERTH_BUILD_SHA", "0123abc"));
    let data = dir.path().join("data");
    let berth = Process::start_logging(
        &data,
        free_port(),
        &env,
        Stdio::from(File::create(&log).expect("log file")),
    )
    .await;
    let r = reqwest::get(format!("{}/v2/_catalog", berth.base))
        .await
        .expect("GET");
    assert_eq!(r.status(), StatusCode::OK);
    drop(berth);
    let log = std::fs::read_to_string(&log).expect("log");
    assert!(
        log.contains("BERTH_BUILD_SHA"),
        "a variable that is no key is named once: {log}"
    );
    assert!(
        !log.contains("BERTH_SERVICE_HOST") && !log.contains("BERTH_PORT"),
        "service links are not configuration, nor worth a warning: {log}"
    );
}

#[test]
fn serve_refuses_a_misspelt_key_and_names_it() {
    let dir = tempfile::tempdir().expect("dir");
    for (key, named) in [
        ("BERTH_REGISTRY__DELETE_ENABLD", "delete_enabld"),
        ("BERTH_DATA_DIRR", "BERTH_DATA_DIRR"),
    ] {
        let out = serve_command(dir.path(), free_port())
            .envs(SERVICE_LINKS.iter().copied())
            .env(key, "false")
            .output()
            .expect("run berth");
        assert!(!out.status.success(), "{key} must stop start-up");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(named), "{key}: {stderr}");
    }
}
