"""Data sources, splits, csv parsing, idx files and the data <-> circuit encodings."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from circuitprop._errors import ExperimentError
from circuitprop.data import (
    encode_inputs,
    encode_targets,
    load_dataset,
    predict_classes,
    read_idx,
    write_idx,
)

# ----------------------------------------------------------------------------- built-ins


def test_xor_regression_test_is_train():
    ds = load_dataset("xor")
    assert ds.n_classes is None and not ds.is_classification
    np.testing.assert_array_equal(ds.x_train, [[0, 0], [0, 1], [1, 0], [1, 1]])
    np.testing.assert_array_equal(ds.y_train, [[0.0], [1.0], [1.0], [0.0]])
    np.testing.assert_array_equal(ds.x_test, ds.x_train)
    np.testing.assert_array_equal(ds.y_test, ds.y_train)
    assert ds.x_test is not ds.x_train
    assert ds.x_train.dtype == np.float64 and ds.y_train.dtype == np.float64
    assert ds.feature_names == ("x1", "x2")


def test_xor_classification():
    ds = load_dataset("XOR", task="classification")
    assert ds.n_classes == 2
    assert ds.y_train.dtype == np.int64
    np.testing.assert_array_equal(ds.y_train, [0, 1, 1, 0])


@pytest.mark.parametrize(
    "name, n, n_features, n_classes", [("iris", 150, 4, 3), ("digits", 1797, 64, 10)]
)
def test_sklearn_sets(name, n, n_features, n_classes):
    ds = load_dataset(name)
    n_test = int(np.ceil(0.2 * n))
    assert ds.x_train.shape == (n - n_test, n_features)
    assert ds.x_test.shape == (n_test, n_features)
    assert ds.y_train.shape == (n - n_test,) and ds.y_train.dtype == np.int64
    assert ds.n_classes == n_classes and len(ds.feature_names) == n_features
    allx = np.concatenate([ds.x_train, ds.x_test])
    assert allx.min() == 0.0 and allx.max() == 1.0
    # stratified: class proportions agree between the splits
    ptr = np.bincount(ds.y_train, minlength=n_classes) / len(ds.y_train)
    pte = np.bincount(ds.y_test, minlength=n_classes) / len(ds.y_test)
    assert np.abs(ptr - pte).max() < 0.05


def test_digits_matches_reference_split():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    b = load_digits()
    xtr, xte, ytr, yte = train_test_split(
        b.data / 16.0, b.target, test_size=0.2, random_state=0, stratify=b.target
    )
    ds = load_dataset("digits")
    np.testing.assert_array_equal(ds.x_train, xtr)
    np.testing.assert_array_equal(ds.y_test, yte)


def test_split_determinism_and_seed():
    a, b = load_dataset("iris", seed=3), load_dataset("iris", seed=3)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    c = load_dataset("iris", seed=4)
    assert not np.array_equal(a.x_train, c.x_train)


def test_test_fraction_and_limits():
    ds = load_dataset("digits", test_fraction=0.5)
    assert len(ds.x_test) == 899
    ds = load_dataset("iris", test_fraction=0.0)
    assert len(ds.x_train) == len(ds.x_test) == 150
    ds = load_dataset("digits", limit_train=10, limit_test=5)
    assert ds.x_train.shape == (10, 64) and ds.y_test.shape == (5,)
    with pytest.raises(ExperimentError, match="test_fraction"):
        load_dataset("iris", test_fraction=1.0)


def test_unknown_source_and_bad_args():
    with pytest.raises(ExperimentError, match="unknown data source"):
        load_dataset("cifar")
    with pytest.raises(ExperimentError, match="no ':' argument"):
        load_dataset("iris:foo")
    with pytest.raises(ExperimentError, match="needs a path"):
        load_dataset("csv:")
    with pytest.raises(ExperimentError, match="classification data set"):
        load_dataset("digits", task="regression")
    with pytest.raises(ExperimentError, match="has 4 features, expected 3"):
        load_dataset("iris", n_inputs=3)


# ----------------------------------------------------------------------------- csv


def _write(tmp_path, text, name="d.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_csv_regression(tmp_path):
    rows = "\n".join(f"{i / 10},{1 - i / 10},{i / 5},{-i}" for i in range(10))
    _write(tmp_path, "a,b,y1,y2\n" + rows + "\n\n")
    ds = load_dataset("csv:d.csv", base_dir=tmp_path, n_inputs=2, n_outputs=2)
    assert ds.n_classes is None
    assert ds.feature_names == ("a", "b")
    assert ds.x_train.shape == (8, 2) and ds.y_train.shape == (8, 2)
    allx = np.concatenate([ds.x_train, ds.x_test])
    ally = np.concatenate([ds.y_train, ds.y_test])
    order = np.argsort(allx[:, 0])
    np.testing.assert_allclose(ally[order, 1], -np.arange(10))
    # no n_outputs: all remaining columns are targets
    ds = load_dataset("csv:" + str(tmp_path / "d.csv"), n_inputs=3)  # absolute path
    assert ds.y_train.shape == (8, 1)


def test_csv_classification(tmp_path):
    rows = "\n".join(f"{i},{i % 3}" for i in range(30))
    _write(tmp_path, "x,label\n" + rows + "\n")
    for kw in ({"n_outputs": 3}, {"task": "classification"}):
        ds = load_dataset("csv:d.csv", base_dir=tmp_path, n_inputs=1, **kw)
        assert ds.n_classes == 3 and ds.y_train.dtype == np.int64
        np.testing.assert_array_equal(np.bincount(ds.y_test), [2, 2, 2])  # stratified
    # classes with a single member: split is not stratified but still works
    _write(tmp_path, "x,label\n" + "\n".join(f"{i},{int(i == 0)}" for i in range(10)) + "\n")
    ds = load_dataset("csv:d.csv", base_dir=tmp_path, n_inputs=1, task="classification")
    assert ds.n_classes == 2


@pytest.mark.parametrize(
    "text, kw, match",
    [
        ("", {}, "empty csv"),
        ("1,2,3\n4,5,6\n", {}, "bad header"),
        ("a,,c\n1,2,3\n", {}, "bad header"),
        ("a,b\n1,2\n", {"n_inputs": 2}, "at least one target"),
        ("a,b,c\n1,2,3\n1,2\n", {}, r"d\.csv:3: wrong column count"),
        ("a,b,c,d,e\n1,2,3,4,5\n", {"n_outputs": 2}, "expected 2 feature columns and 2 target"),
        ("a,b,c\n1,2,3\n", {"n_outputs": 2}, "cannot split 1 rows"),
        ("a,b,c\n1,x,3\n", {}, r"d\.csv:2: column 'b': not a number"),
        ("a,b,c\n1,2,nan\n", {}, "not finite"),
        ("a,b,c\n1,2,0.5\n", {"task": "classification"}, "single class-label|not a non-negative"),
        ("a,b,c,d\n1,2,1,1\n", {"task": "classification"}, "single class-label"),
        ("a,b,c\n", {}, "no data rows"),
    ],
)
def test_csv_errors(tmp_path, text, kw, match):
    _write(tmp_path, text)
    kw = {"n_inputs": 2, **kw}
    with pytest.raises(ExperimentError, match=match) as e:
        load_dataset("csv:d.csv", base_dir=tmp_path, **kw)
    assert "d.csv" in str(e.value)


def test_csv_label_errors(tmp_path):
    _write(tmp_path, "a,b,c\n1,2,0.5\n1,2,1\n")
    with pytest.raises(ExperimentError, match=r"d\.csv:2: class label '0.5'"):
        load_dataset("csv:d.csv", base_dir=tmp_path, n_inputs=2, task="classification")
    _write(tmp_path, "a,b,c\n1,2,1\n1,2,-1\n")
    with pytest.raises(ExperimentError, match=r"d\.csv:3: class label"):
        load_dataset("csv:d.csv", base_dir=tmp_path, n_inputs=2, task="classification")


@pytest.mark.parametrize("label", ["1e300", "5e9", "1000001", "3.5", "-2"])
def test_csv_label_bounds(tmp_path, label):
    _write(tmp_path, f"a,b,c\n1,2,0\n1,2,1\n3,4,{label}\n")
    with pytest.raises(ExperimentError) as e:
        load_dataset("csv:d.csv", base_dir=tmp_path, n_inputs=2, task="classification")
    assert str(e.value) == (f"{tmp_path / 'd.csv'}:4: class label {label!r} (column 'c') is not "
                            "a non-negative integer (0 to 1000000)")


def test_csv_largest_label(tmp_path):
    _write(tmp_path, "a,b,c\n1,2,0\n3,4,1e6\n")
    ds = load_dataset("csv:d.csv", base_dir=tmp_path, n_inputs=2, task="classification",
                      test_fraction=0)
    assert ds.n_classes == 1_000_001 and ds.y_train.tolist() == [0, 1_000_000]


def test_csv_missing_and_n_inputs(tmp_path):
    with pytest.raises(ExperimentError, match="nope.csv: data file not found"):
        load_dataset("csv:nope.csv", base_dir=tmp_path, n_inputs=1)
    _write(tmp_path, "a,b\n1,2\n")
    with pytest.raises(ExperimentError, match="number of inputs"):
        load_dataset("csv:d.csv", base_dir=tmp_path)


# ----------------------------------------------------------------------------- idx / mnist


@pytest.mark.parametrize("dtype", ["u1", "i1", ">i2", "i4", "f4", "f8"])
@pytest.mark.parametrize("gz", [False, True])
def test_idx_round_trip(tmp_path, dtype, gz):
    rng = np.random.default_rng(0)
    a = (rng.normal(size=(3, 4, 5)) * 50).astype(dtype)
    p = tmp_path / ("a.idx" + (".gz" if gz else ""))
    write_idx(p, a)
    b = read_idx(p)
    assert b.shape == a.shape and b.dtype.kind == np.dtype(dtype).kind
    np.testing.assert_array_equal(a, b)


def test_idx_by_hand(tmp_path):
    # magic 0x00000801 (ubyte, 1 dim), 3 items
    p = tmp_path / "l.idx"
    p.write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 8, 9]))
    np.testing.assert_array_equal(read_idx(p), [7, 8, 9])
    # big-endian int32
    p.write_bytes(bytes([0, 0, 0x0C, 1, 0, 0, 0, 1, 0, 0, 1, 2]))
    assert read_idx(p).tolist() == [258]


@pytest.mark.parametrize(
    "payload, match",
    [
        (b"", "bad idx magic"),
        (bytes([1, 0, 8, 1, 0, 0, 0, 1, 5]), "bad idx magic"),
        (bytes([0, 0, 7, 1, 0, 0, 0, 1, 5]), "unknown type code 0x07"),
        (bytes([0, 0, 8, 0]), "zero dimensions"),
        (bytes([0, 0, 8, 2, 0, 0, 0, 1]), "truncated idx header"),
        (bytes([0, 0, 8, 1, 0, 0, 0, 3, 5]), "size mismatch"),
        (bytes([0, 0, 8, 1, 0, 0, 0, 1, 5, 6]), "size mismatch"),
    ],
)
def test_idx_errors(tmp_path, payload, match):
    p = tmp_path / "bad-idx1-ubyte"
    p.write_bytes(payload)
    with pytest.raises(ExperimentError, match=match) as e:
        read_idx(p)
    assert "bad-idx1-ubyte" in str(e.value)


def test_idx_missing_and_bad_gzip(tmp_path):
    with pytest.raises(ExperimentError, match="not found"):
        read_idx(tmp_path / "nothing")
    p = tmp_path / "x.gz"
    p.write_bytes(b"not gzip at all")
    with pytest.raises(ExperimentError, match="x.gz: cannot read"):
        read_idx(p)


def _mnist_dir(tmp_path, gz=False, dotted=False):
    rng = np.random.default_rng(1)
    d = tmp_path / "mnist"
    d.mkdir()
    for split, n in (("train", 12), ("t10k", 5)):
        imgs = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n).astype(np.uint8)
        for stem, arr in (
            (f"{split}-images-idx3-ubyte", imgs),
            (f"{split}-labels-idx1-ubyte", labels),
        ):
            if dotted:
                stem = stem.replace("-idx", ".idx")
            write_idx(d / (stem + (".gz" if gz else "")), arr)
    return d


@pytest.mark.parametrize("gz, dotted", [(False, False), (True, False), (False, True)])
def test_mnist(tmp_path, gz, dotted):
    _mnist_dir(tmp_path, gz=gz, dotted=dotted)
    ds = load_dataset("mnist:mnist", base_dir=tmp_path)
    assert ds.x_train.shape == (12, 784) and ds.x_test.shape == (5, 784)
    assert ds.n_classes == 10 and ds.y_train.dtype == np.int64
    assert 0.0 <= ds.x_train.min() and ds.x_train.max() <= 1.0
    raw = read_idx(next((tmp_path / "mnist").glob("train-images*")))
    np.testing.assert_array_equal(ds.x_train[3], raw[3].reshape(-1) / 255.0)
    assert ds.feature_names[29] == "pixel_1_1"


def test_mnist_errors(tmp_path):
    with pytest.raises(ExperimentError, match="mnist folder not found"):
        load_dataset("mnist:nowhere", base_dir=tmp_path)
    d = _mnist_dir(tmp_path)
    (d / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(ExperimentError, match="t10k-labels-idx1-ubyte not found"):
        load_dataset("mnist:mnist", base_dir=tmp_path)
    write_idx(d / "t10k-labels-idx1-ubyte", np.zeros(4, np.uint8))
    with pytest.raises(ExperimentError, match="4 labels for 5 images"):
        load_dataset("mnist:mnist", base_dir=tmp_path)
    (d / "t10k-labels-idx1-ubyte").unlink()
    with gzip.open(d / "t10k-labels-idx1-ubyte.gz", "wb") as f:
        f.write(bytes([0, 0, 8, 2, 0, 0, 0, 5, 0, 0, 0, 1]) + bytes(5))
    with pytest.raises(ExperimentError, match="1-D integer label array"):
        load_dataset("mnist:mnist", base_dir=tmp_path)


# ----------------------------------------------------------------------------- encodings


def test_encode_inputs():
    x = np.array([[0.0, 0.5], [1.0, 0.25]])
    np.testing.assert_allclose(encode_inputs(x, gain=2.0, offset=0.1), [[0.1, 1.1], [2.1, 0.6]])
    pm = encode_inputs(x, gain=100.0, mode="pm")
    np.testing.assert_allclose(pm, [[0, 50, 0, -50], [100, 25, -100, -25]])
    assert encode_inputs(x[0], mode="pm").shape == (4,)
    with pytest.raises(ExperimentError, match="input_mode"):
        encode_inputs(x, mode="plusminus")


def test_encode_targets_and_predict():
    y = np.array([2, 0, 1])
    t = encode_targets(y, n_outputs=3, n_classes=3, high=1.0, low=-0.5)
    np.testing.assert_allclose(t, [[-0.5, -0.5, 1], [1, -0.5, -0.5], [-0.5, 1, -0.5]])
    np.testing.assert_array_equal(predict_classes(t, n_classes=3, high=1.0, low=-0.5), y)
    b = encode_targets(np.array([0, 1]), n_outputs=1, n_classes=2, high=2.0, low=0.0)
    np.testing.assert_allclose(b, [[0.0], [2.0]])
    np.testing.assert_array_equal(
        predict_classes(np.array([[0.9], [1.1]]), n_classes=2, high=2.0, low=0.0), [0, 1]
    )
    r = encode_targets(np.array([[0.5], [1.5]]), n_outputs=1, n_classes=None)
    np.testing.assert_allclose(r, [[0.5], [1.5]])
    with pytest.raises(ExperimentError, match="10 classes need 10 outputs"):
        encode_targets(np.array([1]), n_outputs=3, n_classes=10)
    with pytest.raises(ExperimentError, match="regression targets"):
        encode_targets(np.array([[1.0, 2.0]]), n_outputs=1, n_classes=None)
