"""`python -m distill_es.cli`: the same program as the `distill-es` command."""

import sys

from distill_es.cli.main import main

sys.exit(main())
