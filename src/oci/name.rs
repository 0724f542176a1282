//! Repository names, tags, manifest references and upload ids, each checked once
//! on construction against the distribution spec's grammar.

use std::fmt;

use super::Invalid;
use super::digest::Digest;

/// Longest repository name accepted; the spec asks registries to take at least
/// 255 characters of host plus name, so the name alone is held to that.
pub const MAX_NAME_LEN: usize = 255;
/// Longest tag, from the spec's `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
pub const MAX_TAG_LEN: usize = 128;

/// A repository name: `path-component ( "/" path-component )*` where a
/// component is `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepoName(String);

impl RepoName {
    pub fn parse(s: &str) -> Result<RepoName, Invalid> {
        let invalid = |why: &str| Invalid::Name(format!("{s:?}: {why}"));
        if s.is_empty() {
            return Err(invalid("empty repository name"));
        }
        if s.len() > MAX_NAME_LEN {
            return Err(invalid("longer than 255 characters"));
        }
        for component in s.split('/') {
            if !is_path_component(component) {
                return Err(invalid(
                    "each /-separated part must be lowercase letters and digits, joined by '.', '_', '__' or dashes",
                ));
            }
        }
        Ok(RepoName(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator run: '.', '_', '__' or one or more '-'.
        let start = i;
        match b[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if i < b.len() && b[i] == b'_' {
                    i += 1;
                }
            }
            b'-' => {
                while i < b.len() && b[i] == b'-' {
                    i += 1;
                }
            }
            _ => return false,
        }
        if i == start || i >= b.len() || !alnum(b[i]) {
            return false;
        }
    }
    true
}

impl fmt::Display for RepoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RepoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// A tag: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(String);

impl Tag {
    pub fn parse(s: &str) -> Result<Tag, Invalid> {
        let b = s.as_bytes();
        let first_ok = b
            .first()
            .is_some_and(|&c| c.is_ascii_alphanumeric() || c == b'_');
        let rest_ok = b
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'));
        if !first_ok || !rest_ok || b.len() > MAX_TAG_LEN {
            return Err(Invalid::Tag(format!(
                "{s:?}: a tag is 1 to 128 of [A-Za-z0-9_.-], not starting with '.' or '-'"
            )));
        }
        Ok(Tag(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// What a manifest URL names: a tag or a digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Reference {
    Tag(Tag),
    Digest(Digest),
}

impl Reference {
    /// A reference with a `:` is a digest, anything else a tag.
    pub fn parse(s: &str) -> Result<Reference, Invalid> {
        if s.contains(':') {
            Digest::parse(s).map(Reference::Digest)
        } else {
            Tag::parse(s).map(Reference::Tag)
        }
    }

    /// How a person writes this reference in `repo`: `repo:tag`, or
    /// `repo@sha256:...` for a digest.
    pub fn in_repo(&self, repo: &RepoName) -> String {
        match self {
            Reference::Tag(t) => format!("{repo}:{t}"),
            Reference::Digest(d) => format!("{repo}@{d}"),
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Tag(t) => t.fmt(f),
            Reference::Digest(d) => d.fmt(f),
        }
    }
}

/// An upload session id: 32 lowercase hex characters, made by the server.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct UploadId(String);

impl UploadId {
    pub fn new_random() -> UploadId {
        UploadId(uuid::Uuid::new_v4().simple().to_string())
    }

    pub fn parse(s: &str) -> Result<UploadId, Invalid> {
        if s.len() == 32 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            Ok(UploadId(s.to_owned()))
        } else {
            Err(Invalid::UploadId)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UploadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for UploadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_names_follow_the_grammar() {
        let ok = [
            "a",
            "library/busybox",
            "team-a/models/resnet50",
            "a.b_c__d--e/f",
            "0",
            "x---y",
        ];
        for s in ok {
            assert!(RepoName::parse(s).is_ok(), "{s}");
        }
        let long = "a".repeat(256);
        let bad = [
            "", "A", "a/", "/a", "a//b", "a_", "_a", "a___b", "a..b", "a.-b", "a%2fb", "a b",
            "a/B", "..", "a/../b", &long,
        ];
        for s in bad {
            assert!(matches!(RepoName::parse(s), Err(Invalid::Name(_))), "{s}");
        }
    }

    #[test]
    fn tags_follow_the_grammar() {
        for s in ["latest", "v1.0.0", "_x", "A-b_c.d", &"a".repeat(128)] {
            assert!(Tag::parse(s).is_ok(), "{s}");
        }
        for s in ["", ".a", "-a", "a/b", "a:b", "a+b", &"a".repeat(129)] {
            assert!(Tag::parse(s).is_err(), "{s}");
        }
    }

    #[test]
    fn references_split_on_colon() {
        assert!(matches!(Reference::parse("latest"), Ok(Reference::Tag(_))));
        assert!(matches!(
            Reference::parse("sha256:totallywrong"),
            Err(Invalid::Digest(_))
        ));
    }

    #[test]
    fn upload_ids_are_32_hex() {
        let id = UploadId::new_random();
        assert_eq!(UploadId::parse(id.as_str()).ok(), Some(id));
        assert!(UploadId::parse("../../etc").is_err());
    }
}

/// Names and tags serialise as their text.
macro_rules! serialize_as_str {
    ($($t:ty),+) => {$(
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
    )+};
}

serialize_as_str!(RepoName, Tag);
