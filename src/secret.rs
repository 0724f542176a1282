//! A credential from the config file or the environment: kept as given, never
//! printed by `Debug`.

use serde::{Deserialize, Serialize};

/// A credential from the config file or the environment; never printed.
#[derive(Clone, Serialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl<'de> Deserialize<'de> for Secret {
    /// Accepts a number too: an environment value that happens to be digits.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Text {
            S(String),
            N(i64),
        }
        Ok(Secret(match Text::deserialize(d)? {
            Text::S(s) => s,
            Text::N(n) => n.to_string(),
        }))
    }
}
