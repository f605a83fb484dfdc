"""The one Jinja2 environment: templates from the package, autoescape on for every template (HTML and
SVG alike), and the few number formats the pages share. Nothing is ever marked safe."""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from typing import Any

from jinja2 import ChainableUndefined, Environment, PackageLoader


def score(value: Any) -> str:
    return "—" if value is None else f"{float(value):.3f}"


def delta(value: Any) -> str:
    return "—" if value is None else f"{float(value):+.3f}"


def usd(value: Any) -> str:
    return "—" if value is None else f"${float(value):.4f}"


def short(sha: Any, n: int = 10) -> str:
    return str(sha or "")[:n] or "—"


@cache
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("distill_es.web", "templates"),
        autoescape=True,  # every template, whatever its extension
        undefined=ChainableUndefined,  # a field an older log lacks renders empty
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(score=score, delta=delta, usd=usd, short=short)
    return env


def stylesheet() -> str:
    """The package's stylesheet text (inlined by the self-contained report)."""
    return files("distill_es.web").joinpath("static/style.css").read_text(encoding="utf-8")


def render(template: str, **context: Any) -> str:
    return environment().get_template(template).render(**context)
