//! Query-string access that keeps repeated keys (`?tag=a&tag=b`).
//!
//! Values are percent-decoded as URLs are (RFC 3986), not as HTML forms: a
//! literal `+` stays a plus, because media types such as
//! `application/vnd.oci.image.manifest.v1+json` arrive unencoded in
//! `?artifactType=` from real clients.

use crate::error::{Error, Result};

#[derive(Debug, Default)]
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(query: Option<&str>) -> Query {
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        };
        Query(
            query
                .unwrap_or("")
                .split('&')
                .filter(|pair| !pair.is_empty())
                .map(|pair| {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    (decode(k), decode(v))
                })
                .collect(),
        )
    }

    /// The first value of `key`; an empty value counts as absent.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, v)| k == key && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `key`, in order.
    pub fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// `n` as a page size; a malformed one is a client error.
    pub fn page_size(&self) -> Result<Option<usize>> {
        self.get("n")
            .map(|n| {
                n.parse().map_err(|_| {
                    Error::QueryInvalid(format!("n must be a non-negative integer, got {n:?}"))
                })
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_keys_percent_decoding_and_literal_plus() {
        let q = Query::parse(Some(
            "tag=a&tag=b&from=team%2Fx&artifactType=application/x+json&empty=&n=5",
        ));
        assert_eq!(q.all("tag").collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(q.get("from"), Some("team/x"));
        assert_eq!(q.get("artifactType"), Some("application/x+json"));
        assert_eq!(q.get("empty"), None);
        assert_eq!(q.page_size().ok(), Some(Some(5)));
        assert!(Query::parse(Some("n=-1")).page_size().is_err());
        assert_eq!(Query::parse(None).get("x"), None);
    }
}
