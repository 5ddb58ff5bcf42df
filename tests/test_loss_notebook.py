"""The loss-laws notebook runs top to bottom (SMALL=1: few draws)."""

from __future__ import annotations

from conftest import ROOT, execute_notebook


def test_loss_laws_notebook_executes():
    execute_notebook(ROOT / "notebooks" / "loss_laws.ipynb", env={"SMALL": "1"})
