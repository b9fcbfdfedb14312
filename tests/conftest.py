"""Shared pytest setup: tests/ on sys.path (for ``ngspice_tools``), float64 JAX, slow marker."""

from __future__ import annotations

import sys
from pathlib import Path

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


try:
    import pytest

    @pytest.fixture(autouse=True, scope="module")
    def _release_compiled_programs():
        """Drop JAX's compiled programs after each test module: the suite compiles thousands,
        and their code mappings would otherwise pile up in one process past the kernel's
        per-process mapping limit (vm.max_map_count)."""
        yield
        try:
            import gc

            import jax

            jax.clear_caches()
            gc.collect()
        except ImportError:
            pass
except ImportError:  # pragma: no cover
    pass
