"""A measurement model between the circuit and the learning rule.

Hardware reads voltages through an ADC: every measured voltage (the drop across each
trainable device, the outputs) can be perturbed by additive Gaussian noise of standard
deviation ``noise_std`` volts and then quantised by an ``adc_bits``-bit ADC over
``[−adc_range, +adc_range]``: step ``2·adc_range / 2^bits``, codes
``−2^(bits−1) … 2^(bits−1) − 1`` (mid-tread, rounding to the nearest code, clipped at the
ends). Noise is drawn from a JAX key, so a
seeded run is reproducible. The ideal model (no bits, no noise) returns its input.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from ._phases import Measurement

__all__ = ["MeasurementModel", "ideal"]


class MeasurementModel(eqx.Module):
    """ADC resolution and additive noise of voltage measurements.

    - ``adc_bits``: bits of the ADC, or ``None`` for no quantisation.
    - ``adc_range``: full scale, volts (readings are clipped to ±adc_range).
    - ``noise_std``: Gaussian noise, volts (0: none).
    """

    adc_bits: int | None = eqx.field(static=True, default=None)
    adc_range: float = eqx.field(static=True, default=1.0)
    noise_std: float = eqx.field(static=True, default=0.0)

    @property
    def is_ideal(self) -> bool:
        return self.adc_bits is None and self.noise_std == 0.0

    @property
    def lsb(self) -> float | None:
        """The quantisation step (volts), ``None`` without an ADC."""
        if self.adc_bits is None:
            return None
        return 2.0 * self.adc_range / 2.0**self.adc_bits

    def read(self, v, key):
        """Measure voltages ``v`` (any shape) with noise from ``key``. A complex phasor
        (holomorphic nudges) is read as its real and imaginary parts, each through the ADC."""
        if jnp.iscomplexobj(v):
            kr, ki = jax.random.split(key)
            return self.read(jnp.real(v), kr) + 1j * self.read(jnp.imag(v), ki)
        if self.noise_std > 0:
            v = v + self.noise_std * jax.random.normal(key, v.shape, v.dtype)
        if self.adc_bits is not None:
            q = self.lsb
            half = 2.0 ** (self.adc_bits - 1)
            v = jnp.clip(jnp.round(v / q), -half, half - 1) * q
        return v

    def __call__(self, m: Measurement, key) -> Measurement:
        """Degrade a phase's measurements."""
        if self.is_ideal:
            return m
        k1, k2 = jax.random.split(key)
        return Measurement(dv=self.read(m.dv, k1), out=self.read(m.out, k2), ok=m.ok)


def ideal() -> MeasurementModel:
    return MeasurementModel()


def from_settings(settings) -> MeasurementModel:
    """From an experiment's ``[measurement]`` table."""
    return MeasurementModel(adc_bits=settings.adc_bits, adc_range=float(settings.adc_range),
                            noise_std=float(settings.noise_std))
