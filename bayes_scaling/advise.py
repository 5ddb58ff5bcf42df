"""``python -m bayes_scaling.advise`` — the command line lives in ``bayes_scaling.cli.advise``."""

import sys

from bayes_scaling.cli.advise import main

if __name__ == "__main__":
    sys.exit(main())
