#!/usr/bin/env python3
"""Read the built book as a reader would, offline: open every page of ``_build/html`` in headless Chromium with
every request off this machine refused, and fail on what a reader would see broken.

Fails on: raw LaTeX left in the text (``\\(``, ``\\[``, ``$$``, ``\\begin{``: MathJax did not run); a math element
without MathJax output or with a TeX error; no MathJax output at all on the pages named by ``--math-page`` (the
method page); an image that did not load (naturalWidth 0); the CI-size banner
missing on a notebook page of a CI-size build, or shown on a notebook page of any other build.

    python scripts/check_book.py [--html _build/html] [--math-page book/method.html] [--size ci]

Needs Playwright (``pip install playwright``, the Python package only) and a Chromium binary: ``--chromium``,
``$CHROMIUM`` or ``chromium`` on the PATH (Debian's package; Playwright's own browser download is not used).
Exit status 0 when every page passes, 1 otherwise (one line per problem), 2 when it cannot run.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import os
import shutil
import sys
import threading
from pathlib import Path
from urllib.parse import urlparse

# Chromium's own calls home (component updates, sync) are refused by an offline machine; keep it from trying.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
SKIP = {"genindex.html", "search.html", "py-modindex.html"}
BANNER_CLASS = "threephase-size-banner"  # threephase.notebook.size_banner's element

# Runs in the page once it has loaded and MathJax (if the page has it) has finished typesetting.
INSPECT = """async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) { await MathJax.startup.promise; }
  const body = document.body.cloneNode(true);
  body.querySelectorAll('pre, code, script, style, textarea, mjx-container, .highlight').forEach(e => e.remove());
  const text = body.textContent;
  const raw = [];
  for (const token of ['\\\\(', '\\\\[', '$$', '\\\\begin{']) {
    const at = text.indexOf(token);
    if (at >= 0) raw.push(text.slice(Math.max(0, at - 30), at + 50).replace(/\\s+/g, ' '));
  }
  const math = Array.from(document.querySelectorAll('.math'));
  return {
    raw: raw,
    math: math.length,
    unrendered: math.filter(e => !e.querySelector('mjx-container')).length,
    mjx: document.querySelectorAll('mjx-container').length,
    tex_errors: Array.from(document.querySelectorAll('mjx-merror')).map(e => e.getAttribute('data-mjx-error') || 'error'),
    broken_images: Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0)
                        .map(i => i.getAttribute('src').slice(0, 120)),
    banner: document.querySelectorAll('.""" + BANNER_CLASS + """').length,
  };
}"""


def pages(html: Path) -> list[Path]:
    """The book's pages: every HTML file except Sphinx's index, search and module-source pages."""
    found = [p for p in sorted(html.rglob("*.html"))
             if p.name not in SKIP and not {"_static", "_sources", "_modules", "_images", "reports"} & set(p.parts)]
    # index.html only redirects to the root page (a meta refresh): it has nothing to read
    return [p.relative_to(html) for p in found if 'http-equiv="Refresh"' not in p.read_text(errors="replace")[:2000]]


def serve(root: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    """Serve ``root`` on a free localhost port in a daemon thread; return the server and its base URL."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):  # one line per file would bury the report
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def check_page(page, url: str, name: str, *, math_page: bool, size: str, js_errors: set[str] | None = None) -> list[str]:
    """The problems of one page (empty when it passes). JavaScript errors are collected into ``js_errors`` but do
    not fail the page: the theme's own (sphinx-thebe declares its settings twice) would fail every page."""
    if js_errors is not None:
        page.on("pageerror", lambda exc: js_errors.add(str(exc).splitlines()[0][:160]))
    page.goto(url, wait_until="load", timeout=60_000)
    seen = page.evaluate(INSPECT)
    problems = [f"raw LaTeX in the text: ...{snippet}..." for snippet in seen["raw"]]
    if seen["unrendered"]:
        problems.append(f"{seen['unrendered']} of {seen['math']} math elements have no MathJax output")
    if math_page and seen["mjx"] == 0:
        problems.append("MathJax produced no output (no mjx-container) on the method page")
    problems += [f"TeX error in an equation: {e}" for e in seen["tex_errors"]]
    problems += [f"broken image: {src}" for src in seen["broken_images"]]
    if name.startswith("notebooks/"):
        if size == "ci" and not seen["banner"]:
            problems.append("no CI-size banner on a notebook page of a CI-size build")
        if size != "ci" and seen["banner"]:
            problems.append(f"CI-size banner on a notebook page of a '{size or 'default'}'-size build")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--html", default="_build/html", help="the built book (default: _build/html)")
    parser.add_argument("--math-page", action="append", default=None,
                        help="a page that must show MathJax output (default: book/method.html); repeatable")
    parser.add_argument("--size", default=os.environ.get("THREEPHASE_NOTEBOOK_SIZE", ""),
                        help="the notebook size the book was built at (default: $THREEPHASE_NOTEBOOK_SIZE)")
    parser.add_argument("--chromium", default=os.environ.get("CHROMIUM") or shutil.which("chromium"),
                        help="the Chromium binary (default: $CHROMIUM, else chromium on the PATH)")
    args = parser.parse_args(argv)
    html = Path(args.html)
    math_pages = set(args.math_page or ["book/method.html"])
    size = args.size.strip().lower()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        print("check_book: needs Playwright: pip install playwright (the browser comes from --chromium)", file=sys.stderr)
        return 2
    if not args.chromium or not Path(args.chromium).is_file():
        print("check_book: no Chromium binary: apt-get install chromium, or pass --chromium", file=sys.stderr)
        return 2
    names = [p.as_posix() for p in pages(html)]
    if not names or not (html / "index.html").is_file():
        print(f"check_book: no built book at {html} (index.html missing)", file=sys.stderr)
        return 2
    missing = sorted(math_pages - set(names))
    if missing:
        print(f"check_book: no page {', '.join(missing)} in {html}", file=sys.stderr)
        return 2

    server, base = serve(html)
    failures, refused, js_errors = {}, set(), set()
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=args.chromium, headless=True, args=CHROMIUM_ARGS)
            context = browser.new_context()

            def offline(route):  # the reader has no network: refuse everything not served from this build
                if urlparse(route.request.url).hostname == "127.0.0.1":
                    return route.continue_()
                refused.add(urlparse(route.request.url).hostname or route.request.url[:40])
                return route.abort("internetdisconnected")

            context.route("**/*", offline)
            context.set_default_timeout(60_000)  # a page or MathJax that never finishes fails instead of hanging
            for name in names:
                page = context.new_page()
                try:
                    problems = check_page(page, base + name, name, math_page=name in math_pages, size=size,
                                          js_errors=js_errors)
                finally:
                    page.close()
                if problems:
                    failures[name] = problems
            browser.close()
    finally:
        server.shutdown()

    for name, problems in failures.items():
        for problem in problems:
            print(f"check_book: {name}: {problem}")
    for error in sorted(js_errors):
        print(f"check_book: note: JavaScript error (not counted): {error}")
    if refused:
        print(f"check_book: requests refused (offline): {', '.join(sorted(refused))}")
    print(f"check_book: {len(names) - len(failures)} of {len(names)} pages pass offline")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
