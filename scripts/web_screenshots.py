"""Screenshots of `camp web` for docs/web.md: a demo campaign served and shown in headless Chromium.

    .venv/bin/python scripts/web_screenshots.py            # writes docs/img/web-*.png
    .venv/bin/python scripts/web_screenshots.py OUTDIR

Needs Debian's ``chromium`` and ``chromium-driver`` (scripts/system-deps.sh) and selenium
(the ``test`` extra). The demo campaign is real data written by adios2, h5py and Pillow
(examples/make_data.py): two BP5 runs, an HDF5 file, a PNG with a thumbnail, a stored
note, an encrypted note, a dataset whose name is HTML; then heat.bp goes to tape
(`camp archive replica --move`) and pressure.bp is renamed (`camp mv`).
tests/test_web_browser.py builds its campaign and starts its browser with the functions
here, so this script keeps working.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CAMP = os.path.join(os.path.dirname(sys.executable), "camp")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
XSS_NAME = "<img src=x onerror=alert(1)>"
"""A dataset name that is HTML: every page must show it as text."""
SHOTS = ("campaign", "list", "dataset", "image", "history", "log", "diff")


def _camp(env: Mapping[str, str], cwd: str, *args: str, author: str = "Alice") -> str:
    run_env = dict(env, CAMP_AUTHOR_NAME=author, CAMP_AUTHOR_EMAIL=f"{author.lower()}@example.org")
    done = subprocess.run([CAMP, *args], cwd=cwd, env=run_env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"camp {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def build_demo(folder: str, env: Mapping[str, str]) -> str:
    """The demo campaign in ``folder``/campaign (its data in ``folder``/data/run1); returns the campaign path."""
    sys.path.insert(0, os.path.join(ROOT, "examples"))
    import make_data

    make_data.make_example(os.path.join(folder, "data"))
    data = os.path.join(folder, "data", "run1")
    repo = os.path.join(folder, "campaign")
    key = os.path.join(folder, "team.key")
    with open(os.path.join(data, XSS_NAME), "w", encoding="utf-8") as f:
        f.write("<script>alert('text')</script>\n")
    with open(os.path.join(data, "secret.txt"), "w", encoding="utf-8") as f:
        f.write("embargoed until publication\n")
    _camp(env, folder, "init", repo, "--name", "proj/run_001", "--host", "laptop")
    _camp(env, folder, "key", "generate", key)
    r = ("--repo", repo)
    _camp(env, data, *r, "add", "-m", "run 1 outputs", "heat.bp", "pressure.bp", "mesh.h5")
    _camp(env, data, *r, "add", "--thumbnail", "64", "48", "plot.png")
    _camp(env, data, *r, "add", "--store", "notes.txt", XSS_NAME)
    _camp(env, data, *r, "add", "--store", "--key", key, "secret.txt")
    _camp(env, data, *r, "commit", "-m", "plot, notes and an embargoed note", author="Bob")
    _camp(env, data, *r, "archive", "add", "HPSS", "tape", "/arch/proj", author="Carol")
    _camp(env, data, *r, "archive", "replica", "heat.bp", "tape:/arch/proj", "--move", author="Carol")
    _camp(env, data, *r, "commit", "-m", "heat.bp to tape", author="Carol")
    _camp(env, data, *r, "mv", "pressure.bp", "run1/pressure.bp", author="Alice")
    _camp(env, data, *r, "commit", "-m", "pressure.bp: name by run", author="Alice")
    return repo


@contextmanager
def served(repo: str, env: Mapping[str, str], *extra: str) -> Iterator[str]:
    """``camp web --port 0`` on ``repo``: yields its URL; stopped with SIGINT at the end."""
    proc = subprocess.Popen([CAMP, "--repo", repo, "web", "--port", "0", *extra], env=dict(env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        found = re.search(r"http://127\.0\.0\.1:\d+/", line)
        if not found:
            raise RuntimeError(f"camp web did not print its URL: {line!r} {proc.stderr.read() if proc.stderr else ''}")
        yield found.group(0)
    finally:
        proc.send_signal(2)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def browser(width: int = 1200, height: int = 900) -> Any:
    """Headless Chromium driven by selenium (Debian's chromium and chromium-driver)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={width},{height}", "--hide-scrollbars", "--allow-file-access-from-files"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def page_of(driver: Any, base: str, kind: str) -> None:
    """Open the page ``kind`` of SHOTS in the catalog at ``base``, by clicking as a user would."""
    from selenium.webdriver.common.by import By

    def open_dataset(name: str) -> None:
        driver.get(base + "list/1.html")
        driver.find_element(By.LINK_TEXT, name).click()

    if kind == "campaign":
        driver.get(base + "index.html")
    elif kind == "list":
        driver.get(base + "list/1.html?q=.bp&sort=size&order=desc")
    elif kind == "dataset":
        open_dataset("mesh.h5")
    elif kind == "image":
        open_dataset("plot.png")
    elif kind == "history":
        open_dataset("heat.bp")
        driver.find_element(By.ID, "history-link").click()
    elif kind == "log":
        driver.get(base + "log.html")
    elif kind == "diff":
        driver.get(base + "diff.html?a=HEAD~2&b=HEAD")


def screenshot(driver: Any, path: str, width: int = 1200, most: int = 1600) -> None:
    """The whole page (up to ``most`` pixels high) as a PNG at ``path``."""
    bottom = "var f = document.querySelector(\"footer\") || document.body; return f.getBoundingClientRect().bottom + 8"
    height = min(int(driver.execute_script(bottom)), most)
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}})
    with open(path, "wb") as f:
        f.write(base64.b64decode(shot["data"]))


def main(argv: list[str]) -> None:
    """Build the demo, serve it, and save one screenshot per page into OUTDIR (default docs/img)."""
    out = os.path.abspath(argv[0] if argv else os.path.join(ROOT, "docs", "img"))
    os.makedirs(out, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="camp-web-shots-") as tmp:
        home = os.path.join(tmp, "home")
        os.makedirs(home)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CAMP_", "GIT_"))}
        env.update(HOME=home, GIT_CONFIG_NOSYSTEM="1", TZ="UTC")
        repo = build_demo(tmp, env)
        driver = browser()
        try:
            with served(repo, env) as base:
                for kind in SHOTS:
                    page_of(driver, base, kind)
                    path = os.path.join(out, f"web-{kind}.png")
                    screenshot(driver, path)
                    print(path)
        finally:
            driver.quit()


if __name__ == "__main__":
    main(sys.argv[1:])
