from uuid import uuid4

from hypothesis import settings
from hypothesis.stateful import rule

from distill_es.app.transfer import export_session, import_events
from distill_es.store.app import EventStore
from distill_es.testing import MACHINE_SETTINGS, SessionMachineTest


class TravellingSessionMachine(SessionMachineTest):
    """The lifecycle's rules and invariants, plus: at any point, the session travels intact."""

    @rule()
    def the_session_travels(self):
        target = EventStore(f"sqlite:///{self.root / uuid4().hex}.sqlite")
        try:
            text = "".join(export_session(self.store, self.session.id))
            import_events(target, text.splitlines(keepends=True))
            assert "".join(export_session(target, self.session.id)) == text
            assert target.load(self.session.id).view() == self.session.view()
        finally:
            target.close()


TestTravellingSessionMachine = TravellingSessionMachine.TestCase
TestTravellingSessionMachine.settings = settings(MACHINE_SETTINGS, max_examples=15)
