"""The HTML part of an email, from the same rendered text as its plain part.

One rendering (duecourse.templates.render) decides the words, including the wording a
jurisdiction requires; this only lays them out: a blank line starts a paragraph, a line
break stays a line break. Jinja2 autoescapes every value, so a borrower's name or an
amount can never become markup, and no disclosure can be dropped by the layout.
"""

from __future__ import annotations

from functools import lru_cache

from jinja2 import Environment, Template

PAGE = """<!DOCTYPE html>
<html lang="{{ language }}">
<head><meta charset="utf-8"><title>{{ title }}</title></head>
<body style="font-family: sans-serif; line-height: 1.5; max-width: 40em">
{%- for paragraph in paragraphs %}
<p>{% for line in paragraph %}{{ line }}{% if not loop.last %}<br>
{% endif %}{% endfor %}</p>
{%- endfor %}
</body>
</html>
"""


@lru_cache(maxsize=1)
def _page() -> Template:
    return Environment(autoescape=True, keep_trailing_newline=True).from_string(PAGE)


def paragraphs(text: str) -> list[list[str]]:
    """`text` as paragraphs (split on blank lines) of lines, blank edges dropped."""
    blocks = [block.strip("\n") for block in text.replace("\r\n", "\n").split("\n\n")]
    return [[line.strip() for line in block.split("\n") if line.strip()]
            for block in blocks if block.strip()]


def html_body(text: str, language: str, title: str = "") -> str:
    """The whole HTML document of an email whose plain text is `text`."""
    return _page().render(language=language, title=title, paragraphs=paragraphs(text))
