"""camp web: pages, safety through real HTTP requests, the static export, and the list at 100,000 rows.

The campaign is the demo of scripts/web_screenshots.py: real BP5 (adios2), HDF5 (h5py),
PNG (Pillow) and text data, a note encrypted with a key, a dataset whose name is HTML,
heat.bp archived to tape with ``--move`` and pressure.bp renamed.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time

import pytest
from camp_process import CAMP

from campaignvcs import layout
from campaignvcs.porcelain.catalog import open_catalog
from campaignvcs.porcelain.histories import all_histories
from campaignvcs.porcelain.history import whereis
from campaignvcs.web.app import CatalogApp
from campaignvcs.web.export import export_site
from campaignvcs.web.listing import PAGE_SIZE, Listing, Query, Row, ident
from campaignvcs.web.server import bind

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


from web_shots import shots  # noqa: E402

XSS = shots.XSS_NAME


def demo_env(home) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CAMP_", "GIT_"))}
    env.update(HOME=str(home), GIT_CONFIG_NOSYSTEM="1", CAMP_AUTHOR_NAME="Dana", CAMP_AUTHOR_EMAIL="dana@example.org")
    return env


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """(campaign path, env, key file) of the demo campaign, built once for the module."""
    folder = tmp_path_factory.mktemp("webdemo")
    (folder / "home").mkdir()
    env = demo_env(folder / "home")
    repo = shots.build_demo(str(folder), env)
    return repo, env, str(folder / "team.key")


@pytest.fixture(scope="module")
def server(demo):
    """The demo catalog served on 127.0.0.1 by werkzeug in a thread: (port, catalog)."""
    repo, env, _key = demo
    catalog = open_catalog(repo=repo, env=env)
    app = CatalogApp(source=catalog)
    srv = bind(app, 0)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv.server_port, catalog
    srv.shutdown()
    srv.server_close()
    catalog.camp.close()


def request(port: int, path: str, method: str = "GET", host: str | None = None) -> tuple[int, dict, bytes]:
    """One raw HTTP request (the path is sent exactly as given)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {} if host is None else {"Host": host}
    conn.putrequest(method, path, skip_host=host is not None, skip_accept_encoding=True)
    for k, v in headers.items():
        conn.putheader(k, v)
    conn.endheaders()
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, body


def get(port: int, path: str) -> str:
    status, _headers, body = request(port, path)
    assert status == 200, (path, status, body[:300])
    return body.decode()


def dataset_path(name: str) -> str:
    return f"/d/{ident(name)}.html"


# -- pages ----------------------------------------------------------------------------------


def test_campaign_page_counts_kinds_and_hosts_and_names_the_tape(server):
    port, catalog = server
    page = get(port, "/")
    assert "proj/run_001" in page and catalog.commit_id in page
    kinds = dict(re.findall(r'kind=(\w+)">\w+</a></td><td class="num">(\d+)<', page))
    assert kinds == {"ADIOS": "2", "HDF5": "1", "IMAGE": "1", "TEXT": "3"}
    assert "HPSS" in page and "/arch/proj" in page
    assert 'host=tape">tape' in page


def test_list_filters_sorts_and_pages_on_the_server(server):
    port, _catalog = server
    page = get(port, "/list/1.html?q=.BP&sort=size&order=desc")
    names = re.findall(r'<td><a href="../d/[0-9a-f]{20}.html">([^<]*)</a>', page)
    assert names == ["heat.bp", "run1/pressure.bp"]  # heat.bp: 11.9 KiB, pressure.bp: 7.5 KiB
    tape = get(port, "/list/1.html?host=tape")
    assert re.findall(r'html">([^<]*)</a>', tape.split("<tbody>")[1]) == ["heat.bp"]
    assert "1 dataset of 7" in get(port, "/list/1.html?kind=image")
    assert "0 datasets of 7" in get(port, "/list/9.html?q=nothing-matches")


def test_dataset_page_shows_replicas_archive_thumbnail_and_text(server):
    port, _catalog = server
    heat = get(port, dataset_path("heat.bp"))
    assert "tape" in heat and "/arch/proj" in heat and "archive (directory)" in heat
    assert "removed" in heat  # the laptop copy got a tombstone
    plot = get(port, dataset_path("plot.png"))
    src = re.search(r'<img src="\.\./(img/[0-9a-f]{20}-0\.png)"', plot).group(1)
    status, headers, body = request(port, "/" + src)
    assert status == 200 and headers["content-type"] == "image/png" and body.startswith(b"\x89PNG")
    notes = get(port, dataset_path("notes.txt"))
    assert "Input deck: heat.in" in notes


def test_encrypted_content_is_shown_only_with_its_key(demo, server):
    port, _catalog = server
    page = get(port, dataset_path("secret.txt"))
    assert "embargoed" not in page and 'id="locked"' in page and "secret.txt" in page
    repo, env, key = demo
    with_key = open_catalog(repo=repo, env=env, keyfile=key)
    try:
        _template, context = with_key.dataset_page(ident("secret.txt"))
        assert "embargoed until publication" in context["texts"][0]["content"] and not context["locked"]
    finally:
        with_key.camp.close()


def test_history_is_whereis_history_as_a_timeline(server):
    port, _catalog = server
    page = get(port, f"/h/{ident('heat.bp')}.html")
    events = re.findall(r'<span class="tag">(\w+)</span>', page)
    assert events == ["archived", "removed", "created", "appeared"]  # newest commit first
    assert "Carol" in page and "heat.bp to tape" in page and "tape:/arch/proj[archive]/heat.bp" in page


def test_batched_histories_equal_whereis_for_every_dataset(demo):
    repo, env, _key = demo
    catalog = open_catalog(repo=repo, env=env)
    try:
        batched = all_histories(catalog.camp, catalog.commit)
        for row in catalog.listing.rows:
            one = whereis(row.name, history=True, rev=catalog.commit_id, repo=repo, env=env).history
            assert batched.get(layout.dataset_dir(row.name), []) == one, row.name
    finally:
        catalog.camp.close()


def test_log_commit_and_diff_pages(server):
    port, catalog = server
    log = get(port, "/log.html")
    commits = re.findall(r'href="c/([0-9a-f]{40})\.html"', log)
    assert len(commits) == 5 and commits[0] == catalog.commit_id  # camp init made the first
    rename = get(port, f"/c/{commits[0]}.html")
    assert "renamed" in rename and "run1/pressure.bp" in rename
    assert "recorded 0 datasets" in get(port, f"/c/{commits[-1]}.html")
    assert get(port, f"/c/{commits[-2]}.html").count("change-added") == 3
    diff = get(port, "/diff.html?a=HEAD~2&b=HEAD")
    assert "moved" in diff and "tape:/arch/proj[archive]/heat.bp" in diff and "host added" in diff
    status, _h, body = request(port, "/diff.html?a=no-such-rev&b=HEAD")
    assert status == 400 and b"no-such-rev" in body


# -- safety, through real requests -------------------------------------------------------------


def test_html_in_names_and_texts_is_shown_as_text(server):
    port, _catalog = server
    for path in ("/list/1.html", dataset_path(XSS), f"/h/{ident(XSS)}.html", "/list/1.html?q=%3Cimg",
                 "/diff.html?a=%3Cscript%3E&b=HEAD"):
        page = get(port, path) if "diff" not in path else request(port, path)[2].decode()
        assert "<img src=x" not in page and "<script>" not in page, path
    page = get(port, dataset_path(XSS))
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "&lt;script&gt;alert(&#39;text&#39;)&lt;/script&gt;" in page


@pytest.mark.parametrize("path", [
    "/../../../../etc/passwd", "/static/../../../../etc/passwd", "/static/%2e%2e/%2e%2e/etc/passwd",
    "/static/..%2f..%2fapp.py", "/static/%2e%2e%2fapp.py", "/static/app.py", "/templates/base.html",
    "/d/..%2f..%2f..%2fetc%2fpasswd.html", "/img/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd",
    "/d/" + "0" * 20 + ".html", "/img/" + ident("plot.png") + "-7.png", "//etc/passwd", "/.git/config",
])
def test_no_path_reaches_a_file_outside_the_catalog(server, path):
    port, _catalog = server
    status, _headers, body = request(port, path)
    assert status in (400, 404), (path, status)
    assert b"root:" not in body and b"import " not in body and b"[core]" not in body


def test_host_header_must_name_this_server(server):
    port, _catalog = server
    assert request(port, "/", host=f"127.0.0.1:{port}")[0] == 200
    assert request(port, "/", host=f"localhost:{port}")[0] == 200
    for host in ("evil.example", f"evil.example:{port}", "127.0.0.1", f"127.0.0.1:{port + 1}",
                 f"localhost.evil.example:{port}", ""):
        status, _headers, body = request(port, "/", host=host)
        assert status in (400, 421), (host, status)
        assert b"proj/run_001" not in body


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"])
def test_only_get_and_head(server, method):
    port, _catalog = server
    status, headers, _body = request(port, "/", method=method)
    assert status == 405 and headers["allow"] == "GET, HEAD"


def test_head_and_security_headers(server):
    port, _catalog = server
    status, headers, body = request(port, "/list/1.html", method="HEAD")
    assert status == 200 and body == b""
    assert "script-src 'self'" in headers["content-security-policy"]
    assert "unsafe-inline" not in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"


def test_camp_web_prints_its_url_serves_loopback_only_and_stops_on_ctrl_c(demo):
    repo, env, _key = demo
    proc = subprocess.Popen([CAMP, "--repo", repo, "web", "--port", "0"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        port = int(re.search(r"http://127\.0\.0\.1:(\d+)/", line).group(1))
        assert "Campaign proj/run_001" in get(port, "/")
        listening = open("/proc/net/tcp").read().splitlines()[1:]
        local = [row.split()[1] for row in listening if row.split()[3] == "0A"]
        assert f"0100007F:{port:04X}" in local and f"00000000:{port:04X}" not in local
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "stopped" in out and err == ""


# -- the static export --------------------------------------------------------------------------


def test_export_writes_the_site_and_rewrites_only_what_changed(demo, tmp_path):
    repo = str(tmp_path / "campaign")
    shutil.copytree(demo[0], repo, symlinks=True)  # this test commits: its own copy
    env = demo[1]
    site = tmp_path / "site"
    catalog = open_catalog(repo=repo, env=env, static=True)
    try:
        first = export_site(catalog, str(site))
    finally:
        catalog.camp.close()
    assert first.datasets == 7 and first.removed == 0
    for rel in ("index.html", "list/1.html", "log.html", "idx/0.js", "static/list.js", "static/style.css",
                f"d/{ident('heat.bp')}.html", f"h/{ident('heat.bp')}.html", f"img/{ident('plot.png')}-0.png"):
        assert (site / rel).is_file(), rel
    assert "<img src=x" not in (site / f"d/{ident(XSS)}.html").read_text()
    index = (site / "idx/0.js").read_text()
    assert index.startswith("campIndex(0, ") and json.loads(index[len("campIndex(0, "):-3])[0][0]
    before = {p: p.stat().st_mtime_ns for p in site.rglob("*") if p.is_file()}
    time.sleep(0.01)

    # again, unchanged: nothing written
    result = subprocess.run([CAMP, "--repo", repo, "web", "--export", str(site)], env=env, capture_output=True,
                            text=True, check=True)
    assert "0 files written" in result.stdout and "0 removed" in result.stdout
    assert {p: p.stat().st_mtime_ns for p in site.rglob("*") if p.is_file()} == before

    # after a commit that drops one dataset: its pages go, few others change
    subprocess.run([CAMP, "--repo", repo, "rm", "notes.txt"], env=env, check=True, capture_output=True)
    subprocess.run([CAMP, "--repo", repo, "commit", "-m", "notes dropped"], env=env, check=True,
                   capture_output=True)
    result = subprocess.run([CAMP, "--repo", repo, "web", "--export", str(site), "--json"], env=env,
                            capture_output=True, text=True, check=True)
    done = json.loads(result.stdout)
    assert done["removed"] == 0 and done["datasets"] == 7  # a tombstone: the dataset stays, deleted
    changed = {p for p in site.rglob("*") if p.is_file() and before.get(p) != p.stat().st_mtime_ns}
    names = {p.relative_to(site).as_posix() for p in changed}
    assert f"d/{ident('notes.txt')}.html" in names and f"h/{ident('notes.txt')}.html" in names
    assert f"d/{ident('heat.bp')}.html" not in names and "static/style.css" not in names
    assert len(names) <= 12, names


def test_export_refuses_a_folder_it_did_not_write(demo, tmp_path):
    repo, env, _key = demo
    (tmp_path / "mine.txt").write_text("keep me")
    result = subprocess.run([CAMP, "--repo", repo, "web", "--export", str(tmp_path)], env=env,
                            capture_output=True, text=True)
    assert result.returncode == 1 and "holds other files" in result.stderr
    assert (tmp_path / "mine.txt").read_text() == "keep me"


# -- the list at scale ---------------------------------------------------------------------------


def test_list_pages_100000_rows_quickly_and_never_more_than_a_page():
    rows = [Row(f"run_{i // 1000:04d}/step_{i % 1000:05d}/fields.bp", "ADIOS" if i % 12 else "HDF5",
                "frontier" if i % 3 else "frontier, tape", (i * 7919) % 100_003, i, 1, ident(str(i)), "live", False)
            for i in range(100_000)]
    t = time.perf_counter()
    listing = Listing(rows)
    page = listing.page(Query(q="step_0001", kind="hdf5", host="tape", sort="size", order="desc", page=2))
    second = listing.page(Query(sort="size", page=500))
    elapsed = time.perf_counter() - t
    assert len(second.rows) == PAGE_SIZE and second.total == 100_000 and second.pages == 1000
    assert all(r.kind == "HDF5" and "tape" in r.hosts and "step_0001" in r.name for r in page.rows)
    sizes = [r.size for r in page.rows]
    assert sizes == sorted(sizes, reverse=True) and len(page.rows) <= PAGE_SIZE
    assert elapsed < 5, elapsed


# -- the campaign store ----------------------------------------------------------------------------


def test_store_mode_lists_archives_searches_across_campaigns_and_serves_each(demo, tmp_path):
    repo, env, _key = demo
    home = tmp_path / "home"
    store = tmp_path / "store"
    (home / ".config" / "hpc-campaign").mkdir(parents=True)
    (home / ".config" / "hpc-campaign" / "config.yaml").write_text(
        f"Campaign:\n  hostname: laptop\n  campaignstorepath: {store}\n")
    env = dict(env, HOME=str(home))
    subprocess.run([CAMP, "--repo", repo, "build"], env=env, check=True, capture_output=True)
    proc = subprocess.Popen([CAMP, "web", "--store", "--port", "0"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=str(tmp_path))
    try:
        port = int(re.search(r"http://127\.0\.0\.1:(\d+)/", proc.stdout.readline()).group(1))
        front = get(port, "/")
        assert "proj/run_001" in front and 'href="campaigns/0/index.html"' in front
        found = get(port, "/search.html?q=heat")
        assert f'href="campaigns/0/d/{ident("heat.bp")}.html">heat.bp<' in found
        assert "Campaign proj/run_001" in get(port, "/campaigns/0/index.html")
        assert "tape:/arch/proj" in get(port, f"/campaigns/0/h/{ident('heat.bp')}.html")
        assert request(port, "/campaigns/1/index.html")[0] == 404
        assert request(port, "/campaigns/0/../../etc/passwd")[0] == 404
        assert request(port, "/search.html", method="POST")[0] == 405
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=20)
    assert proc.returncode == 0


def test_variable_filter_reads_few_candidates_only():
    rows = [Row(f"d{i:06d}.bp", "ADIOS", "h", i, i, 1, ident(str(i)), "live", False) for i in range(20_000)]
    asked = []

    def has_var(names, var):
        asked.extend(names)
        return {n for n in names if n.endswith("7.bp") and var == "T"}

    listing = Listing(rows)
    wide = listing.page(Query(var="T"), has_var)
    assert wide.total == 0 and "narrow" in wide.note and asked == []
    narrow = listing.page(Query(q="d0001", var="T"), has_var)
    assert [r.name for r in narrow.rows] == [f"d0001{i:02d}.bp" for i in range(7, 100, 10)]
    assert len(asked) == 100
    assert listing.page(Query(var="T"), None).note


def test_rev_shows_the_campaign_as_it_was(demo):
    repo, env, _key = demo
    catalog = open_catalog("HEAD~2", repo=repo, env=env)  # before heat.bp went to tape
    try:
        _template, context = catalog.dataset_page(ident("heat.bp"))
        assert [r.host for r in context["replicas"]] == ["laptop"]
        assert catalog.row(ident("run1/pressure.bp")) is None and catalog.row(ident("pressure.bp")) is not None
        assert [e.id for e in catalog.log_page()[1]["entries"]][0] == catalog.commit_id
    finally:
        catalog.camp.close()
