"""Format-preserving edits of `config.toml` and `tools/descriptions.toml` (tomlkit).

The reference edited these files as text (spec search §11.9): bare strings, `[, "x"]` arrays, prefix
key matches, file-wide searches and dotted model names read as nested tables. Here every edit goes
through a TOML parser, keys are matched exactly in the one table they belong to, values are typed,
and the result is checked with `tomllib`: the new file must parse and must equal the old file plus the
intended change, or nothing is returned (so nothing gets written).

Every function takes the file's text and returns the new text (`text` unchanged means the edit is a
no-op); `source` names the file in error messages. Corrupt input raises `WorkspaceError`, an edit
that cannot be made raises `InvalidEdit`.
"""

from __future__ import annotations

import copy
import math
import tomllib
from collections.abc import MutableMapping, Sequence
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.items import Array, InlineTable
from tomlkit.toml_document import TOMLDocument

from distill_es.domain.errors import InvalidEdit, WorkspaceFileInvalid
from distill_es.workspace.files import read_inside

CONFIG = "config.toml"
DESCRIPTIONS = "tools/descriptions.toml"

# Params with an op of their own (and a stricter risk tier): `set_agent_param` must not bypass it.
RESERVED_AGENT_PARAMS = {
    "class": "set_agent_class",
    "tools": "add_tool_to_agent / remove_tool_from_agent",
}

_INT64 = (-(2**63), 2**63 - 1)
Scalar = str | bool | int | float
Value = Scalar | list[Scalar]


# --- reading ------------------------------------------------------------------------------------


def load(text: str, source: str) -> dict[str, Any]:
    """The file as plain data (`tomllib`); `WorkspaceError` names the file and the parse error."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise WorkspaceFileInvalid(f"{source} is not valid TOML: {exc}") from None


def read_workspace_toml(root: Path, relative: str) -> dict[str, Any]:
    """A workspace TOML file as plain data ({} when absent), read only inside the workspace; a file
    that does not parse is a `WorkspaceError` naming it and the line."""
    text = read_inside(root, relative)
    return {} if text is None else load(text, str(Path(root) / relative))


def read_config(root: Path) -> dict[str, Any]:
    """`<root>/config.toml` as plain data ({} when absent)."""
    return read_workspace_toml(root, CONFIG)


def _parse(text: str, source: str) -> TOMLDocument:
    load(text, source)  # tomllib is the strict judge; tomlkit accepts a few things it refuses
    try:
        return tomlkit.parse(text)
    except Exception as exc:  # tomlkit raises several unrelated exception types
        raise WorkspaceFileInvalid(f"{source} is not valid TOML: {exc}") from None


def lookup(data: dict[str, Any], *keys: str) -> Any:
    """The value at `keys` in parsed data, or None when any key is missing or not a table."""
    node: Any = data
    for key in keys:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def agent_names(text: str, source: str = CONFIG) -> list[str]:
    """Agents that have an `[agent.<name>]` table."""
    agents = lookup(load(text, source), "agent")
    if not isinstance(agents, dict):
        return []
    return [name for name, value in agents.items() if isinstance(value, dict)]


def agent_tools(text: str, source: str = CONFIG) -> dict[str, list[str]]:
    """Each agent's `tools` list (string entries only)."""
    data = load(text, source)
    result: dict[str, list[str]] = {}
    for name in agent_names(text, source):
        tools = lookup(data, "agent", name, "tools")
        if isinstance(tools, list):
            result[name] = [tool for tool in tools if isinstance(tool, str)]
    return result


def tool_sections(text: str, source: str = DESCRIPTIONS) -> list[str]:
    """Tools that have a `[<tool>]` table in the descriptions file."""
    return [name for name, value in load(text, source).items() if isinstance(value, dict)]


# --- edits ------------------------------------------------------------------------------------


def set_query_class_model(text: str, query_class: str, model: str, source: str = CONFIG) -> str:
    """`[routing.policy_map] <query_class> = "<model>"`."""
    return _set(text, source, ("routing", "policy_map"), query_class, model)


def set_model_param(text: str, model: str, param: str, value: Value, source: str = CONFIG) -> str:
    """`[models."<model>"] <param> = value`; the model name is one quoted key, never nested tables."""
    return _set(text, source, ("models", model), param, value)


def set_agent_class(text: str, agent: str, new_class: str, source: str = CONFIG) -> str:
    """`[agent.<agent>] class = "<new_class>"`; the agent's table must exist."""
    return _set(text, source, ("agent", agent), "class", new_class, create=False)


def set_agent_param(text: str, agent: str, param: str, value: Value, source: str = CONFIG) -> str:
    """`[agent.<agent>] <param> = value`; the agent's table must exist."""
    if param in RESERVED_AGENT_PARAMS:
        raise InvalidEdit(
            f"agent param {param!r} has its own op ({RESERVED_AGENT_PARAMS[param]}); "
            "set_agent_param does not change it"
        )
    return _set(text, source, ("agent", agent), param, value, create=False)


def add_agent_tool(text: str, agent: str, tool: str, source: str = CONFIG) -> str:
    """Append `tool` to `[agent.<agent>] tools` (created if missing); exact names, no duplicates."""
    before = load(text, source)
    current = _tools_of(before, agent, source)
    if tool in current:
        raise InvalidEdit(f"tool {tool!r} is already in [agent.{agent}] tools {current}")
    doc = _parse(text, source)
    table = _descend(doc, ("agent", agent), source, create=False)
    tools = table.get("tools")
    if tools is None:
        table["tools"] = tomlkit.array()
        tools = table["tools"]
    tools.append(tool)
    return _checked(doc, before, source, ("agent", agent, "tools"), [*current, tool])


def remove_agent_tool(text: str, agent: str, tool: str, source: str = CONFIG) -> str:
    """Remove every entry equal to `tool` from `[agent.<agent>] tools`; it must be there."""
    before = load(text, source)
    current = _tools_of(before, agent, source)
    if tool not in current:
        raise InvalidEdit(f"tool {tool!r} is not in [agent.{agent}] tools {current}; nothing to remove")
    doc = _parse(text, source)
    tools = _descend(doc, ("agent", agent), source, create=False)["tools"]
    for index in reversed(range(len(tools))):
        if tools[index] == tool:
            del tools[index]
    remaining = [item for item in lookup(before, "agent", agent, "tools") if item != tool]
    return _checked(doc, before, source, ("agent", agent, "tools"), remaining)


def set_tool_description(text: str, tool: str, description: str, source: str = DESCRIPTIONS) -> str:
    """`[<tool>] description = "..."` (the table is created if missing)."""
    return _set(text, source, (tool,), "description", description)


# --- machinery ----------------------------------------------------------------------------------


def _tools_of(data: dict[str, Any], agent: str, source: str) -> list[Any]:
    _require_table(data, ("agent", agent), source)
    tools = lookup(data, "agent", agent, "tools")
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise InvalidEdit(f"{source}: [agent.{agent}] tools is {_kind(tools)}, not an array")
    return tools


def _set(
    text: str, source: str, table_keys: Sequence[str], key: str, value: Value, *, create: bool = True
) -> str:
    _check_value(value, f"{_dotted([*table_keys, key])}")
    before = load(text, source)
    if not create:
        _require_table(before, table_keys, source)
    old = lookup(before, *table_keys, key)
    if old is not None:
        if _same(old, value):
            return text  # already so: a no-op, the caller decides whether that is an error
        if _kind(old) != _kind(value):
            raise InvalidEdit(
                f"{source}: {_dotted([*table_keys, key])} is {_kind(old)} ({old!r}); "
                f"refusing to change it to {_kind(value)} ({value!r})"
            )
    doc = _parse(text, source)
    table = _descend(doc, table_keys, source, create=create)
    table[key] = tomlkit.item(value)
    return _checked(doc, before, source, (*table_keys, key), value)


def _checked(doc: TOMLDocument, before: dict[str, Any], source: str, path: Sequence[str], value: Any) -> str:
    """The new text, once `tomllib` reads it back as `before` with only `path` set to `value`."""
    new_text = tomlkit.dumps(doc)
    try:
        after = tomllib.loads(new_text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidEdit(f"{source}: the edit would produce invalid TOML ({exc}); nothing written") from None
    expected = copy.deepcopy(before)
    node = expected
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
    if after != expected:
        raise InvalidEdit(
            f"{source}: setting {_dotted(path)} would not read back as intended (the file's layout "
            "defeats a safe edit); nothing written"
        )
    return new_text


def _descend(doc: TOMLDocument, keys: Sequence[str], source: str, *, create: bool) -> Any:
    node: Any = doc
    for depth, key in enumerate(keys, start=1):
        child = node.get(key)
        if child is None:
            if not create:
                raise InvalidEdit(f"{source} has no [{_dotted(keys[:depth])}] table")
            if isinstance(node, InlineTable):
                child = tomlkit.inline_table()
            else:
                # Intermediate tables are "super tables": no empty `[models]` header is written.
                child = tomlkit.table(is_super_table=depth < len(keys))
            node[key] = child
            child = node[key]
        elif not isinstance(child, MutableMapping):
            raise InvalidEdit(f"{source}: {_dotted(keys[:depth])} is {_kind(child)}, not a table")
        node = child
    return node


def _require_table(data: dict[str, Any], keys: Sequence[str], source: str) -> None:
    for depth in range(1, len(keys) + 1):
        value = lookup(data, *keys[:depth])
        if value is None:
            raise InvalidEdit(f"{source} has no [{_dotted(keys[:depth])}] table")
        if not isinstance(value, dict):
            raise InvalidEdit(f"{source}: {_dotted(keys[:depth])} is {_kind(value)}, not a table")


def _check_value(value: Any, where: str) -> None:
    items = value if isinstance(value, list) else [value]
    for item in items:
        if isinstance(item, list | dict):
            raise InvalidEdit(f"{where}: nested arrays and tables are not allowed as values")
        if isinstance(item, float) and not math.isfinite(item):
            raise InvalidEdit(f"{where}: {item!r} is not a finite number")
        if isinstance(item, int) and not isinstance(item, bool) and not _INT64[0] <= item <= _INT64[1]:
            raise InvalidEdit(f"{where}: {item} does not fit a TOML (64-bit) integer")
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise InvalidEdit(f"{where}: the text contains characters UTF-8 cannot encode") from None


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | Array):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return f"a {type(value).__name__}"


def _same(a: Any, b: Any) -> bool:
    """Equal with the same types (`True == 1` and `1 == 1.0` in Python, not in TOML)."""
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def _dotted(keys: Sequence[str]) -> str:
    """Keys as TOML writes them: bare when possible, quoted otherwise (`models."qwen3.5:9b"`)."""
    return ".".join(tomlkit.key(key).as_string() for key in keys)
