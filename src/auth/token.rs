//! Docker token authentication: a built-in token service issuing ES256 JWTs
//! (`GET /auth/token` and the OAuth2 `POST` with password and refresh grants)
//! and strict verification of the tokens clients present. Only the configured
//! key verifies: a key named in the token itself is never used, `alg` must be
//! `ES256`, and issuer, audience, expiry and not-before are checked with a
//! small leeway.

use std::path::PathBuf;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::Action;
use crate::error::{Error, Result};

/// Clock skew tolerated on `exp` and `nbf`, in seconds.
const LEEWAY: i64 = 30;
/// Refresh tokens live this much longer than access tokens.
const REFRESH_FACTOR: u32 = 288;

/// The `[auth.token]` section: when present, clients use Bearer tokens.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    #[serde(default = "default_name")]
    pub service: String,
    #[serde(default = "default_name")]
    pub issuer: String,
    /// PKCS#8 PEM file of the P-256 signing key; generated on first start if missing.
    pub key: PathBuf,
    /// Lifetime of an access token (`5m`).
    #[serde(default = "default_lifetime")]
    pub lifetime: String,
}

fn default_name() -> String {
    "berth".into()
}

fn default_lifetime() -> String {
    "5m".into()
}

/// What a token grants: repository name → actions.
pub type Grants = Vec<(String, Vec<Action>)>;

#[derive(Debug, Clone)]
pub struct Verified {
    pub subject: Option<String>,
    pub grants: Grants,
}

pub struct TokenService {
    key: SigningKey,
    verifying: VerifyingKey,
    kid: String,
    pub service: String,
    issuer: String,
    lifetime: Duration,
}

impl std::fmt::Debug for TokenService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenService")
            .field("kid", &self.kid)
            .field("service", &self.service)
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl TokenService {
    /// Loads the signing key, creating it (mode 0600) if the file is missing.
    pub fn new(config: &TokenConfig) -> Result<TokenService> {
        let key = if config.key.exists() {
            let pem = std::fs::read_to_string(&config.key)
                .map_err(|e| Error::Config(format!("token key {}: {e}", config.key.display())))?;
            SigningKey::from_pkcs8_pem(&pem).map_err(|e| {
                Error::Config(format!(
                    "token key {}: not a P-256 PKCS#8 key: {e}",
                    config.key.display()
                ))
            })?
        } else {
            let key = generate_key()?;
            let pem = key
                .to_pkcs8_pem(LineEnding::LF)
                .map_err(|e| Error::Config(format!("token key: {e}")))?;
            write_private(&config.key, pem.as_bytes())?;
            tracing::info!(path = %config.key.display(), "generated a token signing key");
            key
        };
        let verifying = *key.verifying_key();
        let kid = crate::oci::Digest::sha256_of(verifying.to_sec1_point(true).as_bytes()).hex()
            [..16]
            .to_owned();
        let lifetime = crate::time::parse_duration(&config.lifetime)?;
        Ok(TokenService {
            key,
            verifying,
            kid,
            service: config.service.clone(),
            issuer: config.issuer.clone(),
            lifetime,
        })
    }

    pub fn lifetime_secs(&self) -> u64 {
        self.lifetime.as_secs()
    }

    fn sign(&self, claims: &Value) -> String {
        let header = json!({ "alg": "ES256", "typ": "JWT", "kid": self.kid });
        let signing_input = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let signature: Signature = self.key.sign(signing_input.as_bytes());
        format!("{signing_input}.{}", B64.encode(signature.to_bytes()))
    }

    /// An access token for `subject` with `grants`.
    pub fn issue(&self, subject: Option<&str>, grants: &Grants) -> String {
        let t = now();
        let access: Vec<Value> = grants
            .iter()
            .map(
                |(name, actions)| json!({ "type": "repository", "name": name, "actions": actions }),
            )
            .collect();
        self.sign(&json!({
            "iss": self.issuer, "sub": subject.unwrap_or(""), "aud": self.service,
            "iat": t, "nbf": t, "exp": t + self.lifetime.as_secs() as i64,
            "jti": uuid::Uuid::new_v4().to_string(), "access": access,
        }))
    }

    /// A refresh token: it names the user, grants nothing by itself.
    pub fn issue_refresh(&self, subject: &str) -> String {
        let t = now();
        self.sign(&json!({
            "iss": self.issuer, "sub": subject, "aud": self.service,
            "iat": t, "nbf": t, "exp": t + (self.lifetime * REFRESH_FACTOR).as_secs() as i64,
            "jti": uuid::Uuid::new_v4().to_string(), "refresh": true,
        }))
    }

    /// Verifies an access token; refresh tokens are refused here.
    pub fn verify_access(&self, token: &str) -> Result<Verified> {
        let claims = self.verify(token)?;
        if claims.get("refresh").is_some() {
            return Err(Error::Internal(
                "a refresh token is not an access token".into(),
            ));
        }
        let mut grants = Grants::new();
        for a in claims["access"].as_array().into_iter().flatten() {
            if a["type"] != "repository" {
                continue;
            }
            let name = a["name"].as_str().unwrap_or_default().to_owned();
            let actions =
                serde_json::from_value::<Vec<Action>>(a["actions"].clone()).unwrap_or_default();
            grants.push((name, actions));
        }
        let subject = claims["sub"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_owned);
        Ok(Verified { subject, grants })
    }

    /// Verifies a refresh token and returns its user.
    pub fn verify_refresh(&self, token: &str) -> Result<String> {
        let claims = self.verify(token)?;
        if claims.get("refresh") != Some(&Value::Bool(true)) {
            return Err(Error::Internal("not a refresh token".into()));
        }
        claims["sub"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| Error::Internal("refresh token without a user".into()))
    }

    /// Signature, algorithm, issuer, audience and times; the error never
    /// reaches a client (it answers 401), so it may be specific.
    fn verify(&self, token: &str) -> Result<Value> {
        let bad = |why: &str| Error::Internal(format!("token refused: {why}"));
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("not a compact JWS"));
        };
        let header: Value =
            serde_json::from_slice(&B64.decode(h).map_err(|_| bad("header encoding"))?)
                .map_err(|_| bad("header json"))?;
        if header["alg"] != "ES256" {
            return Err(bad("algorithm must be ES256"));
        }
        let signature =
            Signature::from_slice(&B64.decode(s).map_err(|_| bad("signature encoding"))?)
                .map_err(|_| bad("signature form"))?;
        self.verifying
            .verify(format!("{h}.{p}").as_bytes(), &signature)
            .map_err(|_| bad("signature"))?;
        let claims: Value =
            serde_json::from_slice(&B64.decode(p).map_err(|_| bad("payload encoding"))?)
                .map_err(|_| bad("payload json"))?;
        if claims["iss"] != self.issuer.as_str() {
            return Err(bad("issuer"));
        }
        let audience_ok = match &claims["aud"] {
            Value::String(a) => *a == self.service,
            Value::Array(a) => a.iter().any(|x| *x == self.service.as_str()),
            _ => false,
        };
        if !audience_ok {
            return Err(bad("audience"));
        }
        let t = now();
        if claims["exp"].as_i64().is_none_or(|exp| exp + LEEWAY < t) {
            return Err(bad("expired"));
        }
        if claims["nbf"].as_i64().is_some_and(|nbf| nbf - LEEWAY > t) {
            return Err(bad("not yet valid"));
        }
        Ok(claims)
    }
}

fn generate_key() -> Result<SigningKey> {
    for _ in 0..8 {
        let mut bytes = [0u8; 32];
        bytes[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        bytes[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        if let Ok(k) = SigningKey::from_slice(&bytes) {
            return Ok(k);
        }
    }
    Err(Error::Config("could not generate a signing key".into()))
}

fn write_private(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options
        .open(path)
        .map_err(|e| Error::Config(format!("token key {}: {e}", path.display())))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

/// Parses `repository:<name>:<action>,<action>` scopes; unknown kinds and
/// actions are ignored (a token grants only what it names and Berth knows).
pub fn parse_scopes<'a>(scopes: impl Iterator<Item = &'a str>) -> Grants {
    let mut out: Grants = Vec::new();
    for scope in scopes.flat_map(|s| s.split(' ')).filter(|s| !s.is_empty()) {
        let mut parts = scope.splitn(2, ':');
        if parts.next() != Some("repository") {
            continue;
        }
        let Some((name, actions)) = parts.next().and_then(|rest| rest.rsplit_once(':')) else {
            continue;
        };
        let actions: Vec<Action> = actions
            .split(',')
            .filter_map(|a| match a {
                "pull" => Some(Action::Pull),
                "push" => Some(Action::Push),
                "delete" => Some(Action::Delete),
                "promote" => Some(Action::Promote),
                "*" => None,
                _ => None,
            })
            .collect();
        out.push((name.to_owned(), actions));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(dir: &std::path::Path) -> TokenService {
        TokenService::new(&TokenConfig {
            service: "berth".into(),
            issuer: "berth".into(),
            key: dir.join("token.pem"),
            lifetime: "5m".into(),
        })
        .expect("service")
    }

    #[test]
    fn tokens_round_trip_and_tampering_is_refused() {
        let dir = std::env::temp_dir().join(format!("berth-token-{}", std::process::id()));
        let s = service(&dir);
        let grants = vec![("team/app".to_owned(), vec![Action::Pull])];
        let t = s.issue(Some("alice"), &grants);
        let v = s.verify_access(&t).expect("valid");
        assert_eq!(v.subject.as_deref(), Some("alice"));
        assert_eq!(v.grants, grants);
        // The same key file is reused.
        assert!(service(&dir).verify_access(&t).is_ok());
        let parts: Vec<&str> = t.split('.').collect();
        let forged = format!("{}.{}.{}", parts[0], B64.encode(r#"{"iss":"berth","aud":"berth","exp":9999999999,"access":[{"type":"repository","name":"team/app","actions":["push"]}]}"#), parts[2]);
        assert!(s.verify_access(&forged).is_err());
        let none = format!("{}.{}.", B64.encode(r#"{"alg":"none"}"#), parts[1]);
        assert!(s.verify_access(&none).is_err());
        let hs = format!(
            "{}.{}.{}",
            B64.encode(r#"{"alg":"HS256"}"#),
            parts[1],
            parts[2]
        );
        assert!(s.verify_access(&hs).is_err());
        assert!(
            s.verify_access(&s.issue_refresh("alice")).is_err(),
            "refresh is not access"
        );
        assert_eq!(
            s.verify_refresh(&s.issue_refresh("alice")).ok().as_deref(),
            Some("alice")
        );
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn scopes_parse_like_docker_sends_them() {
        let g = parse_scopes(
            [
                "repository:team/app:pull,push",
                "repository:x:pull registry:catalog:*",
                "repository:y:*",
            ]
            .into_iter(),
        );
        assert_eq!(
            g[0],
            ("team/app".to_owned(), vec![Action::Pull, Action::Push])
        );
        assert_eq!(g[1], ("x".to_owned(), vec![Action::Pull]));
        assert_eq!(g.len(), 3);
    }
}
