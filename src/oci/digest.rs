//! Content digests (`algorithm:hex`), as the OCI image spec defines them.
//!
//! Berth accepts the two registered algorithms, `sha256` and `sha512`, with
//! lowercase hex of the exact length; anything else is `DIGEST_INVALID`.

use std::fmt;
use std::str::FromStr;

use sha2::Digest as _;

use super::Invalid;

/// A hash algorithm a digest may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

impl Algorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }

    /// The digest of `bytes` under this algorithm.
    pub fn digest_of(self, bytes: &[u8]) -> Digest {
        let hex = match self {
            Algorithm::Sha256 => to_hex(&sha2::Sha256::digest(bytes)),
            Algorithm::Sha512 => to_hex(&sha2::Sha512::digest(bytes)),
        };
        Digest {
            algorithm: self,
            hex,
        }
    }
}

/// A validated content digest, e.g. `sha256:2c26b4...`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

impl Digest {
    /// The sha256 digest of `bytes`.
    pub fn sha256_of(bytes: &[u8]) -> Digest {
        Algorithm::Sha256.digest_of(bytes)
    }

    /// Builds a digest from a finished hash output.
    pub fn from_output(algorithm: Algorithm, output: &[u8]) -> Digest {
        Digest {
            algorithm,
            hex: to_hex(output),
        }
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The encoded (hex) part after the colon.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// Parses `algorithm:hex`; the error names what was wrong.
    pub fn parse(s: &str) -> Result<Digest, Invalid> {
        let invalid = |why: &str| Invalid::Digest(format!("{s:?}: {why}"));
        let (alg, hex) = s
            .split_once(':')
            .ok_or_else(|| invalid("expected algorithm:hex"))?;
        let algorithm = match alg {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            _ => return Err(invalid("unsupported algorithm (sha256 and sha512 are)")),
        };
        if hex.len() != algorithm.hex_len() {
            return Err(invalid("wrong length for the algorithm"));
        }
        if !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(invalid("encoded part must be lowercase hex"));
        }
        Ok(Digest {
            algorithm,
            hex: hex.to_owned(),
        })
    }
}

impl FromStr for Digest {
    type Err = Invalid;
    fn from_str(s: &str) -> Result<Self, Invalid> {
        Digest::parse(s)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.as_str(), self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Digest::parse(&s).map_err(serde::de::Error::custom)
    }
}

fn to_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[usize::from(b >> 4)] as char);
        s.push(HEX[usize::from(b & 0xf)] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects_by_the_grammar() {
        let ok = [
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            &format!("sha512:{}", "a".repeat(128)),
        ];
        for s in ok {
            assert_eq!(
                Digest::parse(s).map(|d| d.to_string()).ok().as_deref(),
                Some(s)
            );
        }
        let bad = [
            "",
            "sha256",
            "sha256:",
            "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
            "sha256:e3b0c442",
            "md5:d41d8cd98f00b204e9800998ecf8427e",
            &format!("sha512:{}", "a".repeat(64)),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85g",
        ];
        for s in bad {
            assert!(matches!(Digest::parse(s), Err(Invalid::Digest(_))), "{s}");
        }
    }

    #[test]
    fn digest_of_empty_input_is_the_known_value() {
        assert_eq!(
            Digest::sha256_of(b"").to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert!(
            Algorithm::Sha512
                .digest_of(b"")
                .hex()
                .starts_with("cf83e1357eefb8bd")
        );
    }
}
