"""Preflight checks of a workspace and its endpoints (`distill-es doctor`; `run` does the cheap ones).

Each check is a function returning `Check` values: a name, ok or failed, a one-line detail and, when
failed, a hint saying what to do. None of them records anything, creates a file or pays for a call:
the teacher is asked for its models list, the student for one token.

`cheap_checks` read files, the store and git only (no network); `preflight` is the part of them `run`
requires before it records anything. `all_checks` add the key and the two endpoints.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from distill_es.adapters.benchmark import load_benchmark
from distill_es.adapters.traces import FLAG_ORIGIN, SETTING_ORIGIN, checked_source, open_trace_source
from distill_es.config.settings import Settings, StudentSettings
from distill_es.domain.anchors import SESSION_TRAILER
from distill_es.domain.errors import DistillError, RequestRefused
from distill_es.domain.layout import (
    BENCHMARK_FILE,
    CONFIG_FILE,
    DESCRIPTIONS_FILE,
    SETTINGS_FILE,
    few_shot_path,
)
from distill_es.ports import BenchmarkTask
from distill_es.store.health import store_health
from distill_es.store.recorded_paths import sessions_recorded_elsewhere
from distill_es.store.urls import default_store_url, parse_url, store_identity
from distill_es.workspace.git_history import GitHistory
from distill_es.workspace.identity import git_identity
from distill_es.workspace.ownership import recorded_owner
from distill_es.workspace.toml_config import read_config, read_workspace_toml

# (the [student] settings, a model) -> a `StudentResult` for one token; raises when nobody answers
StudentProbe = Callable[[StudentSettings, str], Any]
# Every check's name, in the order they run.
CHECK_NAMES = ("settings", "config", "benchmark", "traces", "store", "git", "git identity", "teacher key",
               "teacher endpoint", "student")  # fmt: skip
TEACHER_KEY_VARS = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN")  # what the anthropic SDK reads


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    hint: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def passed(name: str, detail: str) -> Check:
    return Check(name, True, _one_line(detail))


def failed(name: str, detail: str, hint: str) -> Check:
    return Check(name, False, _one_line(detail), _one_line(hint))


def _one_line(text: str) -> str:
    return " ".join(text.split())  # a parser's or a server's message may span lines


def _problem(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, DistillError) else f"{type(exc).__name__}: {exc}"


# --- the workspace (no network) ------------------------------------------------------------------


def check_settings(home: Path) -> tuple[Check, Settings | None]:
    try:
        settings = Settings.load(home)
    except Exception as exc:
        hint = f"fix {SETTINGS_FILE} (every key is optional; docs/getting-started.md)"
        return failed("settings", _problem(exc), hint), None
    return passed("settings", f"{SETTINGS_FILE} parses"), settings


def _unparsable_few_shot(home: Path) -> tuple[str, str] | None:
    """The first agent's few-shot exemplars file that is not JSON: (its path, why); else None. The
    student reads it at every task, so a broken one would fail the session after it is recorded."""
    name = PurePosixPath(few_shot_path("default")).name  # agents/<agent>/few_shot.json
    for path in sorted(home.glob(f"agents/*/{name}")):
        try:
            json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            return path.relative_to(home).as_posix(), _one_line(str(exc))
    return None


def check_config(home: Path) -> Check:
    try:
        config = read_config(home)
        read_workspace_toml(home, DESCRIPTIONS_FILE)
    except Exception as exc:
        return failed("config", _problem(exc), f"fix {CONFIG_FILE} (docs/workspace.md)")
    broken = _unparsable_few_shot(home)
    if broken:
        return failed("config", f"{broken[0]} is not valid JSON: {broken[1]}", f"fix {broken[0]}")
    agent = (config.get("agent") or {}).get("default") if isinstance(config.get("agent"), dict) else None
    return passed("config", f"{CONFIG_FILE} and {DESCRIPTIONS_FILE} parse (agent {agent or 'default'!r})")


def check_benchmark(home: Path, *, require_tasks: bool = True) -> tuple[Check, list[BenchmarkTask]]:
    try:
        tasks = load_benchmark(home)
    except Exception as exc:
        return failed("benchmark", _problem(exc), f"fix that line of {BENCHMARK_FILE}"), []
    if not tasks and require_tasks:
        return failed(
            "benchmark",
            f"{BENCHMARK_FILE} has no tasks: the gate has nothing to measure edits with",
            f'add tasks to {BENCHMARK_FILE}, one a line: {{"task_id", "query", "reference_answer"}}',
        ), []
    return passed("benchmark", f"{len(tasks)} tasks in {BENCHMARK_FILE}"), tasks


def check_traces(
    home: Path, min_traces: int, source: Path | None = None, origin: str = SETTING_ORIGIN
) -> Check:
    """The traces `run` would read: `source` (`--traces`, else `[traces] source`: `origin` says which),
    else the workspace's."""
    try:
        count = (checked_source(source, origin) if source else open_trace_source(home)).count()
    except Exception as exc:
        return failed("traces", _problem(exc), "fix the traces source (docs/workspace.md)")
    if count < min_traces:
        return failed(
            "traces",
            f"{count} traces, a session needs at least {min_traces} ([session] min_traces)",
            f"add traces to {source or 'traces.jsonl'}, or lower [session] min_traces in {SETTINGS_FILE}",
        )
    return passed("traces", f"{count} traces (a session needs at least {min_traces})")


def check_store(home: Path, store_url: str | None) -> Check:
    url = store_url or os.environ.get("DISTILL_ES_STORE") or default_store_url(home)
    try:
        health = store_health(url)
    except Exception as exc:  # a malformed URL
        return failed("store", _problem(exc), getattr(exc, "hint", "") or "check --store / $DISTILL_ES_STORE")
    return Check("store", health.ok, health.detail, health.hint)


def check_recorded_paths(home: Path, store_url: str | None, store: Check) -> Check:
    """The store check, failed when the workspace belongs to a shared store (not its own file) that
    holds sessions of this workspace — anchored in its git history — recorded at another path: a
    shared store lists sessions by the path they were recorded at, so a moved workspace hides them."""
    url = store_url or os.environ.get("DISTILL_ES_STORE") or default_store_url(home)
    if not store.ok or url == default_store_url(home) or recorded_owner(home) != store_identity(url, home):
        return store
    try:
        anchored = {sid for _, trailers in GitHistory(home).commit_trailers()
                    for sid in trailers.get(SESSION_TRAILER, [])}  # fmt: skip
        elsewhere = sessions_recorded_elsewhere(url, str(home), anchored)
    except Exception:  # git or the store failing here is reported by their own checks
        return store
    if not elsewhere:
        return store
    paths = sorted(set(elsewhere.values()))
    return failed(
        "store",
        f"{store.detail}; but {len(elsewhere)} session(s) of this workspace (named in its git history) "
        f"were recorded at {', '.join(paths)}: this store lists sessions by the path they were recorded "
        f"at, so `sessions`, `review` and `regate --all` at {home} do not show them",
        f"move the workspace back to {paths[0]} (a shared store lists sessions by the path they were "
        "recorded at, and export/import keep it: docs/operations.md, Backups); meanwhile "
        "`distill-es show ID` reads them by full id",
    )


def check_git() -> list[Check]:
    """git itself (every edit is a commit) and the name reviewers' decisions default to."""
    identity = git_identity()
    if identity.git_version is None:
        return [
            failed("git", "git is not on the PATH: every edit is a git commit", "install git"),
            failed("git identity", "not tried without git", "install git"),
        ]
    tool = passed("git", "git is on the PATH")
    if not identity.name:
        return [
            tool,
            failed(
                "git identity",
                "no git user.name and no $USER: approve, reject and cancel need --by NAME",
                'git config --global user.name "Your Name"',
            ),
        ]
    return [tool, passed("git identity", f"reviewers default to {identity.name!r} ({identity.source})")]


def cheap_checks(home: Path, *, store_url: str | None = None) -> list[Check]:
    """The checks that need no network, in order: what `run` requires before recording anything."""
    return _cheap(home, store_url)[0]


def preflight(home: Path, *, store_url: str | None = None, traces: Path | None = None) -> Check | None:
    """`run`'s refusal, before anything is recorded: the first failed check that needs no network, or
    None. Settings that do not load and a store URL that is not one raise as always (usage errors).

    The files must parse and the store and git must work. The counts are not refused here: too few
    traces is the engine's own recorded verdict (a cold start, failed before any teacher call), and
    an empty benchmark with enough traces is refused by the engine before it records anything."""
    settings = Settings.load(home)
    parse_url(store_url or os.environ.get("DISTILL_ES_STORE") or default_store_url(home))
    checks = [
        check_config(home),
        check_benchmark(home, require_tasks=False)[0],
        check_traces(home, min_traces=0, source=traces, origin=FLAG_ORIGIN)
        if traces
        else check_traces(home, min_traces=0, source=settings.traces_source(home)),
        check_store(home, store_url),
        check_git()[0],
    ]
    return next((c for c in checks if not c.ok), None)


def _cheap(home: Path, store_url: str | None) -> tuple[list[Check], Settings | None]:
    settings_check, settings = check_settings(home)
    checks = [settings_check, check_config(home), check_benchmark(home)[0]]
    if settings is not None:
        checks.append(check_traces(home, settings.session.min_traces, settings.traces_source(home)))
    else:
        hint = f"fix {SETTINGS_FILE} first"
        checks.append(
            failed("traces", f"not counted: {SETTINGS_FILE} does not load, so min_traces is unknown", hint)
        )
    checks += [check_recorded_paths(home, store_url, check_store(home, store_url)), *check_git()]
    return checks, settings


# --- the endpoints ---------------------------------------------------------------------------------


def check_teacher_key(environ: Mapping[str, str]) -> Check:
    found = next((name for name in TEACHER_KEY_VARS if environ.get(name)), None)
    if found is None:
        return failed(
            "teacher key",
            "ANTHROPIC_API_KEY is not set: the teacher cannot be called",
            "export ANTHROPIC_API_KEY=... (or replay a recording: run --teacher cassette:PATH)",
        )
    return passed("teacher key", f"{found} is set")


def check_teacher_endpoint(probe: Callable[[], int], where: str) -> Check:
    """`probe`: the models list request (free); returns how many models the key may use."""
    try:
        count = probe()
    except RequestRefused as exc:
        return failed("teacher endpoint", _problem(exc), "check ANTHROPIC_BASE_URL")
    except Exception as exc:
        hint = "check the key (ANTHROPIC_API_KEY) and ANTHROPIC_BASE_URL, and that the machine is online"
        return failed("teacher endpoint", _problem(exc), hint)
    listed = f"{count} model{'' if count == 1 else 's'} listed"
    return passed("teacher endpoint", f"{where} answers: the key is accepted ({listed})")


def student_model(home: Path, settings: Settings) -> str:
    """The model the student's requests name by default: [student] model, else config.toml's default."""
    if settings.student.model:
        return settings.student.model
    intelligence = read_config(home).get("intelligence")
    model = intelligence.get("default_model") if isinstance(intelligence, dict) else None
    return model if isinstance(model, str) else ""


def check_student(home: Path, settings: Settings, probe: StudentProbe) -> Check:
    """`probe(student_settings, model)`: one token of `model` (a `StudentResult`; raises when the
    endpoint does not answer)."""
    where = settings.student.base_url
    try:
        model = student_model(home, settings)
    except Exception as exc:
        return failed("student", _problem(exc), f"fix {CONFIG_FILE}")
    if not model:
        hint = f"set [intelligence] default_model in {CONFIG_FILE} or [student] model in {SETTINGS_FILE}"
        return failed("student", "no student model is configured", hint)
    try:
        result = probe(settings.student, model)
    except Exception as exc:
        hint = "start the model server, or point [student] base_url (or $DISTILL_ES_STUDENT_URL) at it"
        return failed("student", _problem(exc), hint)
    if getattr(result, "error", None):
        hint = f"is {model!r} a model the server has? (e.g. `ollama pull {model}`)"
        return failed("student", f"{where} refused a request for {model!r}: {result.error}", hint)
    return passed("student", f"{where} answers with {model!r}")


def network_checks(
    home: Path,
    settings: Settings,
    *,
    environ: Mapping[str, str],
    teacher_probe: Callable[[], int] | None,
    teacher_url: str,
    student_probe: StudentProbe | None,
) -> Iterator[Check]:
    """The key and both endpoints. A None probe is an offline stand-in (the demo's recorded teacher,
    its deterministic student): reported as such, never called."""
    if teacher_probe is None:
        yield passed("teacher key", "the demo's recorded teacher needs no key")
        yield passed("teacher endpoint", "the demo's recorded teacher is offline (a cassette)")
    else:
        key = check_teacher_key(environ)
        yield key
        if key.ok:
            yield check_teacher_endpoint(teacher_probe, teacher_url)
        else:
            yield failed("teacher endpoint", "not tried without a key", "set the key first")
    if student_probe is None:
        yield passed("student", "the demo's deterministic student is offline (no endpoint)")
    else:
        yield check_student(home, settings, student_probe)


def all_checks(
    home: Path,
    *,
    store_url: str | None,
    environ: Mapping[str, str],
    teacher_probe: Callable[[], int] | None,
    teacher_url: str,
    student_probe: StudentProbe | None,
) -> list[Check]:
    """Every check, cheap ones first. Without parseable settings the defaults say which endpoints to try."""
    checks, settings = _cheap(home, store_url)
    settings = settings or Settings()
    checks += network_checks(
        home,
        settings,
        environ=environ,
        teacher_probe=teacher_probe,
        teacher_url=teacher_url,
        student_probe=student_probe,
    )
    return checks
