"""`python -m distill_es.cli`: the same program as the `distill-es` command."""

import sys

from distill_es.cli.entry import main

sys.exit(main())
