"""Drive one training run in a separate process (the crash test SIGKILLs it mid-trainer).

python drive_child.py STORE_URL HOME RUN_ID
"""

from __future__ import annotations

import sys
from pathlib import Path

from distill_es.app.training.service import TrainingService
from distill_es.store.app import EventStore

if __name__ == "__main__":
    url, home, run_id = sys.argv[1:4]
    # The trainer command given here does not matter: a run always uses the one it recorded.
    TrainingService(EventStore(url), Path(home), None).drive(run_id)
