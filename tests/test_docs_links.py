"""Every relative link in README.md and docs/*.md names a file that exists (and, for a ``#fragment`` into a
Markdown file, a heading that exists there)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

#: a Markdown link or image: [text](target) or ![alt](target "title")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", flags=re.S | re.M)
INLINE_CODE = re.compile(r"`[^`\n]*`")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$", flags=re.M)
HTML_ID = re.compile(r"<a\s+(?:id|name)=\"([^\"]+)\"")


def _prose(text: str) -> str:
    """``text`` without fenced code blocks and inline code (a ``[x](y)`` there is code, not a link)."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def anchors(markdown: Path) -> set[str]:
    """The fragments a Markdown file's headings answer to, as GitHub renders them: lower case, punctuation
    dropped, spaces as hyphens, a repeated heading suffixed ``-1``, ``-2``, ...; plus explicit HTML ids."""
    text = FENCE.sub("", markdown.read_text())
    seen: dict[str, int] = {}
    out = set(HTML_ID.findall(text))
    for heading in HEADING.findall(text):
        heading = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading: its text
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def broken_links(page: Path) -> list[str]:
    """The relative links of ``page`` that name no existing file, or a heading its target lacks, each as
    ``"target: why"``."""
    problems = []
    for target in LINK.findall(_prose(page.read_text())):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, flags=re.I):  # http:, https:, mailto:, ...
            continue
        path, _, fragment = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            problems.append(f"{target}: no such file")
        elif fragment and dest.suffix == ".md" and fragment not in anchors(dest):
            problems.append(f"{target}: no heading #{fragment} in {dest.name}")
    return problems


def test_the_pages_exist_and_link_to_each_other():
    assert (REPO / "docs").is_dir() and len(PAGES) > 1
    readme = (REPO / "README.md").read_text()
    for page in PAGES[1:]:
        assert f"](docs/{page.name})" in readme, f"README.md does not link docs/{page.name}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves(page):
    assert broken_links(page) == []


def test_a_broken_link_or_heading_is_reported(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# A page\n\n## Two — parts, `here`\n\n## Two — parts, `here`\n")
    page = tmp_path / "README.md"
    page.write_text("# x\n\n[ok](docs/a.md) [ok](docs/a.md#two--parts-here) [ok](docs/a.md#two--parts-here-1)\n"
                    "![ok](docs/a.md \"title\") [web](https://example.org/none) [self](#x)\n"
                    "`[code](docs/nothing.md)`\n\n```bash\n# [fenced](docs/nothing.md)\n```\n\n"
                    "[gone](docs/missing.md) [bad heading](docs/a.md#three) ![gone image](img/none.png) [me](#y)\n")
    assert broken_links(page) == ["docs/missing.md: no such file",
                                  "docs/a.md#three: no heading #three in a.md",
                                  "img/none.png: no such file",
                                  "#y: no heading #y in README.md"]
