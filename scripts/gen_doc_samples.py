"""Write the sample outputs in docs/ from real runs: `dev-servers` and `doctor` (ok, and failing).

    python scripts/gen_doc_samples.py           # rewrite the samples in docs/*.md
    python scripts/gen_doc_samples.py --check   # exit 1 if a sample is out of date

A sample sits between `<!-- sample: NAME -->` and `<!-- /sample -->` in a doc; the text in between is
this script's, never edited by hand. tests/cli/test_docs.py runs the same `render_docs()`.

The runs are real: `python -m distill_es.testing.servers --init DIR` in a subprocess (ports picked by
the OS), `distill-es doctor` against it, then SIGINT, then `doctor` again with the servers gone. What
differs from machine to machine is replaced so the text is stable: the ports by the defaults, the
temporary directory by `~/live-tour`, the git identity by a fixed one (a temporary global git config).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ("getting-started.md", "operations.md")
SAMPLE = re.compile(r"(<!-- sample: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /sample -->)", re.DOTALL)
SHOWN_HOME = "~/live-tour"
ENV = {"COLUMNS": "100", "NO_COLOR": "1"}


def _cli(args: list[str], env: dict[str, str]) -> str:
    from typer.testing import CliRunner

    from distill_es.cli.main import app

    # CliRunner only adds to the environment: unset what the run must not see.
    unset: dict[str, str | None] = {k: None for k in os.environ if k not in env}
    result = CliRunner().invoke(app, args, env={**unset, **env}, prog_name="distill-es")
    return result.stdout


def _serve(tmp: Path, env: dict[str, str]) -> tuple[subprocess.Popen[str], list[str]]:
    ports = ["--teacher-port", "0", "--student-port", "0"]
    command = [sys.executable, "-m", "distill_es.testing.servers", *ports, "--init", str(tmp / "live-tour")]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert process.stdout is not None
    lines: list[str] = []
    for line in process.stdout:
        lines.append(line.rstrip("\n"))
        if line.startswith("export DISTILL_ES_HOME="):
            return process, lines
    process.kill()
    raise RuntimeError(f"dev-servers printed no DISTILL_ES_HOME line: {lines} {process.stderr.read()}")  # type: ignore[union-attr]


def samples() -> dict[str, str]:
    """Every sample by name, from real runs."""
    from distill_es.demo.dev_servers import DEFAULT_STUDENT_PORT, DEFAULT_TEACHER_PORT

    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder).resolve()
        gitconfig = tmp / "gitconfig"
        gitconfig.write_text("[user]\n\tname = Ada Lovelace\n\temail = ada@example.com\n")
        keep = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "DISTILL_ES_"))}
        base = {**keep, **ENV, "GIT_CONFIG_GLOBAL": str(gitconfig)}
        process, lines = _serve(tmp, base)
        try:
            exported = dict(
                line.removeprefix("export ").split("=", 1) for line in lines if line.startswith("export ")
            )
            env = {**base, **exported}
            doctor_ok = _cli(["doctor"], env)
        finally:
            process.send_signal(signal.SIGINT)
            process.communicate(timeout=30)
        if process.returncode != 0:
            raise RuntimeError(f"dev-servers exited {process.returncode} on SIGINT")
        doctor_down = _cli(["doctor"], env)

    def shown(text: str) -> str:
        ports = {
            re.search(r":(\d+)$", exported["ANTHROPIC_BASE_URL"]).group(1): DEFAULT_TEACHER_PORT,  # type: ignore[union-attr]
            re.search(r":(\d+)/v1$", exported["DISTILL_ES_STUDENT_URL"]).group(1): DEFAULT_STUDENT_PORT,  # type: ignore[union-attr]
        }
        for port, default in ports.items():
            text = re.sub(rf"127\.0\.0\.1:{port}\b", f"127.0.0.1:{default}", text)
        return text.replace(str(tmp / "live-tour"), SHOWN_HOME).rstrip("\n") + "\n"

    return {
        "dev-servers": shown("\n".join(lines)),
        "doctor-ok": shown(doctor_ok),
        "doctor-down": shown(doctor_down),
    }


def render(text: str, found: dict[str, str]) -> str:
    def fill(match: re.Match[str]) -> str:
        name = match.group("name")
        if name not in found:
            raise KeyError(f"no sample named {name!r}")
        return f"{match.group(1)}```text\n{found[name]}```\n{match.group(4)}"

    return SAMPLE.sub(fill, text)


def render_docs() -> dict[Path, tuple[str, str]]:
    """(current text, text with fresh samples) of every doc that has samples."""
    found = samples()
    result = {}
    for name in DOCS:
        path = ROOT / "docs" / name
        current = path.read_text(encoding="utf-8")
        result[path] = (current, render(current, found))
    return result


def main(argv: list[str]) -> int:
    stale = []
    for path, (current, fresh) in render_docs().items():
        if current == fresh:
            continue
        if "--check" in argv:
            stale.append(path)
        else:
            path.write_text(fresh, encoding="utf-8")
            print(f"wrote {path}")
    for path in stale:
        print(f"{path}: a sample is out of date: run python scripts/gen_doc_samples.py", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
