"""``measured`` — the law through per-cell *estimates* of the optimum, each with its standard error.

    log m_j ~ Normal(a + b·x_N,j + c·x_D,j, √(σ² + s_j²))

m_j is a cell's optimum as a first stage estimated it from the cell's own runs (the ``gp`` kind:
the mean of a Gaussian process's argmin draws) and s_j that estimate's standard error, so a cell
whose sweep pins its optimum down weighs more than one whose valley is flat. σ is the scatter of
the cells' *smooth* optima about the law, with the measurement error taken out; the predictive
at a new cell is law + σ. Not offered as a best-run kind (a best-run table has no s_j): the
run-level kind that makes the estimates fits it (``surface.gp``). ``form`` names the law's shape
for ``--law-form``: this one is straight; ``measured-curved`` bends it.
"""

from __future__ import annotations

import numpy as np

from bayes_scaling.math.draws import stacked
from bayes_scaling.optimum.spec import ModelOptions, OptimumSpec, register


@register
class Measured(OptimumSpec):
    name = "measured"
    summary = "the law through per-cell estimates of the optimum with their standard errors"
    formula = "log m_j ~ Normal(a + b·x_N + c·x_D, √(σ² + s_j²))"
    style = {"color": "tab:olive"}
    offered = False
    interval = "posterior predictive of the smooth optimum: law + scatter σ (measurement error removed)"
    form = "straight"

    def law_mean(self, d: dict, a, b, c, options: ModelOptions):
        """The law's mean at the table's cells as a PyMC expression."""
        return a + b * d["x_N"] + c * d["x_D"]

    def build(self, data, centers, options=ModelOptions()):
        import pymc as pm

        with pm.Model(coords=self.coords(data)) as model:
            d, a, b, c, sigma = self.law_priors(data, centers, options)
            pm.Normal("q_obs", mu=self.law_mean(d, a, b, c, options), sigma=pm.math.sqrt(sigma**2 + d["se"] ** 2),
                      observed=d["y_obs"], dims="cell")
        return model

    def _scale(self, posterior, data) -> np.ndarray:
        se = data.se if data.se is not None else np.zeros(len(data.y))
        return np.sqrt(stacked(posterior, "sigma")[:, None] ** 2 + se[None, :] ** 2)

    def log_likelihood(self, posterior, centers, n_levels, data):
        """The density of each estimate, log Normal(m_j | μ_j, √(σ² + s_j²)) (what NUTS fitted)."""
        from scipy.stats import norm

        mu = self.predictive(posterior, centers, n_levels, data.log_N, data.log_D, rng=np.random.default_rng(0),
                             noise=False)
        return norm.logpdf(data.y[None, :], mu, self._scale(posterior, data))

    def cell_logp(self, posterior, centers, n_levels, data):
        """An estimate has no grid cell: the outcome LOO would compare is its density."""
        return self.log_likelihood(posterior, centers, n_levels, data)


def law_forms() -> dict[str, str]:
    """The law forms a measured law comes in (``--law-form``), each the name of its spec."""
    from bayes_scaling.optimum.spec import registry

    return {spec.form: name for name, spec in registry(every=True).items() if isinstance(spec, Measured)}
