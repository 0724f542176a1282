//! Writes of large uploads that go around the page cache. A buffered write
//! costs a copy into the page cache and leaves the disk to catch up at the
//! final sync (a few hundred MB/s here); an O_DIRECT write hands the buffer
//! to the disk as it is (about three times as fast on the same disk, and no
//! copy). O_DIRECT wants the file offset, the buffer's address and its length
//! aligned to the device's block, so buffers are laid out in memory at the
//! same offset within a block as their bytes in the file: the whole blocks of
//! any write go direct and only its ragged ends are buffered. A file system
//! that refuses O_DIRECT (some FUSE file systems) is written buffered.
//! Durability is unchanged: what ends an upload still syncs the file (O_DIRECT
//! neither flushes the disk's cache nor the file's metadata).

use std::fs::File;
use std::os::unix::fs::FileExt as _;

/// The block O_DIRECT writes align to: the largest logical block size of
/// common disks, and the page size.
const BLOCK: usize = 4096;
/// The smallest run of whole blocks worth writing direct: below this the
/// two mode switches cost more than the copy they save.
const DIRECT_MIN: usize = 64 * 1024;

/// Bytes gathered for one write to the file at `at`, laid out so that each
/// byte's address has the same offset within a block as its place in the
/// file. Safe code: the buffer skips a few bytes at its start to get there,
/// and never grows past the capacity it was given (it would move).
pub struct Staged {
    bytes: Vec<u8>,
    skip: usize,
    aligned: bool,
}

impl Staged {
    /// A small buffer that grows as bytes come (no alignment: small blobs
    /// are written buffered in one go).
    pub fn small() -> Staged {
        Staged {
            bytes: Vec::new(),
            skip: 0,
            aligned: false,
        }
    }

    /// Room for `capacity` bytes to be written at file offset `at`, reusing
    /// `spare`'s memory if it is large enough.
    pub fn aligned(capacity: usize, at: u64, spare: Option<Staged>) -> Staged {
        let mut bytes = match spare {
            Some(Staged { mut bytes, .. }) if bytes.capacity() >= capacity + BLOCK => {
                bytes.clear();
                bytes
            }
            _ => Vec::with_capacity(capacity + BLOCK),
        };
        let phase = (at % BLOCK as u64) as usize;
        let skip = (phase + BLOCK - bytes.as_ptr() as usize % BLOCK) % BLOCK;
        bytes.resize(skip, 0);
        Staged {
            bytes,
            skip,
            aligned: true,
        }
    }

    /// This small buffer's bytes in an aligned buffer of `capacity`, its
    /// first byte going to `at`.
    pub fn realigned(&self, capacity: usize, at: u64) -> Staged {
        let mut grown = Staged::aligned(capacity, at, None);
        grown.fill(self.bytes(), capacity);
        grown
    }

    pub fn is_aligned(&self) -> bool {
        self.aligned
    }

    pub fn len(&self) -> usize {
        self.bytes.len() - self.skip
    }

    /// Adds as much of `data` as fits under `limit` bytes in all (without
    /// moving an aligned buffer); returns how much it took.
    pub fn fill(&mut self, data: &[u8], limit: usize) -> usize {
        let n = data.len().min(limit.saturating_sub(self.len()));
        self.bytes.extend_from_slice(&data[..n]);
        n
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes[self.skip..]
    }
}

/// A file written at given offsets, each write's whole blocks direct where
/// the file system lets it.
pub struct DirectFile {
    file: File,
    /// Whether O_DIRECT is set on the file now.
    direct: bool,
    /// Whether the file system took O_DIRECT (cleared at its first refusal).
    can_direct: bool,
}

impl DirectFile {
    pub fn new(file: File) -> DirectFile {
        DirectFile {
            file,
            direct: false,
            can_direct: true,
        }
    }

    pub fn file(&self) -> &File {
        &self.file
    }

    /// Writes `data` at `at`: its whole blocks direct if they are aligned in
    /// memory as in the file and there are enough of them; the rest (and
    /// everything, where O_DIRECT is refused) through the page cache.
    /// Returns how many bytes went through the page cache.
    pub fn write_at(&mut self, data: &[u8], at: u64) -> std::io::Result<usize> {
        let head = ((BLOCK as u64 - at % BLOCK as u64) % BLOCK as u64) as usize;
        let whole = data.len().saturating_sub(head) / BLOCK * BLOCK;
        let lined_up = data.as_ptr() as usize % BLOCK == (at % BLOCK as u64) as usize;
        if !self.can_direct || !lined_up || whole < DIRECT_MIN {
            self.buffered(data, at)?;
            return Ok(data.len());
        }
        self.buffered(&data[..head], at)?;
        let middle = &data[head..head + whole];
        let direct = self.direct_write(middle, at + head as u64)?;
        if !direct {
            self.buffered(middle, at + head as u64)?;
        }
        self.buffered(&data[head + whole..], at + (head + whole) as u64)?;
        Ok(if direct {
            data.len() - whole
        } else {
            data.len()
        })
    }

    fn buffered(&mut self, data: &[u8], at: u64) -> std::io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        self.set_direct(false)?;
        self.file.write_all_at(data, at)
    }

    /// Writes direct; `false` (nothing written) if the file system refuses.
    fn direct_write(&mut self, data: &[u8], at: u64) -> std::io::Result<bool> {
        let refused =
            |e: &std::io::Error| e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error());
        match self.set_direct(true) {
            Err(e) if refused(&e) => {
                self.can_direct = false;
                return Ok(false);
            }
            set => set?,
        }
        match self.file.write_all_at(data, at) {
            // Refused before anything was written: EINVAL is checked
            // before any block moves.
            Err(e) if refused(&e) => {
                self.can_direct = false;
                Ok(false)
            }
            written => written.map(|()| true),
        }
    }

    fn set_direct(&mut self, on: bool) -> std::io::Result<()> {
        use rustix::fs::OFlags;
        if self.direct == on {
            return Ok(());
        }
        let flags = rustix::fs::fcntl_getfl(&self.file)?;
        let flags = if on {
            flags | OFlags::DIRECT
        } else {
            flags - OFlags::DIRECT
        };
        rustix::fs::fcntl_setfl(&self.file, flags)?;
        self.direct = on;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_buffers_line_up_with_their_place_in_the_file() {
        for at in [0u64, 1, 4095, 4096, 5000, 1 << 20] {
            let mut staged = Staged::aligned(1 << 20, at, None);
            assert_eq!(staged.fill(&[7; 10], 1 << 20), 10);
            let addr = staged.bytes().as_ptr() as usize;
            assert_eq!(addr % BLOCK, (at % BLOCK as u64) as usize, "at {at}");
            let again = Staged::aligned(1 << 20, at + 3, Some(staged));
            assert_eq!(again.len(), 0);
            assert_eq!(
                again.bytes().as_ptr() as usize % BLOCK,
                ((at + 3) % BLOCK as u64) as usize
            );
        }
    }

    #[test]
    fn a_buffer_never_takes_more_than_its_limit() {
        let mut staged = Staged::aligned(8192, 0, None);
        assert_eq!(staged.fill(&[1; 5000], 8192), 5000);
        assert_eq!(staged.fill(&[2; 5000], 8192), 3192);
        assert_eq!(staged.fill(&[3; 10], 8192), 0);
        assert_eq!(staged.len(), 8192);
    }

    // Whatever mix of direct and buffered writes a file gets (ragged
    // offsets, ragged lengths), its bytes are what was written.
    #[test]
    fn ragged_writes_leave_exactly_the_bytes_written() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("f");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&path)
            .expect("open");
        let mut out = DirectFile::new(file);
        let expected: Vec<u8> = (0..3_000_000u32)
            .map(|i| (i * 7 + i / 4099) as u8)
            .collect();
        let mut at = 0usize;
        for len in [1, 4095, 200_000, 1 << 20, 12_345, 1_000_000, 70_000] {
            let end = (at + len).min(expected.len());
            let mut staged = Staged::aligned(len, at as u64, None);
            staged.fill(&expected[at..end], len);
            out.write_at(staged.bytes(), at as u64).expect("write");
            at = end;
        }
        let mut rest = Staged::small();
        rest.fill(&expected[at..], usize::MAX);
        out.write_at(rest.bytes(), at as u64).expect("write");
        assert_eq!(std::fs::read(&path).expect("read"), expected);
    }
}
