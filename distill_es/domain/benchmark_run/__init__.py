"""A benchmark run as an event-sourced aggregate, pure: no I/O.

One run scores one workspace tree (the working tree's managed files, or a git ref's tree) on the
personal benchmark, outside any session: `distill-es benchmark run` and `benchmark compare`.

- `events`: the catalogue (`distill_es.BenchmarkRun*.v1`).
- `lifecycle`: the rulebook table (running → finished | failed, and the scores a running run records).
- `rules`: how tasks are grouped (the latest diagnosis's clusters, else task categories) and scored.
- `views`: `BenchmarkRunView`, `BenchmarkComparison`; `errors`: `BenchmarkRunNotFound`.
- `aggregate`: `BenchmarkRun`, which decides with the above and records the events.

Running one (the score cache, the student, the store) is `distill_es.app.benchmark_run`.
"""
