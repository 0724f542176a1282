//! Which object store holds the bytes: the `[storage]` config section and the
//! stores it opens. Local disk by default; S3, GCS and Azure through
//! object_store, with retries and timeouts.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::signer::Signer;
use object_store::{BackoffConfig, ClientOptions, RetryConfig};
use serde::{Deserialize, Serialize};

use super::{BlobStore, LocalDisk, ObjectStorage};
use crate::error::{Error, Result};
pub use crate::secret::Secret;
use crate::time::parse_duration;

/// S3's (and GCS's) smallest multipart part but the last: 5 MiB.
pub const S3_MIN_PART: u64 = 5 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Files under the data directory.
    #[default]
    Local,
    S3,
    Gcs,
    Azure,
}

/// The `[storage]` section. Options a backend does not use are ignored by it;
/// unset credentials come from the backend's usual environment variables
/// (`AWS_*`, `GOOGLE_*`, `AZURE_*`) and instance metadata.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    pub backend: Backend,
    /// Bucket (S3, GCS) or container (Azure).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    /// Every object name starts with this (a bucket shared with others).
    pub prefix: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Service URL, for S3-compatible servers and emulators.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_access_key: Option<Secret>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_token: Option<Secret>,
    /// Allow plain-HTTP endpoints.
    pub allow_http: bool,
    /// S3: bucket in the host name rather than the path.
    pub virtual_hosted_style: bool,
    /// GCS: service-account key file (JSON).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_account: Option<PathBuf>,
    /// Azure: storage account and its access key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_key: Option<Secret>,
    /// Smallest multipart part; defaults to the backend's rule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_part_size: Option<u64>,
    /// Answer blob GETs with 307 to a presigned URL instead of the bytes.
    pub redirect: bool,
    /// How long a presigned URL stays valid.
    pub redirect_ttl: String,
    /// Retries of a failed request (5xx, 429/SlowDown, timeouts, resets).
    pub max_retries: usize,
    /// Give up retrying a request after this long.
    pub retry_timeout: String,
    /// One request (a part, a read) may take this long.
    pub timeout: String,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            backend: Backend::Local,
            bucket: None,
            prefix: String::new(),
            region: None,
            endpoint: None,
            access_key_id: None,
            secret_access_key: None,
            session_token: None,
            allow_http: false,
            virtual_hosted_style: false,
            service_account: None,
            account: None,
            access_key: None,
            min_part_size: None,
            redirect: false,
            redirect_ttl: "15m".into(),
            max_retries: 10,
            retry_timeout: "3m".into(),
            timeout: "5m".into(),
        }
    }
}

impl StorageConfig {
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::Config(format!("storage: {m}")));
        for d in [&self.redirect_ttl, &self.retry_timeout, &self.timeout] {
            parse_duration(d)?;
        }
        match self.backend {
            Backend::S3 | Backend::Gcs | Backend::Azure if self.bucket.is_none() => {
                bad("bucket is required (the container, for Azure)")
            }
            Backend::Local if self.redirect => bad("redirect needs an s3, gcs or azure backend"),
            Backend::Local if !self.prefix.is_empty() => {
                bad("prefix applies to object storage, not local disk")
            }
            _ => Ok(()),
        }
    }

    fn client(&self) -> Result<(ClientOptions, RetryConfig)> {
        let options = ClientOptions::new()
            .with_allow_http(self.allow_http)
            .with_timeout(parse_duration(&self.timeout)?)
            .with_connect_timeout(Duration::from_secs(10));
        let retry = RetryConfig {
            backoff: BackoffConfig::default(),
            max_retries: self.max_retries,
            retry_timeout: parse_duration(&self.retry_timeout)?,
        };
        Ok((options, retry))
    }
}

/// Opens the configured store (local disk under `data_dir` by default).
pub fn open(config: &StorageConfig, data_dir: &Path) -> Result<BlobStore> {
    config.validate()?;
    crate::install_crypto_provider();
    let built = |e: object_store::Error| Error::Config(format!("storage: {e}"));
    let bucket = config.bucket.clone().unwrap_or_default();
    let (options, retry) = config.client()?;
    let ttl = parse_duration(&config.redirect_ttl)?;
    let min_part = |default: u64| config.min_part_size.unwrap_or(default);
    let (store, signer): (ObjectStorage, Arc<dyn Signer>) = match config.backend {
        Backend::Local => return Ok(BlobStore::new(LocalDisk::open(data_dir)?)),
        Backend::S3 => {
            let mut b = AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .with_allow_http(config.allow_http)
                .with_virtual_hosted_style_request(config.virtual_hosted_style)
                .with_client_options(options)
                .with_retry(retry);
            if let Some(v) = &config.region {
                b = b.with_region(v);
            }
            if let Some(v) = &config.endpoint {
                b = b.with_endpoint(v);
            }
            if let Some(v) = &config.access_key_id {
                b = b.with_access_key_id(v);
            }
            if let Some(v) = &config.secret_access_key {
                b = b.with_secret_access_key(v.expose());
            }
            if let Some(v) = &config.session_token {
                b = b.with_token(v.expose());
            }
            let s3 = Arc::new(b.build().map_err(built)?);
            (
                ObjectStorage::new(Arc::clone(&s3), min_part(S3_MIN_PART)),
                s3,
            )
        }
        Backend::Gcs => {
            let mut b = GoogleCloudStorageBuilder::from_env()
                .with_bucket_name(bucket)
                .with_client_options(options)
                .with_retry(retry);
            if let Some(v) = &config.service_account {
                b = b.with_service_account_path(v.display().to_string());
            }
            let gcs = Arc::new(b.build().map_err(built)?);
            (
                ObjectStorage::new(Arc::clone(&gcs), min_part(S3_MIN_PART)),
                gcs,
            )
        }
        Backend::Azure => {
            let mut b = MicrosoftAzureBuilder::from_env()
                .with_container_name(bucket)
                .with_allow_http(config.allow_http)
                .with_client_options(options)
                .with_retry(retry);
            if let Some(v) = &config.account {
                b = b.with_account(v);
            }
            if let Some(v) = &config.access_key {
                b = b.with_access_key(v.expose());
            }
            if let Some(v) = &config.endpoint {
                b = b.with_endpoint(v.clone());
            }
            let azure = Arc::new(b.build().map_err(built)?);
            // Azure blocks have no minimum size.
            (ObjectStorage::new(Arc::clone(&azure), min_part(0)), azure)
        }
    };
    let store = store.with_prefix(&config.prefix);
    Ok(BlobStore::new(if config.redirect {
        store.with_redirect(signer, ttl)
    } else {
        store
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let c = StorageConfig {
            secret_access_key: Some(Secret::new("hunter2")),
            ..StorageConfig::default()
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn object_storage_needs_a_bucket_and_redirects_need_object_storage() {
        let s3 = StorageConfig {
            backend: Backend::S3,
            ..StorageConfig::default()
        };
        assert!(s3.validate().is_err());
        let local_redirect = StorageConfig {
            redirect: true,
            ..StorageConfig::default()
        };
        assert!(local_redirect.validate().is_err());
    }
}
