"""`python -m distill_es.worker`, the documented worker entry point (the worker is distill_es.app.worker)."""

from __future__ import annotations

import sys

from distill_es.app import worker as _worker

if __name__ == "__main__":
    from distill_es.compose import open_runner  # the engine and its SDKs: only when a worker runs

    sys.exit(_worker.main(open_runner=open_runner))
else:  # `import distill_es.worker` is the same module as distill_es.app.worker
    sys.modules[__name__] = _worker
