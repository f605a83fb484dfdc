"""Child processes for `scripts/bench.py` (run as `python scripts/bench_child.py <what> ...`).

- `student-server --latency S`: an OpenAI-compatible student server (`ScriptedStudentServer`) in its own
  process, so the client under test does not share a GIL with it; prints its base URL, serves until
  stdin closes.
- `session --home H --teacher-url U [--store URL]`: one scripted session end to end (real anthropic
  and openai clients over HTTP, real git), for peak-RSS measurement; prints a JSON summary.
- `resume-api --home H --session SID [--store URL]`: `Engine.open(...).run(SID)` with the default
  (Anthropic) teacher: the API flavour of `distill-es resume`.
- `verify-api --home H [--store URL]`: `Engine.open(H).verify()`, the fallback when the CLI is unusable.
"""

from __future__ import annotations

import argparse
import json
import sys


def bench_answer(request: dict) -> str:
    """The benchmark student's answer: 'What is N plus N?' -> 2N (every task right)."""
    from distill_es.testing.servers import last_user_text

    text = last_user_text(request)
    try:
        n = int(text.split("What is ", 1)[1].split(" plus", 1)[0])
    except (IndexError, ValueError):
        return "I am not sure."
    return str(2 * n)


def student_server(args: argparse.Namespace) -> None:
    from distill_es.testing.servers import ScriptedStudentServer

    class NoDelayStudentServer(ScriptedStudentServer):
        """The shipped server writes headers and body in two sends without TCP_NODELAY, so Nagle plus
        the client's delayed ACK add ~40 ms to every response; real servers (uvicorn, Ollama) set
        TCP_NODELAY. `--nodelay` gives the benchmark a server whose latency is the configured one."""

        def _handler_class(self):  # type: ignore[no-untyped-def]
            handler = super()._handler_class()
            handler.disable_nagle_algorithm = True  # socketserver.StreamRequestHandler option
            return handler

    cls = NoDelayStudentServer if args.nodelay else ScriptedStudentServer
    with cls(bench_answer, latency=args.latency) as server:
        print(server.base_url, flush=True)
        sys.stdin.read()  # until the parent closes our stdin
        print(json.dumps({"completed": server.completed, "peak": server.peak_concurrency}), flush=True)


def session(args: argparse.Namespace) -> None:
    import anthropic

    from distill_es.api import Engine
    from distill_es.domain.triggers import OnDemandTrigger

    client = anthropic.Anthropic(base_url=args.teacher_url, api_key="bench", max_retries=0)
    engine = Engine.open(args.home, teacher=client, store_url=args.store)
    try:
        view = engine.run_session(OnDemandTrigger({"source": "bench"}))
        print(json.dumps({"status": view.status.value, "version": view.version, "id": view.id}))
    finally:
        engine.close()


def resume_api(args: argparse.Namespace) -> None:
    import time

    import anthropic  # noqa: F401 - the SDK the next side effect goes through; imported first to time it

    from distill_es.api import Engine

    # The store's driver, as a process that has served before holds it (the engine imports it lazily).
    if args.store and args.store.startswith("postgres"):
        import eventsourcing.postgres
        import psycopg  # noqa: F401
    else:
        import eventsourcing.sqlite  # noqa: F401

    # Wall-clock time (shared with the parent) once the imports are done: the rest is the engine's work.
    print(json.dumps({"imports_done": time.time()}), flush=True)
    engine = Engine.open(args.home, store_url=args.store)
    engine.run(args.session)


def verify_api(args: argparse.Namespace) -> None:
    from distill_es.api import Engine

    engine = Engine.open(args.home, store_url=args.store)
    reports = engine.verify()
    print(json.dumps({"sessions": len(reports), "ok": all(r.ok for r in reports)}))
    sys.exit(0 if all(r.ok for r in reports) else 1)


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("student-server")
    p.add_argument("--latency", type=float, default=0.05)
    p.add_argument("--nodelay", action="store_true", help="set TCP_NODELAY on accepted connections")
    p.set_defaults(fn=student_server)
    p = sub.add_parser("session")
    p.add_argument("--home", required=True)
    p.add_argument("--teacher-url", required=True)
    p.add_argument("--store")
    p.set_defaults(fn=session)
    p = sub.add_parser("resume-api")
    p.add_argument("--home", required=True)
    p.add_argument("--session", required=True)
    p.add_argument("--store")
    p.set_defaults(fn=resume_api)
    p = sub.add_parser("verify-api")
    p.add_argument("--home", required=True)
    p.add_argument("--store")
    p.set_defaults(fn=verify_api)
    args = parser.parse_args()
    args.fn(args)


if __name__ == "__main__":
    main()
