"""Figures: one module per subject, every one saved through ``save.save_figure`` (one dpi, atomic PNG)."""
