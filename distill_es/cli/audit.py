"""Audit commands over recorded sessions: `regate` (what-if re-gating) and `explain` (an edit's lineage).

Both are read commands: they open the store read only, build no teacher or student, call no model and
record nothing. The logic is `app.audit`'s; this module parses options and renders (docs/audit.md).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from distill_es.adapters.terminal_safe import inert, safe_text
from distill_es.cli.console import out, print_json
from distill_es.cli.engines import read_only_engine, resolve_home, resolve_session
from distill_es.cli.options import HomeOption, JsonOption, Number

# A what-if ε or minimum improvement: a finite number ≥ 0 (NaN and ∞ decide nothing; -0 is 0; no `1_0`).
_policy_value = Number(0.0)


MaxRegressionOption = Annotated[
    float | None,
    typer.Option("--max-regression", metavar="E", parser=_policy_value, show_default=False,
                 help="What-if ε: the most any other cluster may drop. Default: each session's own."),
]  # fmt: skip
MinImprovementOption = Annotated[
    float | None,
    typer.Option("--min-improvement", metavar="M", parser=_policy_value, show_default=False,
                 help="What-if minimum improvement of the target cluster. Default: each session's own."),
]  # fmt: skip


def regate(
    ctx: typer.Context,
    session: Annotated[
        str | None,
        typer.Argument(metavar="SESSION", show_default=False,
                       help="A session id or unique prefix (or --all)."),
    ] = None,
    all_sessions: Annotated[
        bool, typer.Option("--all", help="Every session of the workspace that has gates.")
    ] = False,
    max_regression: MaxRegressionOption = None,
    min_improvement: MinImprovementOption = None,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:  # fmt: skip
    """What-if: decide every recorded gate again under another policy, from the recorded scores.

    Lists the verdicts that would flip, with per-cluster before/after. Zero model calls: it runs with
    the teacher and student down; it records nothing and writes no file. See docs/audit.md for what a
    what-if can and cannot answer.
    """
    if (session is None) == (not all_sessions):
        raise typer.BadParameter("give a SESSION or --all (one of them)", param_hint="SESSION")
    path = resolve_home(ctx, home)
    with read_only_engine(ctx, path) as engine:  # mode=ro; creates no file (docs/audit.md)
        sid = resolve_session(engine, session) if session is not None else None
        report = engine.regate(sid, max_regression=max_regression, min_improvement=min_improvement)
    if as_json:
        print_json(report.model_dump(mode="json"))
    else:
        out().print(regate_view(report))


def explain(
    ctx: typer.Context,
    session: Annotated[str, typer.Argument(metavar="SESSION", show_default=False,
                                           help="A session id, or a unique prefix of one.")],
    edit: Annotated[str, typer.Argument(metavar="EDIT", show_default=False, help="The edit id.")],
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:  # fmt: skip
    """The lineage of one edit, each link with the event versions it comes from.

    Traces cited → failure cluster → the teacher call that proposed it → the edit (rationale, payload,
    diff) → tier and route → validation → commit and trailers → gate → reviewer → revert or rollback.
    A link that does not apply says so.
    """
    path = resolve_home(ctx, home)
    with read_only_engine(ctx, path) as engine:  # mode=ro; creates no file (docs/audit.md)
        lineage = engine.explain(resolve_session(engine, session), edit)
    if as_json:
        print_json(lineage.model_dump(mode="json"))
    else:
        out().print(lineage_view(lineage))


# --- rendering -----------------------------------------------------------------------------------


def _score(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def _delta(value: float | None) -> str:
    return "—" if value is None else f"{value:+.3f}"


def _verdict(accepted: bool | None) -> Text:
    if accepted is None:
        return Text("—", style="dim")
    return Text("accepted", style="green") if accepted else Text("rejected", style="red")


def _clusters_cell(gate: Any) -> Text:
    lines = [
        f"{'*' if c.target else ' '}{inert(c.cluster_id)} "
        f"{_score(c.before)}→{_score(c.after)} ({_delta(c.delta)})"
        for c in gate.clusters
    ]
    return Text("\n".join(lines))


def regate_view(report: Any) -> RenderableType:
    parts: list[RenderableType] = []
    asked = (
        f"ε={'recorded' if report.max_regression is None else report.max_regression}, "
        f"min improvement={'recorded' if report.min_improvement is None else report.min_improvement}"
    )
    parts.append(
        Text(
            f"what-if {asked}: {report.gates} gate(s), {report.redecided} re-decided, "
            f"{report.flips} would flip",
            style="bold",
        )
    )
    for session in report.sessions:
        policy, recorded = session.policy, session.recorded_policy
        table = Table(
            title=f"session {session.session_id} ({session.status}): "
            f"ε {recorded.max_regression} → {policy.max_regression}, "
            f"min improvement {recorded.min_improvement} → {policy.min_improvement}",
            title_justify="left",
        )
        for column in ("v", "edit", "recorded", "what-if", "clusters (*target) before→after"):
            table.add_column(column)
        for gate in session.gates:
            whatif: Text = (
                _verdict(gate.whatif_accepted)
                if gate.redecidable
                else safe_text(f"cannot re-decide: {gate.why_not}", "yellow")
            )
            if gate.flipped:
                whatif = Text.assemble(whatif, Text(" FLIPS", style="bold yellow"))
            table.add_row(
                str(gate.version),
                safe_text(gate.edit_id),
                _verdict(gate.recorded_accepted),
                whatif,
                _clusters_cell(gate),
            )
        if not session.gates:
            table.add_row("", Text("no gates recorded", style="dim"), "", "", "")
        parts.append(table)
        for gate in session.gates:
            for caveat in gate.caveats:
                parts.append(safe_text(f"  {gate.edit_id}: {caveat}", "dim"))
    for skipped in report.skipped_sessions:
        parts.append(safe_text(f"skipped {skipped}", "bold red"))
    if not report.sessions and not report.skipped_sessions:
        parts.append(Text("no session of this workspace has a recorded gate", style="dim"))
    parts.append(
        Text("what a what-if cannot answer: see docs/audit.md (`--json` lists `limits`)", style="dim")
    )
    return Group(*parts)


def _versions(link: Any) -> str:
    return f" (v{', v'.join(str(v) for v in link.versions)})" if link.versions else ""


def _header(number: int, title: str, link: Any) -> Text:
    style = "bold" if link.applies else "bold dim"
    return Text.assemble(Text(f"{number}. {title}", style=style), Text(_versions(link), style="dim"))


def _line(label: str, value: Any, *, multiline: bool = False) -> Text:
    if not label:
        return Text.assemble(Text("   "), safe_text(value, multiline=multiline))
    return Text.assemble(Text(f"   {label}: ", style="dim"), safe_text(value, multiline=multiline))


def lineage_view(lineage: Any) -> RenderableType:
    parts: list[RenderableType] = [
        Text.assemble(
            Text(f"edit {inert(lineage.edit_id)}", style="bold"),
            Text(f" of session {lineage.session_id}: {lineage.status or 'on its way'}"),
            Text(f" (as of v{lineage.session_version})", style="dim"),
        )
    ]
    titles = {
        "traces": "traces cited", "cluster": "failure cluster", "teacher_call": "teacher call",
        "edit": "the edit", "routing": "tier and route", "validation": "validation", "commit": "commit",
        "gate": "gate", "review": "reviewer", "undo": "revert or rollback",
    }  # fmt: skip
    for number, name in enumerate(lineage.LINKS, start=1):
        link = getattr(lineage, name)
        parts.append(_header(number, titles[name], link))
        parts.append(_line("", link.note or ("applies" if link.applies else "does not apply")))
        if link.applies:
            parts.extend(_details(name, link))
    return Group(*parts)


def _details(name: str, link: Any) -> list[RenderableType]:
    lines: list[RenderableType] = []
    if name == "traces":
        for t in link.traces:
            where = f"{t.source} v{t.version}" if t.version else t.source or "not found"
            lines.append(_line(f"{t.trace_id} ({', '.join(t.cited_by)}; {where})", t.excerpt, multiline=True))
    elif name == "cluster":
        lines.append(_line("rates", f"student fails {_score(link.student_failure_rate)}, "
                           f"teacher succeeds {_score(link.teacher_success_rate)}"))  # fmt: skip
        lines.append(_line("description", link.description, multiline=True))
        lines.append(_line("skill gap", link.skill_gap, multiline=True))
    elif name == "teacher_call":
        lines.append(
            _line("tokens", f"{link.input_tokens} in / {link.output_tokens} out, ${link.cost_usd:.4f}")
        )
        lines.append(_line("request", link.request_digest))
    elif name == "edit":
        lines.append(_line("rationale", link.rationale, multiline=True))
        lines.append(_line("payload", _compact(link.payload), multiline=True))
        if link.diff:
            lines.append(_line(f"diff ({link.diff_source})", "\n" + link.diff, multiline=True))
    elif name == "routing":
        lines.append(_line("why", link.why))
    elif name == "validation":
        lines.append(_line("reason", link.reason))
    elif name == "commit":
        lines.append(_line("commit", f"{link.pre_sha} → {link.commit_sha}"))
        lines.append(_line("files", ", ".join(link.changed_files)))
        trailers = "; ".join(f"{k}: {', '.join(v)}" for k, v in link.trailers.items())
        lines.append(_line("trailers", trailers or "not found in the workspace's git history"))
    elif name == "gate":
        policy = link.policy
        lines.append(_line("tasks", f"{len(link.task_ids)} (seed {link.seed})"))
        if policy is not None:
            lines.append(
                _line("policy", f"ε={policy.max_regression}, min improvement={policy.min_improvement}")
            )
        lines.append(_line("overall", f"{_score(link.before_overall)} → {_score(link.after_overall)}"))
        for c in link.clusters:
            mark = " (target)" if c.target else ""
            lines.append(
                _line(c.cluster_id + mark, f"{_score(c.before)} → {_score(c.after)} ({_delta(c.delta)})")
            )
        lines.append(_line("reason", link.reason))
    elif name == "review":
        if link.reviewer:
            lines.append(
                _line(link.reviewer, f"{link.decision} at {link.at}: {link.comment}", multiline=True)
            )
    elif name == "undo":
        lines.append(_line(link.kind or "", f"{link.revert_sha} at {link.at}"))
    return lines


def _compact(payload: dict[str, Any]) -> str:
    import json

    text = json.dumps(payload, ensure_ascii=False, indent=1)
    return text if len(text) <= 4000 else text[:3999] + "…"
