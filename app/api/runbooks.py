"""`GET /runbooks`: the alert runbooks, served by the app that the alerts are about.

`docs/runbooks.md` ships in the package (`app/docs/runbooks.md` links to it), so whoever only
installed the service still has a page behind the `runbook_url` of `/bottlenecks` (unless
`RUNBOOK_BASE_URL` names another home, e.g. a wiki). The Markdown is rendered just enough to
read: headings carry the anchors GitHub gives them (the alert name in lower case), code blocks
stay verbatim; everything is HTML-escaped, nothing is fetched from elsewhere.
"""

from __future__ import annotations

import functools
import html
import re
from importlib.resources import files
from typing import Final

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

router = APIRouter(tags=["monitoring"])
PATH: Final = "/runbooks"
_LINK = re.compile(r"\[([^\]]+)\]\((#[\w\-]+)\)")
_BOLD = re.compile(r"\*\*(.+?)\*\*")
_CODE = re.compile(r"`([^`]+)`")


def anchor(heading: str) -> str:
    """The anchor GitHub (and most Markdown renderers) give a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def runbook_page(base_url: str, request_base: str) -> str:
    """Where the runbooks live: `base_url` when configured, else this app's own page."""
    return base_url or request_base.rstrip("/") + PATH


def _inline(text: str) -> str:
    text = html.escape(text, quote=False)
    text = _CODE.sub(r"<code>\1</code>", text)
    text = _BOLD.sub(r"<strong>\1</strong>", text)
    return _LINK.sub(r'<a href="\2">\1</a>', text)


def render(markdown: str) -> str:
    out = ['<!DOCTYPE html><html><head><meta charset="utf-8"><title>Market API runbooks</title>']
    out.append(
        "<style>body{max-width:50em;margin:auto;font-family:sans-serif}</style></head><body>"
    )
    paragraph: list[str] = []
    code: list[str] | None = None

    def flush() -> None:
        if paragraph:
            out.append("<p>" + "<br>".join(paragraph) + "</p>")
            paragraph.clear()

    for line in markdown.splitlines():
        if code is not None:
            if line.startswith("```"):
                out.append("<pre><code>" + html.escape("\n".join(code)) + "</code></pre>")
                code = None
            else:
                code.append(line)
        elif line.startswith("```"):
            flush()
            code = []
        elif match := re.match(r"(#{1,3}) (.+)", line):
            flush()
            level, title = len(match.group(1)), match.group(2)
            out.append(f'<h{level} id="{anchor(title)}">{_inline(title)}</h{level}>')
        elif line.strip():
            paragraph.append(_inline(line))
        else:
            flush()
    flush()
    out.append("</body></html>")
    return "\n".join(out)


@functools.cache
def runbooks_html() -> str:
    return render((files("app") / "docs" / "runbooks.md").read_text(encoding="utf-8"))


@router.get(PATH, response_class=HTMLResponse, include_in_schema=False)
async def runbooks() -> HTMLResponse:
    """What each alert means, how to confirm it, what to do."""
    return HTMLResponse(runbooks_html())
