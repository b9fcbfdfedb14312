"""Data sets for training circuits, and the encodings between data and circuit values.

**Sources** (the ``[data] source`` key of an experiment, see ``docs/experiments.md``):

- ``xor``: the four points of XOR, features ``x1 x2`` in {0, 1}, target ``x1 XOR x2``.
  There is nothing to hold out: **the test set is the training set** (a copy).
  Regression by default (targets 0.0 / 1.0, shape ``(4, 1)``); with
  ``task="classification"`` the labels are the integers 0 / 1 (``n_classes = 2``).
- ``iris``: scikit-learn's 150 iris flowers, 4 features min-max scaled to [0, 1] (over the
  whole set), 3 classes.
- ``digits``: scikit-learn's 1797 8x8 digits, 64 features scaled by 1/16 to [0, 1], 10 classes.
- ``csv:PATH``: a CSV file (``PATH`` relative to ``base_dir``, usually the experiment's folder)
  with a header row. The first ``n_inputs`` columns are features, the rest are targets: one
  column per output (regression) or a single column of integer class labels 0..K-1
  (classification, ``n_classes = K`` = largest label + 1; labels above
  :data:`MAX_CLASS_LABEL` are an error).
- ``mnist:DIR``: MNIST-format idx files in ``DIR``: ``train-images-idx3-ubyte``,
  ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``
  (``.gz`` variants and the ``train-images.idx3-ubyte`` spelling are accepted, so the folder
  of Debian's ``dataset-fashion-mnist`` package, ``/usr/share/datasets/fashion-mnist``,
  is read as it is). Images are flattened row-major and scaled by 1/255; the files' own
  train/test split is used (``test_fraction`` and ``seed`` do not apply); 10 classes.

**Splits** are fixed by the seed: iris, digits and csv use
``sklearn.model_selection.train_test_split(x, y, test_size=test_fraction, random_state=seed,
stratify=y)`` (stratified for classification; for csv classification only when every class
has at least two rows, otherwise unstratified; never stratified for regression).
``test_fraction = 0`` means no hold-out: the test set is a copy of the training set.
``limit_train`` / ``limit_test`` keep the first N rows of each split *after* splitting.

**Encodings** (pure NumPy, used by the trainer): :func:`encode_inputs` maps features to the
DC values of the input sources, :func:`encode_targets` maps labels to output target
voltages, :func:`predict_classes` maps output voltages back to labels.
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from ._errors import ExperimentError

__all__ = [
    "Dataset",
    "load_dataset",
    "read_idx",
    "write_idx",
    "encode_inputs",
    "encode_targets",
    "predict_classes",
    "SOURCES",
]

#: Source kinds understood by :func:`load_dataset` (``csv`` and ``mnist`` take ``:PATH``).
SOURCES = ("xor", "iris", "digits", "csv", "mnist")

_TASKS = ("classification", "regression")

#: Largest class label a csv file may hold (labels are 0..K-1; K outputs are needed).
MAX_CLASS_LABEL = 1_000_000


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """A data set split into training and test parts.

    **Fields:**

    - ``x_train``, ``x_test``: float64 arrays ``(n, n_features)``.
    - ``y_train``, ``y_test``: classification: int64 label arrays ``(n,)``; regression:
      float64 target arrays ``(n, n_targets)``.
    - ``n_classes``: the number of classes, ``None`` for regression.
    - ``feature_names``: one name per feature column.
    - ``name``: the source it came from (``"digits"``, ``"csv:data/a.csv"``, ...).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int | None
    feature_names: tuple[str, ...]
    name: str = ""

    @property
    def n_features(self) -> int:
        """The number of feature columns."""
        return int(self.x_train.shape[1])

    @property
    def is_classification(self) -> bool:
        """``True`` when ``y`` holds integer class labels."""
        return self.n_classes is not None

    def __repr__(self) -> str:
        kind = f"{self.n_classes} classes" if self.n_classes is not None else "regression"
        return (
            f"Dataset({self.name!r}, train={self.x_train.shape}, test={self.x_test.shape}, {kind})"
        )


# ----------------------------------------------------------------------------- loading


def load_dataset(
    source: str,
    *,
    base_dir: str | os.PathLike = ".",
    seed: int = 0,
    test_fraction: float = 0.2,
    n_inputs: int | None = None,
    n_outputs: int | None = None,
    task: str | None = None,
    limit_train: int | None = None,
    limit_test: int | None = None,
) -> Dataset:
    """Load and split a data set.

    **Arguments:**

    - ``source``: ``xor``, ``iris``, ``digits``, ``csv:PATH`` or ``mnist:DIR`` (see the module
      docstring). Case-insensitive kind; the path keeps its case.
    - ``base_dir``: folder that relative ``PATH`` / ``DIR`` are resolved against.
    - ``seed``: ``random_state`` of the train/test split.
    - ``test_fraction``: held-out fraction in [0, 1); 0 means test set = training set.
    - ``n_inputs``: number of feature columns (csv: required; others: checked if given).
    - ``n_outputs``: number of circuit outputs (csv: with ``task=None``, a single target
      column and ``n_outputs > 1`` means classification; regression needs exactly
      ``n_outputs`` target columns).
    - ``task``: ``"classification"``, ``"regression"`` or ``None`` (automatic: iris, digits,
      mnist are classification, xor is regression, csv as described for ``n_outputs``).
    - ``limit_train``, ``limit_test``: keep only the first N rows of each split.

    **Returns:** a :class:`Dataset`.

    **Raises:** :class:`~circuitprop._errors.ExperimentError` for an unknown source, a missing
    or malformed file (the message names the file, and the line for csv), a feature count
    that differs from ``n_inputs``, or bad arguments.
    """
    if task is not None and task not in _TASKS:
        raise ExperimentError(f"task must be one of {', '.join(_TASKS)} (got {task!r})")
    if not (isinstance(test_fraction, (int, float)) and 0 <= test_fraction < 1):
        raise ExperimentError(f"test_fraction must be in [0, 1) (got {test_fraction!r})")
    kind, _, arg = source.partition(":")
    kind = kind.strip().lower()
    base = Path(base_dir)
    if kind in ("xor", "iris", "digits") and arg:
        raise ExperimentError(f"data source {kind!r} takes no ':' argument (got {source!r})")
    if kind == "xor":
        ds = _xor(task)
    elif kind in ("iris", "digits"):
        if task == "regression":
            raise ExperimentError(f"data source {kind!r} is a classification data set")
        ds = _sklearn(kind, seed, test_fraction)
    elif kind == "csv":
        if not arg:
            raise ExperimentError("data source 'csv' needs a path: csv:PATH")
        ds = _csv(base / arg, arg, n_inputs, n_outputs, task, seed, test_fraction)
    elif kind == "mnist":
        if not arg:
            raise ExperimentError("data source 'mnist' needs a folder: mnist:DIR")
        if task == "regression":
            raise ExperimentError("data source 'mnist' is a classification data set")
        ds = _mnist(base / arg, source)
    else:
        raise ExperimentError(
            f"unknown data source {source!r}: expected xor, iris, digits, csv:PATH or mnist:DIR"
        )
    if n_inputs is not None and ds.n_features != n_inputs:
        raise ExperimentError(
            f"data source {source!r} has {ds.n_features} features, expected {n_inputs}"
        )
    if limit_train is not None or limit_test is not None:
        for lim in (limit_train, limit_test):
            if lim is not None and (not isinstance(lim, int) or lim < 1):
                raise ExperimentError(
                    f"limit_train/limit_test must be positive integers (got {lim!r})"
                )
        ds = dataclasses.replace(
            ds,
            x_train=ds.x_train[:limit_train],
            y_train=ds.y_train[:limit_train],
            x_test=ds.x_test[:limit_test],
            y_test=ds.y_test[:limit_test],
        )
    return ds


def _xor(task: str | None) -> Dataset:
    x = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    labels = np.array([0, 1, 1, 0], dtype=np.int64)
    if task == "classification":
        y: np.ndarray = labels
        n_classes: int | None = 2
    else:
        y = labels.astype(np.float64)[:, None]
        n_classes = None
    return Dataset(x, y, x.copy(), y.copy(), n_classes, ("x1", "x2"), "xor")


def _split(x, y, seed, test_fraction, stratify, name=""):
    if test_fraction == 0:
        return x, y, x.copy(), y.copy()
    from sklearn.model_selection import train_test_split

    try:
        xtr, xte, ytr, yte = train_test_split(
            x, y, test_size=test_fraction, random_state=seed, stratify=y if stratify else None
        )
    except ValueError as e:
        pre = f"{name}: " if name else ""
        raise ExperimentError(
            f"{pre}cannot split {len(x)} rows with test_fraction={test_fraction}: {e}"
        ) from None
    return xtr, ytr, xte, yte


def _sklearn(kind: str, seed: int, test_fraction: float) -> Dataset:
    from sklearn import datasets

    if kind == "iris":
        bunch = datasets.load_iris()
        x = np.asarray(bunch.data, dtype=np.float64)
        lo, hi = x.min(axis=0), x.max(axis=0)
        x = (x - lo) / (hi - lo)
        names = tuple(str(n) for n in bunch.feature_names)
        n_classes = 3
    else:
        bunch = datasets.load_digits()
        x = np.asarray(bunch.data, dtype=np.float64) / 16.0
        names = tuple(f"pixel_{r}_{c}" for r in range(8) for c in range(8))
        n_classes = 10
    y = np.asarray(bunch.target, dtype=np.int64)
    xtr, ytr, xte, yte = _split(x, y, seed, test_fraction, stratify=True)
    return Dataset(xtr, ytr, xte, yte, n_classes, names, kind)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _csv(path: Path, shown: str, n_inputs, n_outputs, task, seed, test_fraction) -> Dataset:
    name = str(path)
    if n_inputs is None:
        raise ExperimentError(f"{name}: reading a csv data source needs the number of inputs")
    if not isinstance(n_inputs, int) or n_inputs < 1:
        raise ExperimentError(f"{name}: n_inputs must be a positive integer (got {n_inputs!r})")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = [(i + 1, row) for i, row in enumerate(csv.reader(f))]
    except FileNotFoundError:
        raise ExperimentError(f"{name}: data file not found") from None
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise ExperimentError(f"{name}: cannot read data file: {e}") from None
    rows = [(ln, [c.strip() for c in row]) for ln, row in rows if any(c.strip() for c in row)]
    if not rows:
        raise ExperimentError(f"{name}: empty csv file (a header row and data rows are needed)")
    hline, header = rows[0]
    if any(c == "" for c in header):
        raise ExperimentError(f"{name}:{hline}: bad header row: empty column name")
    if all(_is_number(c) for c in header):
        raise ExperimentError(
            f"{name}:{hline}: bad header row: the first row is all numbers; "
            "a header row with column names is required"
        )
    ncol = len(header)
    n_targets = ncol - n_inputs
    if n_targets < 1:
        raise ExperimentError(
            f"{name}:{hline}: {ncol} columns but {n_inputs} inputs: "
            f"need {n_inputs} feature columns and at least one target column"
        )
    if task is None:
        if n_targets == 1 and n_outputs is not None and n_outputs > 1:
            task = "classification"
        else:
            task = "regression"
    if task == "classification" and n_targets != 1:
        raise ExperimentError(
            f"{name}:{hline}: {ncol} columns: classification needs {n_inputs} feature columns "
            f"and a single class-label column (found {n_targets} target columns)"
        )
    if task == "regression" and n_outputs is not None and n_targets != n_outputs:
        raise ExperimentError(
            f"{name}:{hline}: {ncol} columns: expected {n_inputs} feature columns and "
            f"{n_outputs} target columns (one per output), found {n_targets} target columns"
        )
    data = rows[1:]
    if not data:
        raise ExperimentError(f"{name}: no data rows after the header")
    values = np.empty((len(data), ncol), dtype=np.float64)
    for r, (ln, row) in enumerate(data):
        if len(row) != ncol:
            raise ExperimentError(
                f"{name}:{ln}: wrong column count: {len(row)} values, the header has {ncol}"
            )
        for c, text in enumerate(row):
            try:
                v = float(text)
            except ValueError:
                raise ExperimentError(
                    f"{name}:{ln}: column {header[c]!r}: not a number: {text!r}"
                ) from None
            if not math.isfinite(v):
                raise ExperimentError(f"{name}:{ln}: column {header[c]!r}: not finite: {text!r}")
            values[r, c] = v
    x = values[:, :n_inputs]
    if task == "classification":
        raw = values[:, n_inputs]
        bad = np.nonzero((raw != np.round(raw)) | (raw < 0) | (raw > MAX_CLASS_LABEL))[0]
        if bad.size:
            ln = data[int(bad[0])][0]
            raise ExperimentError(
                f"{name}:{ln}: class label {data[int(bad[0])][1][n_inputs]!r} (column "
                f"{header[n_inputs]!r}) is not a non-negative integer (0 to {MAX_CLASS_LABEL})"
            )
        y = raw.astype(np.int64)
        n_classes: int | None = int(y.max()) + 1
        counts = np.bincount(y)
        stratify = bool(np.all(counts[counts > 0] >= 2))
    else:
        y = values[:, n_inputs:]
        n_classes = None
        stratify = False
    xtr, ytr, xte, yte = _split(x, y, seed, test_fraction, stratify, name)
    return Dataset(xtr, ytr, xte, yte, n_classes, tuple(header[:n_inputs]), f"csv:{shown}")


# ----------------------------------------------------------------------------- idx files

#: idx type code -> big-endian NumPy dtype.
_IDX_TYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def _open(path: Path):
    if str(path).endswith(".gz"):
        return gzip.open(path, "rb")
    return open(path, "rb")


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an idx file (the MNIST format), gzip-compressed when the name ends in ``.gz``.

    Format: two zero bytes, a type code (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
    0x0D float32, 0x0E float64), the number of dimensions, then each dimension as a
    big-endian uint32, then the data, big-endian, row-major.

    **Arguments:**

    - ``path``: the file.

    **Returns:** the array, in native byte order, with the file's shape.

    **Raises:** :class:`~circuitprop._errors.ExperimentError` naming the file when it is
    missing, unreadable, has a bad magic number or type code, or holds too little or too
    much data.
    """
    path = Path(path)
    try:
        with _open(path) as f:
            raw = f.read()
    except FileNotFoundError:
        raise ExperimentError(f"{path}: idx file not found") from None
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise ExperimentError(f"{path}: cannot read idx file: {e}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ExperimentError(f"{path}: bad idx magic number (not an idx file)")
    code, ndim = raw[2], raw[3]
    if code not in _IDX_TYPES:
        raise ExperimentError(f"{path}: bad idx magic number: unknown type code 0x{code:02x}")
    if ndim == 0:
        raise ExperimentError(f"{path}: bad idx magic number: zero dimensions")
    head = 4 + 4 * ndim
    if len(raw) < head:
        raise ExperimentError(f"{path}: truncated idx header")
    dims = struct.unpack(f">{ndim}I", raw[4:head])
    dtype = _IDX_TYPES[code]
    need = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    have = len(raw) - head
    if have != need:
        raise ExperimentError(
            f"{path}: idx data size mismatch: shape {tuple(dims)} needs {need} bytes, "
            f"file has {have}"
        )
    arr = np.frombuffer(raw, dtype=dtype, offset=head).reshape(dims)
    # a writable array in native byte order (one copy; frombuffer of bytes is read-only)
    return arr.astype(dtype.newbyteorder("="))


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write an array as an idx file (gzip-compressed when the name ends in ``.gz``).

    **Arguments:**

    - ``path``: the file to write.
    - ``array``: uint8, int8, int16, int32, float32 or float64 data, at least 1-D.

    **Raises:** :class:`~circuitprop._errors.ExperimentError` for an unsupported dtype.
    """
    array = np.asarray(array)
    for code, dt in _IDX_TYPES.items():
        if array.dtype.kind == dt.kind and array.dtype.itemsize == dt.itemsize:
            break
    else:
        raise ExperimentError(f"{path}: cannot write dtype {array.dtype} as idx")
    if array.ndim < 1 or array.ndim > 255:
        raise ExperimentError(f"{path}: idx arrays need 1 to 255 dimensions")
    payload = (
        bytes([0, 0, code, array.ndim])
        + struct.pack(f">{array.ndim}I", *array.shape)
        + np.ascontiguousarray(array, dtype=dt).tobytes()
    )
    path = Path(path)
    if str(path).endswith(".gz"):
        with gzip.open(path, "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)


def _find_idx(folder: Path, stem: str) -> Path:
    cands = [stem, stem.replace("-idx", ".idx")]  # train-images.idx3-ubyte spelling
    cands = [c for c0 in cands for c in (c0, c0 + ".gz")]
    for c in cands:
        p = folder / c
        if p.is_file():
            return p
    raise ExperimentError(
        f"{folder}: idx file {stem} not found (also tried {', '.join(cands[1:])})"
    )


def _mnist(folder: Path, source: str) -> Dataset:
    if not folder.is_dir():
        raise ExperimentError(f"{folder}: mnist folder not found")
    parts = []
    for split in ("train", "t10k"):
        ipath = _find_idx(folder, f"{split}-images-idx3-ubyte")
        lpath = _find_idx(folder, f"{split}-labels-idx1-ubyte")
        images = read_idx(ipath)
        labels = read_idx(lpath)
        if images.ndim < 2:
            raise ExperimentError(f"{ipath}: expected images (at least 2 dimensions)")
        if labels.ndim != 1 or labels.dtype.kind not in "iu":
            raise ExperimentError(f"{lpath}: expected a 1-D integer label array")
        if len(labels) != len(images):
            raise ExperimentError(
                f"{lpath}: {len(labels)} labels for {len(images)} images in {ipath.name}"
            )
        if labels.size and (labels.min() < 0 or labels.max() > 9):
            raise ExperimentError(f"{lpath}: labels must be digits 0..9")
        # in place: no second (n, pixels) float64 temporary (60 000 x 784 is 376 MB)
        x = images.reshape(len(images), -1).astype(np.float64)
        x /= 255.0
        parts.append((x, labels.astype(np.int64), images.shape[1:]))
    (xtr, ytr, shape), (xte, yte, shape_te) = parts
    if shape != shape_te:
        raise ExperimentError(f"{folder}: train images {shape} and test images {shape_te} differ")
    names = tuple("pixel_" + "_".join(map(str, idx)) for idx in np.ndindex(*shape))
    return Dataset(xtr, ytr, xte, yte, 10, names, source)


# ----------------------------------------------------------------------------- encodings


def encode_inputs(
    x: np.ndarray, *, gain: float = 1.0, offset: float = 0.0, mode: str = "direct"
) -> np.ndarray:
    """Map features to the DC values of the input sources.

    ``direct``: source i gets ``offset + gain * x[:, i]`` (one source per feature).
    ``pm``: source i gets ``offset + gain * x[:, i]`` and source ``i + n`` gets
    ``offset - gain * x[:, i]`` (two sources per feature, ``n`` = number of features).

    **Arguments:**

    - ``x``: features ``(n_samples, n_features)`` (or one sample ``(n_features,)``).
    - ``gain``, ``offset``: volts per feature unit, volts (amperes for current sources).
    - ``mode``: ``"direct"`` or ``"pm"``.

    **Returns:** ``(n_samples, n_sources)`` float64 (or ``(n_sources,)`` for one sample).

    **Raises:** :class:`~circuitprop._errors.ExperimentError` for an unknown mode.
    """
    x = np.asarray(x, dtype=np.float64)
    if mode == "direct":
        return offset + gain * x
    if mode == "pm":
        # written into one preallocated array: the same values, bit for bit, as
        # concatenate([offset + gain*x, offset - gain*x]) without its three full-size
        # temporaries (for 60 000 x 784 features that took seconds instead of a fraction)
        f = x.shape[-1]
        out = np.empty(x.shape[:-1] + (2 * f,), dtype=np.result_type(x, gain, offset))
        plus, minus = out[..., :f], out[..., f:]
        np.multiply(gain, x, out=plus)
        np.subtract(offset, plus, out=minus)
        np.add(offset, plus, out=plus)
        return out
    raise ExperimentError(f"input_mode must be 'direct' or 'pm' (got {mode!r})")


def encode_targets(
    y: np.ndarray,
    *,
    n_outputs: int,
    n_classes: int | None,
    high: float = 1.0,
    low: float = 0.0,
) -> np.ndarray:
    """Map labels (or regression targets) to target values of the outputs.

    Classification with ``n_outputs == n_classes``: output k's target is ``high`` for class k
    and ``low`` otherwise (one-hot; for a differential output ``a-b`` the target applies to
    ``V(a) - V(b)``). Classification with one output and two classes: ``high`` for class 1,
    ``low`` for class 0. Regression: the targets as given (volts), which must have
    ``n_outputs`` columns.

    **Arguments:**

    - ``y``: labels ``(n,)`` (classification) or targets ``(n, n_outputs)`` (regression).
    - ``n_outputs``: number of circuit outputs.
    - ``n_classes``: number of classes, ``None`` for regression.
    - ``high``, ``low``: target voltages of the true class and of the other classes.

    **Returns:** ``(n, n_outputs)`` float64 target voltages.

    **Raises:** :class:`~circuitprop._errors.ExperimentError` when the shapes do not fit.
    """
    y = np.asarray(y)
    if n_classes is None:
        t = np.asarray(y, dtype=np.float64)
        if t.ndim == 1:
            t = t[:, None]
        if t.shape[1] != n_outputs:
            raise ExperimentError(
                f"{t.shape[1]} regression targets per sample for {n_outputs} outputs"
            )
        return t
    labels = y.astype(np.int64)
    if n_outputs == n_classes:
        t = np.full((labels.shape[0], n_outputs), float(low))
        t[np.arange(labels.shape[0]), labels] = float(high)
        return t
    if n_outputs == 1 and n_classes == 2:
        return np.where(labels == 1, float(high), float(low))[:, None]
    raise ExperimentError(
        f"{n_classes} classes need {n_classes} outputs (one per class)"
        + (" or a single output" if n_classes == 2 else "")
        + f", the experiment has {n_outputs}"
    )


def predict_classes(
    outputs: np.ndarray, *, n_classes: int, high: float = 1.0, low: float = 0.0
) -> np.ndarray:
    """Class predictions from output values (the inverse of :func:`encode_targets`).

    One output per class: the class of the largest output (argmax). One output, two classes:
    class 1 when the output is nearer ``high`` than ``low``.

    **Arguments:**

    - ``outputs``: ``(n, n_outputs)`` output voltages (differential where the outputs are pairs).
    - ``n_classes``, ``high``, ``low``: as for :func:`encode_targets`.

    **Returns:** int64 labels ``(n,)``.

    **Raises:** :class:`~circuitprop._errors.ExperimentError` when the shapes do not fit.
    """
    out = np.asarray(outputs, dtype=np.float64)
    if out.ndim == 1:
        out = out[:, None]
    if out.shape[1] == n_classes:
        if high >= low:
            return np.argmax(out, axis=1).astype(np.int64)
        return np.argmin(out, axis=1).astype(np.int64)
    if out.shape[1] == 1 and n_classes == 2:
        mid = 0.5 * (high + low)
        above = out[:, 0] > mid
        return (above if high >= low else ~above).astype(np.int64)
    raise ExperimentError(f"{out.shape[1]} outputs cannot encode {n_classes} classes")
