"""A workspace for an OpenJarvis agent (`distill-es init --openjarvis [DIR]`): the workspace reads
OpenJarvis's `traces.db` where it is (`[traces] source`), and starts from OpenJarvis's agent
configuration (`DIR/config.toml`) wherever it maps onto ours. docs/workspace.md has the table.

OpenJarvis is never written: its folder is only read, its database only ever opened read-only.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomlkit

from distill_es.config.paths import expand, resolve
from distill_es.config.settings import DEFAULT_SETTINGS_TOML
from distill_es.domain.errors import InvalidEdit, TracesSourceInvalid, TracesSourceNotFound, WorkspaceError
from distill_es.domain.layout import CONFIG_FILE, TRACES_DB, checked_agent
from distill_es.workspace.scaffold import DEFAULT_PROMPT, create_workspace
from distill_es.workspace.toml_config import load

DEFAULT_AGENT = "simple"  # OpenJarvis's own default agent
DEFAULT_MODEL = "qwen3.5:9b"  # ours, when OpenJarvis names none
# OpenJarvis engines that serve an OpenAI-compatible API under <host>/v1.
OPENAI_COMPATIBLE = ("ollama", "vllm", "sglang", "llamacpp", "lmstudio", "mlx", "exo", "lemonade")


def default_openjarvis_home() -> Path:
    """Where OpenJarvis keeps its files: $OPENJARVIS_HOME, else ~/.openjarvis (as OpenJarvis finds it)."""
    return expand(os.environ.get("OPENJARVIS_HOME") or "~/.openjarvis")


@dataclass(frozen=True)
class OpenJarvisImport:
    """What a new workspace takes from an OpenJarvis folder, and what it says about it."""

    folder: Path
    traces: Path
    agent: str
    model: str
    config_toml: str
    system_prompt: str
    settings_toml: str
    carried: list[str] = field(default_factory=list)  # one line per setting carried over
    notes: list[str] = field(default_factory=list)  # what the user should know


def _table(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    return value if isinstance(value, dict) else {}


def _tools(agent: dict[str, Any], tools: dict[str, Any]) -> list[str]:
    """`[agent] tools` (comma-separated, OpenJarvis's form) else `[tools] enabled` (a list)."""
    named = agent.get("tools")
    if isinstance(named, str) and named.strip():
        return [t.strip() for t in named.split(",") if t.strip()]
    enabled = tools.get("enabled")
    return [t for t in enabled if isinstance(t, str) and t] if isinstance(enabled, list) else []


def _prompt(agent: dict[str, Any], base: Path, carried: list[str]) -> str:
    inline = agent.get("system_prompt")
    if isinstance(inline, str) and inline.strip():
        carried.append("[agent] system_prompt -> agents/<agent>/system_prompt.md")
        return inline if inline.endswith("\n") else inline + "\n"
    path = agent.get("system_prompt_path")
    if isinstance(path, str) and path.strip():
        file = resolve(path, base)
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise WorkspaceError(f"{file}: the agent's system_prompt_path cannot be read ({exc})") from None
        carried.append(f"[agent] system_prompt_path ({file}) -> agents/<agent>/system_prompt.md")
        return text
    return DEFAULT_PROMPT


def _student_url(engine: dict[str, Any]) -> str | None:
    name = engine.get("default")
    host = _table(engine, name).get("host") if isinstance(name, str) else None
    if name not in OPENAI_COMPATIBLE or not isinstance(host, str) or not host.strip():
        return None
    host = host.strip().rstrip("/")
    return host if host.endswith("/v1") else host + "/v1"


def _config_toml(agent: str, cls: str, tools: list[str], params: dict[str, Any], model: str) -> str:
    doc = tomlkit.document()
    doc.add(tomlkit.comment("The student agent's configuration, imported from OpenJarvis. distill_es"))
    doc.add(tomlkit.comment("sessions edit this file, one git commit per edit."))
    doc.add(tomlkit.nl())
    agents = tomlkit.table(is_super_table=False)
    agents.add("default", agent)
    own = tomlkit.table()
    own.add("class", cls)
    own.add("tools", tools)
    for key, value in params.items():
        own.add(key, value)
    agents.add(agent, own)
    doc.add("agent", agents)
    intelligence = tomlkit.table()
    intelligence.add("default_model", model)
    doc.add("intelligence", intelligence)
    routing = tomlkit.table(is_super_table=True)
    routing.add("policy_map", tomlkit.table())
    doc.add("routing", routing)
    return tomlkit.dumps(doc)


def _models_toml(model: str, intelligence: dict[str, Any]) -> str:
    values = {k: intelligence[k] for k in ("temperature", "max_tokens") if k in intelligence}
    if not values:
        return ""
    lines = [f"\n[models.{json.dumps(model)}]"] + [f"{k} = {json.dumps(v)}" for k, v in values.items()]
    return "\n".join(lines) + "\n"


def _settings_toml(traces: Path, student_url: str | None) -> str:
    source = f"source = {json.dumps(str(traces))}  #"
    text = DEFAULT_SETTINGS_TOML.replace('# source = ""                    #', source, 1)
    if student_url:
        text = text.replace(
            '# base_url = "http://127.0.0.1:11434/v1"',
            f"base_url = {json.dumps(student_url)}  # OpenJarvis's engine;",
            1,
        )
    return text


SQLITE_HEADER = b"SQLite format 3\x00"  # the first bytes of every SQLite database


def _not_sqlite(path: Path) -> str:
    """Why `path` is not a SQLite database ("" when it is), told by its header, never its name."""
    try:
        with path.open("rb") as fh:
            head = fh.read(len(SQLITE_HEADER))
    except OSError as exc:
        return f"cannot read it: {exc.strerror or exc}"
    if head == SQLITE_HEADER:
        return ""
    return (
        "the file is empty" if not head else "not a SQLite database: it does not start with the SQLite header"
    )


def _config_text(path: Path) -> str:
    """OpenJarvis's config.toml as text; one that is a folder, unreadable or not UTF-8 is an error
    naming it (never read as "no config", never 'a bug')."""
    if not path.is_file():
        raise WorkspaceError(f"{path}: not a file, so not OpenJarvis's config")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise WorkspaceError(f"{path}: not UTF-8 text (byte {exc.start + 1})") from None
    except OSError as exc:
        raise WorkspaceError(f"{path}: cannot be read ({exc.strerror or exc})") from None


def read_openjarvis(folder: str | Path) -> OpenJarvisImport:
    """What a workspace takes from the OpenJarvis folder `folder` (`~`, `$VARS` expanded)."""
    folder = resolve(folder)
    if not folder.is_dir():
        raise WorkspaceError(f"{folder}: no OpenJarvis folder there")
    config_path = folder / CONFIG_FILE
    data = load(_config_text(config_path), str(config_path)) if config_path.exists() else {}
    carried: list[str] = []
    notes: list[str] = []
    if not data:
        notes.append(f"no {config_path}: the workspace starts from distill_es's default agent")
    agent_table, intelligence = _table(data, "agent"), _table(data, "intelligence")
    traces_table = _table(data, "traces")

    db_path = traces_table.get("db_path")
    traces = resolve(db_path, folder) if isinstance(db_path, str) and db_path.strip() else folder / TRACES_DB
    if traces.is_dir():
        raise TracesSourceInvalid(f"{traces}: a directory, not an OpenJarvis traces database")
    if not traces.is_file():
        raise TracesSourceNotFound(f"{traces}: OpenJarvis traces database not found (run your agent first)")
    problem = _not_sqlite(traces)
    if problem:
        raise TracesSourceInvalid(f"{traces}: not an OpenJarvis traces database ({problem})")
    if traces_table.get("enabled") is False:
        notes.append(
            f"OpenJarvis's {config_path} has [traces] enabled = false: set it to true so new "
            "interactions are recorded"
        )

    cls = agent_table.get("default_agent")
    cls = cls if isinstance(cls, str) and cls.strip() else DEFAULT_AGENT
    try:
        agent = checked_agent(cls)
    except InvalidEdit:
        agent = "assistant"
        notes.append(f"the agent {cls!r} is not a plain name: the workspace calls it {agent!r}")
    carried.append(f"[agent] default_agent = {cls!r} -> [agent] default, [agent.{agent}] class")
    tools = _tools(agent_table, _table(data, "tools"))
    if tools:
        carried.append(f"tools {', '.join(tools)} -> [agent.{agent}] tools")
    params: dict[str, Any] = {}
    max_turns = agent_table.get("max_turns")
    if isinstance(max_turns, int) and not isinstance(max_turns, bool):
        params["max_turns"] = max_turns
        carried.append(f"[agent] max_turns -> [agent.{agent}] max_turns")
    # Older OpenJarvis files keep temperature and max_tokens under [agent]; it reads them as [intelligence].
    intelligence = {**{k: agent_table[k] for k in ("temperature", "max_tokens") if k in agent_table},
                    **intelligence}  # fmt: skip
    model = intelligence.get("default_model")
    if isinstance(model, str) and model.strip():
        carried.append(f"[intelligence] default_model = {model!r} -> [intelligence] default_model")
    else:
        model = DEFAULT_MODEL
        notes.append(f"OpenJarvis names no default_model: the workspace uses {model!r} (see config.toml)")
    if "temperature" in intelligence or "max_tokens" in intelligence:
        carried.append(f"[intelligence] temperature, max_tokens -> [models.{json.dumps(model)}]")
    system_prompt = _prompt(agent_table, folder, carried)
    student_url = _student_url(_table(data, "engine"))
    if student_url:
        carried.append(f"[engine] {_table(data, 'engine').get('default')} host -> [student] base_url")
    carried.append(f"traces {traces} -> distill_es.toml [traces] source")
    config_toml = _config_toml(agent, cls, tools, params, model) + _models_toml(model, intelligence)
    return OpenJarvisImport(
        folder=folder,
        traces=traces,
        agent=agent,
        model=model,
        config_toml=config_toml,
        system_prompt=system_prompt,
        settings_toml=_settings_toml(traces, student_url),
        carried=carried,
        notes=notes,
    )


def create_openjarvis_workspace(home: Path, folder: str | Path) -> OpenJarvisImport:
    """A new workspace in `home` (which must not hold one) for the OpenJarvis agent in `folder`."""
    found = read_openjarvis(folder)
    load(found.config_toml, CONFIG_FILE)  # what we wrote must parse, before anything is created
    create_workspace(
        home,
        agent=found.agent,
        model=found.model,
        config_toml=found.config_toml,
        system_prompt=found.system_prompt,
        settings_toml=found.settings_toml,
        traces_file=False,
    )
    return found
