"""Nothing the teacher, traces or files wrote reaches a terminal raw (issue 13, bullet 3).

Three levels: the sanitizer itself over arbitrary text; every renderer of cli_render with arbitrary
text in every outside field; and the real commands (`sessions`, `show`, `show --at`, `history`,
`review`, `verify`, `benchmark show`, `--json`) on real sessions whose teacher wrote hostile strings.
"""

from __future__ import annotations

import io
import json
import re
import unicodedata
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

from distill_es.adapters.terminal_safe import SafeConsole, inert, json_safe
from distill_es.api import Engine
from distill_es.cli import render as render
from distill_es.demo import world
from distill_es.domain.triggers import OnDemandTrigger
from distill_es.domain.vocabulary import BenchmarkSnapshot, LearningSession
from distill_es.ports import BenchmarkTask
from distill_es.store.verify import Damage, SessionReport
from distill_es.testing import ScriptedTeacher
from distill_es.testing.servers import tool_uses_reply

from .conftest import cli
from .test_subprocess import assert_fresh_python

UNSAFE_CATEGORIES = {"Cc", "Cf", "Zl", "Zp", "Cs"}
# What may reach a terminal: no control character but newline, no format character, no separator.
RAW_UNSAFE = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u00ad\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]")

HOSTILE = {
    "clear": "\x1b[2J",
    "title": "\x1b]0;pwned\x07",
    "markup": "[green]APPROVED BY SECURITY[/]",
    "bidi": "safe\u202etxt.exe",
    "c1": "csi\x9b31m",
    "cr": "ok\roverwritten",
    "backspace": "abc\x08\x08\x08",
    "newline": "e-nl\nEdit-ID: e-temp",
}
# Characters hypothesis must be able to draw, whatever its defaults: C0, C1, DEL, bidi, markup.
hostile_chars = st.sampled_from(
    ["\x1b", "\x07", "\x00", "\r", "\n", "\t", "\x08", "\x7f", "\x85", "\x9b", "\u202e", "\u2066",
     "\u200b", "\ufeff", "\u2028", "[", "]", "/", "[bold]", "[/]", ":smile:", "\\"]
)  # fmt: skip
outside_text = st.lists(st.one_of(st.text(max_size=6), hostile_chars), max_size=8).map("".join)


def unsafe_in(output: str) -> list[str]:
    return sorted({repr(c) for c in RAW_UNSAFE.findall(output)})


# --- the sanitizer ----------------------------------------------------------------------------------


def test_the_unsafe_set_is_every_control_format_and_separator_character() -> None:
    for code in range(0x110000):
        char = chr(code)
        if unicodedata.category(char) in UNSAFE_CATEGORIES:
            assert inert(char) != char, f"U+{code:04X} ({unicodedata.category(char)}) passes raw"


@given(outside_text | st.text())
def test_inert_text_has_no_unsafe_character_and_shows_each_one(text: str) -> None:
    line = inert(text)
    assert not any(unicodedata.category(c) in UNSAFE_CATEGORIES for c in line)
    block = inert(text, multiline=True)
    assert not any(unicodedata.category(c) in UNSAFE_CATEGORIES for c in block if c not in "\n\t")
    for char in set(text):
        if unicodedata.category(char) in UNSAFE_CATEGORIES:
            assert repr(char).strip("'") in line  # the escape a Python user recognises: \x1b, \u202e
    assert inert(line) == line and inert(block, multiline=True) == block  # idempotent


@given(st.text(alphabet=st.characters(exclude_categories=("Cc", "Cf", "Zl", "Zp", "Cs"))))
def test_safe_text_is_left_alone(text: str) -> None:
    assert inert(text) == text


@example("\U000e0020 tag character (astral: a surrogate pair in JSON)")
@given(
    st.recursive(outside_text | st.text(), lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner))
)
def test_json_output_stays_the_same_data_with_nothing_raw(data: Any) -> None:
    dumped = json_safe(json.dumps(data, ensure_ascii=False))
    assert json.loads(dumped) == data
    assert not unsafe_in(dumped.replace("\n", ""))


# --- the renderers ------------------------------------------------------------------------------------


def rendered(renderable: RenderableType, width: int = 100) -> str:
    """What a plain rich console prints: the renderers escape their fields themselves (the CLI's
    SafeConsole is a second net, tested apart)."""
    buffer = io.StringIO()
    Console(file=buffer, width=width).print(renderable)
    return buffer.getvalue()


@given(text=outside_text)
def test_the_safe_console_prints_any_string_or_text_inert(text: str) -> None:
    buffer = io.StringIO()
    console = SafeConsole(file=buffer, width=80)
    console.print(text)
    console.print(Text(text))
    table = Table()
    table.add_column(text)
    table.add_row(text, Text(text))
    console.print(table)
    assert not unsafe_in(buffer.getvalue())
    if "[bold]" in text:
        assert "[bold]" in buffer.getvalue()  # markup is printed, not parsed


@pytest.fixture(scope="module")
def base_view(tmp_path_factory: pytest.TempPathFactory) -> LearningSession:
    home = world.create_demo_workspace(tmp_path_factory.mktemp("base") / "ws")
    engine = Engine.open(home, teacher=ScriptedTeacher(world.teacher_reply), student=world.DemoStudent(home))
    try:
        return engine.run_session(OnDemandTrigger())
    finally:
        engine.close()


def hostile_view(view: LearningSession, text: str) -> LearningSession:
    """The view with `text` in every field the outside controls."""
    plan = view.plan.model_copy(
        update={"edits": [e.model_copy(update={"id": text + e.id, "rationale": text,
                                               "expected_improvement": text}) for e in view.plan.edits]}
    )  # fmt: skip
    outcomes = [
        o.model_copy(update={"edit_id": text + o.edit_id, "error": text or None}) for o in view.edit_outcomes
    ]
    return view.model_copy(
        update={"id": text + view.id, "error": text, "diagnosis_markdown": text, "plan": plan,
                "edit_outcomes": outcomes, "trigger_metadata": {"cluster": text}, "parent_session_id": text}
    )  # fmt: skip


FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FAST
@given(text=outside_text)
@pytest.mark.parametrize("width", [60, 120])  # narrow consoles put the reasons under the table
def test_session_renderers_print_outside_text_inert(
    base_view: LearningSession, text: str, width: int
) -> None:
    view = hostile_view(base_view, text)
    for renderable in (
        render.session_summary(view),
        render.session_detail(view),
        render.sessions_table([view]),
    ):
        assert not unsafe_in(rendered(renderable, width))


@FAST
@given(text=outside_text)
def test_history_review_verify_benchmark_renderers_print_outside_text_inert(text: str) -> None:
    entry = {"version": 3, "at": datetime.now(UTC).isoformat() + text, "who": text, "what": text}
    item = {key: text for key in ("edit_id", "session_id", "op", "target", "risk_tier", "target_cluster",
                                  "rationale", "preview")}  # fmt: skip
    damage = [Damage(session_id=text, position=1, kind=text, detail=text)]
    report = SessionReport(session_id=text, events=2, ok=False, damage=damage)
    task = BenchmarkTask(
        task_id=text or "t", query=text, reference_answer=text, category=text, query_class=text
    )
    before = BenchmarkSnapshot(
        benchmark_version=text, overall_score=0.5, cluster_scores={text: 0.5}, task_count=1
    )
    for renderable in (
        render.history_lines([entry]),
        render.review_items([item]),
        render.verify_table([report, SessionReport(session_id=text, events=1, ok=True)]),
        render.benchmark_view([task], {task.task_id: [text]}, text, before, before),
    ):
        assert not unsafe_in(rendered(renderable))


def test_the_markup_and_escapes_are_visible_as_typed(base_view: LearningSession) -> None:
    view = hostile_view(base_view, "".join(HOSTILE.values()))
    out = rendered(render.session_detail(view), 200)
    assert "[green]APPROVED BY SECURITY[/]" in out
    for escape in (r"\x1b[2J", r"\x1b]0;pwned\x07", r"\u202e", r"\x9b", r"\r", r"\x08", r"e-nl\nEdit-ID"):
        assert escape in out, escape


# --- the commands, on real sessions a hostile teacher wrote ---------------------------------------------


def hostile_teacher(text: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """The demo teacher, but `text` is in every string it controls: rationales, cluster descriptions,
    the diagnosis, the prompt diff it proposes, and the id of one more edit (refused at plan time)."""
    edits = [{**edit, "rationale": f"{edit['rationale']} {text}"} for edit in world.EDITS]
    # An id the plan refuses (ids are restricted at plan time), so hostile text reaches the refusal too.
    edits.append({**world.EDITS[0], "id": f"{world.EDITS[0]['id']}{text}", "rationale": text})
    one_line = re.sub(r"[\r\n\x0b\x0c\x1c-\x1e\x85\u2028\u2029]", " ", text)  # a diff line stays one line
    edits[2]["payload"] = {
        **edits[2]["payload"],
        "diff": world.PROMPT_PATCH.replace("number only.", f"number only. {one_line}"),
    }
    clusters = [{**c, "description": f"{c['description']} {text}", "skill_gap": text} for c in world.CLUSTERS]

    def reply(request: dict[str, Any]) -> dict[str, Any]:
        if (request.get("tool_choice") or {}).get("name") == "submit_plan":
            return tool_uses_reply([("submit_plan", {"edits": edits})])
        answer = world.teacher_reply(request)
        for block in answer["content"]:
            if block.get("type") == "tool_use" and block["name"] == "submit_diagnosis":
                block["input"] = {"diagnosis_markdown": f"{world.DIAGNOSIS}\n{text}\n", "clusters": clusters}
        return answer

    return reply


def hostile_workspace(home: Path, text: str) -> tuple[str, LearningSession]:
    world.create_demo_workspace(home)
    engine = Engine.open(
        home, teacher=ScriptedTeacher(hostile_teacher(text)), student=world.DemoStudent(home)
    )
    try:
        view = engine.run_session(OnDemandTrigger({"source": text, "trace_ids": ["t001"]}))
    finally:
        engine.close()
    return view.id, view


def read_outputs(home: Path, session_id: str) -> dict[str, str]:
    """Every read command's human output (stdout and stderr) for the workspace."""
    commands = {
        "sessions": ["sessions"],
        "show": ["show", session_id],
        "show --at": ["show", session_id, "--at", "6"],
        "history": ["history", session_id],
        "review": ["review"],
        "verify": ["verify"],
        "benchmark show": ["benchmark", "show"],
    }
    outputs = {}
    for name, args in commands.items():
        result = cli(*args, "--home", home)
        assert result.exit_code in (0, 1), (name, result.output)
        outputs[name] = result.stdout + result.stderr
    return outputs


@pytest.fixture(scope="module")
def crafted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, LearningSession]:
    home = tmp_path_factory.mktemp("crafted") / "ws"
    session_id, view = hostile_workspace(home, " ".join(HOSTILE.values()))
    assert view.status == "awaiting_review", view.error
    return home, session_id, view


def test_read_commands_print_a_hostile_teacher_inert_and_visible(crafted: tuple[Path, str, LearningSession]):
    home, session_id, _ = crafted
    outputs = read_outputs(home, session_id)
    for name, output in outputs.items():
        assert not unsafe_in(output), (name, unsafe_in(output))
    for name in ("show", "review"):
        assert "[green]APPROVED BY SECURITY[/]" in outputs[name], name  # printed as typed, not green
        assert r"\x1b[2J" in outputs[name] and r"\x1b]0;pwned\x07" in outputs[name], name
        assert r"\u202e" in outputs[name] and r"\x9b31m" in outputs[name], name
    engine = Engine.open(home)
    frozen = next(e for e in engine.store.domain_events(session_id) if type(e).__name__ == "PlanFrozen")
    engine.close()
    refused = [r["edit_id"] for r in frozen.rejected]
    assert any("e-nl\nEdit-ID: e-temp" in r for r in refused), refused  # refused at plan time


def test_a_hostile_reviewer_note_and_errors_naming_an_edit_print_inert(
    crafted: tuple[Path, str, LearningSession],
) -> None:
    home, session_id, view = crafted
    pending = view.pending_edit_ids[0]
    missing = cli("approve", session_id, "no-such\x1b[2J", "--by", "eve\x1b]0;x\x07", "--home", home)
    assert missing.exit_code != 0 and not unsafe_in(missing.output) and r"\x1b[2J" in missing.output
    rejected = cli(
        "reject", session_id, pending, "--by", "eve", "--reason", "[red]ok[/] \x1b[2J\x07", "--home", home
    )
    assert rejected.exit_code == 0, rejected.output
    history = cli("history", session_id, "--home", home)
    assert not unsafe_in(history.output) and r"\x1b[2J\x07" in history.output


def test_json_output_is_the_data_with_controls_escaped(crafted: tuple[Path, str, LearningSession]) -> None:
    home, session_id, _ = crafted
    for args in (["show", session_id], ["history", session_id], ["review"], ["sessions"]):
        result = cli(*args, "--json", "--home", home)
        assert result.exit_code == 0, result.output
        assert not unsafe_in(result.stdout.replace("\n", "")), args
        json.loads(result.stdout)
    shown = json.loads(cli("show", session_id, "--json", "--home", home).stdout)
    assert any("\x1b[2J" in e["rationale"] for e in shown["plan"]["edits"])  # the data is unchanged


@settings(max_examples=6, deadline=None)
@given(text=outside_text)
def test_read_commands_print_any_teacher_text_inert(
    tmp_path_factory: pytest.TempPathFactory, text: str
) -> None:
    home = tmp_path_factory.mktemp("any") / "ws"
    session_id, _ = hostile_workspace(home, text)
    for name, output in read_outputs(home, session_id).items():
        assert not unsafe_in(output), (name, unsafe_in(output))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=outside_text)
def test_benchmark_show_prints_any_benchmark_file_inert(
    crafted: tuple[Path, str, LearningSession], text: str
):
    home, *_ = crafted
    tasks = [{"task_id": f"x{text}", "query": text, "reference_answer": text, "category": text}]
    path = home / "benchmark.jsonl"
    original = path.read_text(encoding="utf-8")
    try:
        path.write_text("".join(json.dumps(t) + "\n" for t in tasks), encoding="utf-8")
        result = cli("benchmark", "show", "--home", home)
    finally:
        path.write_text(original, encoding="utf-8")
    assert not unsafe_in(result.output), unsafe_in(result.output)


# --- loop, daemon and training output -------------------------------------------------------------------


@FAST
@given(text=outside_text)
def test_loop_and_training_renderers_print_outside_text_inert(text: str) -> None:
    from distill_es.cli.loop import loop_summary, loop_table, loops_table
    from distill_es.cli.training import lineage_text, runs_table
    from distill_es.domain.loop.views import LoopParams, LoopSessionRecord, LoopView
    from distill_es.domain.training.views import Lineage, TrainingRunView

    now = datetime.now(UTC)
    record = LoopSessionRecord.model_construct(
        session_id=text,
        iteration=1,
        status=text,
        note=text,
        error=text,
        before_score=None,
        after_score=None,
        best_score=None,
        cost_usd=None,
        improved=None,
    )
    params = LoopParams.model_construct(max_total_cost_usd=5.0)
    loop = LoopView.model_construct(
        id=text,
        status=text,
        sessions=[record],
        stop_reason=None,
        detail=text,
        best_score=None,
        total_cost_usd=0.0,
        started_at=now,
        params=params,
    )
    run = TrainingRunView.model_construct(
        run_id=text,
        session_id=text,
        edit_id=text,
        backend=text,
        state=text,
        attempts=1,
        verdict=text,
        deployable=None,
        reason_code=text,
        delta=None,
        summary=text,
    )
    spec = {
        "experiment_id": text,
        "backend": text,
        "training_mode": text,
        "target_model_family": text,
        "hardware_tier": text,
        "hyperparameters": {text: text},
        "config_fingerprint": text,
        "code_hash": text,
        "budget": {"max_wall_clock_minutes": 1.0, "max_train_tokens": 10},
    }
    entry = {"version": 1, "at": text, "type": text, "digest": text}
    lineage = Lineage.model_construct(
        run=run,
        spec=spec,
        trainer_command=[text],
        dataset={
            "rows": 1,
            "counts": {text: 1},
            "fingerprint": text,
            "path": text,
            "benchmark_task_ids": [text],
        },
        attempts=[{"attempt": 1, "started_at": text, "outcome": text}],
        failure={"reason_code": text, "message": text},
        dry_run={"message": text},
        checkpoint={"checkpoint_id": text, "adapter_format": text, "artifact_path": text},
        eval={"verdict": text, "reason": text},
        promotion={"deployable": False, "reason": text},
        events=[entry],
    )
    for renderable in (
        loop_table(loop),
        loop_summary(loop),
        loops_table([loop]),
        runs_table([run]),
        lineage_text(lineage),
    ):
        buffer = io.StringIO()
        SafeConsole(file=buffer, width=120).print(renderable)
        assert not unsafe_in(buffer.getvalue())


def test_log_lines_quoting_outside_errors_are_inert() -> None:
    import logging

    from distill_es.adapters.terminal_safe import InertFormatter

    record = logging.LogRecord(
        "distill_es.app.worker",
        logging.WARNING,
        __file__,
        1,
        "session %s interrupted: %s",
        ("s1", "server said \x1b]0;pwned\x07"),
        None,
    )
    line = InertFormatter("%(message)s").format(record)
    assert line == r"session s1 interrupted: server said \x1b]0;pwned\x07"


def test_the_safe_console_is_one_class_at_its_old_path_too() -> None:
    """Made on first use (commands printing JSON never import rich), once, and still importable from
    the module path earlier releases documented."""
    assert_fresh_python(
        "import sys, warnings",
        "warnings.simplefilter('ignore', DeprecationWarning)",
        "from distill_es.adapters import terminal_safe",
        "assert 'rich' not in sys.modules",
        "from distill_es.terminal_safe import SafeConsole",
        "assert SafeConsole is terminal_safe.SafeConsole and 'rich.console' in sys.modules",
        "from rich.console import Console",
        "assert SafeConsole.__name__ == 'SafeConsole' and issubclass(SafeConsole, Console)",
    )
