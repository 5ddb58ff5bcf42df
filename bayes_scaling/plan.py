"""``python -m bayes_scaling.plan`` — the command line lives in ``bayes_scaling.cli.plan``."""

import sys

from bayes_scaling.cli.plan import main

if __name__ == "__main__":
    sys.exit(main())
