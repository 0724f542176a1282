//! Walks one layer's bytes as a stream: finds what is or holds a pickle
//! (raw pickles, PyTorch zips, NumPy object arrays, and any of these inside
//! zip, tar and gzip archives, nested), checks safetensors headers, and
//! counts everything else. Nothing is unpickled and nothing is kept whole:
//! archives are read entry by entry from their local headers.

use std::cell::Cell;
use std::io::{self, BufRead, BufReader, Cursor, Read};
use std::rc::Rc;
use std::time::Instant;

use serde::Serialize;

use super::imports::{Verdict, classify};
use super::{pickle, safetensors, zstd};

/// How much one layer's walk may read (compressed and unpacked bytes
/// together) and until when.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_bytes: u64,
    pub deadline: Instant,
}

/// Archives inside archives, at most.
const MAX_DEPTH: usize = 6;
/// Files listed in one layer's report at most.
const MAX_FOUND: usize = 1_000;

/// An import and its class.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct ClassedImport {
    pub module: String,
    pub name: String,
    pub class: Verdict,
}

/// A file of a recognised kind found in the layer.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Found {
    /// Where: the layer's title (or "layer"), then `!/` and the path inside
    /// each archive.
    pub path: String,
    pub format: String,
    pub verdict: Verdict,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub imports: Vec<ClassedImport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// What a walk saw.
#[derive(Debug, Default)]
pub struct Walked {
    pub found: Vec<Found>,
    /// Files looked at that are none of the kinds above.
    pub other_files: u64,
    /// Found files beyond those listed.
    pub unlisted: u64,
    /// Why the walk stopped before the end, when it did.
    pub incomplete: Option<String>,
}

/// The source itself failed (storage): the scan is to be tried again, not
/// reported.
#[derive(Debug)]
pub struct SourceFailed(pub String);

impl std::fmt::Display for SourceFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "reading the layer failed: {}", self.0)
    }
}

impl std::error::Error for SourceFailed {}

#[derive(Debug)]
struct LimitHit(String);

impl std::fmt::Display for LimitHit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LimitHit {}

fn is<E: std::error::Error + 'static>(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<E>())
}

/// What a file is called and said to be, to tell its kind.
#[derive(Debug, Clone)]
pub struct Hint {
    pub name: String,
    pub media_type: String,
    pub size: Option<u64>,
}

impl Hint {
    /// The hint for what a compressed file holds: its name with the first
    /// of `renames`' extensions it ends with (any case) replaced, e.g.
    /// `.tgz` by `.tar`, and its media type without `codec` (`+gzip`).
    fn inflated(&self, renames: &[(&str, &str)], codec: &str) -> Hint {
        let lower = self.name.to_ascii_lowercase();
        let name = renames
            .iter()
            .find_map(|(ext, with)| {
                let stem = lower.strip_suffix(ext)?;
                Some(format!("{}{with}", &self.name[..stem.len()]))
            })
            .unwrap_or_else(|| self.name.clone());
        Hint {
            name,
            // Replacing "" by "" leaves it as it is.
            media_type: self.media_type.replace(codec, ""),
            size: None,
        }
    }
}

/// Walks `r`, a layer of `hint.size` bytes. An `Err` is the source
/// failing; everything about the content is in [`Walked`].
pub fn walk(r: &mut dyn Read, path: &str, hint: Hint, limits: Limits) -> io::Result<Walked> {
    let used = Rc::new(Cell::new(0));
    let mut source = BufReader::with_capacity(
        256 * 1024,
        Budget {
            inner: r,
            used: Rc::clone(&used),
            limits,
        },
    );
    let mut walk = Walk {
        limits,
        used,
        out: Walked::default(),
        depth: 0,
    };
    match walk.file(&mut source, path.to_owned(), hint) {
        Ok(()) => Ok(walk.out),
        Err(e) if is::<SourceFailed>(&e) => Err(e),
        Err(e) if is::<LimitHit>(&e) => {
            walk.out.incomplete = Some(e.to_string());
            Ok(walk.out)
        }
        Err(e) => {
            walk.out.incomplete = Some(format!("the walk stopped: {e}"));
            Ok(walk.out)
        }
    }
}

/// Counts what passes through against the walk's limits.
struct Budget<R> {
    inner: R,
    used: Rc<Cell<u64>>,
    limits: Limits,
}

impl<R: Read> Read for Budget<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let used = self.used.get() + n as u64;
        self.used.set(used);
        if used > self.limits.max_bytes {
            return Err(io::Error::other(LimitHit(format!(
                "not read whole: over the {} bytes a scan reads",
                self.limits.max_bytes
            ))));
        }
        if Instant::now() > self.limits.deadline {
            return Err(io::Error::other(LimitHit(
                "not read whole: the scan ran out of time".into(),
            )));
        }
        Ok(n)
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Kind {
    Zip,
    Gzip,
    /// A zlib stream, as `joblib.dump(..., compress=n)` writes by default.
    Zlib,
    Zstd,
    Tar,
    Npy,
    Safetensors,
    Pickle {
        named: bool,
    },
    Unreadable(&'static str),
    Other,
}

const PICKLE_NAMES: &[&str] = &[
    ".pkl", ".pickle", ".joblib", ".dill", ".sav", ".pt", ".pth", ".ckpt",
];

fn detect(head: &[u8], hint: &Hint) -> Kind {
    let name = hint.name.to_ascii_lowercase();
    let media = hint.media_type.to_ascii_lowercase();
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        return Kind::Zip;
    }
    if head.starts_with(&[0x1f, 0x8b]) {
        return Kind::Gzip;
    }
    let named = PICKLE_NAMES.iter().any(|ext| name.ends_with(ext)) || media.contains("pickle");
    if (named || name.ends_with(".z")) && is_zlib(head) {
        return Kind::Zlib;
    }
    if head.len() >= 262 && &head[257..262] == b"ustar" {
        return Kind::Tar;
    }
    if head.starts_with(b"\x93NUMPY") {
        return Kind::Npy;
    }
    if head.starts_with(&zstd::MAGIC) {
        return Kind::Zstd;
    }
    if head.starts_with(b"\xfd7zXZ\x00") {
        return Kind::Unreadable("xz");
    }
    if head.starts_with(&[0x04, 0x22, 0x4d, 0x18]) {
        return Kind::Unreadable("lz4");
    }
    if name.ends_with(".bz2") && head.starts_with(b"BZh") {
        return Kind::Unreadable("bzip2");
    }
    if name.ends_with(".safetensors")
        || media.contains("safetensors")
        || looks_like_safetensors(head, hint.size)
    {
        return Kind::Safetensors;
    }
    if head.len() >= 2 && head[0] == 0x80 && (2..=5).contains(&head[1]) {
        return Kind::Pickle { named };
    }
    if named {
        return Kind::Pickle { named };
    }
    if name.ends_with(".tar") {
        return Kind::Tar;
    }
    Kind::Other
}

/// A zlib header as zlib writes it (deflate, 32 KiB window: 0x78) with its
/// check bits right. 'x' is no pickle opcode, so a pickle is never taken
/// for one.
fn is_zlib(head: &[u8]) -> bool {
    head.len() >= 2 && head[0] == 0x78 && (0x7800 | u16::from(head[1])) % 31 == 0
}

fn looks_like_safetensors(head: &[u8], size: Option<u64>) -> bool {
    let (Some(size), true) = (size, head.len() >= 9) else {
        return false;
    };
    let n = u64::from_le_bytes(head[..8].try_into().expect("8 bytes"));
    head[8] == b'{' && n <= safetensors::MAX_HEADER && n + 8 <= size
}

/// The first bytes of a stream, read ahead to tell its kind.
fn head(r: &mut dyn BufRead, n: usize) -> io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(n);
    (&mut *r).take(n as u64).read_to_end(&mut buf)?;
    Ok(buf)
}

struct Walk {
    limits: Limits,
    used: Rc<Cell<u64>>,
    out: Walked,
    depth: usize,
}

impl Walk {
    fn found(&mut self, found: Found) {
        if self.out.found.len() < MAX_FOUND {
            self.out.found.push(found);
        } else {
            self.out.unlisted += 1;
        }
    }

    fn budget<R: Read>(&self, inner: R) -> BufReader<Budget<R>> {
        BufReader::with_capacity(
            64 * 1024,
            Budget {
                inner,
                used: Rc::clone(&self.used),
                limits: self.limits,
            },
        )
    }

    fn file(&mut self, r: &mut dyn BufRead, path: String, hint: Hint) -> io::Result<()> {
        let head = head(r, 512)?;
        let kind = detect(&head, &hint);
        let mut whole = Cursor::new(head).chain(r);
        if matches!(
            kind,
            Kind::Zip | Kind::Gzip | Kind::Zlib | Kind::Zstd | Kind::Tar
        ) {
            if self.depth >= MAX_DEPTH {
                self.found(Found {
                    path,
                    format: "archive".into(),
                    verdict: Verdict::Unknown,
                    imports: Vec::new(),
                    problem: Some(format!("archives nested deeper than {MAX_DEPTH}: not read")),
                });
                return Ok(());
            }
            self.depth += 1;
            let format = match kind {
                Kind::Zip => "zip",
                Kind::Gzip => "gzip",
                Kind::Zlib => "zlib",
                Kind::Zstd => "zstd",
                _ => "tar",
            };
            let done = match kind {
                Kind::Zip => self.zip(&mut whole, &path),
                Kind::Gzip => self.gzip(&mut whole, &path, &hint),
                Kind::Zlib => self.zlib(&mut whole, &path, &hint),
                Kind::Zstd => self.zstd(&mut whole, &path, &hint),
                _ => self.tar(&mut whole, &path),
            };
            self.depth -= 1;
            return self.contain(done, path, format);
        }
        match kind {
            Kind::Npy => self.npy(&mut whole, path),
            Kind::Safetensors => {
                let problem = safetensors::check(&mut whole, hint.size.unwrap_or(u64::MAX))?;
                self.found(Found {
                    path,
                    format: "safetensors".into(),
                    verdict: if problem.is_some() {
                        Verdict::Malformed
                    } else {
                        Verdict::Clean
                    },
                    imports: Vec::new(),
                    problem,
                });
                Ok(())
            }
            Kind::Pickle { named } => self.pickle(&mut whole, path, "pickle", named),
            Kind::Unreadable(how) => {
                self.found(Found {
                    path,
                    format: how.into(),
                    verdict: Verdict::Unknown,
                    imports: Vec::new(),
                    problem: Some(format!(
                        "compressed with {how}, which the scanner does not read"
                    )),
                });
                Ok(())
            }
            _ => {
                self.out.other_files += 1;
                Ok(())
            }
        }
    }

    /// An archive that turns out not to be one is reported malformed; the
    /// source failing or a limit stop the walk.
    fn contain(&mut self, done: io::Result<()>, path: String, format: &str) -> io::Result<()> {
        match done {
            Err(e) if is::<SourceFailed>(&e) || is::<LimitHit>(&e) => Err(e),
            Err(e) => {
                self.found(Found {
                    path,
                    format: format.into(),
                    verdict: Verdict::Malformed,
                    imports: Vec::new(),
                    problem: Some(e.to_string()),
                });
                Ok(())
            }
            Ok(()) => Ok(()),
        }
    }

    fn pickle(
        &mut self,
        r: &mut dyn BufRead,
        path: String,
        format: &str,
        named: bool,
    ) -> io::Result<()> {
        let scan = pickle::scan(r)?;
        // Bytes that merely start like a pickle and name nothing are data.
        if !named && scan.imports.is_empty() && scan.malformed.is_some() {
            self.out.other_files += 1;
            return Ok(());
        }
        let imports: Vec<ClassedImport> = scan
            .imports
            .into_iter()
            .map(|i| ClassedImport {
                class: classify(&i),
                module: i.module,
                name: i.name,
            })
            .collect();
        let mut verdict = imports
            .iter()
            .map(|i| i.class)
            .max()
            .unwrap_or(Verdict::Clean);
        if scan.malformed.is_some() {
            verdict = verdict.max(Verdict::Malformed);
        }
        self.found(Found {
            path,
            format: format.into(),
            verdict,
            imports,
            problem: scan.malformed,
        });
        Ok(())
    }

    fn gzip(&mut self, r: &mut dyn BufRead, path: &str, hint: &Hint) -> io::Result<()> {
        let mut inner = self.budget(flate2::bufread::MultiGzDecoder::new(r));
        let hint = hint.inflated(&[(".tgz", ".tar"), (".gz", "")], "+gzip");
        self.file(&mut inner, path.to_owned(), hint)
    }

    fn zlib(&mut self, r: &mut dyn BufRead, path: &str, hint: &Hint) -> io::Result<()> {
        let mut inner = self.budget(flate2::bufread::ZlibDecoder::new(r));
        self.file(
            &mut inner,
            path.to_owned(),
            hint.inflated(&[(".z", "")], ""),
        )
    }

    fn zstd(&mut self, r: &mut dyn BufRead, path: &str, hint: &Hint) -> io::Result<()> {
        let mut inner = self.budget(zstd::Frames::new(r));
        let renames = [(".tzst", ".tar"), (".zst", ""), (".zstd", "")];
        self.file(
            &mut inner,
            path.to_owned(),
            hint.inflated(&renames, "+zstd"),
        )
    }

    fn tar(&mut self, r: &mut dyn BufRead, path: &str) -> io::Result<()> {
        let mut archive = tar::Archive::new(r);
        for entry in archive.entries()? {
            let mut entry = entry?;
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let name = entry.path()?.to_string_lossy().into_owned();
            let size = entry.size();
            let mut reader = BufReader::with_capacity(64 * 1024, &mut entry);
            let hint = Hint {
                name: name.clone(),
                media_type: String::new(),
                size: Some(size),
            };
            self.file(&mut reader, format!("{path}!/{name}"), hint)?;
        }
        Ok(())
    }

    fn npy(&mut self, r: &mut dyn BufRead, path: String) -> io::Result<()> {
        let mut magic = [0u8; 8];
        r.read_exact(&mut magic)?;
        let len = if magic[6] == 1 {
            let mut b = [0u8; 2];
            r.read_exact(&mut b)?;
            u64::from(u16::from_le_bytes(b))
        } else {
            let mut b = [0u8; 4];
            r.read_exact(&mut b)?;
            u64::from(u32::from_le_bytes(b))
        };
        let mut header = Vec::new();
        (&mut *r)
            .take(len.min(1024 * 1024))
            .read_to_end(&mut header)?;
        let header = String::from_utf8_lossy(&header);
        if holds_objects(&header) {
            // np.save writes an object array as a pickle after its header.
            return self.pickle(r, path, "npy", true);
        }
        self.out.other_files += 1;
        Ok(())
    }

    fn zip(&mut self, r: &mut dyn BufRead, path: &str) -> io::Result<()> {
        loop {
            let mut sig = [0u8; 4];
            r.read_exact(&mut sig)?;
            match u32::from_le_bytes(sig) {
                0x0403_4b50 => self.zip_entry(r, path)?,
                // The central directory (or the end of an empty archive):
                // every entry has been read.
                0x0201_4b50 | 0x0605_4b50 | 0x0606_4b50 => return Ok(()),
                other => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("not a zip entry (signature {other:#010x})"),
                    ));
                }
            }
        }
    }

    fn zip_entry(&mut self, r: &mut dyn BufRead, path: &str) -> io::Result<()> {
        let mut h = [0u8; 26];
        r.read_exact(&mut h)?;
        let u16_at = |i: usize| u16::from_le_bytes([h[i], h[i + 1]]);
        let u32_at = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
        let (flags, method) = (u16_at(2), u16_at(4));
        let (mut csize, mut usize_) = (u64::from(u32_at(14)), u64::from(u32_at(18)));
        let (name_len, extra_len) = (usize::from(u16_at(22)), usize::from(u16_at(24)));
        let mut name = vec![0u8; name_len];
        r.read_exact(&mut name)?;
        let name = String::from_utf8_lossy(&name).into_owned();
        let mut extra = vec![0u8; extra_len];
        r.read_exact(&mut extra)?;
        let zip64 = zip64_sizes(&extra, usize_ == 0xFFFF_FFFF, csize == 0xFFFF_FFFF);
        if let Some((u, c)) = zip64 {
            (usize_, csize) = (u.unwrap_or(usize_), c.unwrap_or(csize));
        }
        let child = format!("{path}!/{name}");
        let hint = Hint {
            name: name.clone(),
            media_type: String::new(),
            size: Some(usize_),
        };
        let described = flags & 0x08 != 0;
        if flags & 0x01 != 0 {
            self.found(Found {
                path: child,
                format: "zip".into(),
                verdict: Verdict::Unknown,
                imports: Vec::new(),
                problem: Some("encrypted: not read".into()),
            });
            if described {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "an encrypted entry of unknown length",
                ));
            }
            io::copy(&mut (&mut *r).take(csize), &mut io::sink())?;
            return Ok(());
        }
        match (method, described) {
            (0, false) => {
                let mut data = (&mut *r).take(csize);
                let done = self.file(&mut data, child.clone(), hint);
                self.contain(done, child, "zip entry")?;
                io::copy(&mut data, &mut io::sink())?;
            }
            (8, _) => {
                let mut data = if described {
                    Box::new(&mut *r) as Box<dyn BufRead + '_>
                } else {
                    Box::new((&mut *r).take(csize))
                };
                let mut inflated = self.budget(flate2::bufread::DeflateDecoder::new(&mut data));
                let done = self.file(&mut inflated, child.clone(), hint);
                self.contain(done, child, "zip entry")?;
                io::copy(&mut inflated, &mut io::sink())?;
                drop(inflated);
                if !described {
                    io::copy(&mut data, &mut io::sink())?;
                }
            }
            (0, true) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{name}: a stored entry of unknown length cannot be read as a stream"),
                ));
            }
            (m, _) => {
                self.found(Found {
                    path: child,
                    format: "zip".into(),
                    verdict: Verdict::Unknown,
                    imports: Vec::new(),
                    problem: Some(format!("compression method {m}: not read")),
                });
                if described {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "an entry of unknown length",
                    ));
                }
                io::copy(&mut (&mut *r).take(csize), &mut io::sink())?;
            }
        }
        if described {
            // crc-32 and sizes, after an optional signature.
            let mut sig = [0u8; 4];
            r.read_exact(&mut sig)?;
            let rest = if zip64.is_some() { 16 } else { 8 };
            let skip = if u32::from_le_bytes(sig) == 0x0807_4b50 {
                rest + 4
            } else {
                rest
            };
            io::copy(&mut (&mut *r).take(skip), &mut io::sink())?;
        }
        Ok(())
    }
}

/// Sizes from a zip64 extra field: the uncompressed and compressed size,
/// each present only where the header's 32-bit field is all ones.
fn zip64_sizes(extra: &[u8], usize_: bool, csize: bool) -> Option<(Option<u64>, Option<u64>)> {
    let mut at = 0;
    while at + 4 <= extra.len() {
        let id = u16::from_le_bytes([extra[at], extra[at + 1]]);
        let len = usize::from(u16::from_le_bytes([extra[at + 2], extra[at + 3]]));
        let body = extra.get(at + 4..at + 4 + len)?;
        if id == 0x0001 {
            let mut fields = body
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")));
            let u = if usize_ { fields.next() } else { None };
            let c = if csize { fields.next() } else { None };
            return Some((u, c));
        }
        at += 4 + len;
    }
    None
}

/// Whether a `.npy` header's `descr` has an object field (`O`).
fn holds_objects(header: &str) -> bool {
    let Some(descr) = header.split("'descr':").nth(1) else {
        return true;
    };
    let descr = descr.split("'fortran_order'").next().unwrap_or(descr);
    descr.split(['\'', '"']).skip(1).step_by(2).any(|token| {
        let t = token.trim_start_matches(['|', '<', '>', '=']);
        t == "O" || (t.starts_with('O') && t[1..].chars().all(|c| c.is_ascii_digit()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            max_bytes: 1 << 30,
            deadline: Instant::now() + std::time::Duration::from_secs(30),
        }
    }

    fn hint(name: &str, size: usize) -> Hint {
        Hint {
            name: name.into(),
            media_type: String::new(),
            size: Some(size as u64),
        }
    }

    #[test]
    fn object_arrays_are_told_from_plain_ones() {
        assert!(holds_objects(
            "{'descr': '|O', 'fortran_order': False, 'shape': (2,), }"
        ));
        assert!(holds_objects(
            "{'descr': [('a', '<i8'), ('b', '|O')], 'fortran_order': False, }"
        ));
        assert!(!holds_objects(
            "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }"
        ));
    }

    #[test]
    fn a_zip_entry_is_walked_into_and_the_pickle_inside_found() {
        // One stored entry, "archive/data.pkl", holding GLOBAL os.system.
        let data = b"\x80\x02cos\nsystem\nq\x00.";
        let name = b"archive/data.pkl";
        let mut z = b"PK\x03\x04".to_vec();
        z.extend_from_slice(&[20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        z.extend_from_slice(&(data.len() as u32).to_le_bytes());
        z.extend_from_slice(&(data.len() as u32).to_le_bytes());
        z.extend_from_slice(&(name.len() as u16).to_le_bytes());
        z.extend_from_slice(&0u16.to_le_bytes());
        z.extend_from_slice(name);
        z.extend_from_slice(data);
        z.extend_from_slice(b"PK\x05\x06");
        z.extend_from_slice(&[0; 18]);
        let walked =
            walk(&mut &z[..], "model.pt", hint("model.pt", z.len()), limits()).expect("walk");
        assert_eq!(walked.found.len(), 1, "{walked:?}");
        assert_eq!(walked.found[0].path, "model.pt!/archive/data.pkl");
        assert_eq!(walked.found[0].verdict, Verdict::Dangerous);
    }

    #[test]
    fn the_byte_limit_stops_a_walk_and_says_so() {
        let data = vec![0u8; 1 << 20];
        let tight = Limits {
            max_bytes: 1000,
            ..limits()
        };
        let walked = walk(&mut &data[..], "x.pkl", hint("x.pkl", data.len()), tight).expect("walk");
        assert!(walked.incomplete.is_some(), "{walked:?}");
    }
}
