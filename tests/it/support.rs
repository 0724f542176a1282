//! The test harness: a real server on a real loopback socket, and helpers to
//! build deterministic content and read OCI error bodies.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use berth::config::Config;
use berth::meta::sqlite::Sqlite;
use berth::oci::Digest;
use berth::registry::Registry;
use berth::server::Server;
use berth::storage::BlobStore;
use berth::storage::faulty::FaultyStore;
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// A registry running in this process on 127.0.0.1, with its own data directory.
pub struct TestServer {
    pub base: String,
    pub client: reqwest::Client,
    data_dir: PathBuf,
    /// Removed on drop, unless the caller owns the data directory.
    _owned: Option<tempfile::TempDir>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl TestServer {
    pub async fn start() -> TestServer {
        TestServer::with_config(|_| {}).await
    }

    /// Starts with the defaults changed by `adjust`.
    pub async fn with_config(adjust: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut server = TestServer::in_dir(dir.path(), adjust).await;
        server._owned = Some(dir);
        server
    }

    /// Starts on a data directory the caller keeps (to restart on it).
    pub async fn in_dir(dir: &Path, adjust: impl FnOnce(&mut Config)) -> TestServer {
        TestServer::assembled(dir, adjust, |c| {
            berth::server::open_registry(c).expect("open")
        })
        .await
    }

    /// Starts with blobs behind a fault-injecting store.
    pub async fn with_faults(adjust: impl FnOnce(&mut Config)) -> (TestServer, FaultyStore) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = FaultyStore::new(BlobStore::local_store(dir.path()).expect("store"));
        let faults = store.clone();
        let mut server = TestServer::assembled(dir.path(), adjust, move |c| {
            let meta = Sqlite::open(&c.data_dir.join(berth::server::DATABASE_FILE)).expect("db");
            Registry::new(
                BlobStore::from_store(Arc::new(store)),
                Arc::new(meta),
                c.registry_settings(),
            )
        })
        .await;
        server._owned = Some(dir);
        (server, faults)
    }

    async fn assembled(
        dir: &Path,
        adjust: impl FnOnce(&mut Config),
        registry: impl FnOnce(&Config) -> Registry,
    ) -> TestServer {
        let mut config = Config::load(None, Vec::new()).expect("default config");
        config.listen = "127.0.0.1:0".parse().expect("addr");
        config.data_dir = dir.to_path_buf();
        adjust(&mut config);
        let registry = registry(&config);
        let server = Server::bind_with(&config, registry).await.expect("bind");
        let addr = server.local_addr().expect("addr");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(server.run(async move {
            let _ = rx.await;
        }));
        TestServer {
            base: format!("http://{addr}"),
            client: reqwest::Client::new(),
            data_dir: dir.to_path_buf(),
            _owned: None,
            shutdown: Some(tx),
        }
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, self.url(path))
    }

    pub async fn get(&self, path: &str) -> Response {
        self.request(Method::GET, path).send().await.expect("GET")
    }

    pub async fn head(&self, path: &str) -> Response {
        self.request(Method::HEAD, path).send().await.expect("HEAD")
    }

    pub async fn delete(&self, path: &str) -> Response {
        self.request(Method::DELETE, path)
            .send()
            .await
            .expect("DELETE")
    }

    /// Pushes a blob with POST then PUT; asserts 201 and returns its digest.
    pub async fn push_blob(&self, repo: &str, bytes: &[u8]) -> String {
        let digest = sha256(bytes);
        let start = self
            .request(Method::POST, &format!("/v2/{repo}/blobs/uploads/"))
            .send()
            .await
            .expect("POST");
        assert_eq!(start.status(), StatusCode::ACCEPTED);
        let location = location(&start);
        let done = self
            .client
            .put(self.url(&with_query(&location, &format!("digest={digest}"))))
            .header("content-type", "application/octet-stream")
            .body(bytes.to_vec())
            .send()
            .await
            .expect("PUT");
        assert_eq!(
            done.status(),
            StatusCode::CREATED,
            "{}",
            done.text().await.unwrap_or_default()
        );
        digest
    }

    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: &[u8],
    ) -> Response {
        self.request(Method::PUT, &format!("/v2/{repo}/manifests/{reference}"))
            .header("content-type", media_type)
            .body(body.to_vec())
            .send()
            .await
            .expect("PUT manifest")
    }

    /// Pushes a config and one layer and an image manifest tagged `tag`;
    /// returns (manifest bytes, manifest digest).
    pub async fn push_image(&self, repo: &str, tag: &str, seed: u64) -> (Vec<u8>, String) {
        let config = format!("{{\"seed\":{seed}}}").into_bytes();
        let layer = blob(seed, 1024 + seed as usize);
        self.push_blob(repo, &config).await;
        self.push_blob(repo, &layer).await;
        let manifest = image_manifest(&config, &[&layer], None);
        let r = self.put_manifest(repo, tag, OCI_MANIFEST, &manifest).await;
        assert_eq!(r.status(), StatusCode::CREATED);
        let digest = sha256(&manifest);
        (manifest, digest)
    }

    /// Attaches `document` to `subject` (a manifest digest of `repo`) as a
    /// referrer of `artifact_type`, the document its one layer; the answer
    /// of the manifest PUT.
    pub async fn attach(
        &self,
        repo: &str,
        subject: &str,
        artifact_type: &str,
        document: &[u8],
    ) -> Response {
        const EMPTY: &str = "application/vnd.oci.empty.v1+json";
        self.push_blob(repo, b"{}").await;
        self.push_blob(repo, document).await;
        let size = self
            .get(&format!("/v2/{repo}/manifests/{subject}"))
            .await
            .bytes()
            .await
            .expect("subject")
            .len();
        let body = serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": artifact_type,
            "config": descriptor(EMPTY, b"{}"), "layers": [descriptor(artifact_type, document)],
            "subject": { "mediaType": OCI_MANIFEST, "digest": subject, "size": size },
        }))
        .expect("json");
        self.put_manifest(repo, &sha256(&body), OCI_MANIFEST, &body)
            .await
    }

    /// Every object file below the data directory's `blobs/`.
    pub fn stored_blob_files(&self) -> Vec<PathBuf> {
        files_under(&self.data_dir().join("blobs"))
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

pub fn sha256(bytes: &[u8]) -> String {
    Digest::sha256_of(bytes).to_string()
}

/// Deterministic pseudo-random bytes (xorshift), different per seed.
pub fn blob(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

pub fn descriptor(media_type: &str, bytes: &[u8]) -> Value {
    json!({ "mediaType": media_type, "digest": sha256(bytes), "size": bytes.len() })
}

/// An OCI image manifest over a config and layers, with optional extra fields.
pub fn image_manifest(config: &[u8], layers: &[&[u8]], extra: Option<Value>) -> Vec<u8> {
    let mut m = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG, config),
        "layers": layers.iter().map(|l| descriptor(OCI_LAYER, l)).collect::<Vec<_>>(),
    });
    if let (Some(Value::Object(extra)), Value::Object(map)) = (extra, &mut m) {
        map.extend(extra);
    }
    serde_json::to_vec_pretty(&m).expect("json")
}

pub fn location(r: &Response) -> String {
    r.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("Location header")
        .to_owned()
}

pub fn header(r: &Response, name: &str) -> Option<String> {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

pub fn with_query(location: &str, query: &str) -> String {
    let sep = if location.contains('?') { '&' } else { '?' };
    format!("{location}{sep}{query}")
}

/// The first error code of an OCI error body, checking the body's shape.
pub async fn error_code(r: Response) -> String {
    let ct = header(&r, "content-type").unwrap_or_default();
    assert!(
        ct.starts_with("application/json"),
        "error content type {ct}"
    );
    let body: Value =
        serde_json::from_slice(&r.bytes().await.expect("body")).expect("JSON error body");
    let first = &body["errors"][0];
    assert!(first["message"].is_string(), "message in {body}");
    first["code"].as_str().expect("code").to_owned()
}

pub async fn json_body(r: Response) -> Value {
    serde_json::from_slice(&r.bytes().await.expect("body")).expect("JSON body")
}
