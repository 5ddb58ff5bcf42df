"""The training walk-through notebook runs top to bottom: plan -> run -> collect -> bowls -> fit (small setting)."""

import pytest
from conftest import ROOT, execute_notebook

pytest.importorskip("torch")


@pytest.mark.slow
def test_train_sweep_notebook_runs():
    execute_notebook(ROOT / "notebooks" / "train_sweep.ipynb", env={"SMALL": "1"}, timeout=600)
