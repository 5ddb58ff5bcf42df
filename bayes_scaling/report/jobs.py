"""Independent output jobs (figures, posterior files) run at once in forked processes.

A fit's outputs are many small independent writes — each figure is seconds of matplotlib text
layout, each netCDF posterior a fraction of a second of HDF5 bookkeeping — so ``fit`` hands them
to ``--workers`` forked processes. The jobs are inherited by the fork, never pickled: only their
results (paths, None) travel back.
"""

from __future__ import annotations

#: The jobs of the current :func:`run_jobs` call, read by its forked workers (never pickled).
_JOBS: list = []


def _run_job(k: int):
    fn, args, kwargs = _JOBS[k]
    return fn(*args, **kwargs)


def run_jobs(jobs: list, workers: int) -> list:
    """Run jobs (function, args, kwargs) here or in ``workers`` forked processes; their results in the
    jobs' order. A pool that breaks (a worker killed, an error that cannot travel back) is not the
    jobs' fault: they are then run here, where any error of their own is raised as is."""
    workers = min(workers, len(jobs))
    if workers > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor
        from concurrent.futures.process import BrokenProcessPool

        _JOBS[:] = jobs        # the forked workers inherit them: the fits are not copied through a pipe
        try:
            with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork")) as pool:
                return list(pool.map(_run_job, range(len(jobs))))
        except BrokenProcessPool:
            pass
        finally:
            _JOBS.clear()
    return [fn(*args, **kwargs) for fn, args, kwargs in jobs]
