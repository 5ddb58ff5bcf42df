"""``curved`` — quantized, with curvature in log N and in log D.

    z_i = a + b·x_N,i + c·x_D,i + e·x_N,i² + f·x_D,i² + σ·ε_i,     e, f ~ Normal(0, 0.25)

observed through its grid cell as in ``quantized``. Several studies find log η* bending in log N
(e.g. "On the Nonlinearity of LR Scaling", 2026); here b and c are the slopes at the table's centre,
and an extrapolation carries the uncertainty of the bend, growing with the square of the distance.
:class:`CurvedLaw` is the bent law itself, shared by every kind that fits it (``measured-curved``).
"""

from __future__ import annotations

from bayes_scaling.math.draws import stacked
from bayes_scaling.optimum.priors import Normal
from bayes_scaling.optimum.spec import ModelOptions, OptimumSpec, register
from bayes_scaling.optimum.specs.quantized import censored_observation


class CurvedLaw:
    """The law log q* = a + b·x_N + c·x_D + e·x_N² + f·x_D²: its curvature priors, its PyMC mean and
    its NumPy arithmetic, mixed into an :class:`OptimumSpec` before it (what it observes is the spec's)."""

    trace_vars = ("a", "b", "c", "e", "f", "sigma")

    def priors(self):
        return {**super().priors(), "e": Normal(0.0, 0.25), "f": Normal(0.0, 0.25)}

    def law_mean(self, d: dict, a, b, c, options: ModelOptions):
        """The law's mean at the table's cells as a PyMC expression (registers e and f)."""
        e, f = self.rv("e", options), self.rv("f", options)
        return a + b * d["x_N"] + c * d["x_D"] + e * d["x_N"] ** 2 + f * d["x_D"] ** 2

    def mean(self, posterior, centers, n_levels, targets, rng):
        a, b, c, e, f = (stacked(posterior, k)[:, None] for k in ("a", "b", "c", "e", "f"))
        return a + b * targets.x_N + c * targets.x_D + e * targets.x_N**2 + f * targets.x_D**2

    def coefficient_draws(self, posterior, centers, n_levels):
        """The law in raw logs, log q* = intercept + b_lin·log N + c_lin·log D + e_NN·(log N)² + f_DD·(log D)²,
        and b_N, c_D: its slopes at the table's centre (m_N, m_D), b_lin + 2·e·m_N and c_lin + 2·f·m_D."""
        draws = super().coefficient_draws(posterior, centers, n_levels)
        e, f = stacked(posterior, "e"), stacked(posterior, "f")
        a, b, c = (stacked(posterior, k) for k in ("a", "b", "c"))
        draws["intercept"] = a - b * centers.log_N - c * centers.log_D + e * centers.log_N**2 + f * centers.log_D**2
        return {**draws, "b_lin": b - 2 * e * centers.log_N, "c_lin": c - 2 * f * centers.log_D, "e_NN": e, "f_DD": f}


@register
class Curved(CurvedLaw, OptimumSpec):
    name = "curved"
    summary = ("quantized + curvature in log N and log D, e·x_N² + f·x_D²: a law that may bend; "
               "its extrapolation carries the uncertainty of the bend")
    formula = "z_i = a + b·x_N + c·x_D + e·x_N² + f·x_D² + σ·ε_i latent; observed through its grid cell"
    style = {"color": "tab:brown"}
    main_priority = 21

    def build(self, data, centers, options=ModelOptions()):
        import pymc as pm

        with pm.Model(coords=self.coords(data)) as model:
            d, a, b, c, sigma = self.law_priors(data, centers, options)
            censored_observation(self.law_mean(d, a, b, c, options), sigma, d)
        return model
