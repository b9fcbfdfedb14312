"""An aggregation multigrid preconditioner for the circuit's conductance matrix.

Jacobi-preconditioned CG needs thousands of iterations on large disordered or lattice
networks (smooth, long-range error modes). A V-cycle over a hierarchy of node aggregates
removes them: the hierarchy is built once from the topology (plain numpy, at compile time);
at every Newton step the coarse operators follow from the branch conductances by segment sums
(the Galerkin product of piecewise-constant interpolation is again a conductance network: the
branches between different aggregates). Jacobi smoothing, and a fixed number of Jacobi
sweeps on the coarsest level. The V-cycle is symmetric, so it is a valid preconditioner for CG.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .._aggregation import Hierarchy

#: Jacobi sweeps on the coarsest level
COARSE_SWEEPS = 8


def _seg(x, i, n):
    return jax.ops.segment_sum(x, i, num_segments=n)


def make_preconditioner(h: Hierarchy, n: int, a, b, g, extra, *, omega: float = 0.8,
                        sweeps: int = 1):
    """The V-cycle for the network ``(a, b, g)`` plus ``diag(extra)``.

    ``a``, ``b`` index the ``n`` unknowns (``n`` = a fixed node), as given to
    :func:`build_hierarchy`; ``g`` are the branch conductances at this Newton step.

    **Returns:** ``(data, apply)``: the per-step arrays (a pytree) and a pure function
    ``apply(data, r) -> M⁻¹ r``. Keeping the arrays explicit lets a Krylov loop carry them
    as loop state, so the compiler cannot rebuild them inside the loop.
    """
    levels = []
    sizes = []
    for lev in h.levels:
        gm = jnp.where(a == b, 0.0, g)
        diag = (_seg(gm, a, n + 1) + _seg(gm, b, n + 1))[:n] + extra
        levels.append((a, b, gm, extra, 1.0 / jnp.where(diag > 0, diag, 1.0), lev.agg))
        sizes.append((n, lev.n_next))
        g = _seg(gm, lev.edge, lev.m_next + 1)[: lev.m_next]
        extra = _seg(extra, lev.agg, lev.n_next)
        a, b, n = lev.next_a, lev.next_b, lev.n_next
    # coarsest level: a few Jacobi sweeps (a fixed symmetric polynomial, so the whole cycle
    # stays a symmetric positive definite operator; dense factorizations are slow here)
    gm = jnp.where(a == b, 0.0, g)
    diag = (_seg(gm, a, n + 1) + _seg(gm, b, n + 1))[:n] + extra
    coarse = (a, b, gm, extra, 1.0 / jnp.where(diag > 0, diag, 1.0))
    data = (tuple(levels), coarse)
    n_coarse = n

    def apply(data, r):
        levels, coarse = data

        def matvec(a, b, gm, extra, nk):
            def mv(x):
                xe = jnp.concatenate([x, jnp.zeros((1,), x.dtype)])
                i = gm * (xe[a] - xe[b])
                return (_seg(i, a, nk + 1) - _seg(i, b, nk + 1))[:nk] + extra * x
            return mv

        def cycle(k, r):
            if k == len(levels):
                a, b, gm, extra, inv_d = coarse
                mv = matvec(a, b, gm, extra, n_coarse)
                return jax.lax.fori_loop(
                    0, COARSE_SWEEPS - 1, lambda _, x: x + omega * inv_d * (r - mv(x)),
                    omega * inv_d * r)
            a, b, gm, extra, inv_d, agg = levels[k]
            nk, n_next = sizes[k]
            mv = matvec(a, b, gm, extra, nk)

            x = omega * inv_d * r
            for _ in range(sweeps - 1):
                x = x + omega * inv_d * (r - mv(x))
            x = x + cycle(k + 1, _seg(r - mv(x), agg, n_next))[agg]
            for _ in range(sweeps):
                x = x + omega * inv_d * (r - mv(x))
            return x

        return cycle(0, r)

    return data, apply
