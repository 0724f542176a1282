//! Typed configuration: defaults, overlaid by a TOML file, overlaid by `BERTH_*`
//! environment variables (`BERTH_DATA_DIR`, `BERTH_REGISTRY__DELETE_ENABLED`:
//! a double underscore steps into a section), overlaid by command-line flags.
//! Unknown keys are refused wherever they come from.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::auth::AuthConfig;
use crate::error::{Error, Result};
use crate::meta::GcPolicy;
use crate::registry::Settings;
use crate::registry::events::Webhook;
use crate::registry::releases::ReleasePolicy;
use crate::storage::backend::StorageConfig;

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
    /// Requests handled at once; more are answered 429 with Retry-After.
    pub max_concurrent_requests: usize,
    /// A client must send its request headers within this (slowloris guard).
    #[serde(deserialize_with = "duration_text")]
    pub header_read_timeout: String,
    /// Serve HTTPS with these PEM files.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
    pub registry: RegistryConfig,
    /// Immutable tags, promotion gates, rollback policies.
    pub releases: ReleasePolicy,
    /// Where events are delivered.
    pub webhooks: Vec<Webhook>,
    pub gc: GcConfig,
    /// Where blobs and manifests are stored: local disk or object storage.
    pub storage: StorageConfig,
    /// Authentication and access rules; absent means none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthConfig>,
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

/// Parses `500ms`, `30s`, `10m`, `24h`, `7d` (and `0`).
pub fn parse_duration(s: &str) -> Result<std::time::Duration> {
    let s = s.trim();
    if s == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| Error::Config(format!("duration {s:?}: expected a number and a unit")))?;
    let ms = match unit {
        "ms" => n,
        "s" => n * 1000,
        "m" => n * 60_000,
        "h" => n * 3_600_000,
        "d" => n * 86_400_000,
        _ => {
            return Err(Error::Config(format!(
                "duration {s:?}: unit must be ms, s, m, h or d"
            )));
        }
    };
    Ok(std::time::Duration::from_millis(ms))
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

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 5000)),
            data_dir: PathBuf::from("berth-data"),
            log: "info".into(),
            max_concurrent_requests: 1024,
            header_read_timeout: "10s".into(),
            tls: None,
            registry: RegistryConfig::default(),
            releases: ReleasePolicy::default(),
            webhooks: Vec::new(),
            gc: GcConfig::default(),
            storage: StorageConfig::default(),
            auth: None,
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
        for (key, value) in env {
            if CLIENT_ONLY_ENV.contains(&key.as_str()) {
                continue;
            }
            let Some(name) = key.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            let path: Vec<String> = name.split("__").map(str::to_lowercase).collect();
            merge(&mut merged, nest(&path, scalar(&value)));
        }
        let config: Config = merged
            .try_into()
            .map_err(|e: toml::de::Error| Error::Config(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<()> {
        self.storage.validate()?;
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
        }
    }
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
    fn durations_parse_with_units() {
        let ok = [
            ("0", 0),
            ("500ms", 500),
            ("30s", 30_000),
            ("10m", 600_000),
            ("24h", 86_400_000),
            ("7d", 604_800_000),
        ];
        for (s, ms) in ok {
            assert_eq!(
                parse_duration(s).ok().map(|d| d.as_millis()),
                Some(ms),
                "{s}"
            );
        }
        for s in ["", "h", "10", "10y", "-1s", "1.5h"] {
            assert!(parse_duration(s).is_err(), "{s}");
        }
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

    #[test]
    fn unknown_keys_are_refused_from_file_and_environment() {
        assert!(matches!(
            Config::load(None, env(&[("BERTH_NOPE", "1")])),
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
