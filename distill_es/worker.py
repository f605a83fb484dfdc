"""`python -m distill_es.worker`, the documented worker entry point: its command line is
distill_es.cli.worker.main; `import distill_es.worker` is the workers' module, distill_es.app.worker."""

from __future__ import annotations

import sys

from distill_es.app import worker as _worker

if __name__ == "__main__":
    from distill_es.cli.worker import main

    sys.exit(main())
else:  # `import distill_es.worker` is the same module as distill_es.app.worker
    sys.modules[__name__] = _worker
