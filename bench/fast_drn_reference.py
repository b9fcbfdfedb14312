"""Run the fast-DRN PyTorch reference (Scellier 2024) on circuitprop's data sets.

This trains the deep resistive network (DRN) of B. Scellier, "A fast algorithm to simulate
nonlinear resistive networks" (ICML 2024) with the authors' own code -- the script
``papers/fast-drn/drn.py`` of https://github.com/rain-neuromorphics/energy-based-learning and
its packages ``model/`` and ``training/`` -- on the same data circuitprop trains on, so that
our trainer (``bench/train_compare.py --reference DIR``) is timed and scored side by side
with it in one run.

**The reference code is not part of this repository** (nor copied into it); it is imported
at run time from the checkout given by ``--ref``. To get it::

    git clone https://github.com/rain-neuromorphics/energy-based-learning /tmp/ref/energy-based-learning
    pip install torch==2.13.0          # the CPU build; nothing else is needed

(``torchvision`` and ``tensorboard`` are not needed: the reference's ``datasets.py`` is not
used, and ``training/monitor.py`` -- which holds the ``Optimizer`` class but imports
``torch.utils.tensorboard`` at module level -- is imported with a stand-in for that module
when tensorboard is absent; the ``Monitor`` class itself, which writes tensorboard logs and
pickles into ``papers/fast-drn/...``, is not used.)

**What is run** is drn.py's construction, unchanged, with these settings (drn.py's DRN-XS /
DRN-1H recipe with the hidden width as a flag):

- ``DeepResistiveEnergy(layer_shapes, weight_gains, input_gain)`` with ``layer_shapes =
  [(2, H, W), (hidden,), (10,)]`` (the input layer holds ``+gain*x`` and ``-gain*x``; the
  image shape is drn.py's, ``(2, 8, 8)`` for digits and ``(2, 28, 28)`` for fashion;
  ``--flat`` uses ``(2, d)`` instead, the same network: same weight count, same fan-in, same
  random draws), ``weight_gains = [1.0, 1.0]`` (kaiming-uniform, clamped >= 0), biases
  initialised to 0, ``input_gain = --gain`` (default 100 for digits, the value the
  circuitprop digits example uses and DRN-XS's; 480 for fashion, drn.py's DRN-1H MNIST
  value). ``hidden`` units: the first half rectify to >= 0, the second half to <= 0.
- cost: ``SquaredError`` on the output layer (MSE against one-hot targets), prediction =
  argmax of the output layer.
- inference (free phase) and training (nudged phases): ``QuadraticMinimizer``,
  ``num_iterations = 4``, ``mode = 'asynchronous'``.
- gradient: ``EquilibriumProp`` on ``AugmentedFunction(energy, cost)``, ``variant =
  'centered'``, ``nudging = 1.0``.
- optimizer: the reference ``Optimizer`` (``torch.optim.SGD``), learning rate 0.006 for the
  biases and the weights, momentum 0, weight decay 0; ``ExponentialLR(gamma=0.99)`` stepped
  after every training epoch (before evaluation), as ``Monitor.one_epoch`` does.
- ``Trainer`` (one epoch: free phase warm-started from the previous batch's state, EP
  gradient, SGD step, clamp) and ``Evaluator`` (free phase from zero for every test batch),
  batch size 4, with the statistics drn.py's ``Monitor`` attaches (energy, cost, error,
  top-5 error, layer norms and saturations, parameter gradients) unless ``--stats minimal``.

**The only difference from drn.py is the data loader**: instead of ``datasets.py``
(torchvision MNIST, ``num_workers=1``) it is a ``torch.utils.data.DataLoader`` over tensors
holding our data (training: ``shuffle=True``; test: ``shuffle=False``, yielding ``(x, y,
index)`` like the reference's ``IndexedDataset``), batch size 4, ``num_workers`` from
``--num-workers`` (default 0: the batches are sliced in-process). Besides the data, what
``Monitor.run`` adds around the epochs is left out: the per-batch progress line (drn.py runs
``verbose=True``; ``--verbose`` restores it, on stderr), the tensorboard scalars, and the
pickled curves and ``model.pt`` written after every epoch.

- ``digits``: scikit-learn's ``load_digits``, ``x / 16``, split exactly as circuitprop's
  ``digits`` source (``circuitprop/data.py``): ``train_test_split(x, y, test_size=0.2,
  random_state=0, stratify=y)`` -> 1437 training / 360 test images of shape (1, 8, 8).
- ``fashion``: the idx files of Debian's ``dataset-fashion-mnist``
  (``/usr/share/datasets/fashion-mnist``, ``--fashion-dir``), ``pixels / 255``, shape
  (1, 28, 28), the files' own split; ``--limit-train`` / ``--limit-test`` keep the first N
  images of each split.

Seeds: ``torch.manual_seed(--seed)`` (default 0) before the network is built; the reference
itself sets no seed.

Timing (``time.perf_counter``): ``epoch_seconds`` is one ``Trainer.run`` plus the scheduler
step (no evaluation); ``eval_seconds`` is one ``Evaluator.run`` over the test set. torch
keeps its default thread count (reported as ``threads``).

Usage::

    python bench/fast_drn_reference.py --ref /tmp/ref/energy-based-learning --task digits \\
        --epochs 3 --json
    python bench/fast_drn_reference.py --ref /tmp/ref/energy-based-learning --task fashion \\
        --epochs 1 --limit-train 4000 --limit-test 2000 --gain 480 --json

With ``--json`` the last line of standard output is one JSON object: ``task``, ``hidden``,
``gain``, ``epochs``, ``epoch_seconds``, ``eval_seconds``, ``test_accuracy`` and
``train_accuracy`` (fractions, per epoch; the training accuracy is the reference's own
running measure: the free state of each batch before its update, averaged over the epoch),
``torch`` (version), ``threads``, and ``n_train``, ``n_test``, ``seed``, ``device``,
``stats``, ``num_workers``, ``learning_rates`` (per epoch), ``ref_commit``, and
``epoch_cpu_seconds`` (the process's CPU time of each training epoch, all threads: about
``threads`` x ``epoch_seconds`` on an idle machine; a much lower ratio means the epoch
was slowed down by something else).
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np

FASHION_DIR = "/usr/share/datasets/fashion-mnist"
DEFAULT_GAIN = {"digits": 100.0, "fashion": 480.0}
DEFAULT_EPOCHS = {"digits": 3, "fashion": 1}

# drn.py's hyperparameters (DRN-XS / DRN-1H), the hidden width aside.
WEIGHT_GAINS = [1.0, 1.0]
NUM_ITERATIONS_INFERENCE = 4
NUM_ITERATIONS_TRAINING = 4
NUDGING = 1.0
LR_WEIGHTS = [0.006, 0.006]
LR_BIASES = [0.006, 0.006]
MOMENTUM = 0.0
WEIGHT_DECAY = 0.0
GAMMA = 0.99
BATCH_SIZE = 4


# ----------------------------------------------------------------------------- data


def load_digits_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple]:
    """circuitprop's ``digits`` source: x / 16, stratified 80/20 split, random_state 0."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = np.asarray(bunch.data, dtype=np.float64) / 16.0
    y = np.asarray(bunch.target, dtype=np.int64)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
    return xtr, ytr, xte, yte, (1, 8, 8)


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise SystemExit(f"{path}: not an unsigned-byte idx file")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _find_idx(folder: Path, stem: str) -> Path:
    # train-images-idx3-ubyte[.gz], also the train-images.idx3-ubyte spelling
    names = [stem, stem.replace("-idx", ".idx")]
    for name in names:
        for suffix in ("", ".gz"):
            p = folder / (name + suffix)
            if p.exists():
                return p
    raise SystemExit(f"{folder}: no {stem}[.gz] (apt-get install dataset-fashion-mnist?)")


def load_fashion(folder: str, limit_train: int | None, limit_test: int | None):
    """The idx files' own split, pixels / 255, the first N images of each split."""
    d = Path(folder)
    parts = []
    for split, limit in (("train", limit_train), ("t10k", limit_test)):
        images = _read_idx(_find_idx(d, f"{split}-images-idx3-ubyte"))
        labels = _read_idx(_find_idx(d, f"{split}-labels-idx1-ubyte"))
        if limit:
            images, labels = images[:limit], labels[:limit]
        x = images.reshape(len(images), -1).astype(np.float64) / 255.0
        parts += [x, labels.astype(np.int64)]
    return (*parts, (1, 28, 28))


def make_loaders(xtr, ytr, xte, yte, shape, num_workers: int):
    """Our stand-in for the reference's ``datasets.load_dataloaders``."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    def tensors(x, y):
        return (torch.tensor(x, dtype=torch.float32).reshape((len(x),) + tuple(shape)),
                torch.tensor(y, dtype=torch.int64))

    xt, yt = tensors(xtr, ytr)
    xe, ye = tensors(xte, yte)
    training = DataLoader(TensorDataset(xt, yt), batch_size=BATCH_SIZE, shuffle=True,
                          num_workers=num_workers)
    # like the reference's IndexedDataset: the test loader yields (x, y, index)
    test = DataLoader(TensorDataset(xe, ye, torch.arange(len(xe))), batch_size=BATCH_SIZE,
                      shuffle=False, num_workers=num_workers)
    return training, test


# ----------------------------------------------------------------------------- reference


def import_reference(ref: str):
    """Import the reference's modules from the checkout ``ref``."""
    root = Path(ref).resolve()
    if not (root / "model" / "resistive" / "network.py").exists():
        raise SystemExit(f"{root}: not a checkout of rain-neuromorphics/energy-based-learning "
                         "(git clone https://github.com/rain-neuromorphics/energy-based-learning)")
    sys.path.insert(0, str(root))
    try:
        import torch.utils.tensorboard  # noqa: F401
    except ImportError:
        # training/monitor.py imports SummaryWriter at module level; only its Optimizer
        # class is used here, so a stand-in module is enough.
        stub = types.ModuleType("torch.utils.tensorboard")

        class SummaryWriter:  # pragma: no cover - never constructed
            def __init__(self, *a, **k):
                raise RuntimeError("tensorboard is not installed")

        stub.SummaryWriter = SummaryWriter
        sys.modules["torch.utils.tensorboard"] = stub

    from model.function.cost import SquaredError
    from model.function.network import Network
    from model.resistive.minimizer import QuadraticMinimizer
    from model.resistive.network import DeepResistiveEnergy
    from training import statistics
    from training.epoch import Evaluator, Trainer
    from training.monitor import Optimizer
    from training.sgd import AugmentedFunction, EquilibriumProp

    return types.SimpleNamespace(
        DeepResistiveEnergy=DeepResistiveEnergy, Network=Network, SquaredError=SquaredError,
        QuadraticMinimizer=QuadraticMinimizer, EquilibriumProp=EquilibriumProp,
        AugmentedFunction=AugmentedFunction, Trainer=Trainer, Evaluator=Evaluator,
        Optimizer=Optimizer, statistics=statistics, root=root)


def ref_commit(root: Path) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"],
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def build(R, input_shape, hidden: int, gain: float, device: str, training_loader,
          test_loader, stats: str):
    """drn.py's construction (algorithm EP), with our loaders."""
    import torch

    layer_shapes = [(2,) + tuple(input_shape[1:]), (hidden,), (10,)]
    energy_fn = R.DeepResistiveEnergy(layer_shapes, WEIGHT_GAINS, gain)
    energy_fn.set_device(device)

    output_layer = energy_fn.layers()[-1]
    cost_fn = R.SquaredError(output_layer)
    network = R.Network(energy_fn)

    params = energy_fn.params()
    layers = energy_fn.layers()
    free_layers = network.free_layers()

    augmented_fn = R.AugmentedFunction(energy_fn, cost_fn)
    energy_minimizer_training = R.QuadraticMinimizer(augmented_fn, free_layers)
    estimator = R.EquilibriumProp(params, layers, augmented_fn, cost_fn,
                                  energy_minimizer_training)
    estimator.nudging = NUDGING
    estimator.variant = "centered"
    energy_minimizer_training.num_iterations = NUM_ITERATIONS_TRAINING
    energy_minimizer_training.mode = "asynchronous"

    learning_rates = LR_BIASES + LR_WEIGHTS
    optimizer = R.Optimizer(energy_fn, cost_fn, learning_rates, MOMENTUM, WEIGHT_DECAY)

    energy_minimizer_inference = R.QuadraticMinimizer(energy_fn, free_layers)
    energy_minimizer_inference.num_iterations = NUM_ITERATIONS_INFERENCE
    energy_minimizer_inference.mode = "asynchronous"

    trainer = R.Trainer(network, cost_fn, params, training_loader, estimator, optimizer,
                        energy_minimizer_inference)
    evaluator = R.Evaluator(network, cost_fn, test_loader, energy_minimizer_inference)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=GAMMA)

    # the statistics Monitor._build_series attaches (their per-batch cost is part of the
    # reference's epoch time); "minimal": only what the accuracies need
    S = R.statistics
    train_err = S.ErrorStat(cost_fn)
    test_err = S.ErrorStat(cost_fn)
    if stats == "full":
        net_layers = energy_fn.layers()
        train0 = [S.Counter(energy_fn, trainer.dataset_size()), S.EnergyStat(energy_fn),
                  S.CostStat(cost_fn), train_err, S.TopFiveErrorStat(cost_fn)]
        train0 += [S.NormStat(layer) for layer in net_layers]
        train0 += [S.SaturationStat(layer) for layer in net_layers]
        train1 = [S.GradientStat(param) for param in energy_fn.params()]
        test = [S.Counter(energy_fn, evaluator.dataset_size()), S.EnergyStat(energy_fn),
                S.CostStat(cost_fn), test_err, S.TopFiveErrorStat(cost_fn)]
        test += [S.NormStat(layer) for layer in net_layers]
        test += [S.SaturationStat(layer) for layer in net_layers]
    else:
        train0, train1, test = [train_err], [], [test_err]
    for s in train0:
        trainer.add_statistic(s, 0)
    for s in train1:
        trainer.add_statistic(s, 1)
    for s in test:
        evaluator.add_statistic(s)

    return types.SimpleNamespace(energy_fn=energy_fn, trainer=trainer, evaluator=evaluator,
                                 optimizer=optimizer, scheduler=scheduler,
                                 train_err=train_err, test_err=test_err,
                                 layer_shapes=layer_shapes)


# ----------------------------------------------------------------------------- main


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ref", required=True,
                   help="checkout of https://github.com/rain-neuromorphics/energy-based-learning")
    p.add_argument("--task", choices=("digits", "fashion"), required=True)
    p.add_argument("--epochs", type=int, help="training epochs (default: digits 3, fashion 1)")
    p.add_argument("--limit-train", type=int, default=0, help="first N training images (0: all)")
    p.add_argument("--limit-test", type=int, default=0, help="first N test images (0: all)")
    p.add_argument("--hidden", type=int, default=100,
                   help="hidden units (half rectify >= 0, half <= 0); even")
    p.add_argument("--gain", type=float, help="input gain (default: digits 100, fashion 480)")
    p.add_argument("--seed", type=int, default=0, help="torch.manual_seed (0)")
    p.add_argument("--fashion-dir", default=FASHION_DIR)
    p.add_argument("--flat", action="store_true",
                   help="input layer (2, d) instead of the image shape (2, H, W)")
    p.add_argument("--stats", choices=("full", "minimal"), default="full",
                   help="full: the statistics drn.py's Monitor computes every batch")
    p.add_argument("--num-workers", type=int, default=0, help="DataLoader workers (0)")
    p.add_argument("--device", default=None, help="torch device (drn.py: cuda if available)")
    p.add_argument("--verbose", action="store_true",
                   help="the reference's per-batch progress lines (to stderr)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)

    if args.hidden < 2 or args.hidden % 2:
        p.error("--hidden must be even (excitatory and inhibitory halves)")
    epochs = args.epochs if args.epochs is not None else DEFAULT_EPOCHS[args.task]
    gain = args.gain if args.gain is not None else DEFAULT_GAIN[args.task]

    import torch

    R = import_reference(args.ref)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")

    if args.task == "digits":
        xtr, ytr, xte, yte, shape = load_digits_split()
        if args.limit_train:
            xtr, ytr = xtr[:args.limit_train], ytr[:args.limit_train]
        if args.limit_test:
            xte, yte = xte[:args.limit_test], yte[:args.limit_test]
    else:
        xtr, ytr, xte, yte, shape = load_fashion(args.fashion_dir, args.limit_train or None,
                                                 args.limit_test or None)
    if args.flat:
        shape = (1, int(np.prod(shape)))

    torch.manual_seed(args.seed)
    training_loader, test_loader = make_loaders(xtr, ytr, xte, yte, shape, args.num_workers)
    run = build(R, shape, args.hidden, gain, device, training_loader, test_loader, args.stats)

    log = sys.stderr if args.json else sys.stdout
    if not args.json:
        print(f"fast-DRN reference {R.root} on {args.task}: {len(xtr)} train / {len(xte)} "
              f"test, {run.energy_fn}, torch {torch.__version__}, "
              f"{torch.get_num_threads()} threads, device {device}", file=log, flush=True)

    epoch_seconds, eval_seconds, test_acc, train_acc, lrs = [], [], [], [], []
    epoch_cpu = []
    # the reference's progress lines go to stderr so that stdout stays clean for --json
    quiet = contextlib.redirect_stdout(sys.stderr)
    for epoch in range(1, epochs + 1):
        lrs.append([g["lr"] for g in run.optimizer.param_groups])
        with quiet:
            c0, t0 = time.process_time(), time.perf_counter()
            run.trainer.run(args.verbose)
            run.scheduler.step()
            t1, c1 = time.perf_counter(), time.process_time()
            run.evaluator.run(args.verbose)
            t2 = time.perf_counter()
        epoch_seconds.append(t1 - t0)
        epoch_cpu.append(c1 - c0)
        eval_seconds.append(t2 - t1)
        # ErrorStat.get() is the error rate in percent
        train_acc.append(round(1.0 - run.train_err.get() / 100.0, 12))
        test_acc.append(round(1.0 - run.test_err.get() / 100.0, 12))
        print(f"epoch {epoch}: train {t1 - t0:.3f} s, eval {t2 - t1:.3f} s, "
              f"train acc {100 * train_acc[-1]:.2f}%, test acc {100 * test_acc[-1]:.2f}%",
              file=log, flush=True)

    result = {
        "task": args.task,
        "hidden": args.hidden,
        "gain": gain,
        "epochs": epochs,
        "epoch_seconds": epoch_seconds,
        "eval_seconds": eval_seconds,
        "epoch_cpu_seconds": epoch_cpu,
        "test_accuracy": test_acc,
        "train_accuracy": train_acc,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "n_train": len(xtr),
        "n_test": len(xte),
        "layer_shapes": [list(s) for s in run.layer_shapes],
        "seed": args.seed,
        "device": device,
        "stats": args.stats,
        "num_workers": args.num_workers,
        "learning_rates": [lr[0] for lr in lrs],
        "ref_commit": ref_commit(R.root),
    }
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
