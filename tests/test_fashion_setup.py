"""Set-up of the Fashion-MNIST example (``examples/fashion-mnist``): the ``mnist:DIR`` source
reading a folder laid out like Debian's ``dataset-fashion-mnist`` package, the fast ``pm``
input encoding, and the 784-100-10 DRN deck (parsed, counted, checked). No timings are
asserted: these tests check what the set-up produces."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from circuitprop._errors import ExperimentError
from circuitprop.data import encode_inputs, load_dataset, read_idx, write_idx

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "fashion-mnist"
#: where ``apt-get install dataset-fashion-mnist`` puts the idx files
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
#: the package's file names (gzipped idx, hyphenated spelling)
DEBIAN_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
GAIN = 400.0  # the example's input gain (examples/fashion-mnist/README.md)


def _debian_like_dir(root: Path, n_train: int = 7, n_test: int = 3) -> tuple[Path, dict]:
    """A tiny fashion-mnist folder in the Debian package's naming, and the arrays in it."""
    rng = np.random.default_rng(7)
    d = root / "fashion-mnist"
    d.mkdir()
    arrays = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        images[0, 0, 0], images[0, 0, 1] = 0, 255  # both ends of the pixel range
        labels = (np.arange(n) * 3 % 10).astype(np.uint8)
        arrays[split] = (images, labels)
        write_idx(d / f"{split}-images-idx3-ubyte.gz", images)
        write_idx(d / f"{split}-labels-idx1-ubyte.gz", labels)
    assert sorted(p.name for p in d.iterdir()) == sorted(DEBIAN_FILES)
    return d, arrays


def test_mnist_source_reads_debian_layout(tmp_path):
    d, arrays = _debian_like_dir(tmp_path)
    for source, base in ((f"mnist:{d}", "."), ("mnist:fashion-mnist", tmp_path)):
        ds = load_dataset(source, base_dir=base)
        assert ds.name == source and ds.n_classes == 10 and ds.is_classification
        assert ds.x_train.shape == (7, 784) and ds.x_test.shape == (3, 784)
        assert ds.x_train.dtype == np.float64 and ds.y_train.dtype == np.int64
        for split, x, y in (("train", ds.x_train, ds.y_train), ("t10k", ds.x_test, ds.y_test)):
            images, labels = arrays[split]
            # row-major flattening, pixel / 255 exactly (bit for bit)
            np.testing.assert_array_equal(x, images.reshape(len(images), -1) / 255.0)
            np.testing.assert_array_equal(y, labels)
        assert ds.x_train[0, 0] == 0.0 and ds.x_train[0, 1] == 1.0
        assert len(ds.feature_names) == 784
        assert ds.feature_names[0] == "pixel_0_0" and ds.feature_names[-1] == "pixel_27_27"


def test_mnist_source_limits(tmp_path):
    d, arrays = _debian_like_dir(tmp_path)
    ds = load_dataset(f"mnist:{d}", limit_train=4, limit_test=2)
    assert ds.x_train.shape == (4, 784) and ds.x_test.shape == (2, 784)
    np.testing.assert_array_equal(ds.y_train, arrays["train"][1][:4])


def test_experiment_reads_debian_layout(tmp_path):
    """An experiment written by ``circuitprop build drn --source mnist:DIR`` loads that
    folder (absolute path) with ``limit_train`` / ``limit_test``."""
    from circuitprop.builders._drn import drn_experiment
    from circuitprop.experiment import parse_experiment

    d, arrays = _debian_like_dir(tmp_path)
    (tmp_path / "deck.cir").write_text("placeholder: the data side does not read the deck\n")
    text = drn_experiment("deck.cir", 784, 10, source=f"mnist:{d}", gain=GAIN)
    text = text.replace(f'source = "mnist:{d}"\n',
                        f'source = "mnist:{d}"\nlimit_train = 5\nlimit_test = 2\n')
    exp = parse_experiment(text, tmp_path / "experiment.toml")
    assert exp.data.limit_train == 5 and exp.data.limit_test == 2
    assert exp.n_inputs == 2 * 784 and exp.n_features == 784 and exp.n_outputs == 10
    ds = exp.load_data()
    assert ds.x_train.shape == (5, 784) and ds.x_test.shape == (2, 784)
    x = exp.encode_inputs(ds.x_train)
    assert x.shape == (5, 2 * 784)
    np.testing.assert_array_equal(x[:, :784], GAIN * ds.x_train)
    np.testing.assert_array_equal(x[:, 784:], -GAIN * ds.x_train)
    t = exp.encode_targets(ds.y_train, ds.n_classes)
    assert t.shape == (5, 10)
    np.testing.assert_array_equal(np.argmax(t, axis=1), arrays["train"][1][:5])


def test_corrupt_gzip_is_a_user_error(tmp_path):
    """A damaged deflate stream is an ExperimentError naming the file (not a zlib.error)."""
    p = tmp_path / "train-labels-idx1-ubyte.gz"
    write_idx(p, np.arange(5000, dtype=np.int32))
    data = bytearray(p.read_bytes())
    data[30:60] = bytes(b ^ 0xFF for b in data[30:60])
    p.write_bytes(bytes(data))
    with pytest.raises(ExperimentError, match="train-labels-idx1-ubyte.gz: cannot read idx file"):
        read_idx(p)


@pytest.mark.parametrize("offset", [0.0, 0.25, -1.5])
@pytest.mark.parametrize("shape", [(6, 5), (5,), (2, 3, 4)])
def test_pm_encoding_matches_concatenation(offset, shape):
    """``pm`` writes into one array; the values are, bit for bit, those of the plain
    ``concatenate([offset + gain x, offset - gain x])``."""
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 1, size=shape)
    x.flat[0] = 0.0
    gain = 400.0
    want = np.concatenate([offset + gain * x, offset - gain * x], axis=-1)
    got = encode_inputs(x, gain=gain, offset=offset, mode="pm")
    assert got.shape == want.shape and got.dtype == np.float64
    assert got.tobytes() == want.tobytes()
    # a uint8 / integer input is converted as before
    xi = (x * 255).astype(np.uint8)
    assert encode_inputs(xi, gain=2.0, mode="pm").tobytes() == np.concatenate(
        [0.0 + 2.0 * xi.astype(np.float64), 0.0 - 2.0 * xi.astype(np.float64)], axis=-1
    ).tobytes()


# ----------------------------------------------------------------------------- the deck


@pytest.fixture(scope="module")
def drn_784():
    """The example's deck text (``circuitprop build drn --inputs 784 --hidden 100 --outputs 10
    --gain 400``) and its parse."""
    from circuitprop.builders._drn import drn_deck
    from circuitprop.netlist import parse

    text = drn_deck(784, [100], 10, gain=GAIN)
    return text, parse(text, "fashion.cir")


def test_drn_784_deck_counts(drn_784):
    from circuitprop.experiment import match_trainable
    from circuitprop.netlist import GROUND

    text, nl = drn_784
    kinds: dict[str, int] = {}
    for el in nl.elements:
        kinds[el.kind] = kinds.get(el.kind, 0) + 1
    weights = 2 * 784 * 100 + 100 * 20  # inputs -> hidden, hidden -> differential outputs
    assert kinds == {"v": 2 * 784 + 2, "r": weights + 20, "d": 100}
    assert len(nl.elements) == 2 * 784 + 2 + weights + 20 + 100
    nodes = nl.nodes()
    assert len(nodes) == 2 * 784 + 100 + 20 + 2  # inp*, inn*, h1_*, o*p/o*n, bp, bn
    assert GROUND not in nodes and len(set(nodes)) == len(nodes)
    assert nodes[:2] == ["inp1", "inp2"] and "inn784" in nodes and "h1_100" in nodes
    assert {"o1p", "o10n", "bp", "bn"} <= set(nodes)
    # element order and values as written
    r = next(el for el in nl.elements if el.name == "r1_1568_100")
    assert r.nodes == ("inn784", "h1_100") and r.value > 0
    line = next(ln for ln in text.splitlines() if ln.startswith("r1_1568_100 "))
    assert r.value == float(line.split()[3])
    assert r.location is not None and r.location.file == "fashion.cir"
    assert text.splitlines()[r.location.line - 1] == line
    d = {el.name: el for el in nl.elements if el.kind == "d"}
    assert d["d1_1"].nodes == ("bn", "h1_1") and d["d1_100"].nodes == ("h1_100", "bp")
    assert all(el.model == "dnl" for el in d.values()) and list(nl.models) == ["dnl"]
    v = {el.name: el for el in nl.elements if el.kind == "v"}
    assert v["vinp5"].value == -v["vinn5"].value and 0 <= v["vinp5"].value <= GAIN
    assert v["vbp"].value == 0.0 and nl.op and nl.dc == []
    names = match_trainable(["r[0-9]*"], [el.name for el in nl.elements if el.kind == "r"])
    assert len(names) == weights and "rload_o1p" not in names


def test_drn_784_topology(drn_784):
    from circuitprop._graph import check_topology

    _, nl = drn_784
    check_topology(nl)  # well posed: returns None


def test_example_files_match_the_builder(drn_784):
    """``examples/fashion-mnist`` holds exactly what its README's build command writes."""
    from circuitprop.builders._drn import drn_experiment

    deck = EXAMPLE / "fashion.cir"  # committed: a missing deck is a failure, not a skip
    text, _ = drn_784
    assert deck.read_text(encoding="utf-8") == text
    exp = (EXAMPLE / "experiment.toml").read_text(encoding="utf-8")
    generated = drn_experiment("fashion.cir", 784, 10, source=f"mnist:{DEBIAN_DIR}", gain=GAIN,
                               beta=1e-3)
    # the file is the generated text with lines added (description, limits, schedule)
    lines = exp.splitlines()
    it = iter(lines)
    assert all(any(g == ln for ln in it) for g in generated.splitlines() if g), \
        "experiment.toml lost or reordered a line of the generated experiment"


# ----------------------------------------------------------------------------- real files


def _need_debian_files():
    missing = [f for f in DEBIAN_FILES if not (DEBIAN_DIR / f).is_file()]
    if missing:
        pytest.skip(f"{DEBIAN_DIR} lacks {', '.join(missing)} "
                    "(apt-get install -y dataset-fashion-mnist)")


def test_debian_package_files():
    _need_debian_files()
    ds = load_dataset(f"mnist:{DEBIAN_DIR}")
    assert ds.x_train.shape == (60000, 784) and ds.x_test.shape == (10000, 784)
    assert ds.y_train.shape == (60000,) and ds.y_test.shape == (10000,)
    assert ds.n_classes == 10
    for y in (ds.y_train, ds.y_test):
        assert y.min() == 0 and y.max() == 9
        assert set(np.unique(y).tolist()) == set(range(10))
    assert np.bincount(ds.y_train).tolist() == [6000] * 10  # Fashion-MNIST is balanced
    assert np.bincount(ds.y_test).tolist() == [1000] * 10
    for x in (ds.x_train, ds.x_test):
        assert x.min() == 0.0 and x.max() == 1.0
    raw = read_idx(DEBIAN_DIR / "t10k-images-idx3-ubyte.gz")
    assert raw.shape == (10000, 28, 28) and raw.dtype == np.uint8
    np.testing.assert_array_equal(ds.x_test[17], raw[17].reshape(-1) / 255.0)


def test_example_experiment_with_debian_files():
    """The example's experiment loads the package's folder as-is and fits its deck."""
    _need_debian_files()
    from circuitprop.experiment import load_experiment

    exp = load_experiment(EXAMPLE / "experiment.toml")
    assert exp.data.source == f"mnist:{DEBIAN_DIR}"
    assert exp.train.input_mode == "pm" and exp.train.input_gain == GAIN
    assert exp.n_inputs == 2 * 784 and exp.n_features == 784 and exp.n_outputs == 10
    assert exp.learning.rule == "ep" and exp.learning.estimator == "centered"
    assert exp.train.batch_size == 4
    ds = exp.load_data()  # check_data: 784 features for 1568 pm inputs, 10 classes
    assert ds.x_train.shape == (exp.data.limit_train or 60000, 784)
    with gzip.open(DEBIAN_DIR / "train-labels-idx1-ubyte.gz", "rb") as f:
        head = f.read(8 + 5)
    np.testing.assert_array_equal(ds.y_train[:5], list(head[8:]))
