"""Teacher prices: a model without a known price is shown as such (the cost ledger's `known: false`,
`show`, the progress line), and a `[pricing]` table in distill_es.toml overrides or adds prices —
through the API and the CLI, with the real scripted Anthropic and student servers."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from distill_es.adapters.pricing import PRICES, cost_of, overrides_from, price_for
from distill_es.cli.main import app
from distill_es.cli.progress import describe_step
from distill_es.config.settings import Settings
from distill_es.domain.errors import SettingsError
from distill_es.domain.session.next_step import CallTeacher
from distill_es.domain.triggers import OnDemandTrigger
from tests.engine.conftest import World

UNKNOWN = "claude-opus-9"


def set_teacher(home: Path, model: str, pricing: str = "") -> None:
    path = home / "distill_es.toml"
    text = path.read_text().replace('model = "claude-opus-4-6"', f'model = "{model}"', 1)
    path.write_text(text + pricing)


def test_an_unknown_teacher_model_is_flagged_in_the_ledger_and_in_show(scripted_world: World) -> None:
    set_teacher(scripted_world.home, UNKNOWN)
    engine = scripted_world.engine()
    try:
        view = engine.run_session(OnDemandTrigger())
        ledger = engine.cost_ledger(view.id)
    finally:
        engine.close()
    assert ledger and {e["model"] for e in ledger} == {UNKNOWN}
    assert all(e["known"] is False for e in ledger)
    dearest = max(PRICES.values(), key=lambda p: p.output)
    assert ledger[0]["cost_usd"] == pytest.approx(cost_of(dearest.model, ledger[0]["usage"]))
    shown = CliRunner().invoke(app, ["--home", str(scripted_world.home), "show", view.id])
    assert shown.exit_code == 0, shown.output
    assert f"unknown price for {UNKNOWN}" in " ".join(shown.stdout.split())


def test_a_pricing_table_prices_the_model_and_the_session_records_it(scripted_world: World) -> None:
    table = f'\n[pricing."{UNKNOWN}"]\ninput = 2.0\noutput = 10.0\n'
    set_teacher(scripted_world.home, UNKNOWN, table)
    engine = scripted_world.engine()
    try:
        view = engine.run_session(OnDemandTrigger())
        ledger = engine.cost_ledger(view.id)
        recorded = engine.store.load(view.id).settings["pricing"]
    finally:
        engine.close()
    assert recorded == {UNKNOWN: {"input": 2.0, "output": 10.0, "cache_write": None, "cache_read": None}}
    assert all(e["known"] is True for e in ledger)
    usage = ledger[0]["usage"]
    expected = (
        usage.get("input_tokens", 0) * 2.0
        + usage.get("output_tokens", 0) * 10.0
        + (usage.get("cache_creation_input_tokens") or 0) * 2.5
        + (usage.get("cache_read_input_tokens") or 0) * 0.2
    ) / 1e6
    assert ledger[0]["cost_usd"] == pytest.approx(expected)
    shown = CliRunner().invoke(app, ["--home", str(scripted_world.home), "show", view.id])
    assert "unknown price" not in shown.stdout


def test_sessions_without_a_pricing_table_record_settings_as_before(scripted_world: World) -> None:
    engine = scripted_world.engine()
    try:
        sid = engine.start(OnDemandTrigger())
        assert "pricing" not in engine.store.load(sid).settings
        assert all(e["known"] for e in engine.cost_ledger(engine.run(sid).id))
    finally:
        engine.close()


def test_overrides_win_and_match_dated_ids() -> None:
    rows = overrides_from({"claude-sonnet-4-5": {"input": 1.0, "output": 2.0, "cache_read": 0.05}})
    price = price_for("claude-sonnet-4-5-20250929", rows)
    assert (price.input, price.output, price.cache_write, price.cache_read) == (1.0, 2.0, 1.25, 0.05)
    assert price_for("claude-sonnet-4-5-20250929").input == 3.0  # the hand table without overrides
    assert price_for(UNKNOWN).known is False and price_for(UNKNOWN, overrides_from({UNKNOWN: {
        "input": 1, "output": 1}})).known is True  # fmt: skip


@pytest.mark.parametrize(
    "table",
    [
        '[pricing."m"]\ninput = -1.0\noutput = 1.0\n',
        '[pricing."m"]\ninput = 1.0\n',
        '[pricing."m"]\ninput = 1.0\noutput = 1.0\ncache = 3\n',
        '[pricing."m"]\ninput = "cheap"\noutput = 1.0\n',
        '[pricing."m"]\ninput = nan\noutput = 1.0\n',
    ],
)
def test_a_bad_pricing_table_is_a_settings_error(tmp_path: Path, table: str) -> None:
    (tmp_path / "distill_es.toml").write_text(table)
    with pytest.raises(SettingsError, match="pricing"):
        Settings.load(tmp_path)


def test_the_progress_line_says_the_price_is_unknown(scripted_world: World) -> None:
    engine = scripted_world.engine()
    try:
        view = engine.get(engine.start(OnDemandTrigger()))
    finally:
        engine.close()
    step = CallTeacher(purpose="diagnose", call_key="diagnose/1")
    assert "unknown price for claude-opus-9" in describe_step(view, step, "claude-opus-9")
    assert "unknown price" not in describe_step(view, step)
