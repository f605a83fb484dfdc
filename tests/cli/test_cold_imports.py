"""Read commands import only what they use (issue 15 item 3): after `sessions`, `show`, `history`,
`review`, `verify` or `--help` has run in a fresh interpreter, none of the teacher or student SDKs,
GitPython or tomlkit is in `sys.modules`. A behaviour test, not a timing one (speed is
scripts/bench_cold.py's): an import added at the top of a module on the read path fails it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.conftest import Demo
from tests.cli.test_subprocess import assert_fresh_python, clean_env

FORBIDDEN = ("anthropic", "openai", "git", "tomlkit")
# Not forbidden, but a command that prints JSON for a script has no use for them: rich (tables, styled
# text), the session's step rules and activities (an engine opened to read never steps).
NOT_FOR_JSON_READS = ("rich", "distill_es.domain.session.next_step", "distill_es.app.activities")
WATCHED = FORBIDDEN + NOT_FOR_JSON_READS
# Runs the command line in this interpreter, then reports the watched modules it imported and its exit.
CHILD = """
import json, sys
from distill_es.cli.main import main
sys.argv = ["distill-es", *sys.argv[1:]]
code = 0
try:
    main()
except SystemExit as exc:
    code = exc.code
loaded = [m for m in WATCHED if m in sys.modules]
sys.stderr.write("\\nREPORT " + json.dumps({"code": code, "loaded": loaded}))
""".replace("WATCHED", repr(WATCHED))


def run_fresh(*args: str, home: Path) -> dict[str, object]:
    run = subprocess.run(
        [sys.executable, "-c", CHILD, "--home", str(home), *args],
        capture_output=True,
        text=True,
        env=clean_env(),
        check=False,
        timeout=120,
    )
    report = run.stderr.rpartition("\nREPORT ")[2]
    assert report, run.stderr
    return {"stdout": run.stdout, **json.loads(report)}


@pytest.mark.parametrize(
    "args",
    [
        ("sessions", "--json"),
        ("sessions",),
        ("show", "{sid}", "--json"),
        ("show", "{sid}"),
        ("history", "{sid}", "--json"),
        ("review", "--json"),
        ("verify", "--json"),
        ("--help",),
        ("show", "--help"),
    ],
    ids=lambda args: " ".join(args),
)
def test_read_commands_import_no_sdk_git_or_tomlkit(shared_demo: Demo, args: tuple[str, ...]) -> None:
    report = run_fresh(*(a.format(sid=shared_demo.session_id) for a in args), home=shared_demo.home)
    assert report["code"] == 0, report
    loaded = [m for m in report["loaded"] if m in FORBIDDEN]  # type: ignore[union-attr]
    assert loaded == [], f"distill-es {' '.join(args)} imported {loaded}"
    if "--json" in args:
        assert report["loaded"] == [], f"distill-es {' '.join(args)} imported {report['loaded']}"
    if args == ("sessions", "--json"):  # it did read the store: the demo's session is listed
        assert [view["id"] for view in json.loads(str(report["stdout"]))] == [shared_demo.session_id]


def test_the_check_sees_an_import(shared_demo: Demo) -> None:
    """The child reports what a command imports: `doctor` reads the TOML files with tomlkit; a table
    is drawn with rich."""
    report = run_fresh("doctor", "--json", home=shared_demo.home)
    assert "tomlkit" in report["loaded"]  # type: ignore[operator]
    assert "rich" in run_fresh("sessions", home=shared_demo.home)["loaded"]  # type: ignore[operator]


def test_rich_imported_after_start_still_reraises_a_closed_pipe() -> None:
    """rich is imported late (a table, typer's help), after cli/main.py asked for the closed-pipe
    patch: the import hook patches `Console` as the module is loaded, and only once."""
    assert_fresh_python(
        "import sys",
        "from distill_es.cli import pipes",
        "assert 'rich.console' not in sys.modules",
        "pipes.reraise_closed_pipes(); pipes.reraise_closed_pipes()",
        "from rich.console import Console",
        "assert Console.on_broken_pipe is pipes._reraise",
        "assert not any(isinstance(f, pipes._PatchRichConsole) for f in sys.meta_path)",
    )


def test_read_commands_see_the_anchors_gitpython_sees(shared_demo: Demo, tmp_path: Path) -> None:
    """The anchors a read command checks (one `git log`, no GitPython) are the workspace's own."""
    from distill_es.workspace.git_history import GitHistory
    from distill_es.workspace.git_workspace import GitWorkspace

    trailers = GitHistory(shared_demo.home).commit_trailers()
    assert trailers == GitWorkspace(shared_demo.home).commit_trailers()
    assert any("Distill-Log-Head" in found for _, found in trailers)  # the demo's edits anchor the log
    empty = tmp_path / "empty"
    subprocess.run(["git", "init", "-q", str(empty)], check=True)
    assert GitHistory(empty).commit_trailers() == []  # no commits yet
