"""The one figure saver: PNG at one resolution, written atomically, the figure closed after."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from bayes_scaling.io import atomic_path  # noqa: E402

DPI = 110


def save_figure(fig: plt.Figure, path: str | Path, *, crop: bool = True) -> Path:
    """Write ``fig`` as a PNG at :data:`DPI` atomically, close it, return the path. ``crop``: to the
    figure's contents (a tight bounding box: one more layout pass, a few tenths of a second); a
    figure laid out already (``tight_layout``, :func:`fixed_margins`) is saved as it is."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=DPI, bbox_inches="tight" if crop else None, format="png")
    plt.close(fig)
    return path


def fixed_margins(fig: plt.Figure, *, left: float, right: float, top: float, bottom: float, wspace: float,
                  hspace: float) -> None:
    """Lay out a grid of equal panels with margins and gaps in inches, fixed in advance: no layout
    pass measures the text (``tight_layout`` and a tight bounding box each draw the whole figure
    once more, most of a many-panel figure's time)."""
    width, height = fig.get_size_inches()
    rows, cols = fig.axes[0].get_subplotspec().get_gridspec().get_geometry()
    panel_w = (width - left - right - (cols - 1) * wspace) / cols
    panel_h = (height - top - bottom - (rows - 1) * hspace) / rows
    fig.subplots_adjust(left=left / width, right=1 - right / width, top=1 - top / height, bottom=bottom / height,
                        wspace=wspace / panel_w, hspace=hspace / panel_h)


def engineering(x: float, unit: str = "") -> str:
    """A count in engineering notation, as people write model sizes: 46006272 → '46.0M', 2.9e9 → '2.94B'."""
    for scale, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{suffix}{unit}"
    return f"{x:.3g}{unit}"
