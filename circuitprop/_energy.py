"""The co-content energy of a reciprocal circuit and its derivatives on the reduced unknowns.

``E(u) = Σ_R ½ g ΔV² + Σ_D Φ_D(ΔV) − Σ_I I·ΔV_I`` with voltage sources and inductors as fixed
offsets (see :mod:`circuitprop._circuit`). Its gradient is the KCL residual (net current
leaving each free node); its Hessian is the conductance matrix, applied matrix-free.

An optional *nudge* adds ``Σ_k ½ β_k (V(p_k) − V(m_k) − y_k)²``: a conductance β from each
output (or differential pair) to a source at its target. Learning uses it; plain solves
pass ``None``.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from ._circuit import Circuit, Values
from ._devices import diode
from ._losses import LOSSES


class Nudge(eqx.Module):
    """Output costs ``½ β_k (V(p_k) − V(m_k) − y_k)²`` (node indices, ground = n_nodes)."""

    p: Int[Array, " outputs"]
    m: Int[Array, " outputs"]
    beta: Float[Array, " outputs"]
    target: Float[Array, " outputs"]


class OutputCost(eqx.Module):
    """``β C(o, y)`` on the outputs ``o_k = V(p_k) − V(m_k)`` for a loss of
    :data:`circuitprop._losses.LOSSES` (any loss; ``mse`` can also be a :class:`Nudge`).
    ``beta`` may be complex (holomorphic nudges)."""

    loss: str = eqx.field(static=True)
    p: Int[Array, " outputs"]
    m: Int[Array, " outputs"]
    beta: Array
    target: Float[Array, " outputs"]

    def _outputs(self, v):
        return v[self.p] - v[self.m]

    def _inject(self, c: Circuit, w):
        n = c.n_nodes + 1
        return to_u(c, _seg(w, self.p, n) - _seg(w, self.m, n))

    def value(self, c: Circuit, values: Values, u):
        return self.beta * LOSSES[self.loss].value(
            self._outputs(node_voltages(c, values, u)), self.target)

    def gradient_u(self, c: Circuit, values: Values, u):
        """``∂(βC)/∂u``."""
        o = self._outputs(node_voltages(c, values, u))
        return self._inject(c, self.beta * LOSSES[self.loss].grad(o, self.target))

    def hvp_u(self, c: Circuit, values: Values, u, x):
        """``∂²(βC)/∂u² · x``."""
        o = self._outputs(node_voltages(c, values, u))
        xe = jnp.concatenate([x, jnp.zeros((1,), x.dtype)])[c.node_var]
        do = self._outputs(xe)
        return self._inject(c, self.beta * LOSSES[self.loss].hvp(o, self.target, do))


def _seg(data, idx, n):
    return jax.ops.segment_sum(data, idx, num_segments=n)


def node_voltages(c: Circuit, values: Values, u) -> Float[Array, " nodes1"]:
    """Every node voltage (ground slot last, 0) from the unknowns ``u``."""
    u_ext = jnp.concatenate([u, jnp.zeros((1,), u.dtype)])
    v = u_ext[c.node_var]
    if c.off_node.shape[0]:
        v = v + _seg(c.off_sign * values.vsrc[c.off_branch], c.off_node, c.n_nodes + 1)
    return v.at[c.n_nodes].set(0.0)


class Companion(eqx.Module):
    """Every diode replaced by its tangent at ``vd0``: ``i = i0 + g0·(vd − vd0)`` (SPICE's
    linear companion model). Evaluate the device law once per Newton step and reuse it."""

    vd0: Float[Array, " diodes"]
    i0: Float[Array, " diodes"]
    g0: Float[Array, " diodes"]


def companion(c: Circuit, vd0) -> Companion:
    """The companion models of all diodes at junction voltages ``vd0``."""
    d = c.diodes
    i0, g0, _ = diode(vd0, d.is_, d.vte, d.tbv, d.nbvt, d.has_bv, c.gmin)
    return Companion(vd0=vd0, i0=i0, g0=g0)


def _diode_eval(c: Circuit, v, comp: Companion | None = None):
    """``(vd, i, g, Φ)`` of every diode; with a :class:`Companion` the law is replaced by
    its tangent (Φ is then ``None``)."""
    d = c.diodes
    vd = v[d.a] - v[d.b]
    if comp is None:
        return vd, *diode(vd, d.is_, d.vte, d.tbv, d.nbvt, d.has_bv, c.gmin)
    return vd, comp.i0 + comp.g0 * (vd - comp.vd0), comp.g0, None


def energy_v(c: Circuit, values: Values, v, nudge: Nudge | None = None):
    """The energy as a function of the full node-voltage vector."""
    vr = v[c.r_a] - v[c.r_b]
    e = 0.5 * jnp.sum(values.g * vr * vr)
    if c.diodes.a.shape[0]:
        e = e + jnp.sum(_diode_eval(c, v)[3])
    if c.i_a.shape[0]:
        e = e - jnp.sum(values.isrc * (v[c.i_b] - v[c.i_a]))
    if nudge is not None:
        dv = v[nudge.p] - v[nudge.m] - nudge.target
        e = e + 0.5 * jnp.sum(nudge.beta * dv * dv)
    return e


def energy(c: Circuit, values: Values, u, nudge: Nudge | None = None):
    """The co-content energy (plus the nudge, if any) at unknowns ``u``."""
    return energy_v(c, values, node_voltages(c, values, u), nudge)


def dissipated_power(c: Circuit, values: Values, v):
    """Power dissipated in the resistors (diode series resistances included) and diode
    junctions at node voltages ``v``, watts: ``Σ g ΔV² + Σ i_D v_D``. At an equilibrium it
    equals the power the sources deliver."""
    vr = v[c.r_a] - v[c.r_b]
    p = jnp.sum(values.g * vr * vr)
    if c.diodes.a.shape[0]:
        vd, i = _diode_eval(c, v)[:2]
        p = p + jnp.sum(i * vd)
    return p


def node_currents(c: Circuit, values: Values, v, nudge: Nudge | None = None, comp: Companion | None = None):
    """Net current leaving every node through devices (length n_nodes + 1); ``comp``
    linearises the diodes (see :class:`Companion`)."""
    n = c.n_nodes + 1
    ir = values.g * (v[c.r_a] - v[c.r_b])
    j = _seg(ir, c.r_a, n) - _seg(ir, c.r_b, n)
    if c.diodes.a.shape[0]:
        idd = _diode_eval(c, v, comp)[1]
        j = j + _seg(idd, c.diodes.a, n) - _seg(idd, c.diodes.b, n)
    if c.i_a.shape[0]:
        j = j + _seg(values.isrc, c.i_a, n) - _seg(values.isrc, c.i_b, n)
    if nudge is not None:
        inu = nudge.beta * (v[nudge.p] - v[nudge.m] - nudge.target)
        j = j + _seg(inu, nudge.p, n) - _seg(inu, nudge.m, n)
    return j


def to_u(c: Circuit, j):
    """Gather node quantities onto the unknowns (the transpose of ``node_voltages``)."""
    return _seg(j[: c.n_nodes], c.node_var[: c.n_nodes], c.n_u + 1)[: c.n_u]


def gradient(c: Circuit, values: Values, u, nudge: Nudge | None = None, comp: Companion | None = None):
    """∂E/∂u: the KCL residual on the unknowns (diodes linearised by ``comp`` if given)."""
    return to_u(c, node_currents(c, values, node_voltages(c, values, u), nudge, comp))


def branch_conductances(c: Circuit, values: Values, v, nudge: Nudge | None = None,
                        comp: Companion | None = None):
    """``(a, b, G)``: every two-terminal small-signal conductance at state ``v``."""
    a, b, g = [c.r_a], [c.r_b], [values.g]
    if c.diodes.a.shape[0]:
        a.append(c.diodes.a); b.append(c.diodes.b); g.append(_diode_eval(c, v, comp)[2])
    if nudge is not None:
        a.append(nudge.p); b.append(nudge.m); g.append(nudge.beta)
    return jnp.concatenate(a), jnp.concatenate(b), jnp.concatenate(g)


def hessian_parts(c: Circuit, values: Values, v, nudge: Nudge | None = None, comp: Companion | None = None):
    """The Hessian of E on ``u`` as ``(ua, ub, G)`` (branch list) and its diagonal."""
    a, b, g = branch_conductances(c, values, v, nudge, comp)
    ua, ub = c.node_var[a], c.node_var[b]
    g = jnp.where(ua == ub, 0.0, g)
    diag = (_seg(g, ua, c.n_u + 1) + _seg(g, ub, c.n_u + 1))[: c.n_u]
    return ua, ub, g, diag


def hvp(c: Circuit, ua, ub, g, x):
    """Hessian-vector product from the branch list of :func:`hessian_parts`."""
    x_ext = jnp.concatenate([x, jnp.zeros((1,), x.dtype)])
    i = g * (x_ext[ua] - x_ext[ub])
    return (_seg(i, ua, c.n_u + 1) - _seg(i, ub, c.n_u + 1))[: c.n_u]


def capacitance_parts(c: Circuit, node_cap: float):
    """The capacitance matrix on ``u`` as a branch list plus a diagonal: every node carries
    ``node_cap`` to ground, deck capacitors add their stamps."""
    ones = jnp.full((c.n_nodes,), node_cap)
    diag_nodes = _seg(ones, c.node_var[: c.n_nodes], c.n_u + 1)[: c.n_u]
    ua, ub = c.node_var[c.c_a], c.node_var[c.c_b]
    cv = jnp.where(ua == ub, 0.0, c.c_val)
    diag = diag_nodes + (_seg(cv, ua, c.n_u + 1) + _seg(cv, ub, c.n_u + 1))[: c.n_u]
    return ua, ub, cv, diag_nodes, diag


def source_currents(c: Circuit, values: Values, v, nudge: Nudge | None = None):
    """Current through every V source and inductor (ngspice sign: into n+, through, out n−)."""
    j = node_currents(c, values, v, nudge)
    if not c.cur_branch.shape[0]:
        return jnp.zeros((c.n_vb,), v.dtype)
    return _seg(c.cur_sign * j[c.cur_node], c.cur_branch, c.n_vb)


def junction_voltages(c: Circuit, v):
    """Voltage across every diode junction."""
    return v[c.diodes.a] - v[c.diodes.b]
