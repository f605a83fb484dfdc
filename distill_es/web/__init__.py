"""The local, read-only web audit view (`distill-es ui`) and the self-contained session report
(`distill-es report`). Starlette + Jinja2 (autoescaped everywhere), server-side SVG charts, no JS.

`app.create_app(engine)` builds the ASGI app; `report.render_report(engine, sid)` returns one HTML page.
Nothing here writes to the event store: every page is built from the engine's read queries.
"""
