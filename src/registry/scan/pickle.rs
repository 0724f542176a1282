//! Reads a pickle's opcodes, never running them, and lists every global it
//! would import. The stack is followed only as far as needed to name what
//! `STACK_GLOBAL` imports: strings are kept (short ones, within a budget),
//! every other value is a placeholder.

use std::collections::HashMap;
use std::io::{self, BufRead, Read};

/// A global the pickle would import: `module.name`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Import {
    pub module: String,
    pub name: String,
}

/// Pseudo-modules for what a pickle may import without naming it.
pub const COMPUTED: &str = "<computed>";
pub const EXTENSION: &str = "<copyreg extension>";

/// What one stream of pickles holds.
#[derive(Debug, Default)]
pub struct PickleScan {
    /// The highest protocol a `PROTO` opcode declared (0 when none did).
    pub protocol: u8,
    /// Every global, in the order first met.
    pub imports: Vec<Import>,
    /// Why the stream is not a well-formed pickle, if it is not.
    pub malformed: Option<String>,
}

/// Longest string kept for naming a global; longer ones are placeholders.
const KEPT_STRING: usize = 512;
/// Bytes of strings kept on the stack and in the memo at most.
const KEPT_BYTES: usize = 16 * 1024 * 1024;
/// Values on the stack at most (placeholders are a byte or so each).
const MAX_STACK: usize = 4 * 1024 * 1024;
/// Memo entries at most.
const MAX_MEMO: usize = 4 * 1024 * 1024;
/// Longest text argument (protocol 0 lines).
const MAX_LINE: usize = 1024 * 1024;

#[derive(Debug, Clone)]
enum Value {
    Str(String),
    Other,
    Mark,
}

/// Why reading stopped: the stream is not a pickle, or the source failed.
enum Stop {
    Malformed(String),
    Io(io::Error),
}

impl From<io::Error> for Stop {
    fn from(e: io::Error) -> Stop {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            Stop::Malformed("the stream ends inside a pickle".into())
        } else {
            Stop::Io(e)
        }
    }
}

fn bad<T>(why: impl Into<String>) -> Result<T, Stop> {
    Err(Stop::Malformed(why.into()))
}

/// Reads every pickle in `r`, one after another as `torch.save`'s legacy
/// format writes them, until the data stops looking like one. An error of
/// the source itself (not of the pickle) is returned as such.
pub fn scan(r: &mut dyn BufRead) -> io::Result<PickleScan> {
    let mut out = PickleScan::default();
    let mut first = true;
    loop {
        let found_before = out.imports.len();
        match read_one(r, &mut out) {
            Ok(()) => {}
            Err(Stop::Io(e)) => return Err(e),
            // A later "pickle" that names nothing is the data after the
            // pickles (a legacy torch file's storages), not a bad pickle.
            Err(Stop::Malformed(_)) if !first && out.imports.len() == found_before => {
                return Ok(out);
            }
            Err(Stop::Malformed(why)) => {
                out.malformed = Some(why);
                return Ok(out);
            }
        }
        first = false;
        // Another pickle follows only if it starts with PROTO 2 or later.
        let next = r.fill_buf()?;
        if next.len() < 2 || next[0] != 0x80 || !(2..=5).contains(&next[1]) {
            return Ok(out);
        }
    }
}

struct Machine<'a> {
    r: &'a mut dyn BufRead,
    stack: Vec<Value>,
    memo: HashMap<u64, Value>,
    kept: usize,
    offset: u64,
}

fn read_one(r: &mut dyn BufRead, out: &mut PickleScan) -> Result<(), Stop> {
    let mut m = Machine {
        r,
        stack: Vec::new(),
        memo: HashMap::new(),
        kept: 0,
        offset: 0,
    };
    loop {
        let at = m.offset;
        let op = m.byte()?;
        if !m.step(op, out)? {
            return Ok(());
        }
        if m.stack.len() > MAX_STACK || m.memo.len() > MAX_MEMO {
            return bad(format!(
                "more than {MAX_STACK} values (at byte {at}): too large to follow"
            ));
        }
    }
}

impl Machine<'_> {
    fn byte(&mut self) -> Result<u8, Stop> {
        let mut b = [0u8; 1];
        self.r.read_exact(&mut b)?;
        self.offset += 1;
        Ok(b[0])
    }

    fn bytes<const N: usize>(&mut self) -> Result<[u8; N], Stop> {
        let mut b = [0u8; N];
        self.r.read_exact(&mut b)?;
        self.offset += N as u64;
        Ok(b)
    }

    fn u32(&mut self) -> Result<u64, Stop> {
        Ok(u64::from(u32::from_le_bytes(self.bytes()?)))
    }

    fn u64(&mut self) -> Result<u64, Stop> {
        Ok(u64::from_le_bytes(self.bytes()?))
    }

    /// A text argument up to its newline (without it).
    fn line(&mut self) -> Result<String, Stop> {
        let mut buf = Vec::new();
        let n = (&mut *self.r)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut buf)?;
        self.offset += n as u64;
        if buf.last() != Some(&b'\n') {
            return bad(if n > MAX_LINE {
                "a text argument longer than 1 MiB"
            } else {
                "the stream ends inside a text argument"
            });
        }
        buf.pop();
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }

    /// A length-prefixed argument: kept as a string if short, else skipped.
    fn counted(&mut self, len: u64, text: bool) -> Result<Value, Stop> {
        if text && len as usize <= KEPT_STRING {
            let mut buf = vec![0u8; len as usize];
            self.r.read_exact(&mut buf)?;
            self.offset += len;
            return Ok(match String::from_utf8(buf) {
                Ok(s) => Value::Str(s),
                Err(_) => Value::Other,
            });
        }
        let skipped = io::copy(&mut (&mut *self.r).take(len), &mut io::sink())?;
        self.offset += skipped;
        if skipped < len {
            return bad("the stream ends inside a value");
        }
        Ok(Value::Other)
    }

    fn push(&mut self, v: Value) {
        let v = match v {
            Value::Str(s) if self.kept + s.len() > KEPT_BYTES => Value::Other,
            Value::Str(s) => {
                self.kept += s.len();
                Value::Str(s)
            }
            other => other,
        };
        self.stack.push(v);
    }

    fn pop(&mut self) -> Result<Value, Stop> {
        match self.stack.pop() {
            Some(Value::Mark) => bad("an opcode takes a value where a mark is"),
            Some(v) => Ok(v),
            None => bad("an opcode takes a value from an empty stack"),
        }
    }

    fn pop_n(&mut self, n: usize) -> Result<(), Stop> {
        for _ in 0..n {
            self.pop()?;
        }
        Ok(())
    }

    /// Pops down to (and including) the topmost mark.
    fn pop_mark(&mut self) -> Result<(), Stop> {
        loop {
            match self.stack.pop() {
                Some(Value::Mark) => return Ok(()),
                Some(_) => {}
                None => return bad("an opcode needs a mark and there is none"),
            }
        }
    }

    fn top(&self) -> Result<Value, Stop> {
        match self.stack.last() {
            Some(Value::Mark) | None => bad("nothing on the stack to memoize"),
            Some(v) => Ok(v.clone()),
        }
    }

    fn memo_put(&mut self, key: u64) -> Result<(), Stop> {
        let v = self.top()?;
        self.memo.insert(key, v);
        Ok(())
    }

    fn memo_get(&mut self, key: u64) -> Result<(), Stop> {
        match self.memo.get(&key) {
            Some(v) => {
                let v = v.clone();
                self.push(v);
                Ok(())
            }
            None => bad(format!("memo {key} is read before it is written")),
        }
    }

    fn import(out: &mut PickleScan, module: String, name: String) {
        let import = Import { module, name };
        if !out.imports.contains(&import) {
            out.imports.push(import);
        }
    }

    fn number(s: &str) -> Result<u64, Stop> {
        s.trim()
            .parse()
            .or_else(|_| bad(format!("{s:?} is not a memo index")))
    }

    /// Runs one opcode's effect on the stack; false at STOP.
    fn step(&mut self, op: u8, out: &mut PickleScan) -> Result<bool, Stop> {
        match op {
            b'.' => return Ok(false),
            // PROTO, FRAME
            0x80 => {
                let p = self.byte()?;
                if p > 5 {
                    return bad(format!("protocol {p} is unknown"));
                }
                out.protocol = out.protocol.max(p);
            }
            0x95 => {
                self.u64()?;
            }
            // Numbers and constants.
            b'I' | b'L' | b'F' => {
                self.line()?;
                self.push(Value::Other);
            }
            b'J' => {
                self.bytes::<4>()?;
                self.push(Value::Other);
            }
            b'K' => {
                self.byte()?;
                self.push(Value::Other);
            }
            b'M' => {
                self.bytes::<2>()?;
                self.push(Value::Other);
            }
            b'G' => {
                self.bytes::<8>()?;
                self.push(Value::Other);
            }
            0x8a => {
                let n = u64::from(self.byte()?);
                let v = self.counted(n, false)?;
                self.push(v);
            }
            0x8b => {
                let n = self.u32()?;
                let v = self.counted(n, false)?;
                self.push(v);
            }
            b'N' | 0x88 | 0x89 => self.push(Value::Other),
            // Strings and bytes.
            b'S' => {
                let line = self.line()?;
                let t = line.trim();
                let unquoted = t
                    .strip_prefix('\'')
                    .and_then(|s| s.strip_suffix('\''))
                    .or_else(|| t.strip_prefix('"').and_then(|s| s.strip_suffix('"')));
                match unquoted {
                    Some(s) if s.len() <= KEPT_STRING => self.push(Value::Str(s.to_owned())),
                    Some(_) => self.push(Value::Other),
                    None => return bad("STRING argument is not quoted"),
                }
            }
            b'V' => {
                let line = self.line()?;
                if line.len() <= KEPT_STRING && !line.contains('\\') {
                    self.push(Value::Str(line));
                } else {
                    self.push(Value::Other);
                }
            }
            b'T' | b'X' => {
                let n = self.u32()?;
                let v = self.counted(n, true)?;
                self.push(v);
            }
            b'U' | 0x8c => {
                let n = u64::from(self.byte()?);
                let v = self.counted(n, true)?;
                self.push(v);
            }
            0x8d => {
                let n = self.u64()?;
                let v = self.counted(n, true)?;
                self.push(v);
            }
            b'B' => {
                let n = self.u32()?;
                let v = self.counted(n, false)?;
                self.push(v);
            }
            b'C' => {
                let n = u64::from(self.byte()?);
                let v = self.counted(n, false)?;
                self.push(v);
            }
            0x8e | 0x96 => {
                let n = self.u64()?;
                let v = self.counted(n, false)?;
                self.push(v);
            }
            // Containers.
            b']' | b')' | b'}' | 0x8f => self.push(Value::Other),
            b'(' => self.stack.push(Value::Mark),
            b'l' | b't' | b'd' | 0x91 => {
                self.pop_mark()?;
                self.push(Value::Other);
            }
            b'a' => self.pop_n(1)?,
            b'e' | b'u' | 0x90 | b'1' => self.pop_mark()?,
            b's' => self.pop_n(2)?,
            0x85 => {
                self.pop_n(1)?;
                self.push(Value::Other);
            }
            0x86 => {
                self.pop_n(2)?;
                self.push(Value::Other);
            }
            0x87 => {
                self.pop_n(3)?;
                self.push(Value::Other);
            }
            // Stack and memo.
            b'0' => {
                if self.stack.pop().is_none() {
                    return bad("POP of an empty stack");
                }
            }
            b'2' => {
                let v = self.top()?;
                self.push(v);
            }
            b'p' => {
                let line = self.line()?;
                self.memo_put(Self::number(&line)?)?;
            }
            b'q' => {
                let k = u64::from(self.byte()?);
                self.memo_put(k)?;
            }
            b'r' => {
                let k = self.u32()?;
                self.memo_put(k)?;
            }
            0x94 => {
                let k = self.memo.len() as u64;
                self.memo_put(k)?;
            }
            b'g' => {
                let line = self.line()?;
                self.memo_get(Self::number(&line)?)?;
            }
            b'h' => {
                let k = u64::from(self.byte()?);
                self.memo_get(k)?;
            }
            b'j' => {
                let k = self.u32()?;
                self.memo_get(k)?;
            }
            // Imports.
            b'c' => {
                let module = self.line()?;
                let name = self.line()?;
                Self::import(out, module, name);
                self.push(Value::Other);
            }
            b'i' => {
                let module = self.line()?;
                let name = self.line()?;
                Self::import(out, module, name);
                self.pop_mark()?;
                self.push(Value::Other);
            }
            0x93 => {
                let name = self.pop()?;
                let module = self.pop()?;
                match (module, name) {
                    (Value::Str(m), Value::Str(n)) => Self::import(out, m, n),
                    _ => Self::import(out, COMPUTED.into(), "STACK_GLOBAL".into()),
                }
                self.push(Value::Other);
            }
            0x82 => {
                let code = self.byte()?;
                Self::import(out, EXTENSION.into(), code.to_string());
                self.push(Value::Other);
            }
            0x83 => {
                let code = u16::from_le_bytes(self.bytes()?);
                Self::import(out, EXTENSION.into(), code.to_string());
                self.push(Value::Other);
            }
            0x84 => {
                let code = self.u32()?;
                Self::import(out, EXTENSION.into(), code.to_string());
                self.push(Value::Other);
            }
            // Building objects.
            b'o' => {
                self.pop_mark()?;
                self.push(Value::Other);
            }
            b'R' | 0x81 => {
                self.pop_n(2)?;
                self.push(Value::Other);
            }
            0x92 => {
                self.pop_n(3)?;
                self.push(Value::Other);
            }
            b'b' => self.pop_n(1)?,
            // Persistent ids and out-of-band buffers.
            b'P' => {
                self.line()?;
                self.push(Value::Other);
            }
            b'Q' | 0x98 => {
                self.pop_n(1)?;
                self.push(Value::Other);
            }
            0x97 => self.push(Value::Other),
            other => {
                return bad(format!(
                    "byte {:#04x} at offset {} is not a pickle opcode",
                    other,
                    self.offset - 1
                ));
            }
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn imports(bytes: &[u8]) -> PickleScan {
        scan(&mut io::BufReader::new(bytes)).expect("scan")
    }

    fn names(s: &PickleScan) -> Vec<String> {
        s.imports
            .iter()
            .map(|i| format!("{}.{}", i.module, i.name))
            .collect()
    }

    // What `pickle.dumps` writes for `os.system("id")` via __reduce__ at
    // protocol 0 and at protocol 4 (STACK_GLOBAL over memoized strings).
    #[test]
    fn globals_are_found_at_protocol_0_and_4() {
        let p0 = b"cposix\nsystem\np0\n(Vid\np1\ntp2\nRp3\n.";
        let s = imports(p0);
        assert_eq!(names(&s), ["posix.system"]);
        assert!(s.malformed.is_none());
        let p4 = b"\x80\x04\x95\x1d\x00\x00\x00\x00\x00\x00\x00\x8c\x05posix\x94\x8c\x06system\x94\x93\x94\x8c\x02id\x94\x85\x94R\x94.";
        let s = imports(p4);
        assert_eq!(s.protocol, 4);
        assert_eq!(names(&s), ["posix.system"]);
        assert!(s.malformed.is_none());
    }

    #[test]
    fn stack_global_through_the_memo_is_named() {
        // Module and name memoized, fetched back with BINGET.
        let p = b"\x80\x04\x8c\x02os\x94\x8c\x06system\x94h\x00h\x01\x93N\x85R.";
        assert_eq!(names(&imports(p)), ["os.system"]);
    }

    #[test]
    fn a_global_of_computed_names_is_flagged() {
        // The module name is a value built by a call, not a string.
        let p = b"\x80\x04\x8c\x08builtins\x8c\x03str\x93\x8c\x02os\x85R\x8c\x06system\x93.";
        let s = imports(p);
        assert_eq!(names(&s), ["builtins.str", "<computed>.STACK_GLOBAL"]);
    }

    #[test]
    fn truncated_and_garbage_streams_are_malformed_not_errors() {
        let s = imports(b"\x80\x04\x8c\x05pos");
        assert!(s.malformed.is_some());
        let s = imports(b"\xff\xfe\xfd");
        assert!(
            s.malformed
                .expect("malformed")
                .contains("not a pickle opcode")
        );
        let s = imports(b"\x80\x04R.");
        assert!(s.malformed.expect("malformed").contains("empty stack"));
        let s = imports(b"\x80\x04h\x07.");
        assert!(s.malformed.expect("malformed").contains("memo 7"));
    }

    #[test]
    fn pickles_in_sequence_are_all_read_and_trailing_data_is_not_a_pickle() {
        let mut p = b"\x80\x02K\x01.".to_vec();
        p.extend_from_slice(b"\x80\x02cos\nsystem\n.");
        p.extend_from_slice(&[0x80, 0x02, 0x00, 0x00, 0x13, 0x37]);
        let s = imports(&p);
        assert_eq!(names(&s), ["os.system"]);
        assert!(s.malformed.is_none());
    }

    #[test]
    fn large_values_are_skipped_not_kept() {
        let mut p = b"\x80\x04\x8e".to_vec();
        p.extend_from_slice(&(1_000_000u64).to_le_bytes());
        p.extend(std::iter::repeat_n(0u8, 1_000_000));
        p.extend_from_slice(b"0.");
        let s = imports(&p);
        assert!(s.malformed.is_none(), "{:?}", s.malformed);
    }
}
