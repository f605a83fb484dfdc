from __future__ import annotations

import pytest

from distill_es.adapters.pricing import PRICES, cost_of, price_for


@pytest.mark.parametrize(
    ("model", "key", "input_usd", "output_usd"),
    [
        ("claude-opus-4-6", "claude-opus-4-6", 5.0, 25.0),
        ("claude-opus-4-5-20251101", "claude-opus-4-5", 5.0, 25.0),
        ("claude-opus-4-1-20250805", "claude-opus-4-1", 15.0, 75.0),
        ("claude-opus-4-20250514", "claude-opus-4", 15.0, 75.0),
        ("claude-opus-4-0", "claude-opus-4-0", 15.0, 75.0),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5", 3.0, 15.0),
        ("claude-sonnet-4-20250514", "claude-sonnet-4", 3.0, 15.0),
        ("claude-haiku-4-5", "claude-haiku-4-5", 1.0, 5.0),
        ("claude-haiku-4-5-20251001", "claude-haiku-4-5", 1.0, 5.0),
        ("claude-opus-4-1@20250805", "claude-opus-4-1", 15.0, 75.0),  # Vertex
        ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5", 3.0, 15.0),  # Bedrock
        ("claude-3-7-sonnet-latest", "claude-3-7-sonnet", 3.0, 15.0),
    ],
)
def test_model_ids_match_exactly_or_by_longest_prefix(model, key, input_usd, output_usd):
    price = price_for(model)
    assert (price.model, price.input, price.output, price.known) == (key, input_usd, output_usd, True)


def test_cache_rates_follow_the_input_rate():
    for price in PRICES.values():
        assert price.cache_write == pytest.approx(price.input * 1.25)
        assert price.cache_read == pytest.approx(price.input * 0.1)


@pytest.mark.parametrize("model", ["claude-opus-4-5x", "claude-opus-4-7", "claude-sonnet-4-5-preview"])
def test_only_date_and_version_suffixes_extend_a_known_id(model):
    # A newer model must not be silently priced as an older family.
    assert price_for(model).known is False


def test_unknown_model_is_flagged_and_priced_at_the_dearest_rate():
    price = price_for("gpt-9-ultra")
    dearest = max(p.output for p in PRICES.values())
    assert price.known is False
    assert price.model == "gpt-9-ultra"
    assert price.output == dearest and price.input == 15.0


def test_cost_of_counts_all_four_token_kinds():
    usage = {
        "input_tokens": 1_000_000,
        "output_tokens": 1_000_000,
        "cache_creation_input_tokens": 1_000_000,
        "cache_read_input_tokens": 1_000_000,
    }
    assert cost_of("claude-sonnet-4-5", usage) == pytest.approx(3 + 15 + 3.75 + 0.3)
    assert cost_of("claude-opus-4-6", usage) == pytest.approx(5 + 25 + 6.25 + 0.5)


def test_cost_of_treats_none_and_missing_as_zero():
    usage = {"input_tokens": 2000, "output_tokens": 100, "cache_creation_input_tokens": None}
    assert cost_of("claude-haiku-4-5", usage) == pytest.approx(2000 * 1 / 1e6 + 100 * 5 / 1e6)
    assert cost_of("claude-haiku-4-5", {}) == 0.0
