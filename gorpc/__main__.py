"""`python -m gorpc`: the same as the `gorpc` command."""

import sys

from gorpc.cli import main

sys.exit(main())
