"""The per-workspace trigger log (flags, firings, the sessions they launched) and the trigger rules, pure.

- `events`: the log's event catalogue (`distill_es.TriggerLogOpened.v1`, `TraceFlagged`, `TriggerFired`,
  `SessionLaunched`).
- `rules`: each trigger kind's verdict at one tick (`Decision`, `evaluate_*`), from settings and facts
  handed in (the settings' shape is a Protocol here: the domain imports no config).
- `views`: `Flag`; `errors`: `TraceNotFound`.
- `aggregate`: `TriggerLog`, one per workspace.

The daemon that ticks (sessions, the store, locks, the clock) is `distill_es.app.daemon`.
See docs/loop-and-triggers.md.
"""
