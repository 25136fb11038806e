"""camp web in a real browser: headless Chromium (Debian's chromium + chromium-driver) driven by selenium.

The served catalog (a real ``camp web`` process) and the exported site (from ``file://``)
of the demo campaign of scripts/web_screenshots.py: filter the list, open a dataset, its
thumbnail loaded, the history of the dataset moved to tape, a diff, a name that is HTML
shown as text (and no script run). Without chromium, chromedriver or selenium the tests
are skipped here and fail in CI (``requires``); a browser that is there but does not start
fails the test.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess

import pytest
from camp_process import CAMP
from helpers import missing_part, requires

from campaignvcs.web.listing import ident

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HAVE_BROWSER = bool(shutil.which("chromium") and shutil.which("chromedriver")
                    and importlib.util.find_spec("selenium"))
HAVE_INFO = importlib.util.find_spec("campaignvcs.porcelain.info") is not None

pytestmark = requires(HAVE_BROWSER, "headless Chromium: Debian's chromium and chromium-driver, and selenium")


from web_shots import shots  # noqa: E402


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    folder = tmp_path_factory.mktemp("webdemo")
    (folder / "home").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CAMP_", "GIT_"))}
    env.update(HOME=str(folder / "home"), GIT_CONFIG_NOSYSTEM="1", CAMP_AUTHOR_NAME="Dana",
               CAMP_AUTHOR_EMAIL="dana@example.org")
    return shots.build_demo(str(folder), env), env


@pytest.fixture(scope="module")
def driver():
    if not HAVE_BROWSER:
        missing_part("headless Chromium")  # the requires mark has said so already
    browser = shots.browser()
    browser.set_page_load_timeout(30)
    browser.implicitly_wait(10)  # a clicked link's page may still be loading when the next element is looked up
    yield browser
    browser.quit()


@pytest.fixture(scope="module")
def served(demo):
    repo, env = demo
    with shots.served(repo, env) as base:
        yield base


@pytest.fixture(scope="module")
def exported(demo, tmp_path_factory):
    repo, env = demo
    site = tmp_path_factory.mktemp("site")
    subprocess.run([CAMP, "--repo", repo, "web", "--export", str(site)], env=env, check=True, capture_output=True)
    return site.as_uri() + "/"


def wait(driver, condition, timeout=10):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(lambda d: condition(d))


def no_alert(driver) -> None:
    from selenium.common.exceptions import NoAlertPresentException

    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert.text  # noqa: B018


def list_names(driver) -> list[str]:
    from selenium.webdriver.common.by import By

    return [a.text for a in driver.find_elements(By.CSS_SELECTOR, "#datasets tbody td:first-child a")]


def filter_list(driver, base: str, static: bool, **fields: str) -> None:
    """Open the list, fill the form as a user does, submit."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    driver.get(base + "list/1.html")
    form = driver.find_element(By.ID, "filter")
    for name, value in fields.items():
        element = form.find_element(By.NAME, name)
        if element.tag_name == "select":
            Select(element).select_by_visible_text(value)
        else:
            element.clear()
            element.send_keys(value)
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    if static:
        wait(driver, lambda d: d.execute_script("return document.body.dataset.listReady") == "yes")
    else:
        wait(driver, lambda d: "?" in d.current_url)


def walk_catalog(driver, base: str, static: bool) -> None:
    from selenium.webdriver.common.by import By

    # the list, filtered by name; HTML in a name is text, and nothing ran
    filter_list(driver, base, static, q="heat")
    assert list_names(driver) == ["heat.bp"]
    filter_list(driver, base, static, q="img")
    assert list_names(driver) == [shots.XSS_NAME]
    no_alert(driver)
    filter_list(driver, base, static, host="tape")
    assert list_names(driver) == ["heat.bp"]

    # a dataset, then its history: archived to tape, the laptop copy removed
    driver.find_element(By.LINK_TEXT, "heat.bp").click()
    assert driver.find_element(By.ID, "kind").text == "ADIOS"
    replicas = driver.find_element(By.ID, "replicas").text
    assert "tape" in replicas and "/arch/proj" in replicas
    driver.find_element(By.ID, "history-link").click()
    timeline = driver.find_element(By.ID, "timeline").text
    assert "archived replica" in timeline and "tape:/arch/proj[archive]/heat.bp" in timeline
    assert timeline.index("archived") < timeline.index("created")  # newest first

    # the image's thumbnail has loaded
    filter_list(driver, base, static, kind="IMAGE")
    driver.find_element(By.LINK_TEXT, "plot.png").click()
    img = driver.find_element(By.CSS_SELECTOR, "img.thumbnail")
    wait(driver, lambda d: d.execute_script("return arguments[0].complete", img))
    assert driver.execute_script("return arguments[0].naturalWidth", img) == 64

    # a diff: the commit that moved heat.bp to tape, from the log
    driver.get(base + "log.html")
    links = driver.find_elements(By.CSS_SELECTOR, "#log a")
    messages = [m.text for m in driver.find_elements(By.CSS_SELECTOR, "#log .message")]
    links[messages.index("heat.bp to tape")].click()
    wait(driver, lambda d: "log.html" not in d.current_url)
    diff = driver.find_element(By.ID, "diff").text
    assert "moved laptop:" in diff and "tape:/arch/proj[archive]/heat.bp" in diff and "host added tape" in diff


def test_served_catalog_in_chromium(driver, served):
    walk_catalog(driver, served, static=False)
    from selenium.webdriver.common.by import By

    driver.get(served + "diff.html")
    driver.find_element(By.NAME, "a").send_keys("HEAD~3")
    driver.find_element(By.NAME, "b").send_keys("HEAD")
    driver.find_element(By.CSS_SELECTOR, "#diff-form button").click()
    wait(driver, lambda d: "b=HEAD" in d.current_url)
    diff = driver.find_element(By.ID, "diff").text
    assert "renamed" in diff and "added" in diff and "moved" in diff


def test_exported_site_from_file_url_in_chromium(driver, exported):
    walk_catalog(driver, exported, static=True)
    filter_list(driver, exported, True, sort="size", order="desc")
    assert list_names(driver)[:4] == ["mesh.h5", "heat.bp", "run1/pressure.bp", "plot.png"]


@requires(HAVE_INFO, "camp info (campaignvcs.porcelain.info, branch info): the variables table comes from it")
@pytest.mark.parametrize("where", ["served", "exported"])
def test_variables_table_matches_camp_info(driver, demo, where, request):
    from selenium.webdriver.common.by import By

    base = request.getfixturevalue(where)
    repo, env = demo
    info = json.loads(subprocess.run([CAMP, "--repo", repo, "info", "heat.bp", "--json"], env=env, check=True,
                                     capture_output=True, text=True).stdout)
    driver.get(base + f"d/{ident('heat.bp')}.html")
    rows = [[td.text for td in tr.find_elements(By.TAG_NAME, "td")]
            for tr in driver.find_elements(By.CSS_SELECTOR, "#variables tbody tr")]

    def text(value) -> str:
        return "" if value is None else str(value)

    expected = [[v["name"], v["type"], "×".join(map(str, v["shape"])) if v["shape"] else "scalar", text(v["steps"]),
                 text(v["min"]), text(v["max"]), text(v["value"]) if v["single_value"] else ""]
                for v in info["variables"]]
    assert rows == expected and rows
