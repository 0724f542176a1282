//! Zstandard streams (ModelPack's `tar+zstd` layers, `.zst` files), frame
//! after frame as `zstd -d` reads them, with the decoder's window capped so
//! a stream cannot make the scanner hold more than that in memory.

use std::io::{self, BufRead, Read};

use ruzstd::decoding::errors::{FrameDecoderError, ReadFrameHeaderError};
use ruzstd::decoding::{BlockDecodingStrategy, FrameDecoder};

/// Largest window a frame may ask for: `zstd -19` uses 8 MiB, `--long` 128.
const MAX_WINDOW: u64 = 32 * 1024 * 1024;

/// The four bytes every Zstandard frame starts with.
pub const MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// The decompressed bytes of every frame of `source`, in order; skippable
/// frames (metadata) are skipped.
pub struct Frames<'a> {
    source: &'a mut dyn BufRead,
    decoder: FrameDecoder,
    in_frame: bool,
}

impl<'a> Frames<'a> {
    pub fn new(source: &'a mut dyn BufRead) -> Frames<'a> {
        let mut decoder = FrameDecoder::new();
        decoder.set_max_window_size(MAX_WINDOW);
        Frames {
            source,
            decoder,
            in_frame: false,
        }
    }

    /// Starts the next frame; false at the end of the stream.
    fn next_frame(&mut self) -> io::Result<bool> {
        loop {
            if self.source.fill_buf()?.is_empty() {
                return Ok(false);
            }
            match self.decoder.reset(&mut *self.source) {
                Ok(()) => return Ok(true),
                Err(FrameDecoderError::ReadFrameHeaderError(ReadFrameHeaderError::SkipFrame {
                    length,
                    ..
                })) => {
                    let want = u64::from(length);
                    let skipped = io::copy(&mut (&mut *self.source).take(want), &mut io::sink())?;
                    if skipped < want {
                        return Err(invalid("the stream ends inside a skippable frame"));
                    }
                }
                Err(e) => return Err(invalid(e)),
            }
        }
    }
}

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("zstd: {e}"))
}

impl Read for Frames<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if !self.in_frame {
                if !self.next_frame()? {
                    return Ok(0);
                }
                self.in_frame = true;
            }
            while self.decoder.can_collect() == 0 && !self.decoder.is_finished() {
                self.decoder
                    .decode_blocks(&mut *self.source, BlockDecodingStrategy::UptoBlocks(1))
                    .map_err(invalid)?;
            }
            let n = self.decoder.read(buf)?;
            if n > 0 {
                return Ok(n);
            }
            self.in_frame = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // What `printf 'hello ' | zstd -c` and `printf world | zstd -c` write,
    // a skippable frame between: frames are read one after another.
    #[test]
    fn frames_are_read_in_turn_and_skippable_ones_skipped() {
        let mut stream = vec![
            0x28, 0xb5, 0x2f, 0xfd, 0x04, 0x58, 0x31, 0x00, 0x00, b'h', b'e', b'l', b'l', b'o',
            b' ', 0xd2, 0x3b, 0xe1, 0xa9,
        ];
        stream.extend_from_slice(&[0x50, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 1, 2, 3]);
        stream.extend_from_slice(&[
            0x28, 0xb5, 0x2f, 0xfd, 0x04, 0x58, 0x29, 0x00, 0x00, b'w', b'o', b'r', b'l', b'd',
            0xef, 0x51, 0xee, 0x66,
        ]);
        let mut r = io::BufReader::new(stream.as_slice());
        let mut out = String::new();
        Frames::new(&mut r).read_to_string(&mut out).expect("zstd");
        assert_eq!(out, "hello world");
        let mut bad = io::BufReader::new(&[0x28, 0xb5, 0x2f, 0xfd, 0xff][..]);
        assert!(Frames::new(&mut bad).read_to_string(&mut out).is_err());
    }
}
