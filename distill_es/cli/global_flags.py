"""The root's flags after the command's name too: `distill-es run --quiet` as `distill-es --quiet run`.

`--quiet`/`-q`, `--verbose`/`-v` and `--debug` are the root command's options (cli/main.py); people
type them after the command as often as before it. Every command (of mounted groups too, and commands
added later) gets the same flags, hidden from its own help (the root's help lists them once); they set
the root's `Globals`, which is what every command reads. A command with an option of the same name or
short form keeps its own.
"""

from __future__ import annotations

import functools
from typing import Annotated, Any

import typer

from distill_es.cli.options import Globals

_MARK = "_distill_es_global_flags"


def _root_globals(ctx: typer.Context) -> Globals:
    root = ctx.find_root()
    if not isinstance(root.obj, Globals):
        root.obj = Globals()
    return root.obj


def _setter(attr: str) -> Any:
    def callback(ctx: typer.Context, value: bool) -> bool:
        if value:
            options = _root_globals(ctx)
            setattr(options, attr, True)
            if options.quiet and options.verbose:
                raise typer.BadParameter("choose one of --quiet and --verbose", param_hint="--quiet")
        return value

    return callback


def _flag_params() -> list[Any]:
    """The flags as typer builds options (its own types and help rendering), taken from a probe command."""
    probe = typer.Typer(add_completion=False)  # its options only: no completion options

    @probe.command()
    def flags(
        quiet: Annotated[bool, typer.Option("--quiet", "-q", hidden=True, callback=_setter("quiet"))] = False,
        verbose: Annotated[
            bool, typer.Option("--verbose", "-v", hidden=True, callback=_setter("verbose"))
        ] = False,
        debug: Annotated[bool, typer.Option("--debug", hidden=True, callback=_setter("debug"))] = False,
    ) -> None:
        """Only its options are used."""

    params = list(typer.main.get_command(probe).params)
    for param in params:
        param.expose_value = False  # the command's function never sees them: Globals holds them
    return params


@functools.cache
def _cached_flag_params() -> list[Any]:
    return _flag_params()


def add_global_flags_to(command: Any) -> None:
    """Give `command` (and its subcommands) the flags it does not have already; commands are built
    when first looked up (cli/lazy.py), so the root group calls this on each as it is found."""
    _add(command, _cached_flag_params())


def _add(command: Any, params: list[Any]) -> None:
    if getattr(command, _MARK, False):
        return
    setattr(command, _MARK, True)
    taken = {opt for p in command.params for opt in (*p.opts, *p.secondary_opts)}
    taken |= {p.name for p in command.params}
    for param in params:
        if param.name not in taken and not set(param.opts) & taken:
            command.params.append(param)
    for sub in getattr(command, "commands", {}).values():
        _add(sub, params)


ROOT_VALUE_OPTIONS = ("--home", "--store")  # the root's options that take a value (`--home DIR`)


def json_to_command(argv: list[str]) -> list[str]:
    """`distill-es --json sessions` as `distill-es sessions --json`: `--json` is every command's own
    option, and people put it before the command as they put --quiet there. Only a `--json` among the
    root's options (before the command's name) moves; it goes last, before any `--`."""
    kept: list[str] = []
    moved = False
    i = 0
    while i < len(argv) and argv[i].startswith("-") and argv[i] != "--":
        if argv[i] == "--json":
            moved = True
        else:
            kept.append(argv[i])
            if argv[i] in ROOT_VALUE_OPTIONS and i + 1 < len(argv):
                i += 1
                kept.append(argv[i])
        i += 1
    if not moved:
        return argv
    rest = argv[i:]
    end = rest.index("--") if "--" in rest else len(rest)
    return [*kept, *rest[:end], "--json", *rest[end:]]
