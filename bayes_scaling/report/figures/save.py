"""The one figure saver: PNG at one resolution, written atomically, the figure closed after."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from bayes_scaling.io import atomic_path  # noqa: E402

DPI = 110


def save_figure(fig: plt.Figure, path: str | Path) -> Path:
    """Write ``fig`` as a PNG at :data:`DPI` (tight bounding box) atomically, close it, return the path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=DPI, bbox_inches="tight", format="png")
    plt.close(fig)
    return path


def engineering(x: float, unit: str = "") -> str:
    """A count in engineering notation, as people write model sizes: 46006272 → '46.0M', 2.9e9 → '2.94B'."""
    for scale, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{suffix}{unit}"
    return f"{x:.3g}{unit}"
