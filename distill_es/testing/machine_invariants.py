"""The invariants of `SessionMachineTest` (see machine.py for what they promise), as a mixin: hypothesis
collects `@invariant` methods from every base class. They read the machine's `session`, `store`,
`index`, `root` and `contract`, and `terminal_accepts_nothing` fires probe commands through
`apply_command`."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from hypothesis.stateful import invariant

from distill_es.domain.errors import IllegalTransition
from distill_es.domain.session import edit_lifecycle, lifecycle
from distill_es.domain.session.aggregate import Session
from distill_es.store.app import EventStore
from distill_es.store.projections import SessionIndex, fold_index_row
from distill_es.store.verify import verify_chain, verify_session
from distill_es.testing.contracts import EDIT_CONTRACT, TERMINAL_PROBES
from distill_es.testing.strategies import BOGUS_COMMAND, Command


def session_state(session: Session) -> dict[str, Any]:
    """Everything a session holds except its unsaved events: what replay must reproduce exactly.
    A snapshot's archived turns are decoded first: when they are decoded is not state."""
    session.diagnose_turns  # noqa: B018 - the property decodes the archive
    return {k: v for k, v in vars(session).items() if k != "_pending_events"}


def probe_kwargs(name: str) -> dict[str, Any]:
    if name in TERMINAL_PROBES:
        return copy.deepcopy(TERMINAL_PROBES[name])
    return {}  # a command added to the lifecycle after this table: probe it without arguments


class SessionInvariants:
    """What must hold after every step of the session machine."""

    store: EventStore
    index: SessionIndex
    root: Path
    contract: dict[str, Any]
    _replayed: tuple[int, Session] | None
    _audited: int | None
    _probed_terminal: int | None
    _indexed: int | None
    _verified: int | None
    _rebuilds: int

    @property
    def session(self) -> Session:
        raise NotImplementedError

    def apply_command(self, command: Command) -> bool:
        raise NotImplementedError

    @invariant()
    def replay_equals_live(self) -> None:
        live = self.session
        assert not live.pending_events, "the live session holds unsaved events between steps"
        if self._replayed is None or self._replayed[0] != live.version:
            replayed = None
            for event in self.store.domain_events(live.id):  # an independent fold over the raw log
                replayed = event.mutate(replayed)
            assert replayed is not None
            loaded = self.store.load(live.id)  # and the repository's own path
            assert session_state(loaded) == session_state(replayed)
            self._replayed = (live.version, replayed)
        # Always against the long-lived object: a change made to it outside an event shows only here.
        state, expected = session_state(live), session_state(self._replayed[1])
        assert state == expected, state_diff(expected, state)

    @invariant()
    def lifecycle_offers_the_contract(self) -> None:
        status = self.session.status
        offered = set(lifecycle.legal_commands(status))
        assert offered == set(self.contract.get(status, {})), (
            f"in {status} the lifecycle offers {sorted(offered)}; "
            f"the contract allows {sorted(self.contract.get(status, {}))}"
        )

    @invariant()
    def edit_lifecycle_offers_the_contract(self) -> None:
        for edit_id, progress in self.session.edits.items():
            offered = set(edit_lifecycle.legal_commands(progress.state))
            assert offered == set(EDIT_CONTRACT[progress.state]), (
                f"edit {edit_id} in {progress.state}: the edit lifecycle offers {sorted(offered)}; "
                f"the edit contract allows {sorted(EDIT_CONTRACT[progress.state])}"
            )

    @invariant()
    def resting_states_mean_what_they_say(self) -> None:
        live = self.session
        if live.status == "completed":
            assert not live.pending_edit_ids() and not live.approved_unapplied_ids(), (
                "completed with edits still pending review or approved but not applied"
            )
        elif live.status == "awaiting_review":
            assert live.pending_edit_ids(), "awaiting review with nothing pending"
        elif live.status == "failed":
            assert live.error, "failed without an error"
            if live.reason_code == "cancelled":  # who and why are part of the record
                assert live.error.startswith("cancelled by "), live.error
        elif live.status == "rolled_back":
            assert not live.applied_unreverted_ids(), "rolled back with applied edits still in place"
        for edit_id, progress in live.edits.items():  # nothing lands that a reviewer still has to decide
            if progress.route == "review" and not progress.approved_by:
                landed = progress.pre_sha is not None or progress.outcome in {"applied", "rolled_back"}
                assert not landed, f"edit {edit_id} was applied without a reviewer's approval"

    @invariant()
    def the_store_verifies(self) -> None:
        """Digests, replay, snapshots and the index agree: an untampered store has no damage."""
        if self._audited == self.session.version:
            return
        self._audited = self.session.version
        report = verify_session(self.store, self.index, self.session.id)
        assert report.ok, report.damage

    @invariant()
    def versions_are_contiguous(self) -> None:
        versions = [record.originator_version for record in self.store.stored_events(self.session.id)]
        assert versions == list(range(1, self.session.version + 1)), versions

    @invariant()
    def terminal_accepts_nothing(self) -> None:
        live = self.session
        if self.contract.get(live.status) or self._probed_terminal == live.version:
            return
        self._probed_terminal = live.version
        for name in [*sorted(lifecycle.COMMANDS | set(TERMINAL_PROBES)), BOGUS_COMMAND]:
            try:
                accepted = self.apply_command(Command(name, probe_kwargs(name)))
            except TypeError:  # no probe arguments fit this command: ask the lifecycle directly
                try:
                    lifecycle.decide(live, name, session_id=str(live.id))
                except IllegalTransition:
                    continue
                raise AssertionError(f"terminal state {live.status} allows {name!r}") from None
            assert not accepted, f"terminal state {live.status} accepted {name!r}"

    @invariant()
    def index_rebuilds_to_the_live_index(self) -> None:
        live = self.session
        if self._indexed == live.version:
            return  # nothing was appended since the last check
        self._indexed = live.version
        rows = self.index.rows()
        self._rebuilds += 1
        path = self.root / f"rebuild-{self._rebuilds}.sqlite"
        try:
            rebuilt = SessionIndex(path, self.store).rows()
        finally:
            for leftover in self.root.glob(f"{path.name}*"):
                leftover.unlink()
        assert rebuilt == rows
        folded = None
        for event in self.store.domain_events(live.id):
            folded = fold_index_row(folded, event)
        [row] = [r for r in rows if r["session_id"] == str(live.id)]
        assert row == folded
        assert (row["status"], row["version"], row["last_digest"]) == (
            live.status,
            live.version,
            live.last_digest,
        )
        assert abs(row["teacher_cost_usd"] - live.teacher_cost_usd) < 1e-9

    @invariant()
    def digest_chain_verifies(self) -> None:
        if self._verified == self.session.version:
            return
        self._verified = self.session.version
        count, damage, last_digest = verify_chain(self.store, self.session.id)
        assert not damage, damage
        assert count == self.session.version and last_digest == self.session.last_digest


def state_diff(other: dict[str, Any], live: dict[str, Any], what: str = "replay") -> str:
    keys = sorted(set(other) | set(live))
    lines = [
        f"  {k}: {what}={other.get(k)!r:.200} live={live.get(k)!r:.200}"
        for k in keys
        if other.get(k) != live.get(k)
    ]
    return f"{what} differs from the live session:\n" + "\n".join(lines)
