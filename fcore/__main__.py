"""`python -m fcore`: the `fcore` command (see `fcore.cli`)."""

import sys

from fcore.cli import main

if __name__ == "__main__":
    sys.exit(main())
