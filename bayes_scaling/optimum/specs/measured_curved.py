"""``measured-curved`` — the ``measured`` law, bent: curvature in log N and in log D.

    log m_j ~ Normal(a + b·x_N + c·x_D + e·x_N² + f·x_D², √(σ² + s_j²)),     e, f ~ Normal(0, 0.25)

The ``curved`` law (``specs.curved.CurvedLaw``) through per-cell estimates with their standard
errors, as ``measured`` is the straight one: b and c are the slopes at the table's centre, and an
extrapolation to a new N or D carries the uncertainty of the bend, growing with the square of the
distance. The gp kind fits it with ``--law-form curved``.
"""

from __future__ import annotations

from bayes_scaling.optimum.spec import register
from bayes_scaling.optimum.specs.curved import CurvedLaw
from bayes_scaling.optimum.specs.measured import Measured


@register
class MeasuredCurved(CurvedLaw, Measured):
    name = "measured-curved"
    summary = "the curved law (+ e·x_N² + f·x_D²) through per-cell estimates of the optimum with their standard errors"
    formula = "log m_j ~ Normal(a + b·x_N + c·x_D + e·x_N² + f·x_D², √(σ² + s_j²))"
    form = "curved"
