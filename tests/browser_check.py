"""Open every page of the built tutorial site in a real browser and check what a reader would see.

    python tests/browser_check.py build/book/html        (`make book-check`, after `make book`)
    python tests/browser_check.py build/book/html --screenshots docs/_static    (also the README's screenshots)

Debian's chromium (apt-get install chromium), driven by Playwright, loads the site from a local HTTP server, and
every request that leaves that server is blocked: the pages must work offline. For each page it asserts:
- no console error, no uncaught exception, no failed or blocked request;
- every <img> decoded (naturalWidth > 0), and a notebook page shows at least as many figures as its notebook has
  image outputs;
- where the page has math, MathJax typeset every formula, without a TeX error, and no TeX is left as raw text.
- no code block (``pre``) scrolls sideways at the width of the screenshots (1400 px; scrollWidth > clientWidth);
- the landing page shows a figure and the quick start's code; each results page shows a plot before its first
  table.
Then: the sidebar navigation, followed from the landing page, reaches every page. It prints one line per page,
a summary, and exits non-zero on any failure. Not a pytest module (it needs a build and a browser): .ci/run runs it.
"""

import argparse
import functools
import http.server
import json
import sys
import threading
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
WIDTH = 1400  # the viewport the checks and the screenshots use
# What a reader must see first: the landing page's picture and code, and each results page's plots first.
LANDING = "index.html"
QUICK_START = "MAFMixture(2, random_state=0).fit(X)"
RESULTS_PAGES = ("results.html", "notebooks/04_results.html")
SCREENSHOTS = {"index.html": "screenshot-landing.png", "results.html": "screenshot-results.png"}
IMAGE_TYPES = {"image/png", "image/jpeg", "image/gif", "image/svg+xml"}

# Runs in the page once it has loaded: waits for MathJax (2 or 3) if the page loads it, then measures.
MEASURE = """async () => {
  const imgs = [...document.images];
  await Promise.all(imgs.map(i => { i.loading = 'eager'; return i.decode().catch(() => null); }));
  let jax = 0, texErrors = 0;
  if (document.querySelector('script[src*="mathjax" i], script[src*="MathJax" i]')) {
    for (let t = 0; t < 300 && !(window.MathJax && (MathJax.isReady || MathJax.startup)); t++)
      await new Promise(r => setTimeout(r, 100));
    if (window.MathJax && MathJax.Hub) {  // MathJax 2: wait until its queue has typeset the page
      await new Promise(r => MathJax.Hub.Queue(r));
      const all = MathJax.Hub.getAllJax();
      jax = all.length; texErrors = all.filter(j => j.root && j.root.texError).length;
    } else if (window.MathJax && MathJax.startup) {  // MathJax 3
      await MathJax.startup.promise;
      jax = document.querySelectorAll('mjx-container').length;
      texErrors = document.querySelectorAll('mjx-merror').length;
    }
  }
  const math = [...document.querySelectorAll('.math')];
  const untypeset = math.filter(m => !m.querySelector('.MathJax_CHTML, .MathJax, .MathJax_SVG, mjx-container')).length;
  // TeX left as text where a reader sees it (code and the typeset math themselves excluded).
  const article = document.querySelector('article') || document.body;
  const copy = article.cloneNode(true);
  copy.querySelectorAll('pre, code, script, .math, .MathJax_Preview').forEach(e => e.remove());
  // $$, \\(, \\[, \tag{, \frac, and $x$-like inline math (no space inside either dollar, as dollarmath wants).
  const tex = /\\$\\$|\\\\\\(|\\\\\\[|\\\\tag\\{|\\\\frac|\\$[^\\s$](?:[^$\\n]{0,80}[^\\s$])?\\$/g;
  const raw = (copy.textContent.match(tex) || []).length;
  return {
    images: imgs.map(i => ({src: (i.getAttribute('src') || '').slice(0, 80), ok: i.complete && i.naturalWidth > 0,
                            output: !!i.closest('.cell_output, .output')})),
    math: math.length, jax, texErrors, untypeset, raw,
    nav: [...document.querySelectorAll('nav.bd-docs-nav a')].map(a => a.href.split('#')[0]),
    // Code blocks wider than their box: a reader would scroll sideways (the longest line says which).
    wide: [...article.querySelectorAll('pre')].filter(p => p.scrollWidth > p.clientWidth + 1)
      .map(p => p.textContent.split('\\n').reduce((a, b) => (b.length > a.length ? b : a), '').slice(0, 70)),
    code: [...article.querySelectorAll('pre')].map(p => p.textContent),
    // Whether the first shown figure (not the Colab badge) comes before the first table.
    plotFirst: (() => {
      const figure = [...article.querySelectorAll('img')].find(i => i.naturalWidth > 0 && !/colab/i.test(i.src));
      const table = article.querySelector('table');
      if (!figure) return false;
      return !table || !!(figure.compareDocumentPosition(table) & Node.DOCUMENT_POSITION_FOLLOWING);
    })(),
  };
}"""


def image_outputs(notebook):
    """Image outputs in a notebook's JSON: what its page must show as figures."""
    cells = json.loads(notebook.read_text())["cells"]
    return sum(bool(IMAGE_TYPES & set(out.get("data", {}))) for cell in cells for out in cell.get("outputs", []))


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # the browser drops connections it no longer needs (favicon.ico, closed pages)


def serve(root):
    handler = functools.partial(QuietHandler, directory=str(root))
    server = QuietServer(("127.0.0.1", 0), handler)  # port 0: a free one
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("site", type=Path, help="the built site, e.g. build/book/html")
    parser.add_argument("--sources", type=Path, help="the notebooks it was built from (default: SITE/../src)")
    parser.add_argument("--screenshots", type=Path, help="also save the landing and results pages here, as PNGs")
    args = parser.parse_args()
    site = args.site.resolve()
    sources = (args.sources or site.parent / "src").resolve()
    pages = sorted(p.relative_to(site).as_posix() for p in site.rglob("*.html") if "_static" not in p.parts)
    if "index.html" not in pages:
        sys.exit(f"no site in {site}: run `make book` first")
    missing = [name for name in RESULTS_PAGES if name not in pages]
    if missing:
        sys.exit(f"the site has no {', '.join(missing)}: the results checks need them")
    from playwright.sync_api import sync_playwright  # after the usage check: a clear error comes first

    server = serve(site)
    base = f"http://127.0.0.1:{server.server_port}/"
    failures, sidebar, totals = [], {}, {"images": 0, "figures": 0, "math pages": 0, "equations": 0}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": WIDTH, "height": 1000})
        blocked = []

        def only_local(route):
            if route.request.url.startswith(base) or route.request.url.startswith("data:"):
                route.continue_()
            else:
                blocked.append(route.request.url)
                route.abort()

        context.route("**/*", only_local)
        for name in pages:
            page = context.new_page()
            errors, blocked[:] = [], []
            page.on("console", lambda m: m.type == "error" and errors.append(f"console: {m.text}"))
            page.on("pageerror", lambda e: errors.append(f"exception: {e}"))
            page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url} {r.failure}"))
            page.on("response", lambda r: r.status >= 400 and errors.append(f"HTTP {r.status}: {r.url}"))
            page.goto(base + name, wait_until="load")
            found = page.evaluate(MEASURE)
            if args.screenshots and name in SCREENSHOTS:
                # The top 1600 px: on the landing page, the figure, the install line and the quick start.
                clip = {"x": 0, "y": 0, "width": WIDTH, "height": 1600}
                page.screenshot(path=str(args.screenshots / SCREENSHOTS[name]), full_page=True, clip=clip)
            page.close()

            problems = errors + [f"blocked (not local): {url}" for url in blocked]
            problems += [f"image not shown: {i['src']}" for i in found["images"] if not i["ok"]]
            figures = sum(i["output"] and i["ok"] for i in found["images"])
            notebook = sources / Path(name).with_suffix(".ipynb")
            expected = image_outputs(notebook) if notebook.is_file() else 0
            if figures < expected:
                problems.append(f"{figures} figures shown, the notebook has {expected} image outputs")
            if found["math"]:
                if found["jax"] < found["math"] or found["untypeset"]:
                    problems.append(
                        f"math not typeset: {found['untypeset']} of {found['math']} formulas "
                        f"({found['jax']} typeset by MathJax)"
                    )
                if found["texErrors"]:
                    problems.append(f"{found['texErrors']} TeX errors")
            if found["raw"]:
                problems.append(f"{found['raw']} pieces of TeX shown as text")
            problems += [f"code block scrolls sideways at {WIDTH} px: {line!r}" for line in found["wide"]]
            if name == LANDING:
                if not any(i["ok"] and "colab" not in i["src"].lower() for i in found["images"]):
                    problems.append("the landing page shows no figure")
                if not any(QUICK_START in code for code in found["code"]):
                    problems.append(f"the landing page shows no quick start ({QUICK_START!r})")
            if name in RESULTS_PAGES and not found["plotFirst"]:
                problems.append("a table comes before the first plot")
            sidebar[name] = {url[len(base) :] for url in found["nav"] if url.startswith(base)}

            totals["images"] += len(found["images"])
            totals["figures"] += figures
            totals["math pages"] += bool(found["math"])
            totals["equations"] += found["jax"]
            print(
                f"{'FAIL' if problems else 'ok  '} {name}: {len(found['images'])} images ({figures} figures), "
                f"{found['jax']} equations typeset"
            )
            failures += [f"{name}: {p}" for p in problems]
        browser.close()
    server.shutdown()

    # The navigation: following sidebar links from the landing page reaches every page
    # (but genindex and search, which the search box and the index link lead to).
    reached, todo = {"index.html"}, ["index.html"]
    while todo:
        for link in sidebar.get(todo.pop(), ()):
            if link not in reached:
                reached.add(link)
                todo.append(link)
    content = [p for p in pages if p not in ("genindex.html", "search.html")]
    unreached = sorted(set(content) - reached)
    failures += [f"{name}: not reached by the sidebar navigation" for name in unreached]
    failures += [f"{name}: the sidebar links to it, but there is no such page" for name in sorted(reached - set(pages))]
    notebooks = sum(p.startswith("notebooks/") for p in pages)
    print(
        f"{len(pages)} pages ({notebooks} notebooks), {totals['images']} images ({totals['figures']} output "
        f"figures) all checked, {totals['equations']} equations typeset on {totals['math pages']} pages, "
        f"{len(content) - len(unreached)} of {len(content)} pages reached from the sidebar"
    )
    for failure in failures:
        print("FAILED", failure)
    failed = {f.split(":")[0] for f in failures}
    print(f"browser_check: {sum(p not in failed for p in pages)} passed, {len(failed)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
