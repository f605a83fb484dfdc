"""Issue 15 item 3: cold start of the read commands and of `resume` (called by scripts/bench.py --only cold).

    python scripts/bench.py --only cold            # in the one table with every other figure
    python scripts/bench_cold.py [--repeat 7]      # on its own: prints its figures

The package's bytecode is written first, as `pip install` does (`compiled_like_an_install`): this
machine sets PYTHONDONTWRITEBYTECODE=1, so an editable checkout would compile from source each time.
Every command runs as a fresh process (the installed `distill-es`), interleaved with the interpreter
floor (`python -c pass`) so load on the machine hits both alike: the minimum of the repetitions is the
figure the target is about, the floor beside it. Each command is also run once more in a child that
reports which heavy modules it imported (the SDKs, GitPython, tomlkit): what item 3 forbids a read
command to import.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_lib import Figure, child_env, compiled_like_an_install, median, read_libraries

DISTILL_ES = str(Path(sys.executable).parent / "distill-es")
HEAVY = ("anthropic", "openai", "git", "tomlkit", "pydantic", "eventsourcing", "rich")
# Runs `distill-es ARGS` in this interpreter and prints which of HEAVY it imported, on stderr.
_MODULES_CHILD = """
import json, sys
from distill_es.cli.entry import main
sys.argv = ["distill-es", *sys.argv[1:]]
try:
    main()
except SystemExit:
    pass
sys.stderr.write("\\nMODULES " + json.dumps([m for m in HEAVY if m in sys.modules]) + "\\n")
""".replace("HEAVY", repr(HEAVY))

Fig = Callable[..., Figure]

# The libraries a read command cannot do without, and those `resume` adds to commit an edit
# (GitPython, tomlkit): imported alone, they are the floor under the targets.
READ_LIBRARIES = read_libraries()
COMMIT_LIBRARIES = READ_LIBRARIES + ", git, tomlkit"


CPU: dict[str, list[float]] = {}  # command name -> CPU seconds (user + system) of each run


def wall(cmd: list[str], env: dict[str, str], name: str = "") -> float:
    """Wall seconds of a run; its CPU seconds go to CPU[name] (less distorted by a loaded machine)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    CPU.setdefault(name, []).append(cpu)
    return elapsed


def imported(args: list[str], env: dict[str, str]) -> list[str]:
    run = subprocess.run(
        [sys.executable, "-c", _MODULES_CHILD, *args], env=env, capture_output=True, text=True, check=False
    )
    for line in run.stderr.splitlines():
        if line.startswith("MODULES "):
            return list(json.loads(line[len("MODULES ") :]))
    raise RuntimeError(f"distill-es {' '.join(args)} did not finish: {run.stderr[-500:]}")


def demo_workspace(tmp: Path, env: dict[str, str]) -> tuple[Path, str]:
    """A demo workspace with its one recorded session (offline), and that session's id."""
    home = tmp / "cold_ws"
    run = subprocess.run(
        [DISTILL_ES, "demo", "--home", str(home), "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if run.returncode != 0:
        raise RuntimeError(f"distill-es demo failed: {run.stderr[-500:]}")
    return home, json.loads(run.stdout)["id"]


def cold_commands(fig: Fig, tmp: Path, repeat: int) -> None:
    env = child_env()
    home, sid = demo_workspace(tmp, env)
    commands: dict[str, list[str]] = {
        "sessions": ["sessions", "--json"],
        "show": ["show", sid, "--json"],
        "history": ["history", sid, "--json"],
        "review": ["review", "--json"],
        "verify": ["verify", "--json"],
        "help": ["--help"],
    }
    floor_cmd = [sys.executable, "-c", "pass"]
    import_cmd = [sys.executable, "-c", "import distill_es.cli.main"]
    libraries_cmd = [sys.executable, "-c", READ_LIBRARIES]
    times: dict[str, list[float]] = {name: [] for name in [*commands, "floor", "import", "libraries"]}
    for _ in range(repeat):  # interleaved: a burst of load hits every command alike
        times["floor"].append(wall(floor_cmd, env, "floor"))
        times["import"].append(wall(import_cmd, env, "import"))
        times["libraries"].append(wall(libraries_cmd, env, "libraries"))
        for name, args in commands.items():
            times[name].append(wall([DISTILL_ES, "--home", str(home), *args], env, name))
    floor = min(times["floor"]) * 1e3
    fig("15.3", "cold.floor_ms", "interpreter floor: python -c pass (min)", round(floor, 1), "ms",
        samples=[x * 1e3 for x in times["floor"]])  # fmt: skip
    ms = min(times["import"]) * 1e3
    fig("15.3", "cold.import_cli_ms", "python -c 'import distill_es.cli.main' (min)", round(ms, 1), "ms",
        ratio=ms / floor, samples=[x * 1e3 for x in times["import"]],
        note=f"{ms - floor:.0f} ms beyond the floor; ratio is ÷ the floor; "
        f"CPU min {min(CPU['import']) * 1e3:.0f} ms")  # fmt: skip
    ms = min(times["libraries"]) * 1e3
    fig("15.3", "cold.read_libraries_ms", "libraries under every read command, imported alone (min)",
        round(ms, 1), "ms", ratio=ms / floor, samples=[x * 1e3 for x in times["libraries"]],
        note="typer (+ the pydantic adapters it builds for options) and eventsourcing's SQLite store: "
        "the floor under the < 250 ms target before any distill_es code")  # fmt: skip
    for name, args in commands.items():
        ms = min(times[name]) * 1e3
        heavy = imported(["--home", str(home), *args], env)
        forbidden = [m for m in heavy if m in ("anthropic", "openai", "git", "tomlkit")]
        timed = name in ("sessions", "show", "history")
        label = f"`distill-es {args[0]}{' --json' if '--json' in args else ''}` cold (min of {repeat})"
        fig("15.3", f"cold.{name}_ms", label,
            round(ms, 1), "ms", target="< 250 ms" if timed else "no SDK/git/tomlkit import",
            ok=(ms < 250 and not forbidden) if timed else not forbidden, ratio=ms / floor,
            samples=[x * 1e3 for x in times[name]],
            note=f"median {median(times[name]) * 1e3:.0f} ms; {ms - floor:.0f} ms beyond the floor "
            f"(ratio ÷ floor); CPU min {min(CPU[name]) * 1e3:.0f} ms (floor {min(CPU['floor']) * 1e3:.0f}); "
            f"imports {', '.join(heavy) or 'none'} of {', '.join(HEAVY)}")  # fmt: skip


# --- resume whose next step is not a teacher call -------------------------------------------------


def interrupted_before_apply(tmp: Path) -> tuple[Path, str, Path]:
    """A dev workspace (an ordinary one: the real teacher and student over HTTP) with a session
    interrupted just before it commits its first edit: its next step is `ApplyEdit`, a git write.
    Returns (home, session id, the ref file that commit moves)."""
    import anthropic

    from distill_es.api import Engine
    from distill_es.demo import world
    from distill_es.demo.dev_servers import create_dev_workspace
    from distill_es.domain.errors import SessionInterrupted
    from distill_es.domain.triggers import OnDemandTrigger
    from distill_es.testing.servers import ScriptedAnthropicServer, ScriptedStudentServer
    from distill_es.workspace.git_workspace import GitWorkspace

    class StopBeforeApply(GitWorkspace):
        def apply(self, *args: Any, **kwargs: Any) -> Any:
            raise SessionInterrupted("bench: stopped before the first commit")

    with (
        ScriptedAnthropicServer(world.teacher_reply) as teacher,
        ScriptedStudentServer(world.toy_answer) as student,
    ):
        home = create_dev_workspace(tmp / "resume_ws", student.base_url)
        client = anthropic.Anthropic(base_url=teacher.base_url, api_key="bench", max_retries=0)
        workspace = StopBeforeApply(home)
        workspace.init()
        engine = Engine.open(
            home, teacher=client, workspace=workspace, settings={"session": {"autonomy_mode": "auto"}}
        )
        try:
            sid = engine.start(OnDemandTrigger({"source": "bench"}), autonomy="auto")
            with contextlib.suppress(SessionInterrupted):
                engine.run(sid)
        finally:
            engine.close()
    head = (home / ".git" / "HEAD").read_text().strip()
    return home, sid, home / ".git" / head.removeprefix("ref: ")


def time_to_commit(cmd: list[str], env: dict[str, str], ref: Path, timeout: float = 60) -> float:
    """Seconds from spawning `cmd` to the ref file changing (the commit landed); then it is killed."""
    before = ref.read_bytes()
    started = time.perf_counter()
    child = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        while ref.read_bytes() == before:
            if child.poll() is not None:
                stderr = child.stderr.read().decode() if child.stderr else ""
                raise RuntimeError(f"resume ended before committing: {stderr[-500:]}")
            if time.perf_counter() - started > timeout:
                raise RuntimeError("resume did not commit in time")
            time.sleep(0.0005)
        return time.perf_counter() - started
    finally:
        child.kill()
        child.communicate()


def resume_first_side_effect(fig: Fig, tmp: Path, repeat: int) -> None:
    home, sid, ref = interrupted_before_apply(tmp)
    template = tmp / "resume_template"
    shutil.copytree(home, template, symlinks=True)  # workspace, git and store: each run starts from it

    def fresh() -> None:  # the same path: the session's events name its workspace
        shutil.rmtree(home)
        shutil.copytree(template, home, symlinks=True)

    env = child_env()  # no ANTHROPIC_API_KEY: the next step needs no teacher, nor its key
    floor, resumes, libraries = [], [], []
    for _ in range(repeat):
        fresh()
        floor.append(wall([sys.executable, "-c", "pass"], env))
        libraries.append(wall([sys.executable, "-c", COMMIT_LIBRARIES], env))
        resumes.append(time_to_commit([DISTILL_ES, "--home", str(home), "resume", sid], env, ref))
    fresh()
    heavy = imported(["--home", str(home), "resume", sid, "--json"], env)  # on to where it rests
    bare = min(floor) * 1e3
    beyond = min(resumes) * 1e3 - bare
    needed = min(libraries) * 1e3 - bare
    fig("15.3", "cold.commit_libraries_ms",
        "libraries `resume` needs to commit an edit, imported alone, beyond interpreter start (min)",
        round(needed, 1), "ms", ratio=(needed + bare) / bare, samples=[x * 1e3 for x in libraries],
        note="the read libraries + GitPython + tomlkit: the floor under the < 150 ms target")  # fmt: skip
    fig("15.3", "cold.resume_to_commit_ms",
        "`distill-es resume` to its first side effect (a git commit), next step not a teacher call",
        round(beyond, 1), "ms", target="< 150 ms beyond interpreter start",
        ok=beyond < 150, ratio=(beyond + bare) / bare, samples=[x * 1e3 for x in resumes],
        note=f"min of {repeat} beyond the floor ({bare:.0f} ms; ratio ÷ floor); median "
        f"{median(resumes) * 1e3:.0f} ms absolute; run on to rest (scoring with the student, no teacher "
        f"call) it imports {', '.join(heavy) or 'none'} of {', '.join(HEAVY)}")  # fmt: skip


def run(fig: Fig, tmp: Path, repeat: int) -> None:
    compiled_like_an_install()
    cold_commands(fig, tmp, repeat)
    resume_first_side_effect(fig, tmp, repeat)


def main() -> int:
    import argparse

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    figures: list[Figure] = []

    def fig(item: str, key: str, label: str, value: Any, unit: str = "", **fields: Any) -> Figure:
        figures.append(Figure(item, key, label, value, unit, **fields))
        return figures[-1]

    with tempfile.TemporaryDirectory(prefix="distill_es_cold_") as tmp:
        run(fig, Path(tmp), args.repeat)
    for f in figures:
        ratio = f" ({f.ratio:.2f}×)" if f.ratio is not None else ""
        print(f"{f.verdict():5} {f.label}: {f.value} {f.unit}{ratio}  target {f.target or '-'}  | {f.note}")
    print(f"load average {os.getloadavg()[0]:.2f}: take final figures on an idle machine")
    return 0


if __name__ == "__main__":
    sys.exit(main())
