"""``python -m bayes_scaling.fit`` — the command line lives in ``bayes_scaling.cli.fit``."""

import sys

from bayes_scaling.cli.fit import main

if __name__ == "__main__":
    sys.exit(main())
