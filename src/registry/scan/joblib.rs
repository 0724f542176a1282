//! joblib's pickles: `joblib.dump` writes each NumPy array as a
//! `NumpyArrayWrapper` object whose BUILD is followed, in the stream itself,
//! by the array's data: its raw bytes (after a padding byte and the padding
//! it counts, when the wrapper states an alignment), or for an array of
//! Python objects a whole second pickle. `joblib.load` reads them so; a
//! reader of the opcodes must too, or it reads array bytes as opcodes.

use super::pickle::{Import, Value};

/// What follows a wrapper's BUILD in the stream.
#[derive(Debug, PartialEq, Eq)]
pub enum Trailing {
    /// The data's raw bytes, this many (after the padding, when `padded`).
    Bytes(u64),
    /// A pickle of its own: an array of Python objects.
    Pickle,
}

pub fn is_array_wrapper(class: &Import) -> bool {
    class.name == "NumpyArrayWrapper" && class.module.ends_with("numpy_pickle")
}

pub fn is_dtype(class: &Import) -> bool {
    class.name == "dtype" && (class.module == "numpy" || class.module.starts_with("numpy."))
}

/// A global that `pickle.load` could import: dotted Python identifiers.
/// Anything else is bytes that merely decode as a GLOBAL opcode.
pub fn names_a_module(import: &Import) -> bool {
    let identifier = |s: &str| {
        let mut chars = s.chars();
        chars.next().is_some_and(|c| c.is_alphabetic() || c == '_')
            && chars.all(|c| c.is_alphanumeric() || c == '_')
    };
    let dotted = |s: &str| !s.is_empty() && s.split('.').all(identifier);
    dotted(&import.module) && dotted(&import.name)
}

/// What the wrapper's state says follows it.
pub fn trailing(state: &Value) -> Result<Trailing, String> {
    let unreadable = |what: &str| format!("a joblib array whose {what} cannot be read");
    let shape = match state.get("shape") {
        Some(Value::Tuple(dims)) => dims,
        _ => return Err(unreadable("shape")),
    };
    let item = match state.get("dtype") {
        Some(Value::Made {
            class, args, state, ..
        }) if is_dtype(class) => match &**args {
            Value::Tuple(a) => match a.first() {
                Some(Value::Str(code)) => {
                    item_size(code, state.as_deref()).ok_or_else(|| unreadable("dtype"))?
                }
                _ => return Err(unreadable("dtype")),
            },
            _ => return Err(unreadable("dtype")),
        },
        _ => return Err(unreadable("dtype")),
    };
    let Some(item) = item else {
        return Ok(Trailing::Pickle);
    };
    let mut count: u64 = 1;
    for dim in shape {
        let Value::Int(n) = dim else {
            return Err(unreadable("shape"));
        };
        count = u64::try_from(*n)
            .ok()
            .and_then(|n| count.checked_mul(n))
            .ok_or_else(|| unreadable("shape"))?;
    }
    count
        .checked_mul(item)
        .map(Trailing::Bytes)
        .ok_or_else(|| unreadable("shape"))
}

/// Whether the wrapper states an alignment: a padding byte then comes first.
pub fn padded(state: &Value) -> bool {
    !matches!(
        state.get("numpy_array_alignment_bytes"),
        None | Some(Value::None)
    )
}

/// Bytes per item of a NumPy type code as `numpy.dtype` pickles it (`f8`,
/// `U3`, `V64`...); `Some(None)` for items holding Python objects; `None`
/// when that cannot be told. A structured type (`V`) holds objects when its
/// state's flags (the eighth field) have NumPy's NPY_ITEM_HASOBJECT bit.
fn item_size(code: &str, state: Option<&Value>) -> Option<Option<u64>> {
    const HASOBJECT: i64 = 0x01;
    let kind = code.chars().next()?;
    if kind == 'O' {
        return Some(None);
    }
    let n: u64 = code[kind.len_utf8()..].parse().ok()?;
    match kind {
        'b' | 'i' | 'u' | 'f' | 'c' | 'm' | 'M' | 'S' => Some(Some(n)),
        'U' => Some(n.checked_mul(4)),
        'V' => match state {
            Some(Value::Tuple(fields)) if fields.len() == 8 => match fields[7] {
                Value::Int(flags) if flags & HASOBJECT != 0 => Some(None),
                Value::Int(_) => Some(Some(n)),
                _ => None,
            },
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Value {
        Value::Str(v.into())
    }

    fn state(shape: &[i64], code: &str, aligned: bool) -> Value {
        let dtype = Value::Made {
            class: Import {
                module: "numpy".into(),
                name: "dtype".into(),
            },
            state: None,
            id: 1,
            args: Box::new(Value::Tuple(vec![s(code), Value::Other, Value::Other])),
        };
        let mut items = vec![
            (
                s("shape"),
                Value::Tuple(shape.iter().map(|&n| Value::Int(n)).collect()),
            ),
            (s("order"), s("C")),
            (s("dtype"), dtype),
        ];
        if aligned {
            items.push((s("numpy_array_alignment_bytes"), Value::Int(16)));
        }
        Value::Dict(items)
    }

    #[test]
    fn array_sizes_follow_shape_and_type() {
        assert_eq!(
            trailing(&state(&[20, 3], "f8", true)),
            Ok(Trailing::Bytes(480))
        );
        assert_eq!(trailing(&state(&[2], "U3", false)), Ok(Trailing::Bytes(24)));
        assert_eq!(trailing(&state(&[], "i4", false)), Ok(Trailing::Bytes(4)));
        assert_eq!(trailing(&state(&[5], "O8", false)), Ok(Trailing::Pickle));
        assert!(trailing(&state(&[5], "V16", false)).is_err());
        assert!(trailing(&state(&[-1], "f8", false)).is_err());
        assert!(trailing(&state(&[i64::MAX, i64::MAX], "f8", false)).is_err());
        assert!(padded(&state(&[1], "f8", true)));
        assert!(!padded(&state(&[1], "f8", false)));
    }

    #[test]
    fn only_identifiers_name_a_module() {
        let i = |m: &str, n: &str| Import {
            module: m.into(),
            name: n.into(),
        };
        assert!(names_a_module(&i("os", "system")));
        assert!(names_a_module(&i("numpy.core.multiarray", "_reconstruct")));
        assert!(!names_a_module(&i("\u{1}\u{ff}x", "y")));
        assert!(!names_a_module(&i("os", "")));
    }
}
