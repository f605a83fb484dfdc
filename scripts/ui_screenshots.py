"""Save a PNG screenshot of every page of the web audit view (`distill-es ui`) on a demo store.

    python scripts/ui_screenshots.py OUT_DIR            # builds a fresh demo in a temp folder
    python scripts/ui_screenshots.py OUT_DIR --home DIR # an existing workspace instead
    python scripts/ui_screenshots.py OUT_DIR --height 900  # the top 900 px of each page (docs/img)

Needs the `ui` and `test` extras (Starlette, uvicorn, Selenium) and Debian's chromium + chromium-driver.
The server runs on a free 127.0.0.1 port, read-only, and stops when the script ends.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import threading
from pathlib import Path

from typer.testing import CliRunner

from distill_es.api import Engine
from distill_es.cli.main import app as cli_app
from distill_es.web.app import create_app
from distill_es.web.serve import bind, server, url_of

WIDTH = 1280


def demo(folder: Path) -> Path:
    home = folder / "demo"
    result = CliRunner().invoke(cli_app, ["demo", "--home", str(home)])
    if result.exit_code != 0:
        sys.exit(f"distill-es demo failed:\n{result.output}")
    return home


def pages(engine: Engine) -> dict[str, str]:
    """name → path of every page, for the newest session and its edits."""
    sid = engine.session_ids()[0]
    view = engine.get(sid)
    found = {"sessions": "/", "session": f"/sessions/{sid}", "session-at-v12": f"/sessions/{sid}?at=12"}
    for outcome in view.edit_outcomes:
        found[f"edit-{outcome.edit_id}"] = f"/sessions/{sid}/edits/{outcome.edit_id}"
    found |= {"trends": "/trends", "whatif": "/whatif?max_regression=0.9", "review": "/review"}
    return found


def shoot(url: str, names: dict[str, str], out: Path, height: int = 0) -> list[Path]:
    """A PNG per page: the whole page (up to 4000 px), or its top `height` px."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={WIDTH},900", "--hide-scrollbars"):  # fmt: skip
        options.add_argument(arg)
    options.binary_location = "/usr/bin/chromium"
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    saved = []
    try:
        for name, path in names.items():
            driver.set_window_size(WIDTH, 900)
            driver.get(url + path)
            page_height = int(driver.execute_script("return document.documentElement.scrollHeight"))
            driver.set_window_size(WIDTH, height or min(max(page_height, 600), 4000))
            target = out / f"{re.sub(r'[^a-z0-9_-]+', '-', name.lower())}.png"
            driver.save_screenshot(str(target))
            saved.append(target)
    finally:
        driver.quit()
    return saved


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", type=Path, help="the folder to write the PNG files into")
    parser.add_argument("--home", type=Path, help="a workspace (default: a fresh demo)")
    parser.add_argument("--height", type=int, default=0, help="window height in px (default: the whole page)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        home = args.home or demo(Path(tmp))
        engine = Engine.open(home, read_only=True)
        sock = bind("127.0.0.1", 0)
        listening = threading.Event()
        uv = server(create_app(engine), sock, listening.set)
        thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        try:
            if not listening.wait(30):
                sys.exit("the server did not start")
            for path in shoot(url_of(sock).rstrip("/"), pages(engine), args.out, args.height):
                print(path)
        finally:
            uv.should_exit = True
            thread.join(10)
            sock.close()
            engine.close()


if __name__ == "__main__":
    main()
