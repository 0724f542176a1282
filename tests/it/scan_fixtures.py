"""Writes the pickle-scan test fixtures into the directory given as argv[1].

Every file is made with pickle.dumps (or by hand, opcode by opcode); nothing
here, nor in the tests, ever loads a pickle.
"""

import io
import os
import pickle
import struct
import sys
import tarfile
import types
import zipfile

out = sys.argv[1]


def write(name, data):
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)


class Evil:
    """Unpickling this would run a shell command."""

    def __reduce__(self):
        return (os.system, ("echo scanned-but-never-run",))


def fake_module(name, **functions):
    """Registers a module so pickle records its globals (nothing is imported)."""
    module = types.ModuleType(name)
    for fname, fn in functions.items():
        fn.__module__ = name
        fn.__qualname__ = fname
        fn.__name__ = fname
        setattr(module, fname, fn)
    sys.modules[name] = module
    return module


def _rebuild_tensor_v2(*args):
    return None


class Model:
    pass


torch = fake_module("torch")
torch_utils = fake_module("torch._utils", _rebuild_tensor_v2=_rebuild_tensor_v2)
torch._utils = torch_utils
mylib = fake_module("mylib")
Model.__module__ = "mylib"
Model.__qualname__ = "Model"
mylib.Model = Model


class Tensor:
    def __reduce__(self):
        return (_rebuild_tensor_v2, ("0", 0, (2, 2)))


clean = {"weights": [0.5, 1.5, 2.5], "name": "linear", "layers": (3, 1)}
write("clean.pkl", pickle.dumps(clean, protocol=4))
for protocol in (0, 2, 4):
    write(f"evil{protocol}.pkl", pickle.dumps([1, Evil()], protocol=protocol))
write("unknown.pkl", pickle.dumps(Model(), protocol=3))
write("truncated.pkl", pickle.dumps(clean, protocol=4)[:-9])
write("garbage.pkl", bytes((i * 73 + 41) % 251 for i in range(600)))

# STACK_GLOBAL whose module name is fetched back from the memo after
# the stack was changed: b"builtins" memoized, popped, fetched again.
hand = (
    b"\x80\x04"
    + b"\x8c\x08builtins\x94"  # SHORT_BINUNICODE, MEMOIZE (memo 0)
    + b"0"  # POP
    + b"\x8c\x05hello\x94"  # a decoy string (memo 1)
    + b"0"
    + b"h\x00"  # BINGET 0: "builtins"
    + b"\x8c\x04eval\x94"
    + b"\x93"  # STACK_GLOBAL
    + b"\x8c\x0aprint('x')\x85R."  # TUPLE1, REDUCE, STOP
)
write("stacked.pkl", hand)


def torch_zip(payload):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", payload)
        z.writestr("archive/byteorder", "little")
        z.writestr("archive/data/0", struct.pack("<4f", 1, 2, 3, 4))
        z.writestr("archive/version", "3\n")
    return buf.getvalue()


state = {"fc.weight": Tensor(), "fc.bias": Tensor()}
write("model.pt", torch_zip(pickle.dumps(state, protocol=2)))
write("evil.pt", torch_zip(pickle.dumps({"fc.weight": Evil()}, protocol=2)))


def tar_gz(members):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


write(
    "bundle.tar.gz",
    tar_gz(
        [
            ("bundle/README.md", b"# a model\n"),
            ("bundle/weights.pkl", pickle.dumps(clean, protocol=5)),
            ("bundle/hook.pkl", pickle.dumps(Evil(), protocol=4)),
        ]
    ),
)
# A ModelKit's model layer: a tar.gz of the model directory.
write("modelkit-model.tar.gz", tar_gz([("model/model.joblib", pickle.dumps(Evil(), 3))]))
write("modelkit-clean.tar.gz", tar_gz([("model/model.pkl", pickle.dumps(clean, 4))]))


def npy(header, payload):
    text = repr(header).encode() + b" "
    pad = 64 - (10 + len(text) + 1) % 64
    text += b" " * pad + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text + payload


# An object array is stored as a pickle of its items' array.
write(
    "objects.npy",
    npy(
        {"descr": "|O", "fortran_order": False, "shape": (2,)},
        pickle.dumps([1, Evil()], protocol=3),
    ),
)
write(
    "floats.npy",
    npy({"descr": "<f4", "fortran_order": False, "shape": (2,)}, struct.pack("<2f", 1, 2)),
)


def safetensors(header, data):
    text = __import__("json").dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


write(
    "good.safetensors",
    safetensors({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8),
)
write(
    "lying.safetensors",
    safetensors({"w": {"dtype": "F32", "shape": [200], "data_offsets": [0, 800]}}, b"\0" * 8),
)
