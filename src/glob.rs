//! Glob patterns over repository and tag names, for config rules: `*` matches
//! within one `/`-separated part, `**` across parts, `?` one character.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob(String);

impl Glob {
    pub fn new(pattern: impl Into<String>) -> Glob {
        Glob(pattern.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn matches(&self, name: &str) -> bool {
        matches(self.0.as_bytes(), name.as_bytes())
    }
}

impl<'de> serde::Deserialize<'de> for Glob {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Glob)
    }
}

impl serde::Serialize for Glob {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// Whether any of `globs` matches `name`.
pub fn any_matches(globs: &[Glob], name: &str) -> bool {
    globs.iter().any(|g| g.matches(name))
}

fn matches(p: &[u8], s: &[u8]) -> bool {
    match p {
        [] => s.is_empty(),
        [b'*', b'*', rest @ ..] => {
            // `**/` also matches nothing at all: `a/**/b` matches `a/b`.
            let rest_after_slash = rest.strip_prefix(b"/").unwrap_or(rest);
            (0..=s.len()).any(|i| matches(rest, &s[i..]))
                || (rest.first() == Some(&b'/') && matches(rest_after_slash, s))
        }
        [b'*', rest @ ..] => (0..=s.len())
            .take_while(|&i| i == 0 || s[i - 1] != b'/')
            .any(|i| matches(rest, &s[i..])),
        [b'?', rest @ ..] => s.first().is_some_and(|&c| c != b'/') && matches(rest, &s[1..]),
        [c, rest @ ..] => s.first() == Some(c) && matches(rest, &s[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_names_by_part() {
        let cases = [
            ("team-a/**", "team-a/x", true),
            ("team-a/**", "team-a/x/y", true),
            ("team-a/**", "team-ab/x", false),
            ("team-a/*", "team-a/x/y", false),
            ("team", "team/x", false),
            ("team/*", "teamx", false),
            ("*", "a", true),
            ("*", "a/b", false),
            ("**", "a/b", true),
            ("models/**/prod", "models/prod", true),
            ("models/**/prod", "models/a/b/prod", true),
            ("v*.*.*", "v1.2.3", true),
            ("v*.*.*", "latest", false),
            ("production", "production", true),
            ("prod?", "prod1", true),
            ("prod?", "prod", false),
        ];
        for (p, s, want) in cases {
            assert_eq!(Glob::new(p).matches(s), want, "{p} ~ {s}");
        }
    }
}
