"""Experiment files: parsing, defaults, every validation error, name checks."""

from __future__ import annotations

import math
import textwrap

import numpy as np
import pytest

from circuitprop._errors import ExperimentError
from circuitprop.experiment import (
    Experiment,
    TrainSettings,
    check_names,
    load_experiment,
    match_trainable,
    parse_experiment,
    parse_output,
)
from circuitprop.netlist._types import Element, Netlist

DECK = """xor net
vx1 a 0 1
vx2 b 0 1
ib 0 c 1m
r1 a h 1k
r2 b h 1k
r3 h out 1k
rload out 0 1k
.op
.end
"""

MINIMAL = """
netlist = "net.cir"
inputs = ["vx1", "vx2"]
outputs = ["out"]
trainable = ["r*"]
[data]
source = "xor"
"""

FULL = """
description = "everything"
netlist = "net.cir"
inputs = ["VX1", "vx2"]
outputs = ["out", "h-a", "h - gnd"]
trainable = ["r[0-9]", "R3"]
[data]
source = "digits"
task = "classification"
test_fraction = 0.25
seed = 7
limit_train = 100
limit_test = 50
[learning]
rule = "coupled"
estimator = "Forward-3"
beta = 2e-5
loss = "mse"
eta = 0.5
[train]
optimizer = "adam"
learning_rate = 1e-3
lr_decay = 0.99
momentum = 0.5
epochs = 3
batch_size = 4
seed = 1
shuffle = false
g_min = 1e-8
g_max = inf
g_unit = 1e-3
init = "uniform"
init_low = 1e-4
init_high = 2e-3
input_gain = 100
input_offset = 0.5
input_mode = "pm"
target_high = 2.0
target_low = -1.0
checkpoint_every = 5
[measurement]
adc_bits = 12
adc_range = 5.0
noise_std = 1e-4
seed = 9
"""


@pytest.fixture
def exp_dir(tmp_path):
    (tmp_path / "net.cir").write_text(DECK)
    return tmp_path


def _load(exp_dir, text, name="exp.toml"):
    p = exp_dir / name
    p.write_text(textwrap.dedent(text))
    return load_experiment(p)


def test_minimal_defaults(exp_dir):
    e = _load(exp_dir, MINIMAL)
    assert isinstance(e, Experiment)
    assert e.netlist == exp_dir / "net.cir"
    assert e.inputs == ("vx1", "vx2")
    assert e.outputs == (("out", "0"),) and e.output_specs == ("out",)
    assert e.trainable == ("r*",)
    assert e.data.source == "xor" and e.data.task == "auto" and e.task == "regression"
    assert e.data.test_fraction == 0.2 and e.data.seed == 0 and e.data.path is None
    L = e.learning
    assert (L.rule, L.estimator, L.beta, L.loss, L.eta) == ("ep", "centered", 1e-6, "mse", None)
    assert L.agnostic_eta is None and L.eta_for("coupled") is None and L.eta_for("agnostic") is None
    assert L.forward_points is None
    t = e.train
    assert t.optimizer == "sgd" and t.learning_rate == 0.01 and t.epochs == 10
    assert t.batch_size == 1 and t.g_min == 1e-9 and math.isinf(t.g_max)
    assert t.init == "netlist" and t.input_mode == "direct" and t.input_gain == 1.0
    assert (t.target_high, t.target_low) == (1.0, 0.0) and t.checkpoint_every == 0
    m = e.measurement
    assert m.adc_bits is None and m.noise_std == 0.0 and m.adc_range == 1.0
    assert e.n_features == 2 and e.n_outputs == 1
    d = e.as_dict()
    assert d["train"]["g_max"] == "inf" and d["netlist"].endswith("net.cir")
    with pytest.raises(Exception):
        e.inputs = ()  # frozen


def test_train_defaults_are_the_settings_defaults(exp_dir):
    # one place for the [train] defaults: the dataclass
    e = _load(exp_dir, MINIMAL)
    assert e.train == TrainSettings()
    assert e.train.epochs == TrainSettings.epochs and e.train.g_max == TrainSettings.g_max


def test_full(exp_dir):
    e = _load(exp_dir, FULL)
    assert e.description == "everything"
    assert e.inputs == ("vx1", "vx2")
    assert e.outputs == (("out", "0"), ("h", "a"), ("h", "0"))
    assert e.trainable == ("r[0-9]", "r3")
    assert e.data.source == "digits" and e.data.limit_train == 100 and e.data.seed == 7
    assert e.learning.rule == "coupled" and e.learning.estimator == "forward-3"
    assert e.learning.forward_points == 3
    t = e.train
    assert t.optimizer == "adam" and t.shuffle is False and t.input_gain == 100.0
    assert t.init == "uniform" and t.init_high == 2e-3 and t.input_mode == "pm"
    assert e.measurement.adc_bits == 12 and e.measurement.seed == 9
    assert e.n_features == 1  # pm: two sources per feature


def test_parse_output():
    assert parse_output("out") == ("out", "0")
    assert parse_output("O1P-o1n") == ("o1p", "o1n")
    assert parse_output(" a - GND ") == ("a", "0")
    assert parse_output("0-a") == ("0", "a")
    for bad in ("", "a-", "-b", "a-b-c", "a-a", "a b"):
        with pytest.raises(ExperimentError):
            parse_output(bad)


def test_match_trainable():
    names = ["R1", "r2", "rload", "r.x1.r3"]
    assert match_trainable(["r*"], names) == ["r1", "r2", "rload", "r.x1.r3"]
    assert match_trainable(["r[0-9]*", "R.X1.*"], names) == ["r1", "r2", "r.x1.r3"]
    assert match_trainable(["r.x1.*", "r1"], names) == ["r1", "r.x1.r3"]  # deck order
    assert match_trainable(["r1", "R1"], names) == ["r1"]
    with pytest.raises(ExperimentError, match="'rx\\*' matches no resistor"):
        match_trainable(["r1", "rx*"], names, where="e.toml")
    with pytest.raises(ExperimentError, match="no patterns"):
        match_trainable([], names)
    with pytest.raises(ExperimentError, match="has no resistors"):
        match_trainable(["r*"], [])


def _netlist():
    return Netlist(
        title="t",
        elements=[
            Element("v", "vx1", ("a", "0"), 1.0),
            Element("v", "vx2", ("b", "0"), 1.0),
            Element("i", "ib", ("0", "c"), 1e-3),
            Element("r", "r1", ("a", "h"), 1e3),
            Element("r", "r2", ("b", "h"), 1e3),
            Element("r", "r3", ("h", "out"), 1e3),
            Element("r", "rload", ("out", "0"), 1e3),
            Element("r", "rc", ("c", "0"), 1e3),
        ],
        source="net.cir",
    )


def test_check_names(exp_dir):
    e = _load(exp_dir, MINIMAL)
    assert check_names(e, _netlist()) == ["r1", "r2", "r3", "rload", "rc"]
    e2 = _load(exp_dir, MINIMAL.replace('["vx1", "vx2"]', '["vx1", "ib"]'))
    check_names(e2, _netlist())  # current sources are inputs too
    bad = MINIMAL.replace('["vx1", "vx2"]', '["vx1", "vx3", "vq"]').replace(
        '["out"]', '["outt", "h-zz"]'
    )
    with pytest.raises(ExperimentError) as err:
        check_names(_load(exp_dir, bad), _netlist())
    msg = str(err.value)
    assert "exp.toml" in msg and "net.cir" in msg
    assert "'vx3' is not a V or I source" in msg and "did you mean 'vx" in msg
    assert "'vq'" in msg
    assert "node 'outt'" in msg and "did you mean 'out'" in msg and "node 'zz'" in msg
    e3 = _load(exp_dir, MINIMAL.replace('["r*"]', '["r9"]'))
    with pytest.raises(ExperimentError, match="'r9' matches no resistor"):
        check_names(e3, _netlist())


def test_check_names_element_not_source(exp_dir, tmp_path):
    nl = _netlist()
    nl.elements.append(Element("v", "vr1", ("z", "0"), 0.0))
    nl.elements[3] = Element("r", "vx1x", ("a", "h"), 1e3)  # a resistor named like a source
    e = _load(exp_dir, MINIMAL.replace('["vx1", "vx2"]', '["vx1x"]'))
    with pytest.raises(ExperimentError, match="is a R element, not a V or I source"):
        check_names(e, nl)


def test_load_data_and_encodings(exp_dir):
    e = _load(exp_dir, MINIMAL)
    ds = e.load_data()
    assert ds.n_classes is None and ds.y_train.shape == (4, 1)
    np.testing.assert_allclose(e.encode_targets(ds.y_train, ds.n_classes), ds.y_train)
    # xor as 2-class classification with one output
    e = _load(exp_dir, MINIMAL + 'task = "classification"\n')
    ds = e.load_data()
    assert ds.n_classes == 2
    np.testing.assert_allclose(e.encode_targets(ds.y_train, 2)[:, 0], [0, 1, 1, 0])
    np.testing.assert_array_equal(e.predict_classes(np.array([[0.2], [0.7]]), 2), [0, 1])
    # iris with pm inputs: 8 sources for 4 features, 3 outputs
    text = f"""
    netlist = "net.cir"
    inputs = {[f"v{i}" for i in range(8)]}
    outputs = ["o1", "o2", "o3"]
    trainable = ["r*"]
    [data]
    source = "iris"
    [train]
    input_mode = "pm"
    input_gain = 2.0
    """.replace("'", '"')
    e = _load(exp_dir, text)
    ds = e.load_data()
    assert ds.n_classes == 3
    v = e.encode_inputs(ds.x_train[:2])
    np.testing.assert_allclose(v[:, :4], 2 * ds.x_train[:2])
    np.testing.assert_allclose(v[:, 4:], -2 * ds.x_train[:2])
    assert e.encode_targets(ds.y_train[:5], 3).shape == (5, 3)


def test_load_data_mismatch(exp_dir):
    e = _load(exp_dir, MINIMAL.replace('source = "xor"', 'source = "iris"'))
    with pytest.raises(ExperimentError, match="4 features but the experiment has 2 inputs"):
        e.load_data()
    text = MINIMAL.replace('source = "xor"', 'source = "digits"').replace(
        '["vx1", "vx2"]', str([f"v{i}" for i in range(64)]).replace("'", '"')
    )
    e = _load(exp_dir, text)
    with pytest.raises(ExperimentError, match="10 classes but the experiment has 1 outputs"):
        e.load_data()
    (exp_dir / "d.csv").write_text("a,b,y1,y2\n" + "1,2,3,4\n" * 10)
    e = _load(exp_dir, MINIMAL.replace('"xor"', '"csv:d.csv"'))
    with pytest.raises(ExperimentError, match=r"\[data\].*d.csv.*expected 2 feature columns and 1"):
        e.load_data()


def test_csv_and_mnist_paths(exp_dir):
    (exp_dir / "sub").mkdir()
    (exp_dir / "sub" / "d.csv").write_text("a,b,y\n" + "0,1,1\n1,0,1\n0,0,0\n1,1,0\n" * 3)
    e = _load(exp_dir, MINIMAL.replace('"xor"', '"csv:sub/d.csv"'))
    assert e.data.path == exp_dir / "sub" / "d.csv" and e.data.kind == "csv"
    assert e.task is None
    ds = e.load_data()
    assert ds.x_train.shape == (9, 2)
    e = _load(exp_dir, MINIMAL.replace('"xor"', '"MNIST:sub"'))
    assert e.data.source == "mnist:sub" and e.data.path == exp_dir / "sub"


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "edit, match",
    [
        # top level
        (
            ('netlist = "net.cir"', 'netlst = "net.cir"'),
            "unknown key 'netlst' in top level; did you mean 'netlist'",
        ),
        (("[data]", "[dta]"), "unknown key 'dta' in top level; did you mean 'data'"),
        (('netlist = "net.cir"\n', ""), "missing required key netlist"),
        (('"net.cir"', '"other.cir"'), "netlist file 'other.cir' not found"),
        (('"net.cir"', "3"), "netlist: expected a string"),
        (('"net.cir"', '""'), "netlist: empty path"),
        (('inputs = ["vx1", "vx2"]\n', ""), "missing required key inputs"),
        (('["vx1", "vx2"]', "[]"), "inputs: expected a non-empty list"),
        (('["vx1", "vx2"]', '"vx1"'), "inputs: expected a non-empty list"),
        (('["vx1", "vx2"]', '["vx1", 2]'), "inputs: expected a non-empty list"),
        (('["vx1", "vx2"]', '["vx1", "VX1"]'), "inputs: listed twice: vx1"),
        (('["vx1", "vx2"]', '["vx1", "r1"]'), "'r1' is not a V or I source name"),
        (('["vx1", "vx2"]', '["vx1", " "]'), "inputs: empty name"),
        (('["out"]', '["a-b-c"]'), "outputs: output 'a-b-c': more than one"),
        (('["out"]', '["out", "out - 0"]'), "same output is listed twice"),
        (('["out"]', '["out-out"]'), "both sides are the same"),
        (('trainable = ["r*"]\n', ""), "missing required key trainable"),
        (("description", "x"), "xx"),
        # data
        (('source = "xor"\n', ""), r"missing required key \[data\] source"),
        (('"xor"', '"xorr"'), "unknown source 'xorr'.*did you mean 'xor'"),
        (('"xor"', '"csv:nope.csv"'), "file 'nope.csv' not found"),
        (('"xor"', '"mnist:nope"'), "folder 'nope' not found"),
        (('"xor"', '"csv:"'), "'csv' needs a path"),
        (('"xor"', '"iris:x"'), "takes no ':' argument"),
        (("[data]", "[data]\ntest_fraction = 1.0"), r"\[data\] test_fraction: must be < 1"),
        (("[data]", "[data]\ntest_fraction = -0.1"), r"test_fraction: must be >= 0"),
        (("[data]", '[data]\ntask = "clasification"'), "did you mean 'classification'"),
        (("[data]", "[data]\nseed = 1.5"), r"\[data\] seed: expected an integer"),
        (("[data]", "[data]\nlimit_train = 0"), "limit_train: must be >= 1"),
        (("[data]", "[data]\nsplit = 0.2"), r"unknown key 'split' in \[data\]"),
        (("[data]", "data = 3\n[learning]"), "'data' must be a table"),
        # learning
        (("[data]", '[learning]\nrule = "eq"\n[data]'), r"\[learning\] rule: 'eq' is not one of"),
        (("[data]", '[learning]\nestimator = "forward-6"\n[data]'), "not one of"),
        (("[data]", '[learning]\nestimator = "centred"\n[data]'), "did you mean 'centered'"),
        (("[data]", "[learning]\nbeta = 0\n[data]"), r"beta: must be > 0"),
        (("[data]", '[learning]\nbeta = "1e-6"\n[data]'), "beta: expected a number"),
        (("[data]", "[learning]\nbeta = true\n[data]"), "beta: expected a number"),
        (("[data]", "[learning]\nbeta = inf\n[data]"), "beta: expected a finite number"),
        (("[data]", "[learning]\nbeta = nan\n[data]"), "beta: expected a finite number"),
        (("[data]", '[learning]\nloss = "ce"\n[data]'), "loss: 'ce' is not one of"),
        (
            ("[data]", "[learning]\nlearning_rate = 1\n[data]"),
            r"unknown key 'learning_rate' in \[learning\]",
        ),
        (("[data]", '[learning]\nrule = "coupled"\neta = 2\n[data]'), r"eta: .* \(0, 1\]"),
        (
            ("[data]", '[learning]\nrule = "agnostic"\nestimator = "forward-2"\n[data]'),
            "only for rule 'ep'",
        ),
        (
            ("[data]", '[learning]\nloss = "cross-entropy"\n[data]\ntask = "regression"'),
            "needs classification",
        ),
        (
            ("[data]", '[learning]\nloss = "cross-entropy"\nrule = "contrastive"\n[data]'),
            "needs loss 'mse'",
        ),
        # train
        (("[data]", "[train]\nepochs = -1\n[data]"), r"\[train\] epochs: must be >= 0"),
        (("[data]", "[train]\nepochs = 2.0\n[data]"), "epochs: expected an integer"),
        (("[data]", "[train]\nbatch_size = 0\n[data]"), "batch_size: must be >= 1"),
        (("[data]", '[train]\noptimizer = "adamw"\n[data]'), "did you mean 'adam'"),
        (("[data]", "[train]\nlearning_rate = 0\n[data]"), "learning_rate: must be > 0"),
        (("[data]", "[train]\nlearnig_rate = 0.1\n[data]"), "did you mean 'learning_rate'"),
        (("[data]", "[train]\nmomentum = 1\n[data]"), "momentum: must be < 1"),
        (("[data]", "[train]\ng_min = 1e-3\ng_max = 1e-4\n[data]"), "g_max: must be > 0.001"),
        (("[data]", "[train]\ng_min = -1\n[data]"), "g_min: must be >= 0"),
        (("[data]", '[train]\ninit = "random"\n[data]'), "init: 'random' is not one of"),
        (
            ("[data]", "[train]\ninit_low = 1\ninit_high = 0.5\n[data]"),
            "init_low .* is above init_high",
        ),
        (("[data]", '[train]\ninput_mode = "pm"\n[data]\n'), None),  # 2 inputs: fine
        (("[data]", '[train]\ninput_mode = "pm"\n[data]'), "PM3"),
        (("[data]", "[train]\ntarget_high = 0\n[data]"), "target_high and target_low are equal"),
        (("[data]", "[train]\nshuffle = 1\n[data]"), "shuffle: expected true or false"),
        (("[data]", "[train]\ncheckpoint_every = -2\n[data]"), "checkpoint_every: must be >= 0"),
        # measurement
        (
            ("[data]", "[measurement]\nadc_bits = 0\n[data]"),
            r"\[measurement\] adc_bits: must be >= 1",
        ),
        (("[data]", "[measurement]\nadc_bits = 8.0\n[data]"), "adc_bits: expected an integer"),
        (("[data]", "[measurement]\nnoise_std = -1\n[data]"), "noise_std: must be >= 0"),
        (("[data]", "[measurement]\nnoise = 1\n[data]"), "did you mean 'noise_std'"),
        # toml
        (("[data]", "[data"), "not valid TOML"),
    ],
)
def test_errors(exp_dir, edit, match):
    old, new = edit
    if match == "PM3":
        text = MINIMAL.replace('"vx2"]', '"vx2", "vx3"]').replace(old, new, 1)
        match = "even number of inputs"
    elif old == "description":
        text = "description = 3\n" + MINIMAL
        match = "description: expected a string"
    else:
        assert old in MINIMAL
        text = MINIMAL.replace(old, new, 1)
    if match is None:
        _load(exp_dir, text)
        return
    with pytest.raises(ExperimentError, match=match) as e:
        _load(exp_dir, text)
    assert str(e.value).startswith(str(exp_dir / "exp.toml"))


def test_missing_experiment_file(tmp_path):
    with pytest.raises(ExperimentError, match="nothere.toml: experiment file not found"):
        load_experiment(tmp_path / "nothere.toml")


def test_parse_experiment_relative_to_path(exp_dir):
    e = parse_experiment(MINIMAL, exp_dir / "virtual.toml")
    assert e.netlist == exp_dir / "net.cir" and e.path == exp_dir / "virtual.toml"


def test_load_netlist(exp_dir):
    e = _load(exp_dir, MINIMAL)
    nl = e.load_netlist()
    assert check_names(e, nl) == ["r1", "r2", "r3", "rload"]
