"""`distill_es.testing.servers`, the documented path of the real test servers (distill_es.demo.servers)."""

from __future__ import annotations

import sys

from distill_es.demo import servers as _servers

sys.modules[__name__] = _servers
