"""HTML -> normalised text: select the policy region, drop noise, walk the blocks in reading order.

Unlike ``get_text("\\n")``, the walk keeps inline elements (links, emphasis, spans) inside their
sentence and gives each block exactly one line, so a re-render of the same page (new class names,
nonces, script contents, whitespace or link tokens) yields the same text.

The page is parsed by lxml (libxml2) into lxml's own tree, and ``select``/``drop`` (and fetch's
``follow``) are CSS read by cssselect. Stored texts (NORMALISER_VERSION 1) were made by walking
BeautifulSoup's reading of the same libxml2 parse, so where the two trees differ this module keeps
bs4's reading: the same choice of encoding, a string is a run of text between two tags (a removed
element still separates the text around it), text in comments, scripts, styles, templates and
ruby annotations (rt, rp) is not text, and ``class`` is a list of whitespace-separated names.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import suppress
from functools import lru_cache
from string import ascii_lowercase, ascii_uppercase

from cssselect.parser import Attrib, Class, Function
from cssselect.xpath import ExpressionError, XPathExpr
from lxml import etree
from lxml.cssselect import CSSSelector, LxmlHTMLTranslator

from monitor.errors import NormaliseError
from monitor.normalise.text import fold, heading, list_item, paragraph, table_row

Element = etree._Element

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
NOISY_TAGS = CHROME_TAGS | {"header", "footer"}
"""The only elements that can be noise without any attribute."""

NOT_TEXT = frozenset({"script", "style", "template", "rt", "rp"})
"""Text inside these (at any depth) is code or a ruby annotation, not the page's words."""

HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
LISTS = frozenset({"ul", "ol", "menu", "dir"})
SPECIAL_BLOCKS = frozenset({*HEADINGS, *LISTS, "li", "table"})
BLOCKS = frozenset({
    "address", "article", "aside", "blockquote", "body", "caption", "center", "dd", "details",
    "div", "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form", "header", "hgroup",
    "hr", "html", "legend", "li", "main", "nav", "p", "pre", "section", "summary", "table",
    "tbody", "td", "tfoot", "th", "thead", "tr", *HEADINGS, *LISTS,
})
MAX_DEPTH = 2048
"""libxml2 builds a tree at most this deep (with huge_tree) and silently drops the rest of the
page; bs4 had no limit (a page that deep is read again by _Builder)."""


def extract(body: bytes, *, url: str, select: str | None = None, drop: Iterable[str] = (),
            encoding: str | None = None) -> tuple[str, str | None]:
    """Return (normalised text, page title). Raises NormaliseError for an empty selection."""
    root, unsafe = _read(body, encoding)
    title = _title(root)
    regions = _regions(root, url, select)
    noise = _is_chrome_or_hidden if select is None else _is_hidden
    for region in regions:
        # With no <body> the whole document is read (bs4's soup), the root element included.
        whole = select is None and region.getparent() is None
        for selector in drop:
            _remove([match for match in _matching(root, selector)
                     if _inside(match, region, whole)], region)
        unsafe |= _clean(region, noise, whole)
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
    if unsafe:
        lines = [line.translate(_FROM_XML_SAFE) for line in lines]
        title = title and title.translate(_FROM_XML_SAFE)
    return "\n".join(lines), title


# --- parsing -------------------------------------------------------------------------------------

_XML_DECLARATION = re.compile(rb"^\s*<\?.*encoding=['\"](.*?)['\"].*\?>", re.I)
_META_CHARSET = re.compile(rb"<\s*meta[^>]+charset\s*=\s*[\"']?([^>]*?)[ /;'\">]", re.I)


def parse(body: bytes, encoding: str | None = None) -> Element | None:
    """The page's first top-level element (None for a page without elements)."""
    return _read(body, encoding)[0]


def _read(body: bytes, encoding: str | None) -> tuple[Element | None, bool]:
    """(first top-level element, whether some text is stored XML-safe).

    Encodings are tried in bs4's order, the first that lxml accepts wins: the HTTP charset, the
    byte-order mark, an XML declaration or <meta charset> in the first few KB, a guess from the
    bytes, then UTF-8 and windows-1252. libxml2 decodes (and replaces invalid bytes) itself."""
    markup, candidates = _encodings(body, encoding)
    for candidate in candidates:
        try:
            parser = etree.HTMLParser(recover=True, huge_tree=True, encoding=candidate)
            parser.feed(markup)
            root = parser.close()
        except (UnicodeDecodeError, LookupError, etree.ParserError):
            continue
        except etree.XMLSyntaxError:  # the bytes do not decode: libxml2 read nothing
            return None, False
        if root is not None and _truncated(root):
            return _read_deep(markup, candidate)
        return root, False
    return None, False


def _encodings(body: bytes, encoding: str | None) -> tuple[bytes, Iterator[str]]:
    """(body without its byte-order mark, encodings to try in turn), as bs4's EncodingDetector:
    each is worked out only when those before it were refused (the guess reads the whole page)."""
    markup, sniffed = _strip_bom(body)
    sources: tuple[Callable[[], str | None], ...] = (
        lambda: encoding or None, lambda: sniffed, lambda: _declared_encoding(markup),
        lambda: _guess_encoding(markup), lambda: "utf-8", lambda: "windows-1252")

    def candidates() -> Iterator[str]:
        tried: set[str] = set()
        for source in sources:
            name = source()
            if name is not None and name.lower() not in tried:
                tried.add(name.lower())
                yield name
    return markup, candidates()


def _strip_bom(data: bytes) -> tuple[bytes, str | None]:
    if len(data) >= 4 and data[:2] == b"\xfe\xff" and data[2:4] != b"\x00\x00":
        return data[2:], "utf-16be"
    if len(data) >= 4 and data[:2] == b"\xff\xfe" and data[2:4] != b"\x00\x00":
        return data[2:], "utf-16le"
    if data[:3] == b"\xef\xbb\xbf":
        return data[3:], "utf-8"
    if data[:4] == b"\x00\x00\xfe\xff":
        return data[4:], "utf-32be"
    if data[:4] == b"\xff\xfe\x00\x00":
        return data[4:], "utf-32le"
    return data, None


def _declared_encoding(markup: bytes) -> str | None:
    match = _XML_DECLARATION.search(markup, endpos=1024) or \
        _META_CHARSET.search(markup, endpos=max(2048, int(len(markup) * 0.05)))
    declared = match.group(1).decode("ascii", "replace") if match else ""
    return declared.lower() or None


def _guess_encoding(markup: bytes) -> str | None:
    detect = _detector()
    return detect(markup)["encoding"] if detect else None


@lru_cache(maxsize=1)
def _detector() -> Callable[[bytes], dict] | None:
    """The charset guesser bs4 used, in its order of preference: its guess decided how a page
    with no declared charset was read, so the same one must read it now."""
    for module in ("cchardet", "chardet", "charset_normalizer"):
        try:
            return importlib.import_module(module).detect
        except ImportError:
            continue
    return None


def _truncated(root: Element) -> bool:
    """libxml2 stops building its tree at MAX_DEPTH levels, silently: the last node it built is
    the deepest one, at the end of the chain of last children."""
    depth = 0
    node = _tops(root)[-1]
    while len(node):
        node = node[-1]
        depth += 1
    return depth >= MAX_DEPTH - 1


def _read_deep(markup: bytes, encoding: str) -> tuple[Element | None, bool]:
    builder = _Builder()
    parser = etree.HTMLParser(recover=True, encoding=encoding, target=builder)
    parser.feed(markup)
    return parser.close(), builder.unsafe


class _Builder:
    """Parser target that builds the tree from libxml2's parse events, as bs4 did, without the
    depth limit of libxml2's own tree. Slower: only for pages nested MAX_DEPTH levels deep.
    Content after </html> joins the first <html> (lxml allows one root element)."""

    def __init__(self) -> None:
        self.root: Element = etree.HTML("<html></html>")  # HTML names are valid in its document
        self.open: list[Element] = []
        self.last: Element | None = None  # the latest child closed: text goes to its tail
        self.texts: list[str] = []
        self.started = False
        self.unsafe = False

    def start(self, tag: str, attrib: dict[str, str]) -> None:
        self.flush()
        if self.started:
            parent = self.open[-1] if self.open else self.root
            try:
                element = etree.SubElement(parent, tag)
            except ValueError:
                element = etree.SubElement(parent, "x-invalid-name")
        else:
            element, self.started = self.root, True
        for name, value in attrib.items():
            with suppress(ValueError):
                element.set(name, self.safe(value))
        self.open.append(element)
        self.last = None

    def end(self, tag: str) -> None:
        self.flush()
        self.last = self.open.pop() if self.open else None

    def data(self, data: str) -> None:
        self.texts.append(data)

    def comment(self, text: str) -> None:
        self.flush()
        if self.open:
            self.last = etree.Comment()
            self.open[-1].append(self.last)

    def pi(self, target: str, data: str | None = None) -> None:
        self.comment(target)

    def close(self) -> Element:
        self.flush()
        return self.root

    def flush(self) -> None:
        text = self.safe("".join(self.texts))
        self.texts.clear()
        if text and self.open:
            if self.last is None:
                self.open[-1].text = text
            else:
                self.last.tail = text

    def safe(self, text: str) -> str:
        safe = text.translate(_TO_XML_SAFE)
        self.unsafe |= safe != text
        return safe


# --- selectors -----------------------------------------------------------------------------------


@lru_cache(maxsize=1024)
def css(selector: str) -> CSSSelector:
    """The one reading of a CSS selector: ``select``, ``drop``, ``follow`` and the watchlist's
    load-time check all compile it here (cached: thousands of sources share a few selectors).
    Raises cssselect's SelectorError, also for what only fails when run (``ns|p``)."""
    compiled = CSSSelector(selector, translator=_Translator())
    try:
        compiled(etree.fromstring("<p>x</p>", etree.HTMLParser()))
    except etree.XPathError as exc:
        raise ExpressionError(f"{exc} (in {compiled.path})") from None
    return compiled


# Whitespace as str.split sees it, but for the controls an XPath string cannot hold (\f, \v).
_SPACES = "".join(c for c in map(chr, range(0x3001)) if c.isspace() and c >= " " or c in "\t\n\r")
_CLASS_NAMES = f"normalize-space(translate(@class, '{_SPACES}', '{' ' * len(_SPACES)}'))"
_LOWER = f"'{ascii_uppercase}', '{ascii_lowercase}'"
CASE_INSENSITIVE = frozenset({
    "accept", "accept-charset", "align", "alink", "axis", "bgcolor", "charset", "checked",
    "clear", "codetype", "color", "compact", "declare", "defer", "dir", "direction", "disabled",
    "enctype", "face", "frame", "hreflang", "http-equiv", "lang", "language", "link", "media",
    "method", "multiple", "nohref", "noresize", "noshade", "nowrap", "readonly", "rel", "rev",
    "rules", "scope", "scrolling", "selected", "shape", "target", "text", "type", "valign",
    "valuetype", "vlink",
})
"""HTML attributes whose values selectors match regardless of case (the HTML standard's list)."""


class _Translator(LxmlHTMLTranslator):
    """cssselect's HTML reading, made to agree with soupsieve, which read every selector until
    NORMALISER_VERSION 1: ``class`` is the list of names between any whitespace (bs4 split it
    so), the attributes above ignore case, :root is the one top-level element, :empty allows
    whitespace (and a <template>'s contents), :contains() (or :-soup-contains()) is
    case-sensitive."""

    def xpath_root_pseudo(self, xpath: XPathExpr) -> XPathExpr:
        return xpath.add_condition(
            "not(parent::*) and not(preceding-sibling::*) and not(following-sibling::*)")

    def xpath_empty_pseudo(self, xpath: XPathExpr) -> XPathExpr:
        return xpath.add_condition("self::template or not(*) and not(normalize-space())")

    def xpath_contains_function(self, xpath: XPathExpr, function: Function) -> XPathExpr:
        if function.argument_types() not in (["STRING"], ["IDENT"]):
            raise ExpressionError(f"expected one string in :{function.name}()")
        value = str(function.arguments[0].value)
        return xpath.add_condition(f"contains(string(.), {self.xpath_literal(value)})")

    xpath__soup_contains_function = xpath_contains_function

    def xpath_class(self, class_selector: Class) -> XPathExpr:
        name = class_selector.class_name
        # contains() first: translate() is slow on long class lists, and most elements fail it.
        xpath = self.xpath(class_selector.selector)
        xpath.add_condition(f"contains(@class, {self.xpath_literal(name)})")
        return self.xpath_attrib_includes(xpath, _CLASS_NAMES, name)

    def xpath_attrib(self, selector: Attrib) -> XPathExpr:
        name = selector.attrib.lower()
        flag = getattr(selector, "flag", None)  # [a=b i] and [a=b s] since cssselect 1.6
        if selector.namespace or selector.value is None or \
                not (name == "class" or name in CASE_INSENSITIVE and flag is None):
            return super().xpath_attrib(selector)
        value = str(selector.value.value)
        attrib = _CLASS_NAMES if name == "class" else f"@{name}"
        if name in CASE_INSENSITIVE or flag == "i":
            attrib = f"translate({attrib}, {_LOWER})"
            value = value.translate(str.maketrans(ascii_uppercase, ascii_lowercase))
        operator = self.attribute_operator_mapping[selector.operator]
        xpath = getattr(self, f"xpath_attrib_{operator}")(self.xpath(selector.selector), attrib,
                                                          value)
        return xpath.add_condition(f"@{name}")


def matches(root: Element | None, selector: str) -> list[Element]:
    """The elements matching ``selector``, in document order. As for soupsieve, the contents
    of a <template> are not part of the page."""
    return [match for match in _matching(root, selector)
            if next(match.iterancestors("template"), None) is None]


def _matching(root: Element | None, selector: str) -> list[Element]:
    return [match for top in _tops(root) for match in css(selector)(top)]


def _tops(root: Element | None) -> list[Element]:
    """The document's top-level elements: libxml2 starts a second <html> for content that
    follows </html> (bs4 kept it too)."""
    if root is None:
        return []
    return [root, *(node for node in root.itersiblings() if node.tag.__class__ is str)]


# --- title, regions, cleaning --------------------------------------------------------------------


def _title(root: Element | None) -> str | None:
    tops = _tops(root)
    node = next((node for top in tops for node in top.iter("title")), None)
    if node is None:
        node = next((node for top in tops for node in top.iter("h1")), None)
    title = fold(" ".join(_strings(node))) if node is not None else ""
    return title or None


def _strings(element: Element) -> list[str]:
    """The texts under ``element`` in order, as bs4's get_text saw them (not comments, nor text
    in script, style, template, rt or rp)."""
    if element.tag in NOT_TEXT or next(element.iterancestors(*NOT_TEXT), None) is not None:
        return []
    if next(element.iterdescendants(*NOT_TEXT), None) is None:
        return list(element.itertext())
    out = [element.text] if element.text else []
    stack = [(element, iter(element))]
    while stack:
        parent, children = stack[-1]
        for child in children:
            if child.tag.__class__ is str and child.tag not in NOT_TEXT:
                if child.text:
                    out.append(child.text)
                stack.append((child, iter(child)))
                break
            if child.tail:
                out.append(child.tail)
        else:
            stack.pop()
            if stack and parent.tail:
                out.append(parent.tail)
    return out


def _regions(root: Element | None, url: str, select: str | None) -> list[Element]:
    if select is None:
        tops = _tops(root)
        body = next((node for top in tops for node in top.iter("body")), None)
        return [body] if body is not None else tops
    found = matches(root, select)
    # A match nested in another match would be read twice.
    matched = set(found)
    regions = [m for m in found if not any(a in matched for a in m.iterancestors())]
    if not regions:
        raise NormaliseError("selector_empty", f"{url}: selector {select!r} matched nothing; "
                             "the page layout may have changed, update 'select' in the watchlist")
    return regions


def _inside(element: Element, region: Element, whole: bool) -> bool:
    """Whether ``element`` is below ``region`` (or is it, when the region is the document), not
    inside a <template> there (soupsieve's scope: a template's contents are not the page's)."""
    if element is region:
        return whole
    for ancestor in element.iterancestors():
        if ancestor is region:
            return True
        if ancestor.tag == "template":
            return False
    return False


def _is_hidden(tag: Element) -> bool:
    get = tag.get
    # hidden="until-found" is a collapsed section the browser's find still opens: content.
    return (get("hidden", "until-found") != "until-found"
            or not HIDDEN_CLASSES.isdisjoint(get("class", "").split())
            or tag.tag in ICON_TAGS and get("aria-hidden") == "true")


def _is_chrome_or_hidden(tag: Element) -> bool:
    name = tag.tag
    if name in CHROME_TAGS or _is_hidden(tag):
        return True
    if name in ("header", "footer"):
        # The article's own header or footer (its title, its byline) is content.
        return next(tag.iterancestors("main", "article"), None) is None
    get = tag.get
    if name == "a" and get("href", "").startswith("#"):
        return "".join(_strings(tag)).strip().lower().startswith("skip to")
    if get("role") in CHROME_ROLES or get("aria-modal") == "true":
        return True
    names = " ".join((get("id", ""), *get("class", "").split())).lower()
    return any(marker in names for marker in CHROME_MARKERS) or \
        get("id", "").lower() in CHROME_IDS


def _clean(region: Element, noise: Callable[[Element], bool], whole: bool) -> bool:
    """Remove non-content and noise, blank the text of ruby annotations, and decode
    Cloudflare-obfuscated e-mail addresses (served to some fetches and not others, they would
    flap between "[email protected]" and the address). True when an address had to be stored
    XML-safe (see _set_text)."""
    junk: list[Element] = []
    emails: list[Element] = []
    elements = region.iter(etree.Element) if whole else region.iterdescendants(etree.Element)
    for tag in elements:  # (not comments): the hot loop, one pass over every element
        name = tag.tag
        if name in NON_CONTENT:
            junk.append(tag)
            continue
        attributes = tag.keys()
        if (attributes or name in NOISY_TAGS) and noise(tag):
            junk.append(tag)
        elif "data-cfemail" in attributes:
            emails.append(tag)
    _remove(junk, region)
    _blank_not_text(region)
    unsafe = False
    for tag in emails:
        unsafe |= _set_text(tag, _cloudflare_email(tag.get("data-cfemail", "")))
    return unsafe


REMOVED = "x-normaliser-removed"


def _remove(elements: list[Element], region: Element) -> None:
    """Take elements (inside ``region``) out of the tree. An empty comment takes each one's
    place and keeps its tail, so the text before and after stays two strings, as when bs4
    removed the element (join_inline spaces sentences by string). A root element is emptied."""
    marked = False
    for element in elements:
        if element.getparent() is None:
            element.clear()
        else:
            element.addprevious(etree.Comment())
            element.tag = REMOVED
            marked = True
    if marked:  # strip_elements unlinks an element alone: its tail stays, after the comment
        etree.strip_elements(region, REMOVED, with_tail=False)


def _blank_not_text(region: Element) -> None:
    """Ruby annotations (and a region that sits inside a script or template) hold no words."""
    if region.tag in NOT_TEXT or next(region.iterancestors(*NOT_TEXT), None) is not None:
        blanks: Iterable[Element] = (region,)
    else:
        blanks = region.iterdescendants("rt", "rp")
    for blank in list(blanks):
        blank.text = None
        for node in blank.iterdescendants():
            node.text = node.tail = None


def _cloudflare_email(encoded: str) -> str:
    """Cloudflare's obfuscation: hex bytes, the first the XOR key of the rest."""
    try:
        data = bytes.fromhex(encoded)
    except ValueError:
        data = b""
    if not data:
        return "[email protected]"
    return "".join(chr(byte ^ data[0]) for byte in data[1:])


_TO_XML_SAFE = {c: " " if chr(c).isspace() else 0xFDD0 + c
                for c in range(32) if chr(c) not in "\t\n\r"}
_FROM_XML_SAFE = {0xFDD0 + c: c for c in range(32) if chr(c) not in "\t\n\r"}
"""lxml refuses control characters in text it is given (libxml2's own parse keeps them): those
that split words become spaces (fold makes them one anyway), the others stand in as the
noncharacters U+FDD0.. (untouched by fold) until the lines are made."""


def _set_text(tag: Element, text: str) -> bool:
    """Replace the element's content with ``text``; True when it had to be stored XML-safe."""
    del tag[:]
    tag.text = safe = text.translate(_TO_XML_SAFE)
    return safe != text


# --- the walk ------------------------------------------------------------------------------------


class Walker:
    """Turns a tree into lines: one per heading, list item, table row and paragraph.

    In lxml a text is an element's ``text`` (before its first child) or a child's ``tail``
    (after it, still inside the parent): each loop reads them in that order. Comments (and the
    marks left by removed elements) have a non-string ``tag`` and only their tail counts."""

    def __init__(self) -> None:
        self.out: list[str] = []
        self.inline: list[str] = []

    def lines(self, root: Element) -> list[str]:
        self.element(root, depth=0)
        self.flush()
        return self.out

    def flush(self) -> None:
        if self.inline:
            self.out.append(paragraph(join_inline(self.inline)))
            self.inline.clear()

    def block(self, node: Element, depth: int) -> None:
        # Plain containers and inline elements recurse right here (one stack frame per level
        # of nesting), so only pages nested hundreds of levels deep hit the recursion limit.
        inline = self.inline
        if text := node.text:
            inline.append(text)
        for child in node:
            name = child.tag
            if name in SPECIAL_BLOCKS:
                self.element(child, depth)
            elif name in BLOCKS:
                self.flush()
                self.block(child, depth)
                self.flush()
            elif name == "br":
                self.flush()
            elif name.__class__ is str:
                self.block(child, depth)
            if tail := child.tail:
                inline.append(tail)

    def element(self, tag: Element, depth: int) -> None:
        name = tag.tag
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

    def list(self, tag: Element, depth: int) -> None:
        # Stray text between the items is a paragraph of its own.
        if tag.text and tag.text.strip():
            self.out.append(paragraph(tag.text))
        for child in tag:
            name = child.tag
            if name == "li":
                self.item(child, depth)
            elif name.__class__ is str:
                self.element(child, depth + 1 if name in LISTS else depth)
            if child.tail and child.tail.strip():
                self.out.append(paragraph(child.tail))

    def item(self, tag: Element, depth: int) -> None:
        nested: list[Element] = []
        self.out.append(list_item(inline_text(tag, nested), depth))
        for sublist in nested:
            self.list(sublist, depth + 1)

    def table(self, tag: Element) -> None:
        caption = next(tag.iterdescendants("caption"), None)
        if caption is not None:
            self.out.append(paragraph(inline_text(caption)))
        for row in _rows(tag):
            cells = [inline_text(cell) for cell in row if cell.tag in ("td", "th")]
            self.out.append(table_row(cells))


def _is_layout_table(table: Element) -> bool:
    """A table used to lay out a page (old sites) holds headings or other tables: read its
    cells as ordinary blocks rather than as one giant row."""
    return table.get("role") in ("presentation", "none") or \
        next(table.iterdescendants("table", *HEADINGS), None) is not None


def _rows(table: Element) -> Iterator[Element]:
    for child in table:
        name = child.tag
        if name == "tr":
            yield child
        elif name in ("thead", "tbody", "tfoot"):
            yield from (row for row in child if row.tag == "tr")


def inline_text(tag: Element, nested_lists: list[Element] | None = None) -> str:
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


def _collect(tag: Element, parts: list[str], nested_lists: list[Element] | None) -> None:
    if text := tag.text:
        parts.append(text)
    for child in tag:
        name = child.tag
        if nested_lists is not None and name in LISTS:
            nested_lists.append(child)
        elif name in BLOCKS or name == "br":
            parts.append(" ")
            _collect(child, parts, nested_lists)
            parts.append(" ")
        elif name.__class__ is str:
            _collect(child, parts, nested_lists)
        if tail := child.tail:
            parts.append(tail)
