"""The built site, read in headless Chromium as a reader would (1280 px wide).

The book is rendered from the stored notebooks (nbval executes them separately) and every
page is opened in the system's Chromium through Playwright. A page fails on a console error,
an image that does not load or lacks a descriptive alt text, code or a page wider than its
column, test scaffolding or a progress bar on the page, or an internal link to nowhere. A
screenshot of each page is kept under ``_build/site-screenshots/``.
"""
import functools
import http.server
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
import yaml

from tests.conftest import ROOT

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-quic"]
SCREENSHOTS = ROOT / "_build" / "site-screenshots"
FILE_NAME = re.compile(r"(^|/)[\w.-]+\.(png|jpe?g|gif|svg)$", re.IGNORECASE)
SCAFFOLDING = re.compile(r"NBVAL_CHECK_OUTPUT|NBVAL_SKIP|\d+%\|[#█▏▎▍▌▋▊▉ ]*\||\d+(\.\d+)?it/s")


@pytest.fixture(scope="session")
def site(tmp_path_factory):
    """Render the book from the committed notebooks with -W; returns the HTML folder."""
    tmp = tmp_path_factory.mktemp("site")
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    config["execute"]["execute_notebooks"] = "off"
    config["exclude_patterns"] = [p for p in config["exclude_patterns"]
                                  if p != "notebooks/*.ipynb"] + ["notebooks/*.py"]
    config["sphinx"]["config"].pop("nb_custom_formats")
    (tmp / "_config.yml").write_text(yaml.safe_dump(config))
    jb = Path(sys.executable).with_name("jupyter-book")
    result = subprocess.run(
        [str(jb), "build", str(ROOT), "--all", "-W", "--config", str(tmp / "_config.yml"),
         "--path-output", str(tmp / "book")], capture_output=True, text=True, timeout=900)
    problems = [line for line in (result.stdout + result.stderr).splitlines()
                if "WARNING" in line or "Warning:" in line or "ERROR" in line]
    assert result.returncode == 0, "\n".join(problems) or result.stderr[-3000:]
    return tmp / "book" / "_build" / "html"


def pages(html: Path) -> list[Path]:
    skip = {"genindex.html", "search.html"}
    return sorted(p for p in html.rglob("*.html") if p.name not in skip
                  and not {"_static", "_sources", "_images"} & set(p.relative_to(html).parts)
                  and 'http-equiv="Refresh"' not in p.read_text()[:2000])


def test_book_builds_with_math_served_locally(site):
    assert (site / "_static" / "mathjax" / "tex-chtml.js").exists(), "MathJax not served"
    for chapter in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py")):
        page = (site / "notebooks" / f"{chapter.stem}.html").read_text()
        assert "<img" in page, f"{chapter.stem}: no figure on the page"
        assert "math notranslate" in page, f"{chapter.stem}: no rendered math"


@pytest.fixture(scope="session")
def browser_pages(site):
    """Open every page; returns ``{relative path: findings}``."""
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: `apt-get install chromium` (make test does this as "
                    "root)")
    from playwright.sync_api import sync_playwright

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    findings = {}
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            errors = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            for path in pages(site):
                rel = path.relative_to(site).as_posix()
                errors.clear()
                page.goto(base + rel, wait_until="networkidle")
                page.evaluate(MATHJAX_DONE)
                page.screenshot(path=str(SCREENSHOTS / rel.replace("/", "__").replace(
                    ".html", ".png")), full_page=True)
                findings[rel] = page.evaluate(INSPECT) | {"errors": list(errors)}
            browser.close()
    finally:
        server.shutdown()
    return findings


MATHJAX_DONE = """() => window.MathJax && window.MathJax.startup
  ? window.MathJax.startup.promise.then(() => true) : false"""

INSPECT = """() => {
  const visible = e => e.offsetParent !== null;
  const wide = e => e.scrollWidth > e.clientWidth + 1;
  return {
    images: Array.from(document.querySelectorAll('article img')).map(i => ({
      src: i.getAttribute('src'), alt: i.getAttribute('alt') || '',
      loaded: i.complete && i.naturalWidth > 0})),
    wide_code: Array.from(document.querySelectorAll('article pre'))
      .filter(e => visible(e) && wide(e)).map(e => e.innerText.slice(0, 80)),
    wide_tables: Array.from(document.querySelectorAll('article table'))
      .filter(e => visible(e) && (wide(e) || e.getBoundingClientRect().width >
        e.closest('article').getBoundingClientRect().width + 1))
      .map(e => `${e.scrollWidth} px: ${e.innerText.slice(0, 60)}`),
    page_width: [document.documentElement.scrollWidth, document.documentElement.clientWidth],
    text: document.querySelector('article') ? document.querySelector('article').innerText : '',
    links: Array.from(document.querySelectorAll('a[href]')).map(a => a.getAttribute('href')),
    ids: Array.from(document.querySelectorAll('[id]')).map(e => e.id),
    math: [document.querySelectorAll('article .math').length,
           document.querySelectorAll('article mjx-container').length],
  };
}"""


def test_math_is_typeset(browser_pages):
    for page, found in browser_pages.items():
        written, typeset = found["math"]
        assert typeset >= written, f"{page}: {written} equations, {typeset} typeset by MathJax"


def test_no_console_errors(browser_pages):
    bad = {page: f["errors"] for page, f in browser_pages.items() if f["errors"]}
    assert not bad, bad


def test_images_load_and_are_described(browser_pages):
    for page, found in browser_pages.items():
        for image in found["images"]:
            assert image["loaded"], f"{page}: image {image['src']} did not load"
            alt = image["alt"].strip()
            assert alt and not FILE_NAME.search(alt), \
                f"{page}: image {image['src']} has alt text {alt!r} (describe the figure)"


def test_nothing_wider_than_its_column(browser_pages):
    for page, found in browser_pages.items():
        assert not found["wide_code"], f"{page}: code wider than its column: " \
                                       f"{found['wide_code'][:3]}"
        assert not found["wide_tables"], f"{page}: tables wider than the column: " \
                                         f"{found['wide_tables'][:3]}"
        scroll, client = found["page_width"]
        assert scroll <= client + 1, f"{page}: page is {scroll} px wide in a {client} px view"


def test_no_scaffolding_or_progress_bars(browser_pages):
    for page, found in browser_pages.items():
        match = SCAFFOLDING.search(found["text"])
        assert not match, f"{page}: {match.group(0)!r} is visible on the page"


def test_internal_links_resolve(browser_pages, site):
    for page, found in browser_pages.items():
        for href in found["links"]:
            url = urlparse(href)
            if url.scheme or href.startswith(("mailto:", "javascript:")):
                continue
            target = (site / page).parent / unquote(url.path) if url.path else site / page
            target = target.resolve()
            assert target.exists(), f"{page}: link {href!r} points nowhere"
            rel = target.relative_to(site.resolve()).as_posix()
            if url.fragment and rel in browser_pages:
                assert url.fragment in browser_pages[rel]["ids"], \
                    f"{page}: link {href!r} names a missing anchor"
