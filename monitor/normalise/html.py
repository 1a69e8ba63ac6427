"""HTML -> normalised text: select the policy region, drop noise, walk the blocks in reading order.

Unlike ``get_text("\\n")``, the walk keeps inline elements (links, emphasis, spans) inside their
sentence and gives each block exactly one line, so a re-render of the same page (new class names,
nonces, script contents, whitespace or link tokens) yields the same text.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from bs4 import BeautifulSoup, NavigableString, Tag

from monitor.errors import NormaliseError
from monitor.normalise.text import fold, heading, list_item, paragraph, table_row

NON_CONTENT = frozenset({
    "script", "style", "noscript", "template", "svg", "math", "iframe", "object", "embed",
    "canvas", "video", "audio", "map", "head", "input", "select", "textarea", "button", "option",
    "datalist", "meter", "progress", "dialog", "title", "meta", "link",
})
"""Never text, wherever they sit (forms themselves stay: some sites wrap the whole page in one)."""

HIDDEN_CLASSES = frozenset({"sr-only", "visually-hidden", "visuallyhidden", "screen-reader-text"})
ICON_TAGS = frozenset({"span", "i", "a", "em", "b", "small", "sup", "abbr"})
"""aria-hidden counts only on these inline elements: some sites set it on the container of the
whole page while a dialog is open (Meta's policy pages do)."""
CHROME_TAGS = frozenset({"nav", "aside"})
CHROME_ROLES = frozenset({"navigation", "banner", "contentinfo", "search", "dialog", "alertdialog",
                          "listbox", "menu", "menubar", "toolbar"})
CHROME_IDS = frozenset({"onetrust-consent-sdk", "cybotcookiebotdialog"})
CHROME_MARKERS = ("cookie-banner", "cookie-consent", "cookie-notice", "cc-window", "skip-link",
                  "skip-to-content")
"""Page chrome, dropped when the source has no ``select``: navigation, banners, cookie notices,
skip links (matched in Python rather than by CSS: one pass over a 1 MB page, not twenty)."""

HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
LISTS = frozenset({"ul", "ol", "menu", "dir"})
SPECIAL_BLOCKS = frozenset({*HEADINGS, *LISTS, "li", "table"})
BLOCKS = frozenset({
    "address", "article", "aside", "blockquote", "body", "caption", "center", "dd", "details",
    "div", "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form", "header", "hgroup",
    "hr", "html", "legend", "li", "main", "nav", "p", "pre", "section", "summary", "table",
    "tbody", "td", "tfoot", "th", "thead", "tr", *HEADINGS, *LISTS,
})


def extract(body: bytes, *, url: str, select: str | None = None, drop: Iterable[str] = (),
            encoding: str | None = None) -> tuple[str, str | None]:
    """Return (normalised text, page title). Raises NormaliseError for an empty selection."""
    soup = BeautifulSoup(body, "lxml", from_encoding=encoding)
    title = _title(soup)
    regions = _regions(soup, url, select)
    noise = _is_chrome_or_hidden if select is None else _is_hidden
    for region in regions:
        for selector in drop:
            _decompose(region.select(selector))
        _clean(region, noise)
    try:
        lines = [line for region in regions for line in Walker().lines(region) if line]
    except RecursionError:
        raise NormaliseError("too_deep", f"{url}: the HTML is nested too deeply to read "
                             "(malformed markup?); point 'select' at the policy's own element"
                             ) from None
    if not lines:
        where = f"the part selected by {select!r}" if select else "the page"
        raise NormaliseError("empty", f"{url}: {where} has no text; check the page in a browser "
                             "(it may need `fetch: browser`) or fix 'select'/'drop'")
    return "\n".join(lines), title


def _title(soup: BeautifulSoup) -> str | None:
    node = soup.title or soup.find("h1")
    title = fold(node.get_text(" ")) if node else ""
    return title or None


def _regions(soup: BeautifulSoup, url: str, select: str | None) -> list[Tag]:
    if select is None:
        return [soup.body or soup]
    matches = soup.select(select)
    # A match nested in another match would be read twice (bs4 compares tags by content, so
    # compare identities).
    ids = {id(match) for match in matches}
    regions = [m for m in matches if not any(id(parent) in ids for parent in m.parents)]
    if not regions:
        raise NormaliseError("selector_empty", f"{url}: selector {select!r} matched nothing; "
                             "the page layout may have changed, update 'select' in the watchlist")
    return regions


def _is_hidden(tag: Tag) -> bool:
    attrs = tag.attrs
    # hidden="until-found" is a collapsed section the browser's find still opens: content.
    return (attrs.get("hidden", "until-found") != "until-found"
            or not HIDDEN_CLASSES.isdisjoint(attrs.get("class", ()))
            or tag.name in ICON_TAGS and attrs.get("aria-hidden") == "true")


def _is_chrome_or_hidden(tag: Tag) -> bool:
    if tag.name in CHROME_TAGS or _is_hidden(tag):
        return True
    if tag.name in ("header", "footer"):
        # The article's own header or footer (its title, its byline) is content.
        return tag.find_parent(("main", "article")) is None
    attrs = tag.attrs
    if tag.name == "a" and str(attrs.get("href", "")).startswith("#"):
        return tag.get_text().strip().lower().startswith("skip to")
    if attrs.get("role") in CHROME_ROLES or attrs.get("aria-modal") == "true":
        return True
    names = " ".join((str(attrs.get("id", "")), *attrs.get("class", ()))).lower()
    return any(marker in names for marker in CHROME_MARKERS) or \
        str(attrs.get("id", "")).lower() in CHROME_IDS


def _clean(region: Tag, noise: Callable[[Tag], bool]) -> None:
    """Remove non-content and noise, and decode Cloudflare-obfuscated e-mail addresses (served
    to some fetches and not others, they would flap between "[email protected]" and the address).
    One pass over the tree: bs4's find_all with a list of names is far slower."""
    junk: list[Tag] = []
    emails: list[Tag] = []
    for tag in region.descendants:
        if type(tag) is not Tag:
            continue
        if tag.name in NON_CONTENT or noise(tag):
            junk.append(tag)
        elif "data-cfemail" in tag.attrs:
            emails.append(tag)
    _decompose(junk)
    for tag in emails:
        if not tag.decomposed:
            tag.string = _cloudflare_email(str(tag["data-cfemail"]))


def _cloudflare_email(encoded: str) -> str:
    """Cloudflare's obfuscation: hex bytes, the first the XOR key of the rest."""
    try:
        data = bytes.fromhex(encoded)
    except ValueError:
        data = b""
    if not data:
        return "[email protected]"
    return "".join(chr(byte ^ data[0]) for byte in data[1:])


def _decompose(tags: Iterable[Tag]) -> None:
    for tag in list(tags):
        if not tag.decomposed:
            tag.decompose()


class Walker:
    """Turns a tree into lines: one per heading, list item, table row and paragraph."""

    def __init__(self) -> None:
        self.out: list[str] = []
        self.inline: list[str] = []

    def lines(self, root: Tag) -> list[str]:
        self.element(root, depth=0)
        self.flush()
        return self.out

    def flush(self) -> None:
        if self.inline:
            self.out.append(paragraph(join_inline(self.inline)))
            self.inline.clear()

    def block(self, node: Tag, depth: int) -> None:
        # Plain containers and inline elements recurse right here (one stack frame per level
        # of nesting), so only pages nested hundreds of levels deep hit the recursion limit.
        for child in node.children:
            if type(child) is NavigableString:
                self.inline.append(child)
            elif not isinstance(child, Tag):
                continue
            elif child.name in SPECIAL_BLOCKS:
                self.element(child, depth)
            elif child.name in BLOCKS:
                self.flush()
                self.block(child, depth)
                self.flush()
            elif child.name == "br":
                self.flush()
            else:
                self.block(child, depth)

    def element(self, tag: Tag, depth: int) -> None:
        name = tag.name
        if name not in SPECIAL_BLOCKS:
            self.block(tag, depth)
            return
        self.flush()
        if name in HEADINGS:
            self.out.append(heading(inline_text(tag), HEADINGS[name]))
        elif name in LISTS:
            self.list(tag, depth)
        elif name == "li":
            self.item(tag, depth)
        elif _is_layout_table(tag):
            self.block(tag, depth)
            self.flush()
        else:
            self.table(tag)

    def list(self, tag: Tag, depth: int) -> None:
        for child in tag.children:
            if isinstance(child, Tag) and child.name == "li":
                self.item(child, depth)
            elif isinstance(child, Tag):
                self.element(child, depth + 1 if child.name in LISTS else depth)
            elif type(child) is NavigableString and child.strip():
                self.out.append(paragraph(child))

    def item(self, tag: Tag, depth: int) -> None:
        nested: list[Tag] = []
        self.out.append(list_item(inline_text(tag, nested), depth))
        for sublist in nested:
            self.list(sublist, depth + 1)

    def table(self, tag: Tag) -> None:
        if tag.caption:
            self.out.append(paragraph(inline_text(tag.caption)))
        for row in _rows(tag):
            cells = [inline_text(cell) for cell in row.find_all(("td", "th"), recursive=False)]
            self.out.append(table_row(cells))


def _is_layout_table(table: Tag) -> bool:
    """A table used to lay out a page (old sites) holds headings or other tables: read its
    cells as ordinary blocks rather than as one giant row."""
    return table.get("role") in ("presentation", "none") or \
        table.find(("table", *HEADINGS)) is not None


def _rows(table: Tag) -> Iterator[Tag]:
    for child in table.children:
        if isinstance(child, Tag):
            if child.name == "tr":
                yield child
            elif child.name in ("thead", "tbody", "tfoot"):
                yield from child.find_all("tr", recursive=False)


def inline_text(tag: Tag, nested_lists: list[Tag] | None = None) -> str:
    """All the text under ``tag`` as one line; block boundaries become spaces. Lists found inside
    are left out and collected into ``nested_lists`` when given (a list item's sub-items)."""
    parts: list[str] = []
    _collect(tag, parts, nested_lists)
    return join_inline(parts)


def join_inline(parts: list[str]) -> str:
    """Join the texts of adjacent inline elements. Sites that style spans as blocks (Meta's
    policy pages) would run sentences together ("Prohibited Uses.We want"): a sentence end
    followed by a capital letter in the next element gets a space."""
    out: list[str] = []
    for part in parts:
        if out and part and out[-1] and out[-1][-1] in ".!?;:" and part[0].isupper():
            out.append(" ")
        out.append(part)
    return "".join(out)


def _collect(tag: Tag, parts: list[str], nested_lists: list[Tag] | None) -> None:
    for child in tag.children:
        if type(child) is NavigableString:
            parts.append(child)
        elif isinstance(child, Tag):
            if nested_lists is not None and child.name in LISTS:
                nested_lists.append(child)
            elif child.name in BLOCKS or child.name == "br":
                parts.append(" ")
                _collect(child, parts, nested_lists)
                parts.append(" ")
            else:
                _collect(child, parts, nested_lists)
