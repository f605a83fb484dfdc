"""A hypothesis state machine over one long-lived session and a real event store.

`SessionMachineTest` holds the *live* `Session` object a worker would hold, an `EventStore` on a SQLite
file in a temporary folder, and the `SessionIndex` projection caught up after every save. Its rules fire
random commands — legal ones, illegal ones, an unknown one, runs of engine-like ones — with payloads
shaped by the session's state, run a stale second writer and take snapshots. Its invariants check,
after every step, that

- replaying the stored events gives exactly the live object's state (compared with the long-lived
  object, never with a second replay: a change made outside an event is only visible that way), and so
  does loading through the repository (and through a fresh snapshot);
- stored versions run 1..n without a gap and equal the live version;
- every accepted command lands where `CONTRACT` says, and every refusal is a typed `IllegalTransition`
  (or subclass) that agrees with `CONTRACT`, names the command, the state and what is legal, and
  appends and changes nothing; the lifecycle offers exactly the contract's commands;
- every accepted command on one edit moves that edit where `EDIT_CONTRACT` says, and every refusal of
  one agrees with it (`IllegalEditTransition` for a move the edit's state does not have, naming the edit,
  its state and what is legal for it; `EditGuardRejected` for a move whose guard does not hold); the
  edit lifecycle offers exactly the contract's commands for every edit's state;
- resting states mean what they say, and no edit routed to review lands before a reviewer approves it;
- the terminal state accepts nothing at all;
- the index rebuilt from scratch equals the live index, and the live index agrees with the session;
- the digest chain verifies, and `verify` finds no damage in the untampered store.

Run it as a test, or subclass it and add rules (`self.live`, `self.store`, `self.index`, `self.root`,
`self.apply_command(...)` and `self.save()` are yours to use):

    from hypothesis.stateful import rule
    from distill_es.testing import MACHINE_SETTINGS, Command, SessionMachineTest

    class MyMachine(SessionMachineTest):
        @rule()
        def a_reviewer_approves_everything(self):
            for edit_id in self.session.pending_edit_ids():  # refused unless awaiting review: fine
                self.apply_command(Command("approve_edit", {"edit_id": edit_id, "reviewer": "me"}))

    TestMyMachine = MyMachine.TestCase
    TestMyMachine.settings = MACHINE_SETTINGS          # or your own settings(...)

Override `store_url(root)` to run the same machine on PostgreSQL (give each example a fresh database),
and `contract` if your lifecycle differs (the hand-written contracts are in `distill_es.testing.contracts`).
"""

from __future__ import annotations

import os
import pickle
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule

from distill_es.domain.errors import (
    ConcurrentSessionWrite,
    DistillError,
    GuardRejected,
    IllegalTransition,
    UnknownCommand,
)
from distill_es.domain.session import lifecycle
from distill_es.domain.session.aggregate import Session
from distill_es.domain.session.errors import EditGuardRejected, IllegalEditTransition
from distill_es.domain.session.records import EditProgress
from distill_es.store.app import EventStore
from distill_es.store.projections import SessionIndex
from distill_es.testing.contracts import CONTRACT, EDIT_CONTRACT
from distill_es.testing.machine_invariants import SessionInvariants, probe_kwargs, session_state, state_diff
from distill_es.testing.strategies import BOGUS_COMMAND, Command, commands, fire, started_sessions

__all__ = [
    "MACHINE_SETTINGS",
    "SessionMachineTest",
    "fast_tmp",
    "session_state",
]

_ALL_NAMES = [*sorted(lifecycle.COMMANDS), BOGUS_COMMAND]
_EDIT_COMMANDS = frozenset(c for moves in EDIT_CONTRACT.values() for c in moves)


def _snapshot(session: Session) -> bytes:
    return pickle.dumps(session_state(session), protocol=pickle.HIGHEST_PROTOCOL)


def _unchanged(before: bytes, session: Session) -> bool:
    # Equal bytes settle it; different bytes are compared as objects (pickling is not canonical).
    return _snapshot(session) == before or pickle.loads(before) == session_state(session)


class SessionMachineTest(SessionInvariants, RuleBasedStateMachine):
    """One live session, its store and its index; random commands; the invariants above."""

    #: The legal moves the machine is checked against (override for a different lifecycle).
    contract: dict[str, dict[str, frozenset[str]]] = CONTRACT

    def __init__(self) -> None:
        super().__init__()
        self._tmp = tempfile.mkdtemp(prefix="distill_es_machine_", dir=fast_tmp())
        self.root = Path(self._tmp)
        self.store = EventStore(self.store_url(self.root))
        self.index = SessionIndex(self.root / "index.sqlite", self.store)
        self.live: Session | None = None
        self.refusals: dict[str, int] = {}
        self._rebuilds = 0
        self._indexed = self._probed_terminal = self._verified = self._audited = 0
        self._replayed: tuple[int, Session] | None = None

    # --- hooks -----------------------------------------------------------------------------------
    def store_url(self, root: Path) -> str:
        """Where the store lives. Override to run on PostgreSQL (use a fresh database)."""
        return f"sqlite:///{root / 'events.sqlite'}"

    def teardown(self) -> None:
        try:
            self.store.close()
        finally:
            shutil.rmtree(self._tmp, ignore_errors=True)

    # --- helpers for rules -----------------------------------------------------------------------
    @property
    def session(self) -> Session:
        assert self.live is not None, "no session yet: start() has not run"
        return self.live

    def save(self) -> None:
        """Append the live session's pending events, then catch the live index up."""
        self.store.save(self.session)
        self.index.catch_up()

    def apply_command(self, command: Command) -> bool:
        """Fire `command` on the live session, check the outcome against the contract, save it.

        Returns True when the command was accepted (and saved), False when it was refused.
        """
        live = self.session
        source, version, before = live.status, live.version, _snapshot(live)
        allowed = self.contract.get(source, {})
        edit = self._edit_named(command)
        edit_source = edit.state if edit is not None else ""
        try:
            fire(live, command)
        except DistillError as exc:
            self._check_refusal(command, source, allowed, exc)
            if isinstance(exc, IllegalEditTransition):
                assert edit is not None, (
                    f"{command!r} names no edit of the session, yet the edit table refused it"
                )
                self._check_edit_refusal(command, edit_source, exc)
            assert live.version == version and not live.pending_events, (
                f"{command!r} was refused in {source} ({exc}) but appended events"
            )
            assert _unchanged(before, live), f"{command!r} was refused in {source} but changed the session"
            self.refusals[type(exc).__name__] = self.refusals.get(type(exc).__name__, 0) + 1
            return False
        assert command.name in allowed, (
            f"{command!r} was accepted in state {source}, which the contract does not allow "
            f"(allowed: {sorted(allowed)})"
        )
        assert live.status in allowed[command.name], (
            f"{command!r} moved {source} -> {live.status}; "
            f"the contract allows {sorted(allowed[command.name])}"
        )
        assert live.version > version, f"{command!r} was accepted but recorded nothing"
        if edit is not None:
            moves = EDIT_CONTRACT[edit_source]
            assert command.name in moves and edit.state in moves[command.name], (
                f"{command!r} moved its edit {edit_source} -> {edit.state}; the edit contract allows "
                f"{ {name: sorted(dests) for name, dests in moves.items()} }"
            )
        self.save()
        return True

    def _edit_named(self, command: Command) -> EditProgress | None:
        """The edit a per-edit command names, when the session has it."""
        if command.name not in _EDIT_COMMANDS:
            return None
        return self.session.edits.get(str(command.kwargs.get("edit_id")))

    @staticmethod
    def _check_edit_refusal(command: Command, state: str, exc: IllegalEditTransition) -> None:
        moves = EDIT_CONTRACT[state]
        if command.name in moves:
            assert isinstance(exc, EditGuardRejected), (
                f"{command!r} is a contract move of an edit in {state} but was refused as illegal: {exc}"
            )
            return
        assert not isinstance(exc, EditGuardRejected), (
            f"{command!r} is no move of an edit in {state} at all, yet the refusal is a guard's: {exc}"
        )
        message = str(exc)
        assert command.name in message and repr(state) in message and repr(exc.edit_id) in message, message
        for legal in moves:
            assert legal in message, (
                f"refusal of {command.name!r} in {state} omits legal {legal!r}: {message}"
            )

    def _check_refusal(
        self, command: Command, source: str, allowed: dict[str, frozenset[str]], exc: DistillError
    ) -> None:
        if command.name not in allowed:
            assert isinstance(exc, IllegalTransition), (
                f"illegal {command!r} from {source} raised {type(exc).__name__}, not IllegalTransition: {exc}"
            )
            known = any(command.name in moves for moves in self.contract.values())
            if not known:
                assert isinstance(exc, UnknownCommand), f"unknown {command.name!r} raised {exc!r}"
            else:
                assert not isinstance(exc, GuardRejected), (
                    f"{command!r} is not a move from {source} at all, yet the refusal is a guard's: {exc}"
                )
            message = str(exc)
            assert command.name in message and source in message, (
                f"refusal does not say what/where: {message}"
            )
            for legal in allowed:
                assert legal in message, (
                    f"refusal of {command.name!r} in {source} omits legal {legal!r}: {message}"
                )
        elif isinstance(exc, IllegalTransition):
            assert isinstance(exc, GuardRejected), (
                f"{command!r} is a contract move from {source} but was refused as illegal: {exc}"
            )

    # --- rules -------------------------------------------------------------------------------------
    @initialize(session=started_sessions())
    def start(self, session: Session) -> None:
        self.live = session
        self.save()

    def is_active(self) -> bool:
        """Not in a terminal state: there is still something legal to do."""
        return self.live is not None and bool(self.contract.get(self.live.status))

    @rule(data=st.data())
    def fire_legal(self, data: st.DataObject) -> None:
        """A command the lifecycle allows from here (its guard or payload may still be refused)."""
        if not self.is_active():
            return  # terminal: only fire_any has anything left to try
        self.apply_command(data.draw(commands(self.session, legal_only=True), label="command"))

    @rule(data=st.data())
    def fire_any(self, data: st.DataObject) -> None:
        """Any command at all, the unknown one included; mostly illegal from where we are."""
        name = data.draw(st.sampled_from(_ALL_NAMES), label="name")
        if name in self.contract.get(self.session.status, {}):
            command = data.draw(commands(self.session, names=[name]), label="command")
        else:  # refused before its payload is looked at: plain probe arguments will do
            command = Command(name, probe_kwargs(name))
        self.apply_command(command)

    @rule(data=st.data())
    def fire_offered(self, data: st.DataObject) -> None:
        """Any command the lifecycle offers from here, each as likely as the next."""
        if not self.is_active():
            return  # terminal: only fire_any has anything left to try
        offered = lifecycle.legal_commands(self.session.status)
        name = data.draw(st.sampled_from(offered), label="name")
        self.apply_command(data.draw(commands(self.session, names=[name]), label="command"))

    @rule(data=st.data(), steps=st.integers(min_value=2, max_value=6))
    def advance(self, data: st.DataObject, steps: int) -> None:
        """A run of commands an engine would plausibly issue next: reaches the deep states sooner."""
        for _ in range(steps):
            if not self.is_active():
                return
            self.apply_command(data.draw(commands(self.session, legal_only=True), label="command"))

    @rule(data=st.data())
    def stale_writer_is_refused(self, data: st.DataObject) -> None:
        """A second writer loads the session, the live worker appends first, the second save conflicts."""
        if not self.is_active():
            return  # terminal: only fire_any has anything left to try
        stale = self.store.load(self.session.id)
        command = data.draw(commands(self.session, legal_only=True), label="command")
        try:
            fire(stale, command)
        except DistillError:
            return  # refused on the copy: the live object would refuse it too (checked by fire_legal)
        assert self.apply_command(command), f"{command!r} was accepted on a loaded copy but not live"
        try:
            self.store.save(stale)
        except ConcurrentSessionWrite as exc:
            assert str(self.session.id) in str(exc)
        else:
            raise AssertionError("a writer holding a stale copy appended without a conflict")

    @rule(data=st.data())
    def fire_at_an_edit(self, data: st.DataObject) -> None:
        """Any per-edit command at any edit of the session, whatever state that edit is in: mostly
        illegal for it, so the edit table's refusals are exercised as often as its moves."""
        edits = self.session.edits
        if not edits or not self.is_active():
            return
        edit_id = data.draw(st.sampled_from(sorted(edits)), label="edit_id")
        name = data.draw(st.sampled_from(sorted(_EDIT_COMMANDS)), label="name")
        if name not in self.contract.get(self.session.status, {}):
            return  # the session's own refusal: fire_any covers it
        command = data.draw(commands(self.session, names=[name]), label="command")
        self.apply_command(Command(name, {**command.kwargs, "edit_id": edit_id}))

    @rule()
    def snapshot_then_reload(self) -> None:
        """A snapshot of the current version loads back as exactly the live state."""
        self.store.take_snapshot(self.session.id)
        loaded = self.store.load(self.session.id)
        state, expected = session_state(loaded), session_state(self.session)
        assert state == expected, state_diff(state, expected, "snapshot")


#: Enough runs to reach every state many times, small enough for a test suite (~10 s here).
MACHINE_SETTINGS = settings(
    max_examples=60,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
SessionMachineTest.TestCase.settings = MACHINE_SETTINGS  # subclasses: set their own TestCase.settings


def fast_tmp() -> str | None:
    """A memory-backed temp folder when the OS has one: fsyncs there cost nothing."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None
