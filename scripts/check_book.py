#!/usr/bin/env python3
"""Read the built book as a reader would, offline: open every page of ``_build/html`` in headless Chromium with
every request off this machine refused, and fail on what a reader would see broken.

Fails on: raw LaTeX left in the text (``\\(``, ``\\[``, ``$$``, ``\\begin{``: MathJax did not run); a math element
without MathJax output or with a TeX error; no MathJax output at all on the pages named by ``--math-page`` (the
method page); an image that did not load (naturalWidth 0); the CI-size banner
missing on a notebook page of a CI-size build, or shown on a notebook page of any other build; a Markdown table
left as raw text (a paragraph of ``| a | b |`` rows: CommonMark rendering has no tables); a PNG (every PNG of the
book is a plot with labels) drawn at less than ``--min-scale`` of its natural width, where its text shrinks below
a readable size; a figure caption whose text contrast with its background is below 4.5:1 (WCAG AA); an output line
of a notebook cut at the right edge (wider than its box); a progress bar saved in an output (frozen where the run
ended); a request off this machine (a CDN script) or a
JavaScript error on any page.

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
import re
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
    // paragraphs and list items, with the text a reader sees: a raw Markdown table is a paragraph of | rows
    paragraphs: Array.from(document.querySelectorAll('article p, article li'))
                     .filter(e => !e.closest('pre, code, .highlight')).map(e => e.textContent),
    pngs: Array.from(document.images)
               .filter(i => /\\.png($|\\?)|^data:image\\/png/i.test(i.getAttribute('src') || '') && i.naturalWidth > 0
                           && i.getBoundingClientRect().width > 0)  // a hidden menu's icon is not read
               .map(i => ({src: i.getAttribute('src').slice(0, 80), natural: i.naturalWidth,
                           shown: i.getBoundingClientRect().width})),
    captions: Array.from(document.querySelectorAll('figcaption')).map(e => {
      const style = getComputedStyle(e);
      let back = null;
      for (let n = e; n && !back; n = n.parentElement) {
        const c = getComputedStyle(n).backgroundColor;
        if (c && c !== 'transparent' && !/rgba\\(.*,\\s*0\\)$/.test(c)) back = c;
      }
      return {text: e.textContent.trim().slice(0, 60), color: style.color, background: back || 'rgb(255, 255, 255)',
              weight: parseInt(style.fontWeight, 10)};
    }),
    // a progress bar saved in a page stays where the run ended: a widget (its script tag), a <progress>, "40%|"
    progress_bars: Array.from(document.querySelectorAll('.cell_output')).filter(e =>
        e.querySelector('progress, script[type="application/vnd.jupyter.widget-view+json"]')
        || /\\d+%\\|/.test(e.textContent)).map(e => e.textContent.trim().slice(0, 60)),
    text_color: (() => { const p = Array.from(document.querySelectorAll('article p')).find(e => !e.closest('figure'));
                         return p ? getComputedStyle(p).color : null; })(),
    cut_outputs: Array.from(document.querySelectorAll('.cell_output pre, .output pre'))
                      .filter(e => e.scrollWidth > e.clientWidth + 1)
                      .map(e => (e.textContent.split('\\n').find(l => l.length * 7 > e.clientWidth) || '').slice(0, 60)),
  };
}"""

# A row of a Markdown table: at least two cells between pipes. Its separator row (| --- |) CommonMark turns into
# dashes, or an em dash with smart quotes.
MARKDOWN_ROW = re.compile(r"\|[^|\n]+\|[^|\n]+\|")
MARKDOWN_SEPARATOR = re.compile(r"\|\s*(?:-{3,}|—|–)\s*\|")
MIN_CONTRAST = 4.5  # WCAG AA for body text


def raw_tables(paragraphs: list[str]) -> list[str]:
    """The paragraphs that are Markdown tables left as text: a row of cells and a separator row."""
    return [p.strip()[:60] for p in paragraphs if MARKDOWN_ROW.search(p) and MARKDOWN_SEPARATOR.search(p)]


def shrunk_images(pngs: list[dict], min_scale: float) -> list[str]:
    """The PNGs drawn at less than ``min_scale`` of their natural width (their labels shrink with them)."""
    return [f"{p['src']} drawn at {p['shown'] / p['natural']:.2f} of its natural width ({p['natural']} px)"
            for p in pngs if p["natural"] and p["shown"] / p["natural"] < min_scale]


def _rgb(color: str) -> tuple[float, ...]:
    return tuple(float(v) for v in re.findall(r"[\d.]+", color)[:3])


def contrast(color: str, background: str) -> float:
    """The WCAG contrast ratio of two CSS ``rgb()`` colours (1 to 21)."""
    def luminance(rgb):
        linear = [c / 255 / 12.92 if c / 255 <= 0.03928 else ((c / 255 + 0.055) / 1.055) ** 2.4 for c in rgb]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    light, dark = sorted((luminance(_rgb(color)), luminance(_rgb(background))), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def faint_captions(captions: list[dict], text_color: str | None = None) -> list[str]:
    """The captions a reader strains to read: below 4.5:1 contrast, or clearly fainter than the page's own text (a
    caption carries the figure's reading, and the theme's muted grey made it the faintest text on the page)."""
    faint = []
    for c in captions:
        ratio = contrast(c["color"], c["background"])
        floor = max(MIN_CONTRAST, 0.9 * contrast(text_color, c["background"]) if text_color else 0)
        if ratio < floor:
            faint.append(f"caption '{c['text']}' has contrast {ratio:.1f}:1, fainter than the text's {floor:.1f}:1")
        elif c.get("weight", 400) < 400:
            faint.append(f"caption '{c['text']}' is set in a light font (weight {c['weight']})")
    return faint


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


def check_page(page, url: str, name: str, *, math_page: bool, size: str, min_scale: float = 0.5) -> list[str]:
    """The problems of one page (empty when it passes), with every request off this machine refused."""
    refused, js_errors = [], []

    def offline(route):  # the reader has no network: refuse everything not served from this build
        if urlparse(route.request.url).hostname == "127.0.0.1":
            return route.continue_()
        refused.append(route.request.url[:100])
        return route.abort("internetdisconnected")

    page.route("**/*", offline)
    page.on("pageerror", lambda exc: js_errors.append(str(exc).splitlines()[0][:160]))
    page.goto(url, wait_until="load", timeout=60_000)
    seen = page.evaluate(INSPECT)
    return problems_of(seen, name, math_page=math_page, size=size, min_scale=min_scale, refused=refused,
                       js_errors=js_errors)


def problems_of(seen: dict, name: str, *, math_page: bool, size: str, min_scale: float = 0.5,
                refused: list[str] = (), js_errors: list[str] = ()) -> list[str]:
    """The problems in what :data:`INSPECT` saw on page ``name`` (empty when it passes)."""
    problems = [f"raw LaTeX in the text: ...{snippet}..." for snippet in seen["raw"]]
    if seen["unrendered"]:
        problems.append(f"{seen['unrendered']} of {seen['math']} math elements have no MathJax output")
    if math_page and seen["mjx"] == 0:
        problems.append("MathJax produced no output (no mjx-container) on the method page")
    problems += [f"TeX error in an equation: {e}" for e in seen["tex_errors"]]
    problems += [f"broken image: {src}" for src in seen["broken_images"]]
    problems += [f"raw Markdown table in the text: {text}..." for text in raw_tables(seen.get("paragraphs", []))]
    problems += [f"figure too small to read: {line}" for line in shrunk_images(seen.get("pngs", []), min_scale)]
    problems += faint_captions(seen.get("captions", []), seen.get("text_color"))
    problems += [f"output line cut at the right edge: {line}..." for line in seen.get("cut_outputs", [])]
    problems += [f"a frozen progress bar in an output: {text}..." for text in seen.get("progress_bars", [])]
    problems += [f"request off this machine (refused offline): {url}" for url in sorted(set(refused))]
    problems += [f"JavaScript error: {error}" for error in sorted(set(js_errors))]
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
    parser.add_argument("--min-scale", type=float, default=0.5,
                        help="the smallest drawn / natural width of a PNG (default 0.5: its labels at half size)")
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
    failures = {}
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=args.chromium, headless=True, args=CHROMIUM_ARGS)
            # a laptop's window: the text column is then as wide as most readers see it
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.set_default_timeout(60_000)  # a page or MathJax that never finishes fails instead of hanging
            for name in names:
                page = context.new_page()
                try:
                    problems = check_page(page, base + name, name, math_page=name in math_pages, size=size,
                                          min_scale=args.min_scale)
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
    print(f"check_book: {len(names) - len(failures)} of {len(names)} pages pass offline")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
