"""The `distill-es` program (and `python -m distill_es.cli`): its first line pauses the cycle collector
while the command line's modules are imported (cli/collector.py), then it runs `cli/main.py`."""

from __future__ import annotations

from distill_es.cli import collector


def main() -> None:
    collector.pause()
    from distill_es.cli.main import main as run

    run()
