"""Device models of the trainable elements: what a learning rule's step becomes on a chip.

A :class:`Device` holds the fixed per-device draws (variation factors, stuck devices) and
turns every write of a conductance into what a programmable resistor (memristor, ReRAM,
PCM) would hold: write noise, whole programming pulses with state-dependent, asymmetric
steps (soft bounds, as aihwkit's ``SoftBoundsDevice``), a finite number of levels. Its
conductances are read through the variation and, at evaluation, after drift
``g(t) = g·(t / 1 s)^(−ν)``. The experiment's ``[device]`` table (``docs/devices.md``).

Conductances here are in the optimizer's units (``g / g_unit``); the bounds are
``[g_min, g_max]`` in the same units.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["Device", "make_device", "MAX_PULSES"]

#: The most programming pulses one update may apply to one device (a larger step is cut).
MAX_PULSES = 256


class Device(eqx.Module):
    """A population of programmable conductances (see the module docstring).

    - ``lo``, ``hi``: the nominal range; ``levels``: the programmable values (or ``None``);
    - ``factor``: each device's variation factor; ``stuck``: 0 free, 1 stuck at ``lo``
      (off), 2 stuck at ``hi`` (on);
    - ``write_noise``, ``pulse``, ``pulse_up``, ``pulse_down``, ``nonlinearity``;
    - ``drift``: the factor ``(t / 1 s)^(−ν)`` applied at evaluation.
    """

    lo: float = eqx.field(static=True)
    hi: float = eqx.field(static=True)
    levels: jax.Array | None
    log_levels: bool = eqx.field(static=True)
    factor: jax.Array
    stuck: jax.Array
    write_noise: float = eqx.field(static=True)
    pulse: bool = eqx.field(static=True)
    pulse_up: float = eqx.field(static=True)
    pulse_down: float = eqx.field(static=True)
    nonlinearity: float = eqx.field(static=True)
    drift: float = eqx.field(static=True)

    def conductance(self, s):
        """The conductances the circuit sees for nominal states ``s`` (variation; stuck
        devices at their bound exactly)."""
        g = s * self.factor
        return jnp.where(self.stuck == 1, self.lo, jnp.where(self.stuck == 2, self.hi, g))

    def evaluated(self, s):
        """:meth:`conductance` after drift (what evaluation and ``trained.cir`` use)."""
        return self.conductance(s) * self.drift

    def _quantise(self, x, key):
        """Onto a level, rounding stochastically between the two neighbouring levels (the
        expected value is ``x``: steps smaller than a level still move the mean)."""
        x = jnp.clip(x, self.lo, self.hi)
        if self.levels is None:
            return x
        lv = self.levels
        if self.log_levels:
            t = (jnp.log(x) - jnp.log(lv[0])) / (jnp.log(lv[-1]) - jnp.log(lv[0]))
        else:
            t = (x - lv[0]) / (lv[-1] - lv[0])
        pos = t * (lv.shape[0] - 1)
        k = jnp.floor(pos)
        k = k + (jax.random.uniform(key, x.shape, x.dtype) < pos - k)
        return lv[jnp.clip(k, 0, lv.shape[0] - 1).astype(jnp.int32)]

    def _step(self, s, up):
        """One pulse's step at state ``s`` (soft bounds: shrinking towards the far bound)."""
        span = self.hi - self.lo
        room = jnp.where(up, self.hi - s, s - self.lo) / span
        size = jnp.where(up, self.pulse_up, self.pulse_down)
        return size * span * jnp.clip(room, 0.0, 1.0) ** self.nonlinearity

    def _pulses(self, s, target, key):
        """Whole pulses towards ``target``: their count (the step converted at the present
        state and rounded stochastically, so that a fraction of a pulse is a probability;
        at most :data:`MAX_PULSES`) applied one by one."""
        up = target > s
        first = jnp.maximum(self._step(s, up), 1e-300)
        x = jnp.abs(target - s) / first
        n = jnp.floor(x)
        n = n + (jax.random.uniform(key, x.shape, x.dtype) < x - n)
        n = jnp.minimum(n, MAX_PULSES)

        def one(i, x):
            return jnp.where(i < n, x + jnp.where(up, 1.0, -1.0) * self._step(x, up), x)

        return jax.lax.fori_loop(0, MAX_PULSES, one, s), n

    def write(self, s, target, key):
        """Write ``target`` (the optimizer's new values) over the states ``s``.

        **Returns:** ``(states, stats)``: what the devices hold, and per-update statistics
        ``(mean pulses per device, fraction of devices that changed)``.
        """
        k_pulse, k_noise, k_level = jax.random.split(key, 3)
        if self.pulse:
            new, n = self._pulses(s, target, k_pulse)
            pulses = jnp.mean(n)
        else:
            new, pulses = target, jnp.asarray(0.0, s.dtype)
        if self.write_noise:
            noise = jax.random.normal(k_noise, new.shape, new.dtype)
            # a device that is not pulsed is not rewritten (no cycle-to-cycle noise)
            moved = (n > 0) if self.pulse else (target != s)
            new = jnp.where(moved, new * (1.0 + self.write_noise * noise), new)
        new = jnp.where(new == s, s, self._quantise(new, k_level))
        new = jnp.where(self.stuck == 0, new, s)
        changed = jnp.mean((new != s).astype(s.dtype))
        return new, jnp.stack([pulses.astype(s.dtype), changed])

    def program(self, s, key):
        """The first programming of the states ``s`` (a write from scratch: noise, levels,
        stuck devices at their bounds)."""
        k_noise, k_level = jax.random.split(key)
        new = s
        if self.write_noise:
            new = new * (1.0 + self.write_noise * jax.random.normal(k_noise, new.shape, new.dtype))
        new = self._quantise(new, k_level)
        return jnp.where(self.stuck == 1, self.lo, jnp.where(self.stuck == 2, self.hi, new))


def make_device(settings, n: int, lo: float, hi: float, seed: int, dtype=np.float64) -> Device:
    """The :class:`Device` of ``n`` trainable elements for a ``[device]`` table, nominal
    range ``[lo, hi]`` (optimizer units). Draws (variation, stuck devices) come from
    ``seed``: the same seed, the same devices."""
    rng = np.random.default_rng([seed, 7])
    factor = np.exp(settings.variation * rng.standard_normal(n)) if settings.variation else \
        np.ones(n)
    stuck = np.zeros(n, dtype=np.int8)
    order = rng.permutation(n)
    n_off = int(round(settings.stuck_off * n))
    n_on = int(round(settings.stuck_on * n))
    stuck[order[:n_off]] = 1
    stuck[order[n_off : n_off + n_on]] = 2
    levels = None
    if settings.levels is not None:
        if settings.spacing == "log":
            levels = np.geomspace(lo, hi, settings.levels)
        else:
            levels = np.linspace(lo, hi, settings.levels)
        levels = jnp.asarray(levels.astype(dtype))
    drift = (settings.drift_t / 1.0) ** (-settings.drift_nu) if settings.drift_nu else 1.0
    return Device(lo=float(lo), hi=float(hi), levels=levels,
                  log_levels=settings.spacing == "log", factor=jnp.asarray(factor.astype(dtype)),
                  stuck=jnp.asarray(stuck), write_noise=float(settings.write_noise),
                  pulse=settings.update == "pulse", pulse_up=float(settings.pulse_up),
                  pulse_down=float(settings.pulse_down),
                  nonlinearity=float(settings.nonlinearity), drift=float(drift))
