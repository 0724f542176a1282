//! The test harness: a real server on a real loopback socket, and helpers to
//! build deterministic content and read OCI error bodies.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::faulty::FaultyStore;
use berth::config::Config;
use berth::meta::MetadataConfig;
use berth::oci::Digest;
use berth::registry::Registry;
use berth::server::Server;
pub use berth::storage::Area;
use berth::storage::backend::{Backend, S3_MIN_PART, StorageConfig};
use berth::storage::{BlobStore, ObjectStorage};
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
    blobs: BlobStore,
    registry: Registry,
}

/// The object store the suite runs on: local disk, or S3 when `TEST_STORAGE=s3`
/// (with `TEST_S3_ENDPOINT` pointing at an S3 server; test.sh starts one).
/// Each data directory gets its own bucket, so a restart finds its objects.
pub fn suite_storage(dir: &Path) -> StorageConfig {
    match std::env::var("TEST_STORAGE").as_deref() {
        Ok("s3") => s3_storage(dir),
        Ok("local") | Err(_) => StorageConfig::default(),
        Ok(other) => panic!("TEST_STORAGE={other}: expected local or s3"),
    }
}

/// The metadata database the suite runs on: SQLite in the data directory, or
/// PostgreSQL when `TEST_META=postgres` (with `TEST_POSTGRES_URL` naming a
/// database; test.sh starts one). Each data directory gets a schema of its
/// own, named after it, so a restart finds its rows.
pub async fn suite_metadata(dir: &Path) -> MetadataConfig {
    match std::env::var("TEST_META").as_deref() {
        Ok("postgres") => postgres_metadata(dir).await,
        Ok("sqlite") | Err(_) => MetadataConfig::default(),
        Ok(other) => panic!("TEST_META={other}: expected sqlite or postgres"),
    }
}

/// The PostgreSQL database the PostgreSQL tests use.
pub fn postgres_url() -> String {
    std::env::var("TEST_POSTGRES_URL").unwrap_or_else(|_| {
        panic!(
            "the PostgreSQL tests need a database: run ./test.sh (it installs and starts \
             one), or set TEST_POSTGRES_URL=postgres://user@127.0.0.1:<port>/<db>"
        )
    })
}

/// A schema of the suite's database named after `key` (created if new), and
/// the URL whose connections use it.
pub async fn postgres_schema(key: &str) -> String {
    let url = postgres_url();
    let (schema, in_schema) = schema_url(key);
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect to the test database");
    tokio::spawn(connection);
    client
        .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
        .await
        .expect("schema");
    in_schema
}

/// The schema named after `key`, and the URL of the suite's database whose
/// connections use it.
fn schema_url(key: &str) -> (String, String) {
    let url = postgres_url();
    let hash = Digest::sha256_of(key.as_bytes()).to_string();
    let schema = format!("t_{}", &hash["sha256:".len()..][..24]);
    let sep = if url.contains('?') { '&' } else { '?' };
    let in_schema = format!("{url}{sep}options=-csearch_path%3D{schema}");
    (schema, in_schema)
}

pub fn postgres_config(url: &str) -> MetadataConfig {
    let text = format!("backend = \"postgres\"\nurl = \"{url}\"\npool_size = 8\n");
    toml::from_str(&text).expect("postgres config")
}

/// PostgreSQL metadata in the schema of `dir` (created if new).
pub async fn postgres_metadata(dir: &Path) -> MetadataConfig {
    postgres_config(&postgres_schema(&dir.to_string_lossy()).await)
}

/// The environment that gives a `berth` child the suite's metadata database
/// for `dir`, once a server has opened it there.
pub fn suite_metadata_env(dir: &Path) -> Vec<(String, String)> {
    match std::env::var("TEST_META").as_deref() {
        Ok("postgres") => metadata_env(&postgres_config(&schema_url(&dir.to_string_lossy()).1)),
        _ => Vec::new(),
    }
}

/// The environment that gives a `berth serve` child the same metadata.
pub fn metadata_env(config: &MetadataConfig) -> Vec<(String, String)> {
    let value = serde_json::to_value(config).expect("config");
    let mut env = Vec::new();
    if let Some(map) = value.as_object() {
        for (k, v) in map {
            let v = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
            env.push((format!("BERTH_METADATA__{}", k.to_uppercase()), v));
        }
    }
    env
}

/// The S3-compatible server the S3 tests use.
pub fn s3_endpoint() -> String {
    std::env::var("TEST_S3_ENDPOINT").unwrap_or_else(|_| {
        panic!(
            "the S3 tests need an S3 server: run ./test.sh (it installs and starts \
             one), or set TEST_S3_ENDPOINT=http://127.0.0.1:<port>"
        )
    })
}

/// S3 storage on the suite's S3 server, in a bucket named after `dir`.
pub fn s3_storage(dir: &Path) -> StorageConfig {
    let endpoint = s3_endpoint();
    let hash = Digest::sha256_of(dir.to_string_lossy().as_bytes()).to_string();
    let bucket = format!("berth-{}", &hash["sha256:".len()..][..24]);
    let mut text = format!(
        "backend = \"s3\"\nbucket = \"{bucket}\"\nendpoint = \"{endpoint}\"\n\
         region = \"us-east-1\"\naccess_key_id = \"test\"\nsecret_access_key = \"test\"\n\
         allow_http = true\nmax_retries = 3\nretry_timeout = \"20s\"\n"
    );
    text.push_str("prefix = \"suite\"\n");
    let config: StorageConfig = toml::from_str(&text).expect("s3 config");
    // Creating a bucket that exists already is fine (same owner, us-east-1).
    let url = format!("{endpoint}/{bucket}");
    let status = std::process::Command::new("curl")
        .args(["-sf", "-o", "/dev/null", "-X", "PUT", &url])
        .status()
        .expect("curl");
    assert!(
        status.success(),
        "could not create bucket {bucket} at {endpoint}"
    );
    config
}

/// Multipart uploads in progress in the config's bucket, as S3 lists them.
pub async fn multipart_uploads_in(config: &StorageConfig) -> usize {
    let url = format!(
        "{}/{}?uploads",
        config.endpoint.as_deref().expect("endpoint"),
        config.bucket.as_deref().expect("bucket")
    );
    let text = reqwest::get(url)
        .await
        .expect("list uploads")
        .text()
        .await
        .expect("body");
    text.matches("<Upload>").count()
}

/// Azure storage on the suite's Azurite (Azure's emulator), in the container
/// `berth` (test.sh creates it) under a prefix of its own. Minimum parts of
/// 5 MiB, as on S3, so that the same staging checks apply.
pub fn azure_storage() -> StorageConfig {
    let endpoint = std::env::var("TEST_AZURE_ENDPOINT").unwrap_or_else(|_| {
        panic!(
            "the Azure tests need Azurite: run ./test.sh (it installs and starts \
             it), or set TEST_AZURE_ENDPOINT=http://127.0.0.1:<port>"
        )
    });
    // Azurite's account and key: public constants of the emulator, not secrets.
    let text = format!(
        "backend = \"azure\"\nbucket = \"berth\"\naccount = \"devstoreaccount1\"\n\
         access_key = \"{AZURITE_KEY}\"\nendpoint = \"{endpoint}/devstoreaccount1\"\n\
         allow_http = true\nmin_part_size = {S3_MIN_PART}\nprefix = \"t-{}\"\n",
        berth::oci::UploadId::new_random()
    );
    toml::from_str(&text).expect("azure config")
}

const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// The `BERTH_STORAGE__*` variables that give a `berth` process `config`.
pub fn storage_env(config: &StorageConfig) -> Vec<(String, String)> {
    if config.backend == Backend::Local {
        return Vec::new();
    }
    let value = toml::Value::try_from(config).expect("storage config");
    let Some(table) = value.as_table() else {
        return Vec::new();
    };
    table
        .iter()
        .map(|(k, v)| {
            let text = match v {
                toml::Value::String(s) => s.clone(),
                toml::Value::Boolean(b) => b.to_string(),
                toml::Value::Integer(n) => n.to_string(),
                other => panic!("{k} = {other:?}: not a scalar"),
            };
            (format!("BERTH_STORAGE__{}", k.to_uppercase()), text)
        })
        .collect()
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
        TestServer::assembled(dir, adjust, async |c| {
            berth::server::open_registry(c).await.expect("open")
        })
        .await
    }

    /// Starts with blobs behind a fault-injecting store.
    pub async fn with_faults(adjust: impl FnOnce(&mut Config)) -> (TestServer, FaultyStore) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = FaultyStore::default();
        let faults = store.clone();
        let mut server = TestServer::assembled(dir.path(), adjust, async move |c| {
            let meta = berth::meta::open(&c.metadata, &c.data_dir)
                .await
                .expect("db");
            Registry::new(
                BlobStore::new(ObjectStorage::new(Arc::new(store), S3_MIN_PART)),
                meta,
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
        registry: impl AsyncFnOnce(&Config) -> Registry,
    ) -> TestServer {
        berth::install_crypto_provider();
        let mut config = Config::load(None, Vec::new()).expect("default config");
        config.listen = "127.0.0.1:0".parse().expect("addr");
        config.data_dir = dir.to_path_buf();
        config.storage = suite_storage(dir);
        config.metadata = suite_metadata(dir).await;
        adjust(&mut config);
        let registry = registry(&config).await;
        let blobs = registry.blobs().clone();
        let server = Server::bind_with(&config, registry.clone())
            .await
            .expect("bind");
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
            blobs,
            registry,
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
        let location = self.open_upload(repo).await;
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

    /// Opens an upload session in `repo`; returns its location.
    pub async fn open_upload(&self, repo: &str) -> String {
        let r = self
            .request(Method::POST, &format!("/v2/{repo}/blobs/uploads/"))
            .send()
            .await
            .expect("POST");
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        location(&r)
    }

    /// Sends `part` as the chunk of the session at `loc` that begins at `start`.
    pub async fn patch(&self, loc: &str, start: usize, part: &[u8]) -> Response {
        self.request(Method::PATCH, loc)
            .header("Content-Type", "application/octet-stream")
            .header(
                "Content-Range",
                format!("{start}-{}", start + part.len() - 1),
            )
            .body(part.to_vec())
            .send()
            .await
            .expect("PATCH")
    }

    /// Pushes `bytes` in chunks of `chunk` bytes; returns the digest.
    pub async fn push_blob_chunked(&self, repo: &str, bytes: &[u8], chunk: usize) -> String {
        let mut loc = self.open_upload(repo).await;
        for (i, part) in bytes.chunks(chunk).enumerate() {
            let r = self.patch(&loc, i * chunk, part).await;
            assert_eq!(r.status(), StatusCode::ACCEPTED, "chunk {i}");
            loc = location(&r);
        }
        let digest = sha256(bytes);
        let sep = if loc.contains('?') { '&' } else { '?' };
        let r = self
            .request(Method::PUT, &format!("{loc}{sep}digest={digest}"))
            .send()
            .await
            .expect("PUT");
        assert_eq!(r.status(), StatusCode::CREATED);
        digest
    }

    /// A blob's bytes, read through `repo`.
    pub async fn fetch_blob(&self, repo: &str, digest: &str) -> Vec<u8> {
        let r = self.get(&format!("/v2/{repo}/blobs/{digest}")).await;
        assert_eq!(r.status(), StatusCode::OK, "GET {digest}");
        r.bytes().await.expect("blob").to_vec()
    }

    /// The server's object store.
    /// The registry the server runs (for what has no HTTP endpoint: fsck).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    /// Every object path under `prefix` (`blobs`, `uploads`) in the server's store.
    pub async fn stored_objects(&self, area: Area) -> Vec<String> {
        let listed = self.blobs.list(area).await.expect("list the store");
        listed.into_iter().map(|l| l.path).collect()
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
