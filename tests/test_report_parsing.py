"""A strict reader of the report's HTML for the report tests, and tests of the reader itself.

The reader refuses what a lenient browser would silently repair (an end tag that closes the wrong
element, an element never closed), so "it parses" means the page is well formed. It collects the
report's tables, figures and omission notes for the other tests to check.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from html.parser import HTMLParser

import pytest

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}


@dataclass
class Table:
    """One <table>: its attributes, header cells and body rows (cell texts)."""

    attrs: dict[str, str]
    header: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)

    def records(self) -> list[dict[str, str]]:
        """Rows as {header: cell} (the row must be as wide as the header)."""
        return [dict(zip(self.header, row, strict=True)) for row in self.rows]


class ReportPage(HTMLParser):
    """Parse a whole page; raise AssertionError on any mis-nested or unclosed element."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.tables: list[Table] = []
        self.images: list[dict[str, str]] = []
        self.figures: dict[str, str] = {}  # data-plot key -> img src
        self.omitted: dict[str, str] = {}  # data-omitted key -> text
        self.sections: list[str] = []
        self.per_class: list[tuple[str, list[Table]]] = []
        self.tags: list[str] = []
        self._cell: list[str] | None = None
        self._row: list[str] | None = None
        self._in_head = False
        self._open_tables: list[Table] = []
        self._figure: str | None = None
        self._omitted: tuple[str, int, list[str]] | None = None
        self._per_class_depth: int | None = None
        self.feed(text)
        self.close()
        assert not self.stack, f"elements never closed: {self.stack}"

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.tags.append(tag)
        if tag not in VOID:
            self.stack.append(tag)
        if tag == "section":
            self.sections.append(a.get("id", ""))
        if tag == "div" and "data-model" in a:
            self.per_class.append((a["data-model"], []))
            self._per_class_depth = len(self.stack)
        if tag == "table":
            table = Table(a)
            self.tables.append(table)
            self._open_tables.append(table)
            if self._per_class_depth is not None:
                self.per_class[-1][1].append(table)
        elif tag == "thead":
            self._in_head = True
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
        elif tag == "img":
            self.images.append(a)
            if self._figure is not None:
                self.figures[self._figure] = a["src"]
        elif tag == "figure" and "data-plot" in a:
            self._figure = a["data-plot"]
        if "data-omitted" in a:
            self._omitted = (a["data-omitted"], len(self.stack), [])

    def handle_endtag(self, tag: str) -> None:
        assert tag not in VOID, f"end tag of the void element <{tag}>"
        assert self.stack and self.stack[-1] == tag, \
            f"</{tag}> closes <{self.stack[-1] if self.stack else None}> at {self.getpos()}"
        if self._omitted is not None and len(self.stack) == self._omitted[1]:
            self.omitted[self._omitted[0]] = " ".join(" ".join(self._omitted[2]).split())
            self._omitted = None
        if self._per_class_depth is not None and len(self.stack) == self._per_class_depth:
            self._per_class_depth = None
        self.stack.pop()
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            table = self._open_tables[-1]
            if self._in_head:
                table.header = self._row
            else:
                table.rows.append(self._row)
            self._row = None
        elif tag == "thead":
            self._in_head = False
        elif tag == "table":
            self._open_tables.pop()
        elif tag == "figure":
            self._figure = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        if self._omitted is not None:
            self._omitted[2].append(data)

    def tables_with(self, attr: str) -> dict[str, Table]:
        """Tables carrying ``attr``, by its value."""
        return {t.attrs[attr]: t for t in self.tables if attr in t.attrs}


def decode_data_uri(src: str, mime: str) -> bytes:
    """The bytes of a base64 ``data:`` URI of the given type."""
    prefix = f"data:{mime};base64,"
    assert src.startswith(prefix), src[:60]
    return base64.b64decode(src[len(prefix):], validate=True)


def test_the_reader_collects_tables_figures_and_omissions() -> None:
    svg = base64.b64encode(b"<svg/>").decode()
    page = ReportPage(
        '<!DOCTYPE html><html><body><section id="s"><table data-table="1"><thead><tr><th>A</th>'
        '<th>B</th></tr></thead><tbody><tr><td>x &amp; y</td><td>2</td></tr></tbody></table>'
        f'<figure data-plot="p"><img src="data:image/svg+xml;base64,{svg}"></figure>'
        '<p data-omitted="examples">gone <b>root</b></p></section></body></html>')
    assert page.tables_with("data-table")["1"].records() == [{"A": "x & y", "B": "2"}]
    assert decode_data_uri(page.figures["p"], "image/svg+xml") == b"<svg/>"
    assert page.omitted == {"examples": "gone root"}
    assert page.sections == ["s"]


@pytest.mark.parametrize("bad", [
    "<html><body><div><p>text</div></p></body></html>",  # closes the wrong element
    "<html><body><table><tr><td>1</td></tr>",  # never closed
    "<html><body><img></img></body></html>",  # end tag of a void element
])
def test_the_reader_refuses_malformed_pages(bad: str) -> None:
    with pytest.raises(AssertionError):
        ReportPage(bad)
