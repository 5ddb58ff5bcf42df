"""``quantized`` — the best grid value only says that the latent optimum lies in its grid cell.

    z_i = a + b·x_N,i + c·x_D,i + σ·ε_i  (latent log q*_i),   observed: z_i + δ_i ∈ (lo_i, hi_i)
    p_i = Φ((hi_i − μ_i)/s) − Φ((lo_i − μ_i)/s),   s = √(σ² + σ_sel²)

(lo, hi) is half a grid step either side in log space, open at the grid's edges; δ_i ~
Normal(0, σ_sel) is the jitter of picking the best run on a noisy loss (a table constant: see
``inputs.runtable.SELECTION_JITTER``).
"""

from __future__ import annotations

from bayes_scaling.inference.config import FLAT_LAW_TARGET_ACCEPT
from bayes_scaling.optimum.spec import ModelOptions, OptimumSpec, register


def censored_observation(mu, sigma, d) -> None:
    """The observed node ``q_obs``: the cell (lo, hi) of a latent Normal(μ, √(σ² + σ_sel²))."""
    import pymc as pm

    from bayes_scaling.optimum.likelihood import interval_logp_pt

    sigma_obs = pm.math.sqrt(sigma**2 + d["sigma_sel"][0] ** 2)
    pm.CustomDist("q_obs", mu, sigma_obs, d["lo"], d["hi"], logp=interval_logp_pt, random=_latent_draw,
                  observed=d["y_obs"], dims="cell")


def _latent_draw(mu, sigma, lo, hi, rng=None, size=None):
    """Posterior-predictive draw of ``q_obs``: the latent best value z + δ (before the grid snaps it)."""
    return rng.normal(mu, sigma, size=size)


@register
class Quantized(OptimumSpec):
    name = "quantized"
    summary = ("the best value only says the latent optimum lies in its grid cell (half a grid step either "
               "side in log space; edge cells open-ended): interval-censored likelihood Φ(hi) − Φ(lo)")
    formula = "z_i = a + b·x_N + c·x_D + σ·ε_i latent; P(cell i) = Φ((hi_i − μ_i)/s) − Φ((lo_i − μ_i)/s), s = √(σ² + σ_sel²)"
    style = {"color": "tab:blue"}
    default = True
    main_priority = 20
    target_accept = FLAT_LAW_TARGET_ACCEPT

    def build(self, data, centers, options=ModelOptions()):
        import pymc as pm

        with pm.Model(coords=self.coords(data)) as model:
            d, a, b, c, sigma = self.law_priors(data, centers, options)
            censored_observation(a + b * d["x_N"] + c * d["x_D"], sigma, d)
        return model
