"""Commands imported when they run: the app's group knows its commands by name and import path.

`distill-es sessions` must not pay for the modules `run`, `doctor` or `dev-servers` need (the
teacher and student SDKs, GitPython, tomlkit, the demo): the group's `commands` is a mapping that
lists every command from a table of `name -> "module:attribute"` and imports a command's module only
when that command is looked up (to run it, or for its one-line help under `--help`). The attribute
is a command function (built as `app.command()` builds it) or a `typer.Typer` (mounted as
`app.add_typer` mounts it); `"module:function:CommandClass"` gives the function a command class of
the same module; `"module:factory()"` names a (cached) function returning a Typer on which a
`register(app, ...)` has put this command among others. A name mapped to None is a command
registered on the app the usual way; commands registered on the app and not in the table come
after the table's, in their order.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, MutableMapping
from typing import Any, ClassVar

import typer
from typer.core import TyperGroup
from typer.main import get_command_from_info, get_group_from_info
from typer.models import CommandInfo, TyperInfo


def build_command(name: str, path: str, *, markup: Any) -> Any:
    """The click command (or group) `path` names, as typer would have built it eagerly."""
    module_name, attribute, *cls = path.split(":")
    module = importlib.import_module(module_name)
    target = getattr(module, attribute.removesuffix("()"))
    if attribute.endswith("()"):  # a factory of a Typer that registers this command (among others)
        registered = target().registered_commands
        info = next(info for info in registered if (info.name or info.callback.__name__) == name)
        return get_command_from_info(info, pretty_exceptions_short=True, rich_markup_mode=markup)
    if isinstance(target, typer.Typer):
        return get_group_from_info(
            TyperInfo(target, name=name),
            pretty_exceptions_short=True,
            suggest_commands=True,
            rich_markup_mode=markup,
        )
    info = CommandInfo(name=name, cls=getattr(module, cls[0]) if cls else None, callback=target)
    return get_command_from_info(info, pretty_exceptions_short=True, rich_markup_mode=markup)


class LazyCommandMap(MutableMapping[str, Any]):
    """`name -> command`, building a lazy command on first lookup (once per process)."""

    def __init__(self, table: dict[str, str | None], built: dict[str, Any], markup: Any) -> None:
        self._table = table
        self._built = dict(built)
        self._markup = markup

    def _names(self) -> list[str]:
        return [name for name in self._table if name in self._built or self._table[name] is not None]

    def __getitem__(self, name: str) -> Any:
        if name not in self._built:
            path = self._table.get(name)
            if path is None:
                raise KeyError(name)
            self._built[name] = build_command(name, path, markup=self._markup)
        return self._built[name]

    def __setitem__(self, name: str, command: Any) -> None:
        self._built[name] = command

    def __delitem__(self, name: str) -> None:
        del self._built[name]

    def __iter__(self) -> Iterator[str]:
        named = self._names()
        yield from named
        yield from (name for name in self._built if name not in named)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __contains__(self, name: object) -> bool:
        return name in self._built or (isinstance(name, str) and self._table.get(name) is not None)


class LazyCommands(TyperGroup):
    """A typer group whose commands of `lazy` (a table, in `--help` order) are imported on first use."""

    lazy: ClassVar[dict[str, str | None]] = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commands = LazyCommandMap(self.lazy, self.commands, getattr(self, "rich_markup_mode", None))
