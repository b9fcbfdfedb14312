"""``bench/rules_compare.py --quick`` writes a page with a row per learning rule."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "bench" / "rules_compare.py"

LABELS = ["ep-positive", "ep-negative", "ep-centered", "ep-forward-2", "ep-forward-3",
          "ep-forward-4", "ep-forward-5", "coupled", "contrastive", "agnostic-centered",
          "exact"]


def _rows(section: str) -> dict[str, list[str]]:
    rows = {}
    for line in section.splitlines():
        if line.startswith("| ") and not line.startswith("| rule "):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            rows[cells[0]] = cells[1:]
    return rows


def test_rules_compare_quick(tmp_path):
    out = tmp_path / "x.md"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = out.read_text(encoding="utf-8")
    assert "python bench/rules_compare.py --quick" in text
    assert "CPUs" in text
    grad, train = text.split("## Training", 1)
    assert "## Gradient accuracy" in grad
    g_rows, t_rows = _rows(grad), _rows(train)
    for label in LABELS:
        assert label in g_rows, f"no gradient row for {label}"
        assert label in t_rows, f"no training row for {label}"
    # the exact rule against itself, and centered EP at beta = 1e-6: cosine 1 (to 1e-9)
    for label in ("exact", "ep-centered"):
        cos = g_rows[label][2]
        assert cos == "1" or (cos.startswith("1 − ") and float(cos[4:]) < 1e-9), (label, cos)
    # every training row reports an accuracy or a failure, never an empty cell
    for label in LABELS:
        assert t_rows[label][0], label
