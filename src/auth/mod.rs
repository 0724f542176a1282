//! Who is asking, and what they may do. HTTP Basic with an htpasswd file
//! (bcrypt only), optional anonymous pull, and per-repository rules: one
//! table decides every request, keyed by the parsed endpoint's repository and
//! action. No `[auth]` section means no authentication.

pub mod htpasswd;
pub mod token;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::glob::{Glob, any_matches};
use crate::oci::RepoName;

/// What a request does to a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Pull,
    Push,
    Delete,
    /// Moving an environment tag through promote or rollback.
    Promote,
}

/// A rule: these users may do these actions on repositories matching these globs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub repositories: Vec<Glob>,
    /// User names; `"*"` is any authenticated user.
    pub users: Vec<String>,
    pub actions: Vec<Action>,
}

/// Anonymous access.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Anonymous {
    #[default]
    None,
    Pull,
}

/// The `[auth]` config section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    pub htpasswd: std::path::PathBuf,
    #[serde(default)]
    pub anonymous: Anonymous,
    #[serde(default = "default_realm")]
    pub realm: String,
    /// Users who may run garbage collection and read every event.
    #[serde(default)]
    pub admins: Vec<String>,
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// With this section clients use Bearer tokens from `/auth/token`.
    #[serde(default)]
    pub token: Option<token::TokenConfig>,
}

fn default_realm() -> String {
    "berth".into()
}

/// Who a request comes from: a user, or nobody; with a Bearer token, what
/// the token grants (already limited to the rules when it was issued).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Principal {
    pub user: Option<String>,
    pub grants: Option<token::Grants>,
}

/// How long a verified password is remembered (bcrypt is slow by design, and
/// clients send Basic credentials with every request).
const VERIFIED_FOR: Duration = Duration::from_secs(60);

#[derive(Debug)]
pub struct Auth {
    config: AuthConfig,
    users: HashMap<String, String>,
    /// (user, keyed hash of the password) → when it was verified.
    verified: Mutex<HashMap<(String, [u8; 32]), Instant>>,
    /// Per-process key for the hashes above: no password is kept, even hashed plainly.
    key: [u8; 32],
    /// Verified for users with no entry, so that a wrong user costs what a
    /// wrong password costs and reveals nothing.
    dummy: String,
    tokens: Option<token::TokenService>,
    /// Whether the server speaks HTTPS (the token realm's scheme).
    https: bool,
}

impl Auth {
    pub fn new(config: AuthConfig) -> Result<Auth> {
        let users = htpasswd::load(&config.htpasswd)?;
        let mut key = [0u8; 32];
        key[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        key[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        let cost = users
            .values()
            .next()
            .and_then(|h| h.get(4..6))
            .and_then(|c| c.parse().ok())
            .unwrap_or(bcrypt::DEFAULT_COST);
        let dummy = bcrypt::hash(uuid::Uuid::new_v4().to_string(), cost)
            .map_err(|e| Error::Config(format!("bcrypt: {e}")))?;
        let tokens = config
            .token
            .as_ref()
            .map(token::TokenService::new)
            .transpose()?;
        Ok(Auth {
            config,
            users,
            verified: Mutex::default(),
            key,
            dummy,
            tokens,
            https: false,
        })
    }

    /// Marks the server as speaking HTTPS, for the token realm.
    pub fn with_https(mut self, https: bool) -> Auth {
        self.https = https;
        self
    }

    /// Where a request came in, from its `Host` header.
    pub fn origin(&self, host: &str) -> String {
        format!("{}://{host}", if self.https { "https" } else { "http" })
    }

    /// The token service, when clients use Bearer tokens.
    pub fn tokens(&self) -> Option<&token::TokenService> {
        self.tokens.as_ref()
    }

    /// The `WWW-Authenticate` challenge of a 401: Basic, or Bearer with the
    /// token endpoint at `origin`, the scope needed, and `insufficient_scope`
    /// when a token was shown that lacks it.
    pub fn challenge(
        &self,
        origin: &str,
        scope: Option<(&RepoName, Action)>,
        insufficient: bool,
    ) -> String {
        let Some(t) = &self.tokens else {
            return format!("Basic realm=\"{}\"", self.config.realm.replace('"', ""));
        };
        let mut c = format!(
            "Bearer realm=\"{origin}/auth/token\",service=\"{}\"",
            t.service
        );
        if let Some((repo, action)) = scope {
            let actions = match action {
                Action::Pull => "pull",
                Action::Push => "pull,push",
                Action::Delete => "delete",
                Action::Promote => "promote",
            };
            c.push_str(&format!(",scope=\"repository:{repo}:{actions}\""));
        }
        if insufficient {
            c.push_str(",error=\"insufficient_scope\"");
        }
        c
    }

    /// The principal of a request's `Authorization` header; 401 for bad
    /// credentials or tokens (never saying whether the user exists).
    pub fn authenticate(&self, authorization: Option<&str>, origin: &str) -> Result<Principal> {
        let Some(header) = authorization else {
            return Ok(Principal::default());
        };
        let unauthorized = || Error::Unauthorized {
            challenge: self.challenge(origin, None, false),
        };
        if let Some(token) = header.strip_prefix("Bearer ") {
            let tokens = self.tokens.as_ref().ok_or_else(unauthorized)?;
            let verified = tokens
                .verify_access(token.trim())
                .map_err(|_| unauthorized())?;
            return Ok(Principal {
                user: verified.subject,
                grants: Some(verified.grants),
            });
        }
        let encoded = header.strip_prefix("Basic ").ok_or_else(unauthorized)?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|_| unauthorized())?;
        let decoded = String::from_utf8(decoded).map_err(|_| unauthorized())?;
        let (user, password) = decoded.split_once(':').ok_or_else(unauthorized)?;
        if self.verify(user, password) {
            Ok(Principal {
                user: Some(user.to_owned()),
                grants: None,
            })
        } else {
            Err(Error::BadCredentials {
                challenge: self.challenge(origin, None, false),
            })
        }
    }

    /// Whether `user` exists (a refresh token outlives nothing it names).
    pub fn has_user(&self, user: &str) -> bool {
        self.users.contains_key(user)
    }

    /// Checks a password with bcrypt (see [`Auth::authenticate`]).
    pub fn verify(&self, user: &str, password: &str) -> bool {
        let mut mac = sha2::Sha256::default();
        sha2::Digest::update(&mut mac, self.key);
        sha2::Digest::update(&mut mac, password.as_bytes());
        let keyed: [u8; 32] = sha2::Digest::finalize(mac).into();
        let cache_key = (user.to_owned(), keyed);
        if let Ok(cache) = self.verified.lock()
            && cache
                .get(&cache_key)
                .is_some_and(|t| t.elapsed() < VERIFIED_FOR)
        {
            return true;
        }
        let (hash, known) = match self.users.get(user) {
            Some(h) => (h.as_str(), true),
            None => (self.dummy.as_str(), false),
        };
        let ok = bcrypt::verify(password, hash).unwrap_or(false) && known;
        if ok && let Ok(mut cache) = self.verified.lock() {
            cache.retain(|_, t| t.elapsed() < VERIFIED_FOR);
            cache.insert(cache_key, Instant::now());
        }
        ok
    }

    /// Whether `who` may do `action` on `repo`: what a token grants, or
    /// for credentials, what the rules say.
    pub fn allows(&self, who: &Principal, repo: &RepoName, action: Action) -> bool {
        if action == Action::Pull && self.config.anonymous == Anonymous::Pull {
            return true;
        }
        if let Some(grants) = &who.grants {
            return grants
                .iter()
                .any(|(name, actions)| name == repo.as_str() && actions.contains(&action));
        }
        let Some(user) = &who.user else { return false };
        self.config.rules.iter().any(|r| {
            r.actions.contains(&action)
                && r.users.iter().any(|u| u == "*" || u == user)
                && any_matches(&r.repositories, repo.as_str())
        })
    }

    /// Whether `who` is an administrator (garbage collection, all events).
    pub fn is_admin(&self, who: &Principal) -> bool {
        who.user
            .as_ref()
            .is_some_and(|u| self.config.admins.contains(u))
    }

    /// The error for a refused request: 401 with a challenge for nobody and
    /// for a token without the scope, 403 for a user without the right.
    pub fn refuse(
        &self,
        who: &Principal,
        origin: &str,
        scope: Option<(&RepoName, Action)>,
    ) -> Error {
        let token = who.grants.is_some();
        match (&who.user, token) {
            (None, _) | (_, true) => Error::Unauthorized {
                challenge: self.challenge(origin, scope, token),
            },
            (Some(_), false) => Error::Denied(match scope {
                Some((repo, action)) => format!("{action:?} on {repo}").to_lowercase(),
                None => "administration".into(),
            }),
        }
    }
}

/// Access for one request: no authentication at all, or a principal checked
/// against the rules (`origin` is where the request came in, for challenges).
#[derive(Debug, Clone)]
pub enum Access {
    Open,
    Checked(std::sync::Arc<Auth>, Principal, String),
}

impl Access {
    pub fn user(&self) -> Option<&str> {
        match self {
            Access::Open => None,
            Access::Checked(_, p, _) => p.user.as_deref(),
        }
    }

    /// Whether anyone, signed in or not, may pull.
    pub fn anonymous_pull(&self) -> bool {
        match self {
            Access::Open => true,
            Access::Checked(auth, _, _) => auth.config.anonymous == Anonymous::Pull,
        }
    }

    pub fn allows(&self, repo: &RepoName, action: Action) -> bool {
        match self {
            Access::Open => true,
            Access::Checked(auth, who, _) => auth.allows(who, repo, action),
        }
    }

    /// `Ok` if allowed, else the right refusal.
    pub fn require(&self, repo: &RepoName, action: Action) -> Result<()> {
        match self {
            Access::Open => Ok(()),
            Access::Checked(auth, who, _) if auth.allows(who, repo, action) => Ok(()),
            Access::Checked(auth, who, origin) => {
                Err(auth.refuse(who, origin, Some((repo, action))))
            }
        }
    }

    /// `Ok` for administrators (and when there is no authentication).
    pub fn require_admin(&self) -> Result<()> {
        match self {
            Access::Open => Ok(()),
            Access::Checked(auth, who, _) if auth.is_admin(who) => Ok(()),
            Access::Checked(auth, who, origin) => Err(auth.refuse(who, origin, None)),
        }
    }

    /// `Ok` if someone is signed in, with credentials or a token (or there is
    /// no authentication): `/v2/` answers 401 to nobody, so that clients
    /// discover how to log in.
    pub fn require_signed_in(&self) -> Result<()> {
        match self {
            Access::Checked(auth, who, origin) if who.user.is_none() && who.grants.is_none() => {
                Err(auth.refuse(who, origin, None))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(rules: Vec<Rule>, anonymous: Anonymous) -> Auth {
        Auth {
            config: AuthConfig {
                htpasswd: "unused".into(),
                anonymous,
                realm: "berth".into(),
                admins: vec!["root".into()],
                rules,
                token: None,
            },
            users: HashMap::new(),
            verified: Mutex::default(),
            key: [0; 32],
            dummy: String::new(),
            tokens: None,
            https: false,
        }
    }

    fn repo(s: &str) -> RepoName {
        RepoName::parse(s).expect("name")
    }

    fn user(s: &str) -> Principal {
        Principal {
            user: Some(s.into()),
            grants: None,
        }
    }

    #[test]
    fn rules_decide_by_user_glob_and_action() {
        let a = auth(
            vec![
                Rule {
                    repositories: vec![Glob::new("team/**")],
                    users: vec!["alice".into()],
                    actions: vec![Action::Pull, Action::Push],
                },
                Rule {
                    repositories: vec![Glob::new("public/*")],
                    users: vec!["*".into()],
                    actions: vec![Action::Pull],
                },
            ],
            Anonymous::None,
        );
        let cases = [
            ("alice", "team/x", Action::Push, true),
            ("alice", "team/x/y", Action::Pull, true),
            ("alice", "team", Action::Pull, false),
            ("alice", "teamx", Action::Pull, false),
            ("alice", "team/x", Action::Delete, false),
            ("alice", "team/x", Action::Promote, false),
            ("bob", "team/x", Action::Pull, false),
            ("bob", "public/a", Action::Pull, true),
            ("bob", "public/a", Action::Push, false),
            ("bob", "public/a/b", Action::Pull, false),
        ];
        for (u, r, action, want) in cases {
            assert_eq!(
                a.allows(&user(u), &repo(r), action),
                want,
                "{u} {r} {action:?}"
            );
        }
        assert!(!a.allows(&Principal::default(), &repo("public/a"), Action::Pull));
        let anon = auth(Vec::new(), Anonymous::Pull);
        assert!(anon.allows(&Principal::default(), &repo("x"), Action::Pull));
        assert!(!anon.allows(&Principal::default(), &repo("x"), Action::Push));
        assert!(a.is_admin(&user("root")) && !a.is_admin(&user("alice")));
    }

    #[test]
    fn refusals_are_401_for_nobody_and_403_for_users() {
        let a = auth(Vec::new(), Anonymous::None);
        let r = repo("x");
        let scope = Some((&r, Action::Pull));
        assert!(matches!(
            a.refuse(&Principal::default(), "http://h", scope),
            Error::Unauthorized { .. }
        ));
        assert!(matches!(
            a.refuse(&user("bob"), "http://h", scope),
            Error::Denied(_)
        ));
        let token = Principal {
            user: Some("bob".into()),
            grants: Some(Vec::new()),
        };
        assert!(matches!(
            a.refuse(&token, "http://h", scope),
            Error::Unauthorized { .. }
        ));
    }
}
