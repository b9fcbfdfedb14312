"""Shared pytest setup: tests/ on sys.path (for ``ngspice_tools``), float64 JAX, slow marker."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parent
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))
REPO_ROOT = TESTS_DIR.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

try:
    import jax

    jax.config.update("jax_enable_x64", True)
except ImportError:  # JAX not installed: the parser/builder tests still run
    pass


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "slow: large decks (> 200 nodes); deselect with -m 'not slow'"
    )


#: above this many memory mappings, compiled programs are dropped between test modules
MAX_MAPPINGS = 20000


def _mappings() -> int:
    try:
        with open("/proc/self/maps", "rb") as f:
            return sum(1 for _ in f)
    except OSError:  # not Linux: nothing to watch
        return 0


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drop JAX's compiled programs after a test module once the process holds many: the
    suite compiles thousands, and their code mappings would otherwise pile up in one
    process past the kernel's per-process limit (vm.max_map_count, 65530 by default),
    where XLA's compiler crashes."""
    yield
    if _mappings() > MAX_MAPPINGS:
        import gc

        import jax

        jax.clear_caches()
        gc.collect()
