"""The user's walk-through notebook still runs top to bottom (small setting)."""

import pytest
from conftest import ROOT, execute_notebook


@pytest.mark.slow
def test_pooled_vs_per_n_notebook_runs():
    execute_notebook(ROOT / "notebooks" / "pooled_vs_per_n.ipynb", env={"SMALL": "1"}, timeout=600)
