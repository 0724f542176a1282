//! Which imports a pickle may make: the constructors model files are made
//! of (safe), what runs commands, reads files, opens sockets or loads more
//! code (dangerous), and everything else (unknown).

use serde::Serialize;

use super::pickle::{COMPUTED, EXTENSION, Import};

/// How far a file (or a layer, or a version) may be trusted, worst last.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Nothing but known constructors, or no pickle at all.
    Clean,
    /// Imports outside the allow list, or content that was not read whole.
    Unknown,
    /// Not a well-formed file of its kind: treated as unsafe.
    Malformed,
    /// Imports something that runs code or touches the system.
    Dangerous,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Clean => "clean",
            Verdict::Unknown => "unknown",
            Verdict::Malformed => "malformed",
            Verdict::Dangerous => "dangerous",
        }
    }
}

/// Modules whose every member (and submodule) is dangerous to import.
const DANGEROUS_MODULES: &[&str] = &[
    "os",
    "posix",
    "nt",
    "subprocess",
    "sys",
    "socket",
    "shutil",
    "runpy",
    "webbrowser",
    "pickle",
    "_pickle",
    "cPickle",
    "dill",
    "cloudpickle",
    "marshal",
    "pty",
    "commands",
    "importlib",
    "imp",
    "zipimport",
    "pkgutil",
    "ctypes",
    "multiprocessing",
    "code",
    "codeop",
    "pdb",
    "bdb",
    "timeit",
    "asyncio",
    "signal",
    "_thread",
    "threading",
    "http",
    "httplib",
    "urllib",
    "urllib2",
    "requests",
    "ftplib",
    "smtplib",
    "telnetlib",
    "ssl",
    "tempfile",
    "glob",
    "io",
    "_io",
    "platform",
    "operator",
    "_operator",
    "types",
    "inspect",
    "torch.hub",
    "torch.jit",
    "torch.load",
    "numpy.testing",
    "numpy.f2py",
    "numpy.distutils",
];

/// Builtins that evaluate, import, reach attributes or open files.
const DANGEROUS_BUILTINS: &[&str] = &[
    "eval",
    "exec",
    "execfile",
    "compile",
    "getattr",
    "setattr",
    "delattr",
    "open",
    "__import__",
    "globals",
    "locals",
    "vars",
    "input",
    "breakpoint",
    "apply",
    "file",
    "reload",
    "help",
    "memoryview",
];

/// Exact imports known to only build values.
const SAFE: &[(&str, &str)] = &[
    ("collections", "OrderedDict"),
    ("collections", "defaultdict"),
    ("collections", "deque"),
    ("collections", "Counter"),
    ("copyreg", "_reconstructor"),
    ("copy_reg", "_reconstructor"),
    ("_codecs", "encode"),
    ("datetime", "datetime"),
    ("datetime", "date"),
    ("datetime", "time"),
    ("datetime", "timedelta"),
    ("datetime", "timezone"),
    ("decimal", "Decimal"),
    ("fractions", "Fraction"),
    ("uuid", "UUID"),
    ("pathlib", "PosixPath"),
    ("pathlib", "WindowsPath"),
    ("pathlib", "PurePosixPath"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy", "float64"),
    ("numpy", "float32"),
    ("numpy", "int64"),
    ("numpy", "int32"),
    ("numpy", "bool_"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy.ma.core", "_mareconstruct"),
    ("numpy.random._pickle", "__randomstate_ctor"),
    ("numpy.random._pickle", "__bit_generator_ctor"),
    ("numpy.random._pickle", "__generator_ctor"),
    ("torch", "Size"),
    ("torch", "device"),
    ("torch", "dtype"),
    ("torch._utils", "_rebuild_tensor"),
    ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_tensor_v3"),
    ("torch._utils", "_rebuild_parameter"),
    ("torch._utils", "_rebuild_parameter_with_state"),
    ("torch._utils", "_rebuild_qtensor"),
    ("torch._utils", "_rebuild_sparse_tensor"),
    ("torch._utils", "_rebuild_device_tensor_from_numpy"),
    ("torch._utils", "_rebuild_meta_tensor_no_storage"),
    ("torch._tensor", "_rebuild_from_type_v2"),
    ("torch.nn.parameter", "Parameter"),
    ("torch.serialization", "_get_layout"),
    ("joblib.numpy_pickle", "NumpyArrayWrapper"),
    ("joblib.numpy_pickle_compat", "NDArrayWrapper"),
    ("scipy.sparse._csr", "csr_matrix"),
    ("scipy.sparse._csc", "csc_matrix"),
    ("scipy.sparse._coo", "coo_matrix"),
];

/// Builtins that only construct plain values.
const SAFE_BUILTINS: &[&str] = &[
    "set",
    "frozenset",
    "dict",
    "list",
    "tuple",
    "bytearray",
    "bytes",
    "complex",
    "slice",
    "range",
    "object",
    "int",
    "float",
    "str",
    "bool",
    "unicode",
    "long",
];

/// Packages whose classes (names starting upper case) are estimators,
/// layers and dtypes; their functions are not allowed.
const SAFE_CLASS_PACKAGES: &[&str] = &["sklearn.", "torch.nn.modules.", "numpy.dtypes"];

/// Tensor element types pickled as `torch.<name>`.
const TORCH_DTYPES: &[&str] = &[
    "float16",
    "float32",
    "float64",
    "bfloat16",
    "half",
    "float",
    "double",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "bool",
    "complex64",
    "complex128",
    "long",
    "int",
    "short",
];

fn in_module(module: &str, of: &str) -> bool {
    module == of
        || module
            .strip_prefix(of)
            .is_some_and(|rest| rest.starts_with('.'))
}

/// Classes one import.
pub fn classify(import: &Import) -> Verdict {
    let (module, name) = (import.module.as_str(), import.name.as_str());
    if module == COMPUTED {
        return Verdict::Dangerous;
    }
    if module == EXTENSION {
        return Verdict::Unknown;
    }
    if matches!(module, "builtins" | "__builtin__" | "__builtins__") {
        return if SAFE_BUILTINS.contains(&name) {
            Verdict::Clean
        } else if DANGEROUS_BUILTINS.contains(&name) {
            Verdict::Dangerous
        } else {
            Verdict::Unknown
        };
    }
    if DANGEROUS_MODULES.iter().any(|m| in_module(module, m)) {
        return Verdict::Dangerous;
    }
    if SAFE.contains(&(module, name)) {
        return Verdict::Clean;
    }
    if module == "torch" && (name.ends_with("Storage") || TORCH_DTYPES.contains(&name)) {
        return Verdict::Clean;
    }
    let class = name.chars().next().is_some_and(|c| c.is_ascii_uppercase());
    if class
        && SAFE_CLASS_PACKAGES
            .iter()
            .any(|p| module.starts_with(p) || in_module(module, p.trim_end_matches('.')))
    {
        return Verdict::Clean;
    }
    Verdict::Unknown
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(module: &str, name: &str) -> Verdict {
        classify(&Import {
            module: module.into(),
            name: name.into(),
        })
    }

    #[test]
    fn each_import_gets_its_class() {
        for (m, n) in [
            ("os", "system"),
            ("posix", "system"),
            ("os.path", "join"),
            ("subprocess", "Popen"),
            ("builtins", "eval"),
            ("__builtin__", "getattr"),
            ("runpy", "run_path"),
            ("socket", "socket"),
            ("pickle", "loads"),
            ("webbrowser", "open"),
            ("operator", "attrgetter"),
            ("<computed>", "STACK_GLOBAL"),
        ] {
            assert_eq!(class(m, n), Verdict::Dangerous, "{m}.{n}");
        }
        for (m, n) in [
            ("collections", "OrderedDict"),
            ("torch._utils", "_rebuild_tensor_v2"),
            ("torch", "FloatStorage"),
            ("torch", "bfloat16"),
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy", "dtype"),
            ("builtins", "set"),
            ("sklearn.linear_model._logistic", "LogisticRegression"),
            ("torch.nn.modules.linear", "Linear"),
        ] {
            assert_eq!(class(m, n), Verdict::Clean, "{m}.{n}");
        }
        for (m, n) in [
            ("__main__", "MyModel"),
            ("sklearn.utils", "some_function"),
            ("numpy", "load"),
            ("osmosis", "Thing"),
            ("<copyreg extension>", "5"),
        ] {
            assert_eq!(class(m, n), Verdict::Unknown, "{m}.{n}");
        }
    }
}
