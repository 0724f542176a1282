//! Typed configuration: defaults, overlaid by a TOML file, overlaid by `BERTH_*`
//! environment variables (`BERTH_DATA_DIR`, `BERTH_REGISTRY__DELETE_ENABLED`:
//! a double underscore steps into a section), overlaid by command-line flags.
//! Unknown keys are refused wherever they come from, except `BERTH_*`
//! variables that cannot be keys at all (Kubernetes service links, names far
//! from any key), which are left alone.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::auth::AuthConfig;
use crate::error::{Error, Result};
use crate::meta::{GcPolicy, MetadataConfig};
use crate::registry::Settings;
use crate::registry::events::Webhook;
use crate::registry::releases::ReleasePolicy;
use crate::registry::scan::ScanPolicy;
use crate::storage::backend::StorageConfig;
use crate::time::parse_duration;

const ENV_PREFIX: &str = "BERTH_";
/// `BERTH_*` variables that belong to the client subcommands, not the server.
const CLIENT_ONLY_ENV: &[&str] = &["BERTH_URL"];

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Where blobs, upload parts and the metadata database live.
    pub data_dir: PathBuf,
    /// Log filter, in `tracing_subscriber::EnvFilter` syntax.
    pub log: String,
    /// `text` (for people) or `json` (one object a line, for log pipelines).
    pub log_format: LogFormat,
    /// Requests handled at once; more are answered 429 with Retry-After.
    pub max_concurrent_requests: usize,
    /// A client must send its request headers within this (slowloris guard).
    #[serde(deserialize_with = "duration_text")]
    pub header_read_timeout: String,
    /// Serve `/metrics` on this address too, without authentication (for a
    /// scraper on a private network); the main address keeps it behind auth.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<SocketAddr>,
    /// Serve HTTPS with these PEM files.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
    pub registry: RegistryConfig,
    /// Immutable tags, promotion gates, rollback policies.
    pub releases: ReleasePolicy,
    /// Where events are delivered.
    pub webhooks: Vec<Webhook>,
    /// Pickle scanning of pushed models, its gates and push refusals.
    pub scan: ScanPolicy,
    pub gc: GcConfig,
    /// Requests per second per client; off by default.
    pub rate_limit: RateLimitConfig,
    /// Where blobs and manifests are stored: local disk or object storage.
    pub storage: StorageConfig,
    /// Where metadata is kept: SQLite in the data directory, or PostgreSQL.
    pub metadata: MetadataConfig,
    /// Authentication and access rules; absent means none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthConfig>,
    /// `BERTH_*` variables that name no key and were left alone, for the
    /// server to warn about once its log is set up.
    #[serde(skip)]
    pub ignored_env: Vec<String>,
}

/// The `[tls]` section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Certificate chain, PEM.
    pub cert: PathBuf,
    /// Private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// The `[gc]` section. Durations are `<number><unit>` with unit ms, s, m, h or d.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GcConfig {
    /// How often collection runs by itself; "0" turns the schedule off.
    #[serde(deserialize_with = "duration_text")]
    pub interval: String,
    /// Nothing younger than this is collected.
    #[serde(deserialize_with = "duration_text")]
    pub grace_period: String,
    /// Rollback targets kept: digests in each tag's last N history entries.
    pub keep_history: usize,
    /// Also collect manifests no tag, index, subject, lineage or history needs.
    pub delete_untagged: bool,
    /// Upload sessions idle this long expire, with their bytes.
    #[serde(deserialize_with = "duration_text")]
    pub upload_ttl: String,
    /// Rows per transaction.
    pub batch: usize,
}

impl Default for GcConfig {
    fn default() -> Self {
        GcConfig {
            interval: "1h".into(),
            grace_period: "24h".into(),
            keep_history: 10,
            delete_untagged: false,
            upload_ttl: "24h".into(),
            batch: 500,
        }
    }
}

/// The `[rate_limit]` section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// Sustained requests per second per client; 0 turns limiting off.
    pub requests_per_second: f64,
    /// Requests a client may make at once after being idle.
    pub burst: u32,
    /// Take the client from the last `X-Forwarded-For` address (the one a
    /// proxy in front of Berth appended) instead of the connection's peer.
    pub behind_proxy: bool,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            requests_per_second: 0.0,
            burst: 100,
            behind_proxy: false,
        }
    }
}

impl RateLimitConfig {
    fn validate(&self) -> Result<()> {
        if !self.requests_per_second.is_finite() || self.requests_per_second < 0.0 {
            return Err(Error::Config(
                "rate_limit.requests_per_second must be 0 (off) or above".into(),
            ));
        }
        if self.requests_per_second > 0.0 && self.burst == 0 {
            return Err(Error::Config("rate_limit.burst must be at least 1".into()));
        }
        Ok(())
    }
}

/// A duration as written: `"24h"`, or a bare `0` (which an environment
/// variable arrives as).
fn duration_text<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Text {
        S(String),
        N(u64),
    }
    Ok(match Text::deserialize(d)? {
        Text::S(s) => s,
        Text::N(n) => n.to_string(),
    })
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistryConfig {
    /// Allow deleting manifests, tags and blobs.
    pub delete_enabled: bool,
    /// Largest manifest accepted, in bytes.
    pub max_manifest_bytes: u64,
    /// Cap on `n` for tags, catalog and referrers pages.
    pub max_page_size: usize,
    /// Mount a blob without `from` when another repository holds it.
    pub auto_mount: bool,
    /// Advertised as `OCI-Chunk-Min-Length`.
    pub chunk_min_length: u64,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 5000)),
            data_dir: PathBuf::from("berth-data"),
            log: "info".into(),
            log_format: LogFormat::Text,
            max_concurrent_requests: 1024,
            header_read_timeout: "10s".into(),
            metrics_listen: None,
            tls: None,
            registry: RegistryConfig::default(),
            releases: ReleasePolicy::default(),
            webhooks: Vec::new(),
            scan: ScanPolicy::default(),
            gc: GcConfig::default(),
            rate_limit: RateLimitConfig::default(),
            storage: StorageConfig::default(),
            metadata: MetadataConfig::default(),
            auth: None,
            ignored_env: Vec::new(),
        }
    }
}

impl Default for RegistryConfig {
    fn default() -> Self {
        let s = Settings::default();
        RegistryConfig {
            delete_enabled: s.delete_enabled,
            max_manifest_bytes: s.max_manifest_bytes,
            max_page_size: s.max_page_size,
            auto_mount: s.auto_mount,
            chunk_min_length: 1024 * 1024,
        }
    }
}

impl Config {
    /// Defaults, then `file`, then the `BERTH_*` variables among `env`.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config> {
        let mut merged =
            toml::Value::try_from(Config::default()).map_err(|e| Error::Config(e.to_string()))?;
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| Error::Config(format!("cannot read {}: {e}", path.display())))?;
            let table: toml::Value = toml::from_str(&text)
                .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
            merge(&mut merged, table);
        }
        let mut ignored_env = Vec::new();
        for (key, value) in env {
            match env_key(&key, &value)? {
                EnvKey::Config(path) => merge(&mut merged, nest(&path, scalar(&value))),
                EnvKey::NotConfig => {}
                EnvKey::Unknown => ignored_env.push(key),
            }
        }
        let mut config: Config = merged
            .try_into()
            .map_err(|e: toml::de::Error| Error::Config(e.to_string()))?;
        config.validate()?;
        ignored_env.sort();
        config.ignored_env = ignored_env;
        Ok(config)
    }

    fn validate(&self) -> Result<()> {
        self.storage.validate()?;
        self.rate_limit.validate()?;
        self.gc_policy()?;
        self.gc_interval()?;
        if parse_duration(&self.header_read_timeout)?.is_zero() {
            return Err(Error::Config("header_read_timeout must be above 0".into()));
        }
        let mut names = std::collections::HashSet::new();
        for hook in &self.webhooks {
            if !names.insert(hook.name.as_str()) {
                return Err(Error::Config(format!(
                    "two webhooks are named {:?}",
                    hook.name
                )));
            }
            if !hook.url.starts_with("http://") && !hook.url.starts_with("https://") {
                return Err(Error::Config(format!(
                    "webhook {:?}: url must be http(s)",
                    hook.name
                )));
            }
        }
        if self.max_concurrent_requests == 0 {
            return Err(Error::Config(
                "max_concurrent_requests must be at least 1".into(),
            ));
        }
        if self.registry.max_page_size == 0 {
            return Err(Error::Config(
                "registry.max_page_size must be at least 1".into(),
            ));
        }
        if self.registry.max_manifest_bytes < 4 * 1024 * 1024 {
            return Err(Error::Config(
                "registry.max_manifest_bytes must be at least 4194304 (4 MiB)".into(),
            ));
        }
        Ok(())
    }

    /// What garbage collection may remove.
    pub fn gc_policy(&self) -> Result<GcPolicy> {
        let ms =
            |s: &str| parse_duration(s).map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        if self.gc.batch == 0 {
            return Err(Error::Config("gc.batch must be at least 1".into()));
        }
        Ok(GcPolicy {
            grace_ms: ms(&self.gc.grace_period)?,
            keep_history: self.gc.keep_history,
            delete_untagged: self.gc.delete_untagged,
            batch: self.gc.batch,
            upload_ttl_ms: ms(&self.gc.upload_ttl)?,
        })
    }

    /// How often collection runs by itself, if at all.
    pub fn gc_interval(&self) -> Result<Option<std::time::Duration>> {
        parse_duration(&self.gc.interval).map(|d| (!d.is_zero()).then_some(d))
    }

    pub fn registry_settings(&self) -> Settings {
        let r = &self.registry;
        Settings {
            delete_enabled: r.delete_enabled,
            max_manifest_bytes: r.max_manifest_bytes,
            max_page_size: r.max_page_size,
            auto_mount: r.auto_mount,
            chunk_min_length: r.chunk_min_length,
            releases: self.releases.clone(),
            gc: self.gc_policy().unwrap_or_else(|_| Settings::default().gc),
            scan: self.scan.clone(),
        }
    }
}

/// Top-level keys of [`Config`]; `tls` and `auth` are absent from the
/// serialised defaults, so the list is written out (a test checks it).
const TOP_LEVEL_KEYS: &[&str] = &[
    "listen",
    "data_dir",
    "log",
    "log_format",
    "max_concurrent_requests",
    "header_read_timeout",
    "metrics_listen",
    "tls",
    "registry",
    "releases",
    "webhooks",
    "scan",
    "gc",
    "rate_limit",
    "storage",
    "metadata",
    "auth",
];

/// What one environment variable is to the configuration.
#[derive(Debug, PartialEq)]
enum EnvKey {
    /// A key path to overlay (`BERTH_GC__INTERVAL` is `["gc", "interval"]`).
    Config(Vec<String>),
    /// Not ours: another prefix, a client-side variable, or a Kubernetes
    /// service link (`BERTH_SERVICE_HOST`, `BERTH_PORT=tcp://...`).
    NotConfig,
    /// `BERTH_*` but no key at all, nor close to one: ignored with a warning.
    Unknown,
}

/// Sorts one environment variable. A variable whose first part names a
/// top-level key is configuration, so a misspelt key inside a section
/// (`BERTH_REGISTRY__DELETE_ENABLD`) fails later with the key's name; one that
/// names no key but is within an edit or two of one (`BERTH_DATA_DIRR`) is
/// refused here as a likely typo; anything else cannot be a key and must not
/// stop start-up.
fn env_key(key: &str, value: &str) -> Result<EnvKey> {
    let Some(name) = key.strip_prefix(ENV_PREFIX) else {
        return Ok(EnvKey::NotConfig);
    };
    if CLIENT_ONLY_ENV.contains(&key) || is_service_link(key, value) {
        return Ok(EnvKey::NotConfig);
    }
    let path: Vec<String> = name.split("__").map(str::to_lowercase).collect();
    if TOP_LEVEL_KEYS.contains(&path[0].as_str()) {
        return Ok(EnvKey::Config(path));
    }
    let near = TOP_LEVEL_KEYS.iter().find(|known| {
        let allowed = if known.len() <= 4 { 1 } else { 2 };
        strsim::levenshtein(known, &path[0]) <= allowed
    });
    match near {
        Some(known) => Err(Error::Config(format!(
            "environment variable {key}: no key {:?} (did you mean {ENV_PREFIX}{}?)",
            path[0],
            known.to_uppercase()
        ))),
        None => Ok(EnvKey::Unknown),
    }
}

/// The variables Kubernetes gives a pod for each Service in its namespace
/// (`<SVC>_SERVICE_HOST`, `<SVC>_SERVICE_PORT[_<NAME>]`, `<SVC>_PORT=tcp://...`,
/// `<SVC>_PORT_<N>_<PROTO>[_PROTO|_PORT|_ADDR]`): for a Service named `berth`
/// or `berth-*` they share our prefix.
fn is_service_link(key: &str, value: &str) -> bool {
    let parts: Vec<&str> = key.split('_').collect();
    let is_proto = |p: &str| matches!(p, "TCP" | "UDP" | "SCTP");
    let service = parts
        .windows(2)
        .enumerate()
        .any(|(i, w)| w == ["SERVICE", "HOST"] && i + 2 == parts.len() || w == ["SERVICE", "PORT"]);
    let port_url = parts.last() == Some(&"PORT") && value.contains("://");
    let port_n = parts.windows(3).enumerate().any(|(i, w)| {
        let rest = &parts[i + 3..];
        w[0] == "PORT"
            && !w[1].is_empty()
            && w[1].bytes().all(|b| b.is_ascii_digit())
            && is_proto(w[2])
            && (rest.is_empty() || rest.len() == 1 && matches!(rest[0], "PROTO" | "PORT" | "ADDR"))
    });
    service || port_url || port_n
}

/// An environment value read as a TOML scalar (number, boolean, array) where
/// it parses as one, else as a string.
fn scalar(value: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {value}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_owned()))
}

fn nest(path: &[String], value: toml::Value) -> toml::Value {
    path.iter().rev().fold(value, |inner, key| {
        let mut t = toml::Table::new();
        t.insert(key.clone(), inner);
        toml::Value::Table(t)
    })
}

fn merge(base: &mut toml::Value, over: toml::Value) {
    match (base, over) {
        (toml::Value::Table(b), toml::Value::Table(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(existing) => merge(existing, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_are_the_embedded_zero_config() {
        let c = Config::load(None, Vec::new()).expect("defaults load");
        assert_eq!(c.listen.to_string(), "127.0.0.1:5000");
        assert_eq!(c.data_dir, PathBuf::from("berth-data"));
        assert!(c.registry.delete_enabled);
    }

    #[test]
    fn file_then_environment_override() {
        let dir = std::env::temp_dir().join(format!("berth-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let file = dir.join("berth.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:6000\"\n[registry]\ndelete_enabled = false\n",
        )
        .expect("write");
        let c = Config::load(
            Some(&file),
            env(&[
                ("BERTH_DATA_DIR", "/srv/berth"),
                ("BERTH_REGISTRY__MAX_PAGE_SIZE", "50"),
                ("BERTH_URL", "http://elsewhere:5000"),
                ("OTHER", "x"),
            ]),
        )
        .expect("loads");
        assert_eq!(c.listen.port(), 6000);
        assert!(!c.registry.delete_enabled);
        assert_eq!(c.data_dir, PathBuf::from("/srv/berth"));
        assert_eq!(c.registry.max_page_size, 50);
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn rate_limits_are_validated() {
        let bad = |rate: f64, burst: u32| {
            RateLimitConfig {
                requests_per_second: rate,
                burst,
                behind_proxy: false,
            }
            .validate()
            .is_err()
        };
        assert!(bad(-1.0, 1) && bad(f64::NAN, 1) && bad(1.0, 0));
        assert!(!bad(0.0, 0) && !bad(0.5, 1));
        let c = Config::load(
            None,
            env(&[
                ("BERTH_RATE_LIMIT__REQUESTS_PER_SECOND", "5"),
                ("BERTH_RATE_LIMIT__BURST", "10"),
            ]),
        )
        .expect("loads");
        assert_eq!(c.rate_limit.requests_per_second, 5.0);
        assert_eq!(c.rate_limit.burst, 10);
    }

    #[test]
    fn durations_parse_with_units() {
        assert!(Config::load(None, env(&[("BERTH_GC__GRACE_PERIOD", "soon")])).is_err());
        let c = Config::load(None, env(&[("BERTH_GC__GRACE_PERIOD", "0")])).expect("bare zero");
        assert_eq!(c.gc_policy().map(|p| p.grace_ms).ok(), Some(0));
    }

    #[test]
    fn releases_and_webhooks_load_from_toml() {
        let dir = tempfile_dir("releases");
        let file = dir.join("berth.toml");
        std::fs::write(
            &file,
            r#"
[releases]
immutable_tags = ["v*.*.*"]
[[releases.gates]]
repositories = ["models/**"]
tags = ["production"]
metric = "auc"
op = ">="
threshold = 0.9
[[webhooks]]
name = "deploy"
url = "http://127.0.0.1:9000/hook"
secret = "s"
"#,
        )
        .expect("write");
        let c = Config::load(Some(&file), Vec::new()).expect("loads");
        assert_eq!(c.releases.gates.len(), 1);
        assert_eq!(c.webhooks[0].name, "deploy");
        std::fs::write(&file, "[[releases.gates]]\nrepositories = []\ntags = []\nmetric = \"x\"\nop = \">\"\nthreshold = 1\n")
            .expect("write");
        assert!(
            Config::load(Some(&file), Vec::new()).is_err(),
            "op must be >= or <="
        );
        std::fs::remove_dir_all(dir).ok();
    }

    fn tempfile_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("berth-config-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        dir
    }

    /// The variables Kubernetes sets for a Service named `berth` (and one
    /// named `berth-db` with a named port) are no configuration.
    #[test]
    fn kubernetes_service_links_are_left_alone() {
        let links = [
            ("BERTH_SERVICE_HOST", "10.96.0.10"),
            ("BERTH_SERVICE_PORT", "5000"),
            ("BERTH_PORT", "tcp://10.96.0.10:5000"),
            ("BERTH_PORT_5000_TCP", "tcp://10.96.0.10:5000"),
            ("BERTH_PORT_5000_TCP_PROTO", "tcp"),
            ("BERTH_PORT_5000_TCP_PORT", "5000"),
            ("BERTH_PORT_5000_TCP_ADDR", "10.96.0.10"),
            ("BERTH_DB_SERVICE_PORT_POSTGRES_WIRE", "5432"),
            ("BERTH_DB_PORT_5432_UDP_ADDR", "10.96.0.11"),
        ];
        let c = Config::load(None, env(&links)).expect("service links do not stop start-up");
        assert!(c.ignored_env.is_empty(), "{:?}", c.ignored_env);
        assert_eq!(c.listen.to_string(), "127.0.0.1:5000");
        for (key, value) in links {
            assert_eq!(env_key(key, value).ok(), Some(EnvKey::NotConfig), "{key}");
        }
    }

    #[test]
    fn variables_that_cannot_be_keys_are_ignored_and_named() {
        let c = Config::load(
            None,
            env(&[
                ("BERTH_BUILD_SHA", "abc"),
                ("BERTH_PORT", "6000"),
                ("BERTH_URL", "http://elsewhere:5000"),
            ]),
        )
        .expect("loads");
        assert_eq!(c.ignored_env, ["BERTH_BUILD_SHA", "BERTH_PORT"]);
    }

    #[test]
    fn misspelt_keys_are_refused_naming_them() {
        for (key, named) in [
            ("BERTH_DATA_DIRR", "BERTH_DATA_DIR"),
            ("BERTH_LISTN", "BERTH_LISTEN"),
            ("BERTH_STORAG__BACKEND", "BERTH_STORAGE"),
        ] {
            let err = Config::load(None, env(&[(key, "x")])).expect_err(key);
            let text = err.to_string();
            assert!(text.contains(key) && text.contains(named), "{text}");
        }
        let err = Config::load(None, env(&[("BERTH_REGISTRY__DELETE_ENABLD", "false")]))
            .expect_err("misspelt key in a section");
        assert!(err.to_string().contains("delete_enabld"), "{err}");
    }

    #[test]
    fn every_top_level_key_is_known() {
        let full = Config {
            tls: Some(TlsConfig {
                cert: "c".into(),
                key: "k".into(),
            }),
            auth: Some(toml::from_str("htpasswd = \"users\"").expect("auth section")),
            metrics_listen: Some(SocketAddr::from(([127, 0, 0, 1], 9100))),
            ..Config::default()
        };
        let toml::Value::Table(table) = toml::Value::try_from(full).expect("serialises") else {
            panic!("a table");
        };
        let mut keys: Vec<&str> = table.keys().map(String::as_str).collect();
        let mut known = TOP_LEVEL_KEYS.to_vec();
        keys.sort();
        known.sort();
        assert_eq!(keys, known);
    }

    #[test]
    fn unknown_keys_are_refused_from_file_and_environment() {
        let dir = tempfile_dir("unknown");
        let file = dir.join("berth.toml");
        std::fs::write(&file, "[registry]\ndelete_enabld = false\n").expect("write");
        let err = Config::load(Some(&file), Vec::new()).expect_err("misspelt key in the file");
        assert!(err.to_string().contains("delete_enabld"), "{err}");
        std::fs::remove_dir_all(dir).ok();
        assert!(matches!(
            Config::load(None, env(&[("BERTH_LOGG", "1")])),
            Err(Error::Config(_))
        ));
        assert!(matches!(
            Config::load(None, env(&[("BERTH_REGISTRY__NOPE", "1")])),
            Err(Error::Config(_))
        ));
        assert!(matches!(
            Config::load(None, env(&[("BERTH_REGISTRY__MAX_PAGE_SIZE", "0")])),
            Err(Error::Config(_))
        ));
    }
}
