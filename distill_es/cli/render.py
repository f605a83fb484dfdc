"""Rich rendering for the `distill-es` command line: session tables, summaries, details and diffs
(the live progress line is cli/progress.py).

Nothing here decides anything; it only turns engine values (session views, timeline dicts, review
items, verify reports) into renderables. Keeping it apart keeps the command modules about commands.

Every string that came from outside (the teacher's ids, rationales, diffs and diagnosis; traces;
benchmark files; reviewers' notes; imported logs; error texts) goes through `terminal_safe.inert` here,
before layout, and into `Text` objects, never into markup.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from distill_es.adapters.terminal_safe import inert, safe_text

if TYPE_CHECKING:  # types only: importing the engine's modules here would slow every command's start
    from distill_es.domain.vocabulary import BenchmarkSnapshot, EditOutcome, LearningSession
    from distill_es.ports import BenchmarkTask
    from distill_es.store.verify import SessionReport

OUTCOME_STYLE = {
    "applied": "green",
    "rejected_by_gate": "red",
    "pending_review": "yellow",
    "rejected_by_user": "magenta",
    "rolled_back": "cyan",
    "skipped": "dim",
    "refused": "red",
    "invalid": "red",
    "apply_failed": "red",
}
STATUS_STYLE = {
    "completed": "green",
    "awaiting_review": "yellow",
    "failed": "red",
    "rolled_back": "cyan",
}


def _cell(value: RenderableType) -> RenderableType:
    """A table cell: strings as `Text`, so no console parses them as markup."""
    return safe_text(value) if isinstance(value, str) else value


def status_text(status: str) -> Text:
    return safe_text(status, STATUS_STYLE.get(status, "bold"))


def short_sha(sha: str | None) -> str:
    return (sha or "")[:10] or "—"


def _delta(value: float | None) -> str:
    return "—" if value is None else f"{value:+.3f}"


# --- edits -----------------------------------------------------------------------------------------


def _reason(outcome: EditOutcome, target: str) -> str:
    """Why the edit ended where it did, in a few words."""
    if outcome.error:
        return inert(outcome.error)
    if outcome.status == "applied":
        gain = outcome.cluster_deltas.get(target)
        return f"gate passed: {inert(target)} {gain:+.3f}" if gain is not None else "gate passed"
    if outcome.status == "pending_review":
        return f"waiting for a reviewer ({inert(outcome.risk_tier or 'review')} tier)"
    if outcome.status == "rolled_back":
        return "reverted by a rollback"
    return ""


EditRow = tuple[str, str, str, Text, str, str]  # edit, op, tier, outcome, delta, reason
WIDE_TABLE = 110  # below this many columns the reasons go under the table instead of beside it


def edit_rows(view: LearningSession) -> list[EditRow]:
    """One row per planned edit (and any outcome without a planned edit), then one per edit the plan
    refused (its id may repeat a planned one's: a duplicate id is one reason to refuse)."""
    planned = {e.id: e for e in view.plan.edits} if view.plan else {}
    outcomes = {o.edit_id: o for o in view.edit_outcomes if o.status != "refused"}
    rows: list[EditRow] = []
    for edit_id in list(planned) + [i for i in outcomes if i not in planned]:
        edit, outcome = planned.get(edit_id), outcomes.get(edit_id)
        op = edit.op.value if edit else "?"
        if outcome is None:  # planned but not decided yet (the session stopped part-way)
            tier = edit.risk_tier.value if edit else ""
            rows.append((inert(edit_id), op, tier, Text("in progress", style="dim"), "—", ""))
            continue
        tier = outcome.risk_tier.value if outcome.risk_tier else ""
        status = safe_text(outcome.status, OUTCOME_STYLE.get(outcome.status, ""))
        reason = _reason(outcome, edit.expected_improvement if edit else "")
        rows.append((inert(edit_id), op, tier, status, _delta(outcome.benchmark_delta), reason))
    for outcome in view.edit_outcomes:
        if outcome.status == "refused":
            status = safe_text(outcome.status, OUTCOME_STYLE["refused"])
            rows.append((inert(outcome.edit_id), "—", "", status, "—", _reason(outcome, "")))
    return rows


class EditsTable:
    """The edits table: id, op, tier, outcome, delta, reason. Decides its layout when drawn, since
    only then is the width known: narrow consoles get the reasons as notes under the table."""

    def __init__(self, view: LearningSession, title: str | None = "Edits") -> None:
        self.rows, self.title = edit_rows(view), title

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        wide = options.max_width >= WIDE_TABLE
        table = Table(title=self.title, title_justify="left")
        for name in ("edit", "op", "tier", "outcome", "delta"):
            table.add_column(name, no_wrap=True)  # short values: they never wrap
        if wide:
            table.add_column("reason", overflow="fold", min_width=16, ratio=1)
        for row in self.rows:
            table.add_row(*(_cell(value) for value in (row if wide else row[:5])))
        yield table
        if not wide:
            for edit_id, *_, reason in self.rows:
                if reason:
                    yield Text(f"{edit_id}: {reason}")


def edits_table(view: LearningSession, title: str | None = "Edits") -> EditsTable:
    return EditsTable(view, title)


def benchmark_line(view: LearningSession) -> Text | None:
    before, after = view.benchmark_before, view.benchmark_after
    if before is None:
        return None
    text = Text("benchmark: ")
    text.append(f"{before.overall_score:.3f}")
    if after is not None:
        text.append(" → ")
        text.append(f"{after.overall_score:.3f}", style="bold")
        text.append(f" ({after.overall_score - before.overall_score:+.3f})")
    text.append(f" over {before.task_count} tasks")
    return text


def teacher_cost(view: LearningSession, unpriced: list[str] | None = None) -> str:
    """`$0.0142`, and the models without a known price when some calls were counted at the dearest
    known rate (the cost ledger's `known: false`)."""
    cost = f"${view.teacher_cost_usd:.4f}"
    if unpriced:
        cost += f" (unknown price for {', '.join(unpriced)}: counted at the dearest known rate)"
    return cost


def unpriced_models(ledger: list[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(str(e["model"]) for e in ledger if e.get("known") is False))


def session_summary(view: LearningSession, unpriced: list[str] | None = None) -> Group:
    """The end-of-run summary: status line, cost and benchmark, edits table."""
    head = Text("session ")
    head.append(inert(view.id), style="bold")
    head.append("  ")
    head.append_text(status_text(view.status.value))
    facts = Text(f"teacher cost {inert(teacher_cost(view, unpriced))}")
    facts.append(f"  ·  {student_calls(view)}")
    if line := benchmark_line(view):
        facts.append("  ·  ")
        facts.append_text(line)
    parts: list[RenderableType] = [head, facts]
    if view.error and is_cancelled(view):  # done on purpose by a person: said as what it is, not an error
        parts.append(Text(inert(view.error), style="yellow"))
    elif view.error:
        parts.append(Text(f"error: {inert(view.error)}", style="red"))
    if view.plan is not None or view.edit_outcomes:
        parts.append(edits_table(view))
    return Group(*parts)


def is_cancelled(view: LearningSession) -> bool:
    """A session ended by `cancel` (its error reads `cancelled by WHO: WHY`, domain/session/state.py)."""
    return (view.error or "").startswith("cancelled by ")


def student_calls(view: LearningSession, label: bool = True) -> str:
    """Gate scoring spend: runs made vs runs a score-every-snapshot engine would have repeated."""
    counts = f"{view.student_calls_made} made, {view.student_calls_reused} reused"
    return f"student calls {counts}" if label else counts


def session_detail(view: LearningSession, unpriced: list[str] | None = None) -> Group:
    """`show`: everything a person wants about one session, diagnosis included."""
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold")
    facts.add_column()
    rows: list[tuple[str, RenderableType]] = [
        ("id", safe_text(view.id)),
        ("status", status_text(view.status.value)),
        ("version", str(view.version)),
        ("trigger", safe_text(f"{view.trigger.value} {view.trigger_metadata or ''}".strip())),
        ("autonomy", view.autonomy_mode.value),
        ("started", view.started_at.isoformat(timespec="seconds")),
        ("ended", view.ended_at.isoformat(timespec="seconds") if view.ended_at else "—"),
        ("teacher cost", safe_text(teacher_cost(view, unpriced))),
        ("student calls", student_calls(view, label=False)),
        ("git", f"{short_sha(view.git_checkpoint_pre)} → {short_sha(view.git_checkpoint_post)}"),
    ]
    if view.parent_session_id:
        rows.append(("parent", safe_text(view.parent_session_id)))
    if view.error:
        rows.append(("cancelled" if is_cancelled(view) else "error", safe_text(view.error, "red")))
    if view.interruption:
        rows.append(("interrupted", safe_text(f"{view.interruption}; resume it", "yellow")))
    for name, value in rows:
        facts.add_row(name, _cell(value))
    parts: list[RenderableType] = [facts]
    if line := benchmark_line(view):
        parts.append(line)
    if view.diagnosis_markdown:
        # No hyperlinks: a link's text must not hide where it points.
        from rich.markdown import Markdown  # markdown-it and pygments: only where shown

        diagnosis = Markdown(inert(view.diagnosis_markdown, multiline=True), hyperlinks=False)
        parts.append(Panel(diagnosis, title="diagnosis", title_align="left"))
    if view.plan is not None or view.edit_outcomes:
        parts.append(edits_table(view))
    return Group(*parts)


# --- lists -----------------------------------------------------------------------------------------


SHORT_OUTCOME = {
    "applied": "applied",
    "rejected_by_gate": "gate-rejected",
    "pending_review": "pending",
    "rejected_by_user": "user-rejected",
    "rolled_back": "rolled back",
    "skipped": "skipped",
    "refused": "refused",
    "invalid": "invalid",
    "apply_failed": "apply-failed",
}


def _edit_counts(view: LearningSession) -> str:
    counts: dict[str, int] = {}
    for outcome in view.edit_outcomes:
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
    return ", ".join(f"{n} {inert(SHORT_OUTCOME.get(s, s))}" for s, n in counts.items()) or "—"


def sessions_table(views: Sequence[LearningSession], waiting_at: datetime | None = None) -> Table:
    """`waiting_at` (the queue: `--status initiated`): a `waiting` column, each session's age then."""
    # Ids are shortened as git does: every command takes a unique prefix, and --json has them whole.
    table = Table(title=f"{len(views)} session(s), newest first", title_justify="left")
    for name in ("session", "status", "trigger", "started", *(["waiting"] if waiting_at else []), "cost"):
        table.add_column(name, no_wrap=True)
    table.add_column("edits", overflow="fold")
    for view in views:
        status = status_text(view.status.value)
        if view.interruption:  # resumable, waiting for an outside endpoint: say so in the list
            status.append(" (interrupted)", style="yellow")
        waiting = [duration(age_seconds(view, waiting_at))] if waiting_at else []
        table.add_row(
            safe_text(view.id[:8]),
            status,
            view.trigger.value,
            view.started_at.strftime("%Y-%m-%d %H:%M"),
            *waiting,
            f"${view.teacher_cost_usd:.4f}",
            safe_text(_edit_counts(view)),
        )
    return table


def age_seconds(view: LearningSession, now: datetime) -> float:
    """How long ago the session was recorded (0 for a clock that went back)."""
    return round(max(0.0, (now - view.started_at).total_seconds()), 1)


def duration(seconds: float) -> str:
    """3s, 4m 05s, 2h 10m, 3d 4h: a queue age at a glance."""
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m {whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h {whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d {whole % 86400 // 3600}h"


def history_lines(entries: Iterable[dict[str, Any]]) -> Text:
    """One line per event: version, time, who, what."""
    text = Text()
    for entry in entries:
        text.append(f"{inert(entry['version']):>4}  ", style="dim")
        text.append(f"{inert(entry['at'][:19]).replace('T', ' ')}  ")
        text.append(f"{inert(entry['who']):<8} ", style="bold")
        text.append(f"{inert(entry['what'])}\n")
    return text


def review_items(items: Sequence[dict[str, Any]]) -> Group:
    """Each pending edit with its rationale and a coloured diff preview."""
    from rich.syntax import Syntax  # pygments: only where a diff is shown

    parts: list[RenderableType] = []
    for item in items:
        head = Text()
        head.append(inert(item["edit_id"]), style="bold yellow")
        head.append(f"  session {inert(item['session_id'])}\n")
        head.append(f"{inert(item['op'])} on {inert(item['target'])}  ({inert(item['risk_tier'])} tier, ")
        head.append(f"for cluster {inert(item['target_cluster'])})\n")
        head.append(inert(item.get("rationale") or "", multiline=True), style="italic")
        preview = inert(item.get("preview") or "(no preview)", multiline=True)
        parts.append(
            Panel(Group(head, Syntax(preview, "diff", theme="ansi_dark", word_wrap=True)), expand=True)
        )
    return Group(*parts)


# Edits that never reached the workspace or a gate: refused by the plan, or failing their check or apply.
UNWORKED = ("refused", "invalid", "apply_failed")


def unworked_edits(views: Iterable[LearningSession]) -> Text | None:
    """One line per edit of these sessions that never reached a gate, with its reason; None if none."""
    text = Text()
    for view in views:
        for outcome in view.edit_outcomes:
            if outcome.status in UNWORKED:
                text.append(f"session {inert(view.id[:8])}: edit {inert(outcome.edit_id)} ")
                text.append(SHORT_OUTCOME[outcome.status], style=OUTCOME_STYLE[outcome.status])
                text.append(f" ({inert(outcome.error or 'no reason recorded')})\n")
    return text if text.plain else None


def verify_table(reports: Sequence[SessionReport]) -> Table:
    damaged = sum(1 for r in reports if not r.ok)
    table = Table(title=f"{len(reports)} session(s) verified, {damaged} damaged", title_justify="left")
    for name in ("session", "events", "ok", "position", "kind"):
        table.add_column(name, no_wrap=True)
    table.add_column("detail", overflow="fold")
    for report in reports:
        if report.ok:
            ok = Text("ok", style="green")
            table.add_row(safe_text(report.session_id), str(report.events), ok, "", "", "")
        for damage in report.damage:
            table.add_row(
                safe_text(damage.session_id),
                str(report.events),
                Text("DAMAGED", style="bold red"),
                str(damage.position),
                safe_text(damage.kind),
                safe_text(damage.detail),
            )
    return table


def benchmark_view(
    tasks: Sequence[BenchmarkTask],
    task_clusters: dict[str, list[str]],
    session_id: str | None,
    before: BenchmarkSnapshot | None,
    after: BenchmarkSnapshot | None,
) -> Group:
    table = Table(title=f"{len(tasks)} benchmark task(s)", title_justify="left")
    for name in ("task", "category", "class", "clusters"):
        table.add_column(name, no_wrap=True)
    table.add_column("query", overflow="fold")
    for task in tasks:
        table.add_row(
            safe_text(task.task_id),
            safe_text(task.category or ""),
            safe_text(task.query_class or ""),
            safe_text(", ".join(task_clusters.get(task.task_id, []))),
            safe_text(task.query),
        )
    parts: list[RenderableType] = [table]
    if session_id is None or before is None:
        parts.append(Text("no session has scored the benchmark yet", style="dim"))
        return Group(*parts)
    caption = safe_text(f"measured by session {session_id}")
    scores = Table(title="latest cluster scores", title_justify="left", caption=caption)
    for name in ("cluster", "before", "after", "change"):
        scores.add_column(name, no_wrap=True)
    clusters = list(before.cluster_scores) + [
        c for c in (after.cluster_scores if after else {}) if c not in before.cluster_scores
    ]
    for cluster in [*clusters, "overall"]:
        b = before.overall_score if cluster == "overall" else before.cluster_scores.get(cluster)
        a = None
        if after is not None:
            a = after.overall_score if cluster == "overall" else after.cluster_scores.get(cluster)
        change = _delta(a - b) if a is not None and b is not None else "—"
        scores.add_row(safe_text(cluster), score(b), score(a), change)
    parts.append(scores)
    return Group(*parts)


def score(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"
