"""``python -m bayes_scaling.backtest`` — the command line lives in ``bayes_scaling.cli.backtest``."""

import sys

from bayes_scaling.cli.backtest import main

if __name__ == "__main__":
    sys.exit(main())
