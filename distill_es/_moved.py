"""Module paths that earlier releases documented, and where each module lives now.

The restructuring into layers (docs/architecture.md) moved modules that embedders were told to
import (`distill_es.loop`, `distill_es.training.service`, ...). Rather than keep a shim file per old
path in the layered tree, one import hook serves them all from this table: importing an old path
gives the very module object of its new home (so monkeypatching either name patches both), with a
`DeprecationWarning` naming the new path. The hook is consulted first, so an old name inside a moved
package (`distill_es.training.events`) never loads a second copy of the module from its new folder;
no name in the table is a module of its own (a test checks).
"""

from __future__ import annotations

import importlib
import importlib.machinery
import sys
import warnings
from types import ModuleType

_TRAINING_DOMAIN = ("events", "lifecycle", "run", "steps", "spec", "evaluation", "reasons", "errors", "views")

MOVED: dict[str, str] = {
    "distill_es.engine": "distill_es.api",
    "distill_es.settings": "distill_es.config.settings",
    "distill_es.trigger_settings": "distill_es.config.trigger_settings",
    "distill_es.triggers": "distill_es.domain.triggers",
    "distill_es.loop": "distill_es.app.loop",
    "distill_es.daemon": "distill_es.app.daemon",
    "distill_es.transfer": "distill_es.app.transfer",
    "distill_es.terminal_safe": "distill_es.adapters.terminal_safe",
    "distill_es.domain.events": "distill_es.domain.session.events",
    "distill_es.domain.lifecycle": "distill_es.domain.session.lifecycle",
    "distill_es.domain.next_step": "distill_es.domain.session.next_step",
    "distill_es.adapters.scrub": "distill_es.domain.scrub",
    "distill_es.store.anchors": "distill_es.domain.anchors",
    "distill_es.training": "distill_es.domain.training",
    "distill_es.training.service": "distill_es.app.training.service",
    "distill_es.training.dataset": "distill_es.app.training.dataset",
    "distill_es.training.trainer": "distill_es.adapters.trainer",
    **{f"distill_es.training.{name}": f"distill_es.domain.training.{name}" for name in _TRAINING_DOMAIN},
}


class _MovedModules:
    """Finds an old path in `MOVED` and loads it as the module at its new path.

    A finder and loader by protocol (`find_spec`, `create_module`, `exec_module`), not by subclassing
    `importlib.abc`: importing that costs every `distill-es` command ~10 ms (importlib.resources)."""

    def __init__(self) -> None:
        # The real spec of each module being aliased, by its real name, between create and exec: the
        # import system stamps the alias spec on the module in between. Keyed, so aliases being
        # imported at once (nested, or from two threads) never restore each other's spec.
        self._real_specs: dict[str, importlib.machinery.ModuleSpec | None] = {}

    def find_spec(
        self, fullname: str, path: object, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, self, is_package=fullname == "distill_es.training")

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        new = MOVED[spec.name]
        warnings.warn(f"{spec.name} moved to {new}; import it from there", DeprecationWarning, stacklevel=2)
        module = importlib.import_module(new)
        self._real_specs[module.__name__] = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        # The module stays what it is: only a second name points at it.
        module.__spec__ = self._real_specs.pop(module.__name__)


def install() -> None:
    """Serve the old paths (once per process)."""
    if not any(isinstance(finder, _MovedModules) for finder in sys.meta_path):
        sys.meta_path.insert(0, _MovedModules())
