//! Checks a safetensors file's header: an 8-byte little-endian length, then
//! that many bytes of JSON naming each tensor's dtype, shape and byte range
//! in the data that follows. A header that lies (ranges outside the file,
//! overlapping or leaving holes, sizes that do not match the shape, unknown
//! dtypes) is what a reader's bug is made of.

use std::collections::BTreeMap;
use std::io::{self, Read};

use serde::Deserialize;

/// The format's own limit on the header.
pub const MAX_HEADER: u64 = 100 * 1024 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TensorInfo {
    dtype: String,
    shape: Vec<u64>,
    data_offsets: (u64, u64),
}

/// Bits per element, for the dtypes the format defines.
fn dtype_bits(dtype: &str) -> Option<u64> {
    Some(match dtype {
        "BOOL" | "U8" | "I8" | "F8_E5M2" | "F8_E4M3" | "F8_E8M0" | "E8M0" => 8,
        "I16" | "U16" | "F16" | "BF16" => 16,
        "I32" | "U32" | "F32" => 32,
        "I64" | "U64" | "F64" | "C64" => 64,
        "F4" => 4,
        "F6_E2M3" | "F6_E3M2" => 6,
        _ => return None,
    })
}

/// Reads the header from `r` (at the start of a file of `size` bytes) and
/// says what is wrong with it, if anything. Only the header is read.
pub fn check(r: &mut dyn Read, size: u64) -> io::Result<Option<String>> {
    let mut len = [0u8; 8];
    if let Err(e) = r.read_exact(&mut len) {
        return if e.kind() == io::ErrorKind::UnexpectedEof {
            Ok(Some("shorter than its 8-byte header length".into()))
        } else {
            Err(e)
        };
    }
    let n = u64::from_le_bytes(len);
    if n > MAX_HEADER {
        return Ok(Some(format!(
            "the header claims {n} bytes, over the format's 100 MB"
        )));
    }
    if n > size.saturating_sub(8) {
        return Ok(Some(format!(
            "the header claims {n} bytes in a file of {size}"
        )));
    }
    let mut header = vec![0u8; n as usize];
    if let Err(e) = r.read_exact(&mut header) {
        return if e.kind() == io::ErrorKind::UnexpectedEof {
            Ok(Some("the file ends inside its header".into()))
        } else {
            Err(e)
        };
    }
    Ok(check_header(&header, size - 8 - n).err())
}

fn check_header(header: &[u8], data_len: u64) -> Result<(), String> {
    let entries: BTreeMap<String, serde_json::Value> = serde_json::from_slice(header)
        .map_err(|e| format!("the header is not a JSON object: {e}"))?;
    let mut ranges = Vec::new();
    for (name, value) in entries {
        if name == "__metadata__" {
            let ok = value
                .as_object()
                .is_some_and(|m| m.values().all(serde_json::Value::is_string));
            if !ok {
                return Err("__metadata__ must map strings to strings".into());
            }
            continue;
        }
        let info: TensorInfo =
            serde_json::from_value(value).map_err(|e| format!("tensor {name:?}: {e}"))?;
        let bits = dtype_bits(&info.dtype)
            .ok_or_else(|| format!("tensor {name:?} has unknown dtype {:?}", info.dtype))?;
        let (begin, end) = info.data_offsets;
        if begin > end || end > data_len {
            return Err(format!(
                "tensor {name:?} claims bytes {begin}..{end} of {data_len}"
            ));
        }
        let elements = info
            .shape
            .iter()
            .try_fold(1u64, |acc, d| acc.checked_mul(*d))
            .ok_or_else(|| format!("tensor {name:?} has a shape that overflows"))?;
        let want = elements
            .checked_mul(bits)
            .map(|b| b.div_ceil(8))
            .ok_or_else(|| format!("tensor {name:?} has a shape that overflows"))?;
        if want != end - begin {
            return Err(format!(
                "tensor {name:?} is {} bytes for a shape of {want}",
                end - begin
            ));
        }
        ranges.push((begin, end, name));
    }
    ranges.sort();
    let mut at = 0;
    for (begin, end, name) in &ranges {
        if *begin < at {
            return Err(format!("tensor {name:?} overlaps the one before it"));
        }
        if *begin > at {
            return Err(format!(
                "bytes {at}..{begin} before tensor {name:?} belong to none"
            ));
        }
        at = *end;
    }
    if at != data_len {
        return Err(format!(
            "bytes {at}..{data_len} after the last tensor belong to none"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(header: &str, data: usize) -> Vec<u8> {
        let mut f = (header.len() as u64).to_le_bytes().to_vec();
        f.extend_from_slice(header.as_bytes());
        f.extend(std::iter::repeat_n(0u8, data));
        f
    }

    fn problem(f: &[u8]) -> Option<String> {
        check(&mut &f[..], f.len() as u64).expect("read")
    }

    #[test]
    fn an_honest_header_passes_and_each_lie_is_named() {
        let ok = r#"{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"b":{"dtype":"BF16","shape":[3],"data_offsets":[16,22]}}"#;
        assert_eq!(problem(&file(ok, 22)), None);
        let outside = r#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,160]}}"#;
        assert!(
            problem(&file(outside, 16))
                .expect("lie")
                .contains("claims bytes")
        );
        let overlap = r#"{"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8]},"b":{"dtype":"U8","shape":[8],"data_offsets":[4,12]}}"#;
        assert!(
            problem(&file(overlap, 12))
                .expect("lie")
                .contains("overlaps")
        );
        let size = r#"{"a":{"dtype":"F64","shape":[4],"data_offsets":[0,16]}}"#;
        assert!(
            problem(&file(size, 16))
                .expect("lie")
                .contains("for a shape")
        );
        let dtype = r#"{"a":{"dtype":"F128","shape":[1],"data_offsets":[0,16]}}"#;
        assert!(
            problem(&file(dtype, 16))
                .expect("lie")
                .contains("unknown dtype")
        );
        let mut long = file(ok, 22);
        long[..8].copy_from_slice(&(1u64 << 40).to_le_bytes());
        assert!(problem(&long).expect("lie").contains("100 MB"));
        assert!(
            problem(&file("[1,2]", 0))
                .expect("lie")
                .contains("JSON object")
        );
    }
}
