"""Writes pickle-scan fixtures made by NumPy, scikit-learn, joblib and zstandard into the
directory given as argv[1]: the files ML engineers push. Run with the test
venv's Python (test.sh installs the packages; TEST_PYTHON names it).

Nothing here, nor in the tests, ever loads a pickle.
"""

import io
import os
import pickle
import sys
import tarfile

import joblib
import numpy as np
import zstandard
from joblib.numpy_pickle import NumpyArrayWrapper
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

out = sys.argv[1]


def path(name):
    return os.path.join(out, name)


class Evil:
    """Unpickling this would run a shell command."""

    def __reduce__(self):
        return (os.system, ("echo scanned-but-never-run",))


rng = np.random.default_rng(7)
X = rng.random((200, 8))
y = (X[:, 0] + X[:, 3] > 1.0).astype(np.int64)

pipeline = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
forest = RandomForestClassifier(n_estimators=5, max_depth=4, random_state=0).fit(X, y)

# joblib, as sklearn's docs tell users to save models: arrays written raw
# into the stream after each NumpyArrayWrapper, aligned with padding.
joblib.dump(pipeline, path("pipeline.joblib"))
joblib.dump(forest, path("forest.joblib"))
joblib.dump(forest, path("forest-zlib.joblib"), compress=3)
joblib.dump(forest, path("forest.joblib.gz"), compress=("gzip", 3))
# Strings, an object array (joblib pickles it as a second, nested pickle)
# and a plain dict around them.
joblib.dump(
    {"labels": np.array(["churn", "stay"]), "meta": np.array([1, "x", None], dtype=object)},
    path("labels.joblib"),
)
# An object array hiding a call to os.system in the nested pickle.
joblib.dump({"meta": np.array([Evil()], dtype=object)}, path("nested-evil.joblib"))

# The same models through plain pickle (numpy's own reduce, bytes inline).
with open(path("pipeline.pkl"), "wb") as f:
    pickle.dump(pipeline, f, protocol=5)
with open(path("forest-p2.pkl"), "wb") as f:
    pickle.dump(forest, f, protocol=2)

# NumPy's own files: .npy of numbers (no pickle), of objects (a pickle),
# and an .npz (a zip of .npy) with an object array holding Evil.
np.save(path("weights.npy"), rng.random((16, 16)))
np.save(path("objects.npy"), np.array([{"a": 1}, [2, 3]], dtype=object), allow_pickle=True)
with open(path("evil.npz"), "wb") as f:
    np.savez(f, w=rng.random(4), meta=np.array([Evil()], dtype=object))

# A file joblib.load reads as an array but pickle.load reads as opcodes: the
# "array data" after an unaligned wrapper's BUILD is a call to os.system.
hidden = b"cos\nsystem\n(S'echo scanned-but-never-run'\ntR0"
wrapper = NumpyArrayWrapper(
    np.ndarray, (len(hidden),), "C", np.dtype("u1"), numpy_array_alignment_bytes=None
)
stream = io.BytesIO()
pickle.dump(wrapper, stream, protocol=2)  # no frames: joblib reads the file itself
with open(path("hidden-in-array.joblib"), "wb") as f:
    f.write(stream.getvalue()[:-1] + hidden + b".")

# ModelPack's tar+zstd layers: a model directory as a tar, Zstandard
# compressed by the zstandard package (the clean one as two frames, as
# `zstd` writes when streams are joined; the other holds Evil).
def tar_of(members):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


with open(path("pipeline.joblib"), "rb") as f:
    clean_tar = tar_of([("model/pipeline.joblib", f.read())])
half = len(clean_tar) // 2
zc = zstandard.ZstdCompressor(level=19)
with open(path("pipeline.tar.zst"), "wb") as f:
    f.write(zc.compress(clean_tar[:half]) + zc.compress(clean_tar[half:]))
with open(path("evil.tar.zst"), "wb") as f:
    f.write(zc.compress(tar_of([("model/model.pkl", pickle.dumps(Evil(), 4))])))
