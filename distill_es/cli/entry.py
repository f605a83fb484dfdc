"""The `distill-es` program (and `python -m distill_es.cli`): its first line pauses the cycle collector
while the command line's modules are imported (cli/collector.py), then it runs `cli/main.py`.

Ctrl-C before the command line can handle it (while it is still importing) ends the program as it
does later: one line, exit 130 (one JSON object under --json), no traceback."""

from __future__ import annotations

import json
import sys

from distill_es.cli import collector

INTERRUPTED = 130


def main() -> None:
    collector.pause()
    try:
        from distill_es.cli.main import main as run

        run()
    except KeyboardInterrupt:
        args = sys.argv[1:]  # cli/main.py's `wants_json`, which may be what was being imported
        if "--json" in (args[: args.index("--")] if "--" in args else args):
            sys.stderr.write(json.dumps({"error": "interrupted", "exit_code": INTERRUPTED}) + "\n")
        else:
            sys.stderr.write("error: interrupted\n")
        raise SystemExit(INTERRUPTED) from None
