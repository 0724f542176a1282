//! Reads a pickle's opcodes, never running them, and lists every global it
//! would import. The stack is followed only as far as needed to name what
//! `STACK_GLOBAL` imports and to size the arrays joblib writes raw into the
//! stream (joblib.rs): short strings, numbers and small tuples and dicts are
//! kept (within a budget), every other value is a placeholder.

use std::collections::HashMap;
use std::io::{self, BufRead, Read};

use super::joblib::{self, Trailing};

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
/// Most items a kept tuple or dict holds, counting what it holds.
const KEPT_ITEMS: usize = 64;

#[derive(Debug, Clone)]
pub(super) enum Value {
    Str(String),
    Int(i64),
    None,
    /// A short tuple (longer ones are placeholders).
    Tuple(Vec<Value>),
    /// A dict while it is short.
    Dict(Vec<(Value, Value)>),
    Global(Import),
    /// What calling or instantiating a global made, with its arguments and
    /// the state a BUILD gave it (kept for NumPy dtypes only).
    Made {
        class: Import,
        args: Box<Value>,
        state: Option<Box<Value>>,
        /// Which object: its copies in the memo share it.
        id: u64,
    },
    Other,
    Mark,
}

impl Value {
    /// Values held, itself included: what the small-container cap counts.
    fn items(&self) -> usize {
        match self {
            Value::Tuple(v) => 1 + v.iter().map(Value::items).sum::<usize>(),
            Value::Dict(v) => 1 + v.iter().map(|(k, v)| k.items() + v.items()).sum::<usize>(),
            Value::Made { args, state, .. } => {
                1 + args.items() + state.as_ref().map_or(0, |s| s.items())
            }
            _ => 1,
        }
    }

    /// Bytes of strings held, what the string budget counts.
    fn kept_bytes(&self) -> usize {
        match self {
            Value::Str(s) => s.len(),
            Value::Global(i) => i.module.len() + i.name.len(),
            Value::Tuple(v) => v.iter().map(Value::kept_bytes).sum(),
            Value::Dict(v) => v.iter().map(|(k, v)| k.kept_bytes() + v.kept_bytes()).sum(),
            Value::Made {
                class, args, state, ..
            } => {
                class.module.len()
                    + class.name.len()
                    + args.kept_bytes()
                    + state.as_ref().map_or(0, |s| s.kept_bytes())
            }
            _ => 0,
        }
    }

    fn tuple(items: Vec<Value>) -> Value {
        if items.iter().map(Value::items).sum::<usize>() < KEPT_ITEMS
            && items.iter().all(|v| !matches!(v, Value::Mark))
        {
            Value::Tuple(items)
        } else {
            Value::Other
        }
    }

    /// The value of a string key, if this is a dict that has it.
    pub(super) fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(items) => items
                .iter()
                .rev()
                .find(|(k, _)| matches!(k, Value::Str(s) if s == key))
                .map(|(_, v)| v),
            _ => None,
        }
    }
}

/// How every complaint about a stream that stops too soon begins.
const ENDS_INSIDE: &str = "the stream ends inside";

/// Why reading stopped: the stream is not a pickle, or the source failed.
enum Stop {
    Malformed(String),
    Io(io::Error),
}

impl From<io::Error> for Stop {
    fn from(e: io::Error) -> Stop {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            Stop::Malformed(format!("{ENDS_INSIDE} a pickle"))
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

/// How a reader treats what it meets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reading {
    /// As `joblib.load` does: raw array bytes after a `NumpyArrayWrapper`.
    Joblib,
    /// As `pickle.load` does.
    Plain,
    /// As `pickle.load` would, from the middle of a stream whose stack and
    /// memo are unknown: what is missing is a placeholder, not an error.
    Midstream,
}

struct Machine<'a> {
    r: &'a mut dyn BufRead,
    stack: Vec<Value>,
    memo: HashMap<u64, Value>,
    kept: usize,
    offset: u64,
    reading: Reading,
    /// Objects made so far, to number them.
    made: u64,
    /// Where in the memo each dtype object was put: a BUILD of one is seen
    /// by its copies there.
    dtypes_in_memo: HashMap<u64, Vec<u64>>,
}

fn read_one(r: &mut dyn BufRead, out: &mut PickleScan) -> Result<(), Stop> {
    run(r, out, Reading::Joblib).map(|_| ())
}

/// Reads one pickle to its STOP; the bytes read.
fn run(r: &mut dyn BufRead, out: &mut PickleScan, reading: Reading) -> Result<u64, Stop> {
    let mut m = Machine {
        r,
        stack: Vec::new(),
        memo: HashMap::new(),
        kept: 0,
        offset: 0,
        reading,
        made: 0,
        dtypes_in_memo: HashMap::new(),
    };
    loop {
        let at = m.offset;
        let op = m.byte()?;
        if !m.step(op, out)? {
            return Ok(m.offset);
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

    /// A value as kept: a placeholder once the string budget is spent.
    fn keep(&mut self, v: Value) -> Value {
        let n = v.kept_bytes();
        if n == 0 {
            v
        } else if self.kept + n > KEPT_BYTES {
            Value::Other
        } else {
            self.kept += n;
            v
        }
    }

    fn push(&mut self, v: Value) {
        let v = self.keep(v);
        self.stack.push(v);
    }

    fn lenient(&self) -> bool {
        self.reading == Reading::Midstream
    }

    fn pop(&mut self) -> Result<Value, Stop> {
        match self.stack.pop() {
            Some(Value::Mark) => bad("an opcode takes a value where a mark is"),
            Some(v) => Ok(v),
            None if self.lenient() => Ok(Value::Other),
            None => bad("an opcode takes a value from an empty stack"),
        }
    }

    fn pop_n(&mut self, n: usize) -> Result<Vec<Value>, Stop> {
        let mut v = (0..n).map(|_| self.pop()).collect::<Result<Vec<_>, _>>()?;
        v.reverse();
        Ok(v)
    }

    /// Pops down to (and including) the topmost mark; what was above it.
    fn pop_mark(&mut self) -> Result<Vec<Value>, Stop> {
        let mut above = Vec::new();
        loop {
            match self.stack.pop() {
                Some(Value::Mark) => break,
                Some(v) => above.push(v),
                None if self.lenient() => break,
                None => return bad("an opcode needs a mark and there is none"),
            }
        }
        above.reverse();
        Ok(above)
    }

    fn top(&self) -> Result<Value, Stop> {
        match self.stack.last() {
            Some(Value::Mark) => bad("nothing on the stack to memoize"),
            None if self.lenient() => Ok(Value::Other),
            None => bad("nothing on the stack to memoize"),
            Some(v) => Ok(v.clone()),
        }
    }

    /// Key/value pairs added to the dict on top of the stack.
    fn set_items(&mut self, items: Vec<Value>) -> Result<(), Stop> {
        if !items.len().is_multiple_of(2) {
            return bad("a dict is given a key without a value");
        }
        let lenient = self.lenient();
        let top = match self.stack.last_mut() {
            Some(Value::Mark) => return bad("items are set on a mark"),
            Some(top) => top,
            None if lenient => return Ok(()),
            None => return bad("items are set on an empty stack"),
        };
        if let Value::Dict(pairs) = top {
            let mut it = items.into_iter();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                pairs.push((k, v));
            }
            if top.items() >= KEPT_ITEMS {
                *top = Value::Other;
            }
        }
        Ok(())
    }

    fn memo_put(&mut self, key: u64) -> Result<(), Stop> {
        let v = self.top()?;
        let v = self.keep(v);
        if let Value::Made { class, id, .. } = &v
            && joblib::is_dtype(class)
        {
            self.dtypes_in_memo.entry(*id).or_default().push(key);
        }
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
            None if self.lenient() => {
                self.push(Value::Other);
                Ok(())
            }
            None => bad(format!("memo {key} is read before it is written")),
        }
    }

    /// What calling `callable` with `args` makes.
    fn made(&mut self, callable: Value, args: Value) -> Value {
        match callable {
            Value::Global(class) if args.items() < KEPT_ITEMS => {
                self.made += 1;
                Value::Made {
                    class,
                    args: Box::new(args),
                    state: None,
                    id: self.made,
                }
            }
            _ => Value::Other,
        }
    }

    /// A dtype's BUILD: its state (whether it holds objects, for one) is
    /// kept on it and on its copies in the memo.
    fn build_dtype(&mut self, state: Value) {
        if state.items() >= KEPT_ITEMS {
            return;
        }
        let state = self.keep(state);
        let set = |v: &mut Value| {
            if let Value::Made { state: s, .. } = v {
                *s = Some(Box::new(state.clone()));
            }
        };
        let Some(top) = self.stack.last_mut() else {
            return;
        };
        set(top);
        let Value::Made { id, .. } = top else {
            return;
        };
        for key in self.dtypes_in_memo.get(id).into_iter().flatten() {
            if let Some(v) = self.memo.get_mut(key) {
                set(v);
            }
        }
    }

    /// BUILD: `state` set on the object on top of the stack. joblib then
    /// reads an array's data from the stream, after the pickle's opcodes.
    fn build(&mut self, state: Value, out: &mut PickleScan) -> Result<(), Stop> {
        let class = match self.stack.last() {
            Some(Value::Made { class, .. }) => class,
            Some(Value::Mark) => return bad("BUILD on a mark"),
            Some(_) => return Ok(()),
            None if self.lenient() => return Ok(()),
            None => return bad("BUILD on an empty stack"),
        };
        if joblib::is_dtype(class) {
            self.build_dtype(state);
            return Ok(());
        }
        if self.reading != Reading::Joblib || !joblib::is_array_wrapper(class) {
            return Ok(());
        }
        match joblib::trailing(&state) {
            Ok(Trailing::Pickle) => {
                // An object array: joblib unpickles another whole pickle.
                self.offset += run(&mut *self.r, out, Reading::Plain)?;
                Ok(())
            }
            Ok(Trailing::Bytes(len)) => {
                // A byte counting the padding, then the padding, then the data.
                let pad = if joblib::padded(&state) {
                    match self.r.fill_buf()?.first() {
                        Some(&n) => 1 + u64::from(n),
                        None => return bad(format!("{ENDS_INSIDE} a joblib array's padding")),
                    }
                } else {
                    0
                };
                self.array_bytes(pad + len, out)
            }
            Err(why) => bad(why),
        }
    }

    /// Skips an array's raw bytes as joblib reads them, and reads them as
    /// `pickle.load` would (which runs on through them): a file that hides
    /// opcodes there is seen as either loader sees it.
    fn array_bytes(&mut self, len: u64, out: &mut PickleScan) -> Result<(), Stop> {
        let mut region = (&mut *self.r).take(len);
        let mut plain = PickleScan::default();
        let ran_on = match run(&mut region, &mut plain, Reading::Midstream) {
            // pickle.load stops at a STOP or at an opcode it does not know.
            Ok(_) => false,
            Err(Stop::Malformed(why)) => why.starts_with(ENDS_INSIDE),
            Err(e) => return Err(e),
        };
        for i in plain.imports.into_iter().filter(joblib::names_a_module) {
            Self::import(out, i.module, i.name);
        }
        io::copy(&mut region, &mut io::sink())?;
        let short = region.limit();
        self.offset += len - short;
        if short > 0 {
            return bad(format!("{ENDS_INSIDE} a joblib array's data"));
        }
        if ran_on {
            return bad(
                "a joblib array's bytes, read as pickle opcodes, run on past \
                        the array: pickle.load would run them",
            );
        }
        Ok(())
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
            b'I' => {
                let line = self.line()?;
                let v = match line.as_str() {
                    "00" | "01" => Value::Other,
                    n => n.parse().map_or(Value::Other, Value::Int),
                };
                self.push(v);
            }
            b'L' => {
                let line = self.line()?;
                let v = line
                    .trim_end_matches('L')
                    .parse()
                    .map_or(Value::Other, Value::Int);
                self.push(v);
            }
            b'F' => {
                self.line()?;
                self.push(Value::Other);
            }
            b'J' => {
                let n = i32::from_le_bytes(self.bytes()?);
                self.push(Value::Int(n.into()));
            }
            b'K' => {
                let n = self.byte()?;
                self.push(Value::Int(n.into()));
            }
            b'M' => {
                let n = u16::from_le_bytes(self.bytes()?);
                self.push(Value::Int(n.into()));
            }
            b'G' => {
                self.bytes::<8>()?;
                self.push(Value::Other);
            }
            0x8a => {
                let n = self.byte()?;
                let v = if (1..=8).contains(&n) {
                    let mut b = vec![0u8; usize::from(n)];
                    self.r.read_exact(&mut b)?;
                    self.offset += u64::from(n);
                    let fill = if b[b.len() - 1] & 0x80 != 0 { 0xff } else { 0 };
                    let mut le = [fill; 8];
                    le[..b.len()].copy_from_slice(&b);
                    Value::Int(i64::from_le_bytes(le))
                } else {
                    self.counted(u64::from(n), false)?
                };
                self.push(v);
            }
            0x8b => {
                let n = self.u32()?;
                let v = self.counted(n, false)?;
                self.push(v);
            }
            b'N' => self.push(Value::None),
            0x88 | 0x89 => self.push(Value::Other),
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
            b']' | 0x8f => self.push(Value::Other),
            b')' => self.push(Value::Tuple(Vec::new())),
            b'}' => self.push(Value::Dict(Vec::new())),
            b'(' => self.stack.push(Value::Mark),
            b'l' | 0x91 => {
                self.pop_mark()?;
                self.push(Value::Other);
            }
            b't' => {
                let items = self.pop_mark()?;
                self.push(Value::tuple(items));
            }
            b'd' => {
                let items = self.pop_mark()?;
                self.push(Value::Dict(Vec::new()));
                self.set_items(items)?;
            }
            b'a' => {
                self.pop_n(1)?;
            }
            b'e' | 0x90 | b'1' => {
                self.pop_mark()?;
            }
            b's' => {
                let items = self.pop_n(2)?;
                self.set_items(items)?;
            }
            b'u' => {
                let items = self.pop_mark()?;
                self.set_items(items)?;
            }
            0x85..=0x87 => {
                let items = self.pop_n(usize::from(op - 0x84))?;
                self.push(Value::tuple(items));
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
                let global = Import { module, name };
                Self::import(out, global.module.clone(), global.name.clone());
                self.push(Value::Global(global));
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
                    (Value::Str(module), Value::Str(name)) => {
                        Self::import(out, module.clone(), name.clone());
                        self.push(Value::Global(Import { module, name }));
                    }
                    _ => {
                        Self::import(out, COMPUTED.into(), "STACK_GLOBAL".into());
                        self.push(Value::Other);
                    }
                }
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
                let args = self.pop()?;
                let callable = self.pop()?;
                let v = self.made(callable, args);
                self.push(v);
            }
            0x92 => {
                self.pop()?;
                let args = self.pop()?;
                let class = self.pop()?;
                let v = self.made(class, args);
                self.push(v);
            }
            b'b' => {
                let state = self.pop()?;
                self.build(state, out)?;
            }
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
    fn tuples_of_copies_of_tuples_stay_small() {
        // Each level a tuple of sixteen copies of the one before, 40 deep:
        // kept whole, that would be 16^40 values.
        let mut p = b"\x80\x04K\x01\x94".to_vec();
        for level in 0..40u8 {
            p.push(b'(');
            for _ in 0..16 {
                p.extend_from_slice(&[b'h', level]);
            }
            p.extend_from_slice(b"t\x94");
        }
        p.push(b'.');
        let s = imports(&p);
        assert!(s.malformed.is_none(), "{:?}", s.malformed);
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
