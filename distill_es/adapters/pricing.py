"""What a teacher call costs, in US dollars.

Prices are USD per million tokens, from Anthropic's published price list (platform.claude.com/docs,
"Pricing"). Prompt caching: a 5-minute cache write costs 1.25× the input rate, a cache read 0.1×.
Model ids match exactly or by the longest known prefix followed only by a date / version suffix, so
dated ids (`claude-sonnet-4-5-20250929`), Vertex ids (`claude-opus-4-1@20250805`), Bedrock ids
(`us.anthropic.claude-haiku-4-5-20251001-v1:0`) and `-latest` aliases find their family, while a
newer model (`claude-opus-4-7`) is not mistaken for `claude-opus-4`. An unknown model is priced at the
most expensive known rate and flagged (`ModelPrice.known is False`) so a caller can warn instead of
under-counting the budget.

A `[pricing]` table in distill_es.toml overrides or adds rows (`overrides_from`): its keys match by
the same rules and win over the hand table. `genai-prices` was evaluated as the source of this table
and not adopted: see docs/performance.md, "Teacher prices".
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from distill_es.adapters.teacher import token_count

_MILLION = 1_000_000
CACHE_WRITE_FACTOR = 1.25  # 5-minute cache write
CACHE_READ_FACTOR = 0.1


@dataclass(frozen=True)
class ModelPrice:
    """USD per million tokens for one model family."""

    model: str  # the table key that matched (or the unknown id itself)
    input: float
    output: float
    cache_write: float
    cache_read: float
    known: bool = True


def _price(model: str, input_usd: float, output_usd: float) -> ModelPrice:
    return ModelPrice(
        model=model,
        input=input_usd,
        output=output_usd,
        cache_write=round(input_usd * CACHE_WRITE_FACTOR, 6),
        cache_read=round(input_usd * CACHE_READ_FACTOR, 6),
    )


# Key: the model id without its date suffix. Input and output USD per million tokens.
PRICES: dict[str, ModelPrice] = {
    p.model: p
    for p in (
        _price("claude-opus-4-6", 5.0, 25.0),
        _price("claude-opus-4-5", 5.0, 25.0),
        _price("claude-opus-4-1", 15.0, 75.0),
        _price("claude-opus-4-0", 15.0, 75.0),
        _price("claude-opus-4", 15.0, 75.0),  # claude-opus-4-20250514
        _price("claude-sonnet-4-6", 3.0, 15.0),
        _price("claude-sonnet-4-5", 3.0, 15.0),
        _price("claude-sonnet-4-0", 3.0, 15.0),
        _price("claude-sonnet-4", 3.0, 15.0),  # claude-sonnet-4-20250514 and later 4.x
        _price("claude-3-7-sonnet", 3.0, 15.0),
        _price("claude-haiku-4-5", 1.0, 5.0),
        _price("claude-3-5-haiku", 0.8, 4.0),
    )
}

# What may follow a known id: a date (`-20250929`, `@20250805`), a Bedrock version, `-latest`.
_SUFFIX = re.compile(r"(?:[-@]\d{8})?(?:-v\d+(?::\d+)?)?(?:-latest)?")

_MOST_EXPENSIVE = max(PRICES.values(), key=lambda p: (p.output, p.input))


def _normalise(model: str) -> str:
    # Bedrock ids carry a region and vendor prefix: "us.anthropic.claude-…".
    model = model.strip()
    if "anthropic." in model:
        model = model.split("anthropic.", 1)[1]
    return model


Overrides = Mapping[str, ModelPrice]


def overrides_from(table: Mapping[str, Mapping[str, Any]] | None) -> dict[str, ModelPrice]:
    """`[pricing."<model>"] input, output[, cache_write, cache_read]` (USD per MTok, validated by the
    settings) as price rows; cache prices default to 1.25× and 0.1× the input price."""
    rows: dict[str, ModelPrice] = {}
    if not table:  # the usual case: no [pricing] table, nothing to build per call
        return rows
    for model, row in table.items():
        base = _price(_normalise(model), float(row["input"]), float(row["output"]))
        write, read = row.get("cache_write"), row.get("cache_read")
        rows[base.model] = ModelPrice(
            base.model,
            base.input,
            base.output,
            base.cache_write if write is None else float(write),
            base.cache_read if read is None else float(read),
        )
    return rows


def _lookup(name: str, table: Overrides) -> ModelPrice | None:
    if name in table:
        return table[name]
    matches = [key for key in table if name.startswith(key) and _SUFFIX.fullmatch(name[len(key) :])]
    return table[max(matches, key=len)] if matches else None


@functools.lru_cache(maxsize=256)  # the hand table never changes: one prefix scan per model id
def _known_price(name: str) -> ModelPrice | None:
    return _lookup(name, PRICES)


def price_for(model: str, overrides: Overrides | None = None) -> ModelPrice:
    """The price row for `model`: the `[pricing]` overrides, else the hand table (exact id, else the
    longest known prefix), else the dearest known rate, flagged `known=False`."""
    name = _normalise(model)
    found = (_lookup(name, overrides) if overrides else None) or _known_price(name)
    if found is not None:
        return found
    p = _MOST_EXPENSIVE
    return ModelPrice(model, p.input, p.output, p.cache_write, p.cache_read, known=False)


def _tokens(usage: Mapping[str, Any], key: str) -> int:
    # Checked here too: a negative or absurd count must never become a (negative) price.
    value = usage.get(key)
    return 0 if value is None else token_count(key, value)


def cost_of(model: str, usage: Mapping[str, Any], overrides: Overrides | None = None) -> float:
    """USD for one call. `usage` as the Messages API reports it; missing or None counts as 0.

    A count that is not an int in 0..MAX_TOKENS_PER_CALL raises `InvalidTeacherOutput`."""
    p = price_for(model, overrides)
    total = (
        _tokens(usage, "input_tokens") * p.input
        + _tokens(usage, "output_tokens") * p.output
        + _tokens(usage, "cache_creation_input_tokens") * p.cache_write
        + _tokens(usage, "cache_read_input_tokens") * p.cache_read
    )
    return total / _MILLION
