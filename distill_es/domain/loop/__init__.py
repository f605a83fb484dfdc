"""The multi-session loop as an event-sourced aggregate (paper Algorithm 1), pure: no I/O.

- `events`: the loop's event catalogue (`distill_es.Loop*.v1`).
- `lifecycle`: the rulebook table (running → stopped, and the facts a running loop records).
- `rules`: stop reasons and the verdict a finished session earns (`assess`).
- `views`: `LoopParams`, `LoopView` and its session records; `errors`: `LoopNotFound`.
- `aggregate`: `Loop`, which decides with the rules above and records the events.

Running a loop (sessions, the store, locks) is `distill_es.app.loop`. See docs/loop-and-triggers.md.
"""
