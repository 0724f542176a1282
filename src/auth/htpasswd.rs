//! htpasswd files: `user:bcrypt-hash` lines. Only bcrypt (`$2a$`, `$2b$`,
//! `$2y$`) is accepted; anything else stops start-up rather than weakening it.

use std::collections::HashMap;
use std::path::Path;

use crate::error::{Error, Result};

/// Parses an htpasswd file into user → bcrypt hash.
pub fn load(path: &Path) -> Result<HashMap<String, String>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Config(format!("htpasswd {}: {e}", path.display())))?;
    parse(&text).map_err(|e| Error::Config(format!("htpasswd {}: {e}", path.display())))
}

pub fn parse(text: &str) -> std::result::Result<HashMap<String, String>, String> {
    let mut users = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (user, hash) = line
            .split_once(':')
            .ok_or_else(|| format!("line {}: expected user:hash", n + 1))?;
        if user.is_empty() {
            return Err(format!("line {}: empty user name", n + 1));
        }
        if !["$2a$", "$2b$", "$2y$"].iter().any(|p| hash.starts_with(p)) {
            return Err(format!(
                "line {} ({user}): only bcrypt hashes are accepted",
                n + 1
            ));
        }
        users.insert(user.to_owned(), hash.to_owned());
    }
    Ok(users)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bcrypt_entries_are_accepted() {
        let ok = parse(
            "# users\nalice:$2y$05$abcdefghijklmnopqrstuuO7nLTW4DRPxYnd1Xc7bDgVzVFXXyL3a\n\n",
        );
        assert_eq!(ok.map(|u| u.len()).ok(), Some(1));
        assert!(parse("bob:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=").is_err());
        assert!(parse("carol:$apr1$abc$def").is_err());
        assert!(parse("nocolon").is_err());
    }
}
