"""The library's front door: the objects a notebook or script needs, from one import.

    from bayes_scaling.api import fit_optimum, load_runs, best_runs
    fits = fit_optimum("blog-partII", model="hierarchical")      # {"lr": OptimumFit, "batch_size": OptimumFit}
    fits["lr"].predict([4e9], [1e11])                             # median, mean, lo, hi
    fits["lr"].coefficients()                                     # exponents with intervals

Nothing inside the package imports this module: it sits above every layer.
"""

from bayes_scaling.catalog import kinds as model_kinds
from bayes_scaling.inference.config import SamplerConfig
from bayes_scaling.inputs.datasets import load_runs
from bayes_scaling.inputs.runtable import best_runs
from bayes_scaling.laws.base import LawFit, fit_law
from bayes_scaling.laws.base import registry as loss_laws
from bayes_scaling.optimum.fit import Fitter, OptimumFit, fit_optimum
from bayes_scaling.optimum.spec import ModelOptions, OptimumSpec
from bayes_scaling.optimum.spec import registry as optimum_models
from bayes_scaling.surface.fit import SurfaceFit, fit_surface

__all__ = ["Fitter", "LawFit", "ModelOptions", "OptimumFit", "OptimumSpec", "SamplerConfig", "SurfaceFit",
           "best_runs", "fit_law", "fit_optimum", "fit_surface", "load_runs", "loss_laws", "model_kinds",
           "optimum_models"]
