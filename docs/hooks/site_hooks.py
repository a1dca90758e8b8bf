"""MkDocs hooks for the rnnkit site (mkdocs.yml `hooks:`).

* The command-line reference is generated from rnnkit's own argparse parsers at build time, so every option
  and default is written once, in the code: a page holding the marker below gets each verb's ``--help``.
* Each tutorial's conversion time (its execution, when executed) is logged, so CI shows how long they take.
* mkdocs-jupyter's notebook template always emits a MathJax loader and a script that imports Mermaid from a CDN
  when a notebook has a diagram. The tutorials write their equations as text and draw no diagrams, and the site
  must open offline, so both scripts are dropped from the built pages.
"""

from __future__ import annotations

import logging
import os
import re
import time

from mkdocs.plugins import event_priority

log = logging.getLogger("mkdocs.hooks.rnnkit")

CLI_MARKER = "<!-- rnnkit-cli-reference -->"
HELP_WIDTH = "88"  # argparse wraps to $COLUMNS; fixed so the page does not depend on the building terminal
_MATHJAX = re.compile(r'<!-- Load mathjax -->\s*<script src="">\s*</script>\s*<!-- MathJax configuration -->\s*'
                      r'<script type="text/x-mathjax-config">.*?</script>\s*<!-- End of mathjax configuration -->',
                      re.S)
_MERMAID = re.compile(r'<script type="module">(?:(?!</script>).)*?import\("https://cdnjs\.cloudflare\.com/ajax/libs/'
                      r'mermaid/.*?</script>', re.S)


def verb_helps() -> list[tuple[str, str, str]]:
    """(verb, one-line help, full --help text) for every verb of ``rnnkit``, in the parser's order."""
    from rnnkit.cli.main import build_parser

    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = HELP_WIDTH
    try:
        parser = build_parser()
        verbs = next(a for a in parser._subparsers._group_actions if a.dest == "verb")
        one_line = {choice.dest: choice.help or "" for choice in verbs._choices_actions}
        pages = [("rnnkit", parser.description or "", parser.format_help())]
        pages += [(name, one_line.get(name, ""), sub.format_help()) for name, sub in verbs.choices.items()]
        return pages
    finally:
        if previous is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = previous


def render_cli_reference() -> str:
    parts = []
    for name, summary, text in verb_helps():
        title = "rnnkit" if name == "rnnkit" else f"rnnkit {name}"
        parts.append(f"## `{title}`\n\n{summary}\n\n```text\n{text.rstrip()}\n```\n")
    return "\n".join(parts)


_started: dict[str, float] = {}


@event_priority(100)  # before mkdocs-jupyter converts (and executes) the notebook
def on_pre_page(page, config, files):
    _started[page.file.src_uri] = time.perf_counter()
    return page


@event_priority(-100)  # after it
def on_page_content(html: str, page, config, files):
    name = page.file.src_uri
    if name.startswith("tutorials/") and name.endswith(".py"):
        log.info("tutorial %s converted in %.1f s", name, time.perf_counter() - _started[name])
    return html


def on_page_markdown(markdown: str, page, config, files) -> str:
    if CLI_MARKER in markdown:
        return markdown.replace(CLI_MARKER, render_cli_reference())
    return markdown


def on_post_page(output: str, page, config) -> str:
    return _MERMAID.sub("", _MATHJAX.sub("", output))
