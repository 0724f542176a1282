//! Events: the append-only log of pushes, deletes, tag moves, promotions,
//! rollbacks and refused promotions, rendered in CNCF Distribution's
//! notification envelope, and delivered to webhooks from a durable outbox: each
//! webhook has a cursor in the database, advanced only after a 2xx, so delivery
//! resumes after a restart and retries with backoff while the receiver is down.

use std::time::Duration;

use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};

use super::Registry;
use crate::error::Result;
use crate::meta::{Event, EventAction, ReleaseArea};
use crate::oci::{Digest, RepoName, Tag};
use crate::time::rfc3339;

/// Content type of a webhook delivery (Distribution's envelope).
pub const ENVELOPE_MEDIA_TYPE: &str = "application/vnd.docker.distribution.events.v1+json";
/// Header carrying `sha256=<hex HMAC of the body>` when a secret is set.
pub const SIGNATURE_HEADER: &str = "X-Berth-Signature";
/// Events per delivery.
const BATCH: usize = 100;
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Look for events at least this often even without a wake-up.
const POLL: Duration = Duration::from_secs(2);

/// A `[[webhooks]]` entry.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    /// Names the delivery cursor; keep it when changing the URL.
    pub name: String,
    pub url: String,
    /// Signs each body with HMAC-SHA256 in `X-Berth-Signature`.
    #[serde(default)]
    pub secret: Option<String>,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_timeout_ms() -> u64 {
    5_000
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Events in CNCF Distribution's notification envelope, as webhooks
/// receive them and the events API answers.
#[derive(Debug, Serialize)]
pub struct Envelope<'a> {
    pub events: Vec<EnvelopeEvent<'a>>,
}

impl<'a> Envelope<'a> {
    pub fn of(events: &'a [Event]) -> Envelope<'a> {
        Envelope {
            events: events.iter().map(EnvelopeEvent::from).collect(),
        }
    }
}

/// One event in the envelope, with Berth's additions under `berth`.
#[derive(Debug, Serialize)]
pub struct EnvelopeEvent<'a> {
    pub id: String,
    pub timestamp: String,
    pub action: EventAction,
    pub target: Target<'a>,
    pub actor: Named<'a>,
    pub source: Source,
    pub berth: Additions<'a>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Target<'a> {
    pub media_type: Option<&'a str>,
    pub size: Option<u64>,
    /// Distribution's older name for `size`.
    pub length: Option<u64>,
    pub digest: Option<&'a Digest>,
    pub repository: &'a RepoName,
    pub tag: Option<&'a Tag>,
}

#[derive(Debug, Serialize)]
pub struct Named<'a> {
    pub name: Option<&'a str>,
}

#[derive(Debug, Serialize)]
pub struct Source {
    #[serde(rename = "instanceID")]
    pub instance_id: &'static str,
}

#[derive(Debug, Serialize)]
pub struct Additions<'a> {
    pub from: Option<&'a Digest>,
    pub reason: Option<&'a str>,
}

impl<'a> From<&'a Event> for EnvelopeEvent<'a> {
    fn from(e: &'a Event) -> EnvelopeEvent<'a> {
        EnvelopeEvent {
            id: e.id.to_string(),
            timestamp: rfc3339(e.at_ms),
            action: e.action,
            target: Target {
                media_type: e.media_type.as_deref(),
                size: e.size,
                length: e.size,
                digest: e.digest.as_ref(),
                repository: &e.repo,
                tag: e.tag.as_ref(),
            },
            actor: Named {
                name: e.actor.as_deref(),
            },
            source: Source {
                instance_id: "berth",
            },
            berth: Additions {
                from: e.old_digest.as_ref(),
                reason: e.reason.as_deref(),
            },
        }
    }
}

/// `sha256=<hex>` of the HMAC-SHA256 of `body` under `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| {
            <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&[]).expect("HMAC takes any key")
        });
    mac.update(body);
    let out = mac.finalize().into_bytes();
    format!(
        "sha256={}",
        crate::oci::Digest::from_output(crate::oci::Algorithm::Sha256, &out).hex()
    )
}

impl Registry {
    /// Events after id `after`, oldest first.
    pub async fn events_after(&self, after: i64, n: usize) -> Result<Vec<Event>> {
        self.meta(move |m: &ReleaseArea| m.events_after(after, n))
            .await
    }

    /// Delivers the event log to one webhook, forever: run it as a task and
    /// abort it at shutdown. At least once: a batch whose 2xx was not
    /// recorded before a crash is sent again.
    pub async fn deliver_webhook(self, hook: Webhook) {
        let client = match reqwest::Client::builder()
            .timeout(Duration::from_millis(hook.timeout_ms))
            .build()
        {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(webhook = %hook.name, error = %e, "webhook client");
                return;
            }
        };
        let mut backoff = FIRST_BACKOFF;
        loop {
            let woken = self.events.notified();
            match self.deliver_once(&client, &hook).await {
                Ok(true) => {
                    self.metrics.webhook(&hook.name, true);
                    backoff = FIRST_BACKOFF;
                }
                Ok(false) => {
                    let _ = tokio::time::timeout(POLL, woken).await;
                }
                Err(e) => {
                    self.metrics.webhook(&hook.name, false);
                    tracing::warn!(webhook = %hook.name, error = %e, retry_in = ?backoff, "webhook delivery failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// Sends the next batch; false when there was nothing to send.
    async fn deliver_once(&self, client: &reqwest::Client, hook: &Webhook) -> Result<bool> {
        let name = hook.name.clone();
        let cursor = self
            .meta(move |m: &ReleaseArea| m.webhook_cursor(&name))
            .await?;
        let batch = self.events_after(cursor, BATCH).await?;
        let Some(last) = batch.last().map(|e| e.id) else {
            return Ok(false);
        };
        let body = serde_json::to_vec(&Envelope::of(&batch))
            .map_err(|e| crate::Error::Internal(e.to_string()))?;
        let mut request = client
            .post(&hook.url)
            .header(reqwest::header::CONTENT_TYPE, ENVELOPE_MEDIA_TYPE);
        if let Some(secret) = &hook.secret {
            request = request.header(SIGNATURE_HEADER, signature(secret, &body));
        }
        let response = request.body(body).send().await.map_err(|e| {
            crate::Error::Internal(format!("POST {}: {}", hook.url, e.without_url()))
        })?;
        if !response.status().is_success() {
            return Err(crate::Error::Internal(format!(
                "POST {} answered {}",
                hook.url,
                response.status()
            )));
        }
        let name = hook.name.clone();
        self.meta(move |m: &ReleaseArea| m.set_webhook_cursor(&name, last))
            .await?;
        tracing::debug!(webhook = %hook.name, last, "events delivered");
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_hmac_sha256_hex() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let hook = Webhook {
            name: "deploy".into(),
            url: "http://127.0.0.1:1/x".into(),
            secret: Some("s3cr3t".into()),
            timeout_ms: 1,
        };
        assert!(!format!("{hook:?}").contains("s3cr3t"));
    }
}
