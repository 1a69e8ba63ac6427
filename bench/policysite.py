"""A generated site of policy pages for the benchmark, and the process that serves it.

Pages look like the documents the monitor watches: a page chrome (head styles, big inline scripts,
navigation, cookie banner, footer) around a ``<main>`` holding headings, paragraphs full of
commitment language, lists and tables. Sizes are mixed (20 KB to 1 MB) and a few pages are PDFs.
Everything is derived from (seed, page index), so a page can be rebuilt byte for byte, and an
*edit* (a modal downgrade plus a relaxed number, the changes the monitor exists to catch) is
applied to the page model and rendered again, never patched into the bytes.

``Site.start`` serves the pages on 127.0.0.1 with uvicorn and Starlette's StaticFiles (ETag,
Last-Modified, 304) in a process of its own, so the server's CPU is never counted as ours.
"""

from __future__ import annotations

import io
import random
import re
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from html import escape
from itertools import groupby
from pathlib import Path

import httpx

SELECT = "main"
DROP = ("aside", ".cookie-banner")

COMPANIES = ("Aster Labs", "Borealis AI", "Cobalt Systems", "Dunlin Research", "Ember Models",
             "Fjord Intelligence", "Galena AI", "Heron Compute")
TITLES = ("Responsible Scaling Policy", "Frontier Safety Framework", "Usage Policies",
          "Preparedness Framework", "AI Principles", "Model Release Policy", "Security Commitments",
          "Transparency Report Policy")
SUBJECTS = ("We", "Our company", "The safety team", "Our researchers", "The board", "We")
MODALS = ("will", "will not", "must", "shall", "commit to", "will never")
VERBS = ("evaluate", "publish", "test", "restrict", "review", "disclose", "audit", "monitor",
         "pause", "report", "document", "verify", "red-team", "limit", "notify regulators about",
         "share", "retain", "delete", "encrypt", "escalate")
OBJECTS = ("frontier models", "dangerous capability evaluations", "model weights",
           "deployment decisions", "security incidents", "capability thresholds",
           "third-party audit results", "training compute", "misuse reports", "system cards",
           "safeguard evaluations", "fine-tuning access", "bio-risk uplift studies",
           "cyber-offence evaluations", "autonomy benchmarks", "incident response plans",
           "access controls", "red-team findings", "external researcher access",
           "whistleblower reports")
CONDITIONS = ("before any public release", "within {n} days of a material change",
              "at least every {n} months", "for every model above {n} petaflop-days",
              "with at least {n} independent reviewers", "unless the risk is assessed as low",
              "in coordination with government partners", "where the threshold is crossed",
              "no later than {n} days after deployment", "for {n} percent of training runs",
              "across all product surfaces", "before weights leave our secure environment")
PROSE = ("This section explains how {o} relate to the obligations described above.",
         "The process for {o} is reviewed by the {t} committee each quarter.",
         "Section {s} sets out definitions used when discussing {o}.",
         "In practice, decisions about {o} involve several teams across {c}.",
         "Historical context for {o} is given in the appendix to version {n}.",
         "Readers should consult the glossary entry on {o} for edge cases.")
NUMBER = re.compile(r"\b(\d+)( days| months| percent| independent reviewers| petaflop-days)")


@dataclass(frozen=True)
class Page:
    """One document of the site: its index, kind (html or pdf) and target size in bytes."""

    index: int
    kind: str
    size: int

    @property
    def name(self) -> str:
        return f"p{self.index:05d}.{self.kind}"

    @property
    def company(self) -> str:
        return COMPANIES[self.index % len(COMPANIES)]

    @property
    def title(self) -> str:
        return f"{TITLES[self.index // len(COMPANIES) % len(TITLES)]} {self.index}"


@dataclass
class Block:
    kind: str  # h1 h2 h3 p li row
    text: str | tuple[str, ...]


@dataclass
class Model:
    """The text of one page, as blocks; what gets rendered to HTML or PDF."""

    page: Page
    blocks: list[Block] = field(default_factory=list)


def plan(count: int, *, pdf_fraction: float, seed: int) -> list[Page]:
    """The first ``count`` pages of the site; page i is the same whatever ``count`` is."""
    pdf_every = round(1 / pdf_fraction) if pdf_fraction > 0 else 0
    pages = []
    for index in range(count):
        rng = random.Random(f"{seed}:size:{index}")
        kind = "pdf" if pdf_every and index % pdf_every == pdf_every - 1 else "html"
        pages.append(Page(index, kind, _size(rng, kind)))
    return pages


def _size(rng: random.Random, kind: str) -> int:
    """Most policy pages are 20-100 KB, some a few hundred KB, a few near 1 MB."""
    if kind == "pdf":
        return rng.randint(20_000, 300_000)
    roll = rng.random()
    if roll < 0.80:
        return rng.randint(20_000, 100_000)
    if roll < 0.95:
        return rng.randint(100_000, 400_000)
    return rng.randint(400_000, 1_000_000)


def build(page: Page, seed: int) -> Model:
    """The page's text: 40% of a small HTML page, at most 200 KB (a 1 MB page is mostly scripts
    and markup, as real ones are); a PDF is nearly all text."""
    rng = random.Random(f"{seed}:text:{page.index}")
    budget = min(page.size * 0.4, 200_000) if page.kind == "html" else page.size * 0.9
    model = Model(page, [Block("h1", f"{page.company} {page.title}")])
    used, section = 0, 0
    while used < budget:
        section += 1
        blocks = _section(rng, page, section)
        model.blocks += blocks
        used += sum(len(" ".join(b.text) if isinstance(b.text, tuple) else b.text) for b in blocks)
    return model


def _section(rng: random.Random, page: Page, number: int) -> list[Block]:
    blocks = [Block("h2", f"{number}. {rng.choice(OBJECTS).capitalize()}")]
    for sub in range(1, rng.randint(2, 4)):
        blocks.append(Block("h3", f"{number}.{sub} {rng.choice(VERBS).capitalize()} "
                                  f"{rng.choice(OBJECTS)}"))
        for _ in range(rng.randint(2, 5)):
            sentences = [_sentence(rng, page, f"{number}.{sub}") for _ in range(rng.randint(2, 6))]
            blocks.append(Block("p", " ".join(sentences)))
        if rng.random() < 0.5:
            blocks += [Block("li", _commitment(rng, page)) for _ in range(rng.randint(3, 7))]
        if rng.random() < 0.2:
            blocks.append(Block("row", ("Threshold", "Required safeguard", "Review period")))
            blocks += [Block("row", (f"Level {level}", rng.choice(OBJECTS),
                                     f"{rng.randint(1, 24)} months"))
                       for level in range(1, rng.randint(3, 6))]
    return blocks


def _sentence(rng: random.Random, page: Page, section: str) -> str:
    if rng.random() < 0.55:
        return _commitment(rng, page)
    return rng.choice(PROSE).format(o=rng.choice(OBJECTS), t=rng.choice(VERBS), s=section,
                                    c=page.company, n=rng.randint(2, 40))


def _commitment(rng: random.Random, page: Page) -> str:
    condition = rng.choice(CONDITIONS).format(n=rng.randint(2, 180))
    return (f"{rng.choice(SUBJECTS)} {rng.choice(MODALS)} {rng.choice(VERBS)} "
            f"{rng.choice(OBJECTS)} {condition}.")


def commitment_quote(model: Model) -> str:
    """A sentence for the watchlist to track by quote: the page's first "will" commitment."""
    for block in model.blocks:
        if block.kind in ("p", "li") and isinstance(block.text, str):
            for sentence in re.split(r"(?<=\.) ", block.text):
                if " will " in sentence:
                    return sentence
    raise ValueError(f"page {model.page.name} has no commitment sentence")


def edit(model: Model, rng: random.Random) -> Model:
    """A substantive edit: one "will" becomes "may", and one number in a condition triples."""
    blocks = list(model.blocks)
    for applies, change in ((_plain_will, _downgrade), (NUMBER.search, _relax)):
        candidates = [i for i, block in enumerate(blocks)
                      if block.kind in ("p", "li") and applies(str(block.text))]
        if candidates:
            chosen = rng.choice(candidates)
            blocks[chosen] = Block(blocks[chosen].kind, change(str(blocks[chosen].text)))
    return Model(model.page, blocks)


def _plain_will(text: str) -> bool:
    return " will " in text and " will not " not in text


def _downgrade(text: str) -> str:
    return text.replace(" will ", " may ", 1)


def _relax(text: str) -> str:
    return NUMBER.sub(lambda m: f"{int(m.group(1)) * 3}{m.group(2)}", text, count=1)


def render(model: Model, seed: int) -> bytes:
    return render_pdf(model) if model.page.kind == "pdf" else render_html(model, seed)


def render_html(model: Model, seed: int) -> bytes:
    page = model.page
    rng = random.Random(f"{seed}:chrome:{page.index}")
    body = "\n".join(_html_group(kind, list(group), rng)
                     for kind, group in groupby(model.blocks, key=lambda b: b.kind))
    text_size = len(body)
    script = _script(rng, max(page.size - text_size - 6_000, 2_000))
    nav = "".join(f'<li><a href="/docs/{rng.randint(0, 9999):05d}">{escape(rng.choice(OBJECTS))}'
                  f"</a></li>" for _ in range(30))
    return (f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(page.company)} - {escape(page.title)}
</title><meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font-family:system-ui;margin:0}}main{{max-width:48rem;margin:auto}}
.cookie-banner{{position:fixed;bottom:0}}nav ul{{display:flex;gap:1rem}}</style>
<script>{script[: len(script) // 2]}</script></head>
<body><header><nav aria-label="Main"><ul>{nav}</ul></nav></header>
<main><div class="cookie-banner">We use cookies to improve your experience. <button>Accept</button>
</div><article>
{body}
<aside class="related"><h2>Related</h2><p>Read our latest news and blog posts.</p></aside>
</article></main>
<footer><p>&copy; 2026 {escape(page.company)}. All rights reserved.</p><ul>{nav}</ul></footer>
<script>{script[len(script) // 2:]}</script></body></html>
""").encode()


def _html_group(kind: str, blocks: list[Block], rng: random.Random) -> str:
    """Consecutive list items share one <ul>, consecutive rows one <table>."""
    if kind == "row":
        rows = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in b.text) + "</tr>\n"
                       for b in blocks)
        return f"<table>\n{rows}</table>"
    if kind == "li":
        return "<ul>" + "".join(f"<li>{_inline(str(b.text), rng)}</li>" for b in blocks) + "</ul>"
    return "\n".join(f"<{kind}>{_inline(str(b.text), rng)}</{kind}>" for b in blocks)


def _inline(text: str, rng: random.Random) -> str:
    """Escaped text, sometimes with a link around one word (inline markup must not split it)."""
    words = escape(text).split(" ")
    if rng.random() < 0.3:
        at = rng.randrange(len(words))
        words[at] = f'<a href="/glossary#{rng.randint(1, 999)}">{words[at]}</a>'
    return " ".join(words)


def _script(rng: random.Random, size: int) -> str:
    """Minified-looking JavaScript: what a normaliser must skip cheaply."""
    parts, used = [], 0
    while used < size:
        name = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(6))
        chunk = (f"function {name}(e,t){{var n=e.{name}||{{}};return t&&n[t]?n[t]:"
                 f'"{rng.getrandbits(64):x}"}};window.__d{used}={{k:"{name}",v:{rng.random():.6f}}};')
        parts.append(chunk)
        used += len(chunk)
    return "".join(parts)


def render_pdf(model: Model) -> bytes:
    """A text PDF (reportlab, invariant so the same model gives the same bytes)."""
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Table

    styles = getSampleStyleSheet()
    style = {"h1": styles["Heading1"], "h2": styles["Heading2"], "h3": styles["Heading3"],
             "p": styles["BodyText"], "li": styles["Bullet"]}
    flow, rows = [], []
    for block in model.blocks:
        if block.kind == "row":
            rows.append(list(block.text))
            continue
        if rows:
            flow.append(Table(rows))
            rows = []
        assert isinstance(block.text, str)
        prefix = "- " if block.kind == "li" else ""
        flow.append(Paragraph(prefix + escape(block.text), style[block.kind]))
    if rows:
        flow.append(Table(rows))
    out = io.BytesIO()
    SimpleDocTemplate(out, pagesize=A4, invariant=1, title=model.page.title).build(flow)
    return out.getvalue()


class Site:
    """The pages of one benchmark run on disk, pristine and served copies, and their server."""

    def __init__(self, root: Path, pages: list[Page], seed: int) -> None:
        self.root = root
        self.pages = pages
        self.seed = seed
        self.pristine = root / f"pristine-{seed}"
        self.served = root / "served"
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.edited: list[Page] = []

    def generate(self) -> None:
        """Write the pages not on disk yet; pages are cached across runs (same seed, same bytes)."""
        self.pristine.mkdir(parents=True, exist_ok=True)
        for page in self.pages:
            path = self.pristine / page.name
            if not path.exists():
                tmp = path.with_suffix(".tmp")
                tmp.write_bytes(render(build(page, self.seed), self.seed))
                tmp.replace(path)

    def reset(self) -> None:
        """Serve the pristine pages again, under fresh modification times (so fresh ETags)."""
        self.served.mkdir(parents=True, exist_ok=True)
        for page in self.pages:
            shutil.copyfile(self.pristine / page.name, self.served / page.name)
        self.edited = []

    def edit(self, fraction: float, rng: random.Random) -> list[Page]:
        """Apply a substantive edit to ``fraction`` of the pages (at least one)."""
        count = max(1, round(len(self.pages) * fraction))
        self.edited = rng.sample(self.pages, count)
        for page in self.edited:
            model = edit(build(page, self.seed), random.Random(f"{self.seed}:edit:{page.index}"))
            (self.served / page.name).write_bytes(render(model, self.seed))
        return self.edited

    def undo_edits(self) -> None:
        """Serve the edited pages' pristine text again (under new modification times)."""
        for page in self.edited:
            shutil.copyfile(self.pristine / page.name, self.served / page.name)
        self.edited = []

    def url(self, page: Page) -> str:
        return f"http://127.0.0.1:{self.port}/docs/{page.name}"

    def start(self, deadline: float = 20.0) -> None:
        """Serve on a socket bound here (so no port race) and inherited by the child."""
        with socket.create_server(("127.0.0.1", 0)) as sock:
            self.port = sock.getsockname()[1]
            self.process = subprocess.Popen(
                [sys.executable, __file__, "serve", str(self.served), str(sock.fileno())],
                pass_fds=[sock.fileno()])
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            try:
                httpx.get(self.url(self.pages[0]), timeout=1).raise_for_status()
                return
            except httpx.TransportError:
                if self.process.poll() is not None:
                    raise RuntimeError("the site server exited at start") from None
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"the site server did not answer within {deadline:.0f} s")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None


def serve(directory: str, fd: int) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.routing import Mount
    from starlette.staticfiles import StaticFiles

    app = Starlette(routes=[Mount("/docs", app=StaticFiles(directory=directory))])
    config = uvicorn.Config(app, log_level="warning", access_log=False)
    uvicorn.Server(config).run(sockets=[socket.socket(fileno=fd)])


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] != "serve":
        sys.exit("usage: policysite.py serve DIR FD  (FD: an inherited listening socket)")
    serve(sys.argv[2], int(sys.argv[3]))
