"""The pages of a static index (pure): PEP 503 HTML and PEP 691 JSON per project and per root, the human root
page, and the reading of a server's simple page (its links)."""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Sequence
from html.parser import HTMLParser
from urllib.parse import quote, unquote

from packaging.version import Version

from fawheels._util.show import human_size
from fawheels.publish.records import (
    MANIFEST,
    WheelRecord,
    _sorted,
)

PEP691_VERSION = "1.1"


def _href(filename: str) -> str:
    return quote(filename)  # `+` of the local version must not reach a URL bare


def render_project_html(project: str, records: Sequence[WheelRecord]) -> str:
    links = []
    for r in _sorted(records):
        rp = f' data-requires-python="{html.escape(r.requires_python)}"' if r.requires_python else ""
        meta = f"sha256={r.metadata_sha256}"
        links.append(
            f'<a href="{_href(r.filename)}#sha256={r.sha256}"{rp} data-dist-info-metadata="{meta}" '
            f'data-core-metadata="{meta}">{html.escape(r.filename)}</a><br>'
        )
    return (
        "<!DOCTYPE html>\n<html>\n<head>\n"
        f'<meta name="pypi:repository-version" content="{PEP691_VERSION}">\n'
        f"<title>Links for {html.escape(project)}</title>\n</head>\n<body>\n"
        f"<h1>Links for {html.escape(project)}</h1>\n" + "\n".join(links) + "\n</body>\n</html>\n"
    )


def render_project_json(project: str, records: Sequence[WheelRecord]) -> str:
    rs = _sorted(records)
    files = [
        {
            "filename": r.filename,
            "url": _href(r.filename),
            "hashes": {"sha256": r.sha256},
            "requires-python": r.requires_python,
            "core-metadata": {"sha256": r.metadata_sha256},
            "dist-info-metadata": {"sha256": r.metadata_sha256},
            "size": r.size,
            "upload-time": r.published,
        }
        for r in rs
    ]
    versions = sorted({r.version for r in rs}, key=Version)
    doc = {"meta": {"api-version": PEP691_VERSION}, "name": project, "files": files, "versions": versions}
    return json.dumps(doc, indent=1) + "\n"


def render_simple_html(projects: Iterable[str]) -> str:
    links = "\n".join(f'<a href="{quote(p)}/">{html.escape(p)}</a><br>' for p in sorted(set(projects)))
    return (
        "<!DOCTYPE html>\n<html>\n<head>\n"
        f'<meta name="pypi:repository-version" content="{PEP691_VERSION}">\n'
        "<title>Simple index</title>\n</head>\n<body>\n" + links + "\n</body>\n</html>\n"
    )


def render_simple_json(projects: Iterable[str]) -> str:
    doc = {"meta": {"api-version": PEP691_VERSION}, "projects": [{"name": p} for p in sorted(set(projects))]}
    return json.dumps(doc, indent=1) + "\n"


_PAGE_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#1b1f24}
h1{font-size:1.5rem}h2{margin-top:2rem;font-size:1.2rem}
table{border-collapse:collapse;font-size:.85rem}
th,td{border-bottom:1px solid #d0d7de;padding:.35rem .6rem;text-align:left;vertical-align:top}
th{background:#f6f8fa}code{font-size:.8rem}.ok{color:#1a7f37;font-weight:600}
.muted{color:#57606a}.nowrap{white-space:nowrap}
"""


def _ptx_cell(r: WheelRecord) -> str:
    if r.facts and r.facts.get("ptx"):
        return " ".join(f"{p['arch']} (ISA {p['isa']})" for p in r.facts["ptx"])
    return " ".join(r.ptx) or "—"


def _driver_cell(r: WheelRecord) -> str:
    if not r.facts:
        return "—"
    return f"≥ {r.facts['min_driver']} (CUDA {r.facts['cuda']}, runtime {r.facts['cuda_runtime_major']}.x)"


def render_root_html(records: Sequence[WheelRecord]) -> str:
    """The page for people: per variant, every wheel with what it was built for and how it was checked."""
    by_variant: dict[str, list[WheelRecord]] = {}
    for r in _sorted(records):
        by_variant.setdefault(r.variant, []).append(r)
    e = html.escape
    out = [
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n',
        "<title>fawheels index</title>\n<style>",
        _PAGE_STYLE,
        "</style>\n</head>\n<body>\n",
        "<h1>fawheels wheel index</h1>\n",
        '<p class="muted">Every wheel below passed <code>fawheels verify</code> when it was published. '
        f'Machine-readable list: <a href="{MANIFEST}">{MANIFEST}</a>.</p>\n',
    ]
    if not by_variant:
        out.append("<p>No wheels published yet.</p>\n")
    for variant, rs in by_variant.items():
        v = e(variant)
        projects = sorted({r.project for r in rs})
        out.append(
            f'<h2 id="{v}">{v}</h2>\n<p>Install: <code>pip install --index-url &lt;this index&gt;/{v}/simple '
            f'{e(projects[0])}</code> · <a href="{v}/simple/">{v}/simple/</a> (PEP 503) · '
            f'<a href="{v}/simple/index.json">index.json</a> (PEP 691) · '
            f'<a href="{v}/simple/fawheels-variants.json">fawheels-variants.json</a> (variant facts; '
            "PEP 825 draft-format files beside each project)</p>\n"
            "<table>\n<tr><th>wheel</th><th>target</th><th>torch</th><th>python</th><th>SASS</th>"
            '<th>PTX</th><th title="oldest NVIDIA driver that loads every kernel (from the wheel\'s code)">'
            'min driver</th><th title="SOURCE_DATE_EPOCH of the build">build date</th><th>published</th>'
            "<th>size</th><th>sha256</th><th>verify</th></tr>\n"
        )
        for r in rs:
            base = f"{v}/simple/{quote(r.project)}/{_href(r.filename)}"
            checks = f" {r.verify_checks} checks" if r.verify_checks else ""
            out.append(
                f'<tr><td><a href="{base}#sha256={r.sha256}">{e(r.filename)}</a></td>'
                f"<td>{e(r.target or '—')}</td><td>{e(r.torch or '—')}</td><td>{e(r.python or '—')}</td>"
                f"<td>{e(' '.join(r.sass) or '—')}</td><td>{e(_ptx_cell(r))}</td>"
                f'<td class="nowrap">{e(_driver_cell(r))}</td>'
                f"<td>{e(r.build_date or '—')}</td><td>{e(r.published.replace('T', ' '))}</td>"
                f'<td class="nowrap">{human_size(r.size)}</td>'
                f'<td><code title="{r.sha256}">{r.sha256[:16]}…</code></td>'
                f'<td><span class="ok">passed</span>{checks} · <a href="{base}.verify.json">report</a></td></tr>\n'
            )
        out.append("</table>\n")
    out.append("</body>\n</html>\n")
    return "".join(out)


class _LinkParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        href = dict(attrs).get("href")
        if tag == "a" and href:
            self.hrefs.append(href)


def parse_simple_links(page: str) -> dict[str, str | None]:
    """filename → sha256 (or None) from a PEP 503 project page."""
    parser = _LinkParser()
    parser.feed(page)
    out: dict[str, str | None] = {}
    for href in parser.hrefs:
        path, _, frag = href.partition("#")
        algo, _, digest = frag.partition("=")
        out[unquote(path.rsplit("/", 1)[-1])] = digest if algo == "sha256" else None
    return out
