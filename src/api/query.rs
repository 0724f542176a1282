//! Query-string access that keeps repeated keys (`?tag=a&tag=b`).

use crate::error::{Error, Result};

#[derive(Debug, Default)]
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(query: Option<&str>) -> Query {
        Query(
            form_urlencoded::parse(query.unwrap_or("").as_bytes())
                .into_owned()
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
