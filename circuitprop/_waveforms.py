"""Time functions of independent sources (PULSE, SIN, EXP, PWL, SFFM) as JAX arrays.

ngspice's definitions (``src/spicelib/devices/vsrc/vsrcload.c``), with its defaults taken
from the analysis: a zero or missing PULSE rise/fall time and EXP time constant default to
``tstep``, a missing PULSE width and period to ``tstop``, a missing SIN/SFFM frequency to
``1/tstop``. :func:`compile_waves` packs every source of a circuit (constant ones included)
into one :class:`Waves` whose :func:`wave_values` is vmappable and differentiable in ``t``;
:func:`breakpoints` lists the corners an integrator must land on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

__all__ = ["Waves", "compile_waves", "wave_values", "breakpoints", "KINDS"]

#: kind codes of :class:`Waves`
KINDS = {"const": 0, "pulse": 1, "sin": 2, "exp": 3, "pwl": 4, "sffm": 5}


class Waves(eqx.Module):
    """Every source's time function: ``kind`` (:data:`KINDS`), ``p`` (8 parameters each,
    defaults resolved), ``pwl_t``/``pwl_v`` (padded PWL corners; the last corner repeats)."""

    kind: Int[Array, " n"]
    p: Float[Array, "n 8"]
    pwl_t: Float[Array, "n k"]
    pwl_v: Float[Array, "n k"]


def _params(fn: str, args: Sequence[float], dc: float, tstep: float, tstop: float):
    a = list(args)

    def arg(k: int, default: float) -> float:
        return a[k] if k < len(a) else default

    if fn == "pulse":
        v1, v2, td = arg(0, 0.0), arg(1, 0.0), arg(2, 0.0)
        tr = arg(3, 0.0) or tstep
        tf = arg(4, 0.0) or tstep
        pw = arg(5, tstop)
        per = arg(6, tstop)
        return [v1, v2, td, tr, tf, pw, per, 0.0]
    if fn == "sin":
        vo, va = arg(0, 0.0), arg(1, 0.0)
        freq = arg(2, 0.0) or 1.0 / tstop
        return [vo, va, freq, arg(3, 0.0), arg(4, 0.0), math.radians(arg(5, 0.0)), 0.0, 0.0]
    if fn == "exp":
        v1, v2 = arg(0, 0.0), arg(1, 0.0)
        td1 = arg(2, 0.0)
        tau1 = arg(3, 0.0) or tstep
        td2 = arg(4, 0.0) or td1 + tstep
        tau2 = arg(5, 0.0) or tstep
        return [v1, v2, td1, tau1, td2, tau2, 0.0, 0.0]
    if fn == "sffm":
        vo, va = arg(0, 0.0), arg(1, 0.0)
        fc = arg(2, 0.0) or 1.0 / tstop
        mdi = arg(3, 0.0)
        fs = arg(4, 0.0) or 1.0 / tstop
        return [vo, va, fc, mdi, fs, math.radians(arg(5, 0.0)), math.radians(arg(6, 0.0)), 0.0]
    return [dc] + [0.0] * 7


def compile_waves(specs: Sequence, tstep: float, tstop: float) -> Waves:
    """Pack time functions.

    **Arguments:**

    - ``specs``: one entry per source: ``None`` or ``(None, dc)`` for a constant, else
      ``(waveform, dc)`` with ``waveform.fn`` (``pulse``, ``sin``, ``exp``, ``pwl``,
      ``sffm``), ``waveform.args`` (the numbers written) and ``waveform.delay`` (PWL
      ``td=``).
    - ``tstep``, ``tstop``: the analysis' step and stop time (the defaults above).
    """
    kinds, ps, pts, pvs = [], [], [], []
    for spec in specs:
        wave, dc = spec if spec is not None else (None, 0.0)
        if wave is None:
            kinds.append(KINDS["const"]); ps.append(_params("const", (), dc, tstep, tstop))
            pts.append([0.0]); pvs.append([dc])
            continue
        kinds.append(KINDS[wave.fn])
        ps.append(_params(wave.fn, wave.args, dc, tstep, tstop))
        if wave.fn == "pwl":
            ts = [t + wave.delay for t in wave.args[0::2]]
            pts.append(ts); pvs.append(list(wave.args[1::2]))
        else:
            pts.append([0.0]); pvs.append([0.0])
    k = max((len(t) for t in pts), default=1)
    pad = lambda rows: np.asarray([r + [r[-1]] * (k - len(r)) for r in rows])  # noqa: E731
    n = len(kinds)
    return Waves(kind=jnp.asarray(np.asarray(kinds, dtype=np.int32).reshape(n)),
                 p=jnp.asarray(np.asarray(ps, dtype=np.float64).reshape(n, 8)),
                 pwl_t=jnp.asarray(pad(pts).reshape(n, k) if n else np.zeros((0, 1))),
                 pwl_v=jnp.asarray(pad(pvs).reshape(n, k) if n else np.zeros((0, 1))))


def _pulse(p, t):
    v1, v2, td, tr, tf, pw, per = (p[:, i] for i in range(7))
    x = t - td
    x = jnp.where((per > 0) & (x >= per), x - per * jnp.floor(x / jnp.where(per > 0, per, 1.0)),
                  x)
    rise = v1 + (v2 - v1) * x / tr
    fall = v2 + (v1 - v2) * (x - tr - pw) / tf
    return jnp.where((x <= 0) | (x >= tr + pw + tf), v1,
                     jnp.where(x < tr, rise, jnp.where(x <= tr + pw, v2, fall)))


def _sin(p, t):
    vo, va, freq, td, theta, phase = (p[:, i] for i in range(6))
    x = jnp.maximum(t - td, 0.0)
    return vo + va * jnp.exp(-x * theta) * jnp.sin(2 * jnp.pi * freq * x + phase)


def _exp(p, t):
    v1, v2, td1, tau1, td2, tau2 = (p[:, i] for i in range(6))
    up = (v2 - v1) * (1 - jnp.exp(-jnp.maximum(t - td1, 0.0) / tau1))
    down = (v1 - v2) * (1 - jnp.exp(-jnp.maximum(t - td2, 0.0) / tau2))
    return v1 + jnp.where(t > td1, up, 0.0) + jnp.where(t > td2, down, 0.0)


def _sffm(p, t):
    vo, va, fc, mdi, fs, pc, ps = (p[:, i] for i in range(7))
    return vo + va * jnp.sin(2 * jnp.pi * fc * t + pc + mdi * jnp.sin(2 * jnp.pi * fs * t + ps))


def _pwl(ts, vs, t):
    # the segment holding t (before the first corner: the first value; after the last: the
    # last value)
    k = ts.shape[1]
    j = jnp.clip(jnp.sum(ts <= t, axis=1), 1, k - 1)
    rows = jnp.arange(ts.shape[0])
    t0, t1 = ts[rows, j - 1], ts[rows, j]
    v0, v1 = vs[rows, j - 1], vs[rows, j]
    span = t1 - t0
    inner = v0 + (v1 - v0) * (t - t0) / jnp.where(span > 0, span, 1.0)
    return jnp.where(t <= ts[:, 0], vs[:, 0],
                     jnp.where(t >= ts[:, -1], vs[:, -1], jnp.where(span > 0, inner, v1)))


def wave_values(w: Waves, t) -> Float[Array, " n"]:
    """Every source's value at time ``t``."""
    if w.kind.shape[0] == 0:
        return jnp.zeros((0,), jnp.result_type(t, w.p))
    out = w.p[:, 0] * jnp.ones_like(jnp.asarray(t, w.p.dtype))
    out = jnp.where(w.kind == KINDS["pulse"], _pulse(w.p, t), out)
    out = jnp.where(w.kind == KINDS["sin"], _sin(w.p, t), out)
    out = jnp.where(w.kind == KINDS["exp"], _exp(w.p, t), out)
    out = jnp.where(w.kind == KINDS["sffm"], _sffm(w.p, t), out)
    return jnp.where(w.kind == KINDS["pwl"], _pwl(w.pwl_t, w.pwl_v, t), out)


def breakpoints(w: Waves, tstop: float, limit: int = 100000) -> np.ndarray:
    """The corners of every time function in ``(0, tstop]`` (PULSE edges in every period,
    PWL corners, EXP and SIN delays), sorted and unique; at most ``limit`` of them."""
    kind, p = np.asarray(w.kind), np.asarray(w.p)
    pts: list[float] = [tstop]
    for i, k in enumerate(kind):
        if k == KINDS["pulse"]:
            v1, v2, td, tr, tf, pw, per = p[i, :7]
            corners = np.array([0.0, tr, tr + pw, tr + pw + tf])
            if per > 0 and per < tstop:
                n = min(int(math.ceil((tstop - td) / per)) + 1, limit)
                starts = td + per * np.arange(max(n, 1))
            else:
                starts = np.array([td])
            pts.extend((starts[:, None] + corners[None, :]).ravel().tolist())
        elif k == KINDS["pwl"]:
            pts.extend(np.asarray(w.pwl_t)[i].tolist())
        elif k == KINDS["exp"]:
            pts.extend([p[i, 2], p[i, 4]])
        elif k == KINDS["sin"]:
            pts.append(p[i, 3])
    b = np.unique(np.asarray(pts, dtype=np.float64))
    b = b[(b > 0) & (b <= tstop)]
    return b[:limit]
