"""Text for cards: summaries under 140 characters, and escaping of untrusted text.

A card's ``detail`` is GitHub-flavoured markdown and its ``summary`` plain text that an EHR may
show as HTML.  Every string that came from the request (an order's text, a resource id, a
site, a message that quotes them) passes through :func:`escape` (markdown) or :func:`plain`
(summary) before it reaches a card: no tag, link, image or table cell break survives.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["SUMMARY_MAX", "cell", "escape", "plain", "summary", "summary_text"]

#: CDS Hooks: the summary "SHOULD be less than 140 characters".
SUMMARY_MAX: Final = 139

#: Control characters (C0 but tab and newline, DEL, C1), lone surrogates and bidi overrides.
_UNSAFE: Final = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\u202a-\u202e\u2066-\u2069]")
#: ASCII punctuation with an inline meaning in CommonMark or GFM is backslash-escaped (``:``
#: breaks ``scheme:`` autolinks; ``-``, ``.`` and ``=`` only matter at a line start).
_WWW: Final = re.compile(r"(?i)\b(www)\.")
_HTML: Final = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}
_ESCAPES: Final = str.maketrans({**_HTML, **{c: "\\" + c for c in "\\`*_{}[]()#+!|~:"}})
#: Characters dropped from untrusted text in a summary (markup of any kind).
_SUMMARY_MARKUP: Final = re.compile(r"[<>\[\]()`*_|!\\{}]")


def _clean(text: str) -> str:
    return _UNSAFE.sub("\ufffd", text) if _UNSAFE.search(text) else text


def escape(text: object) -> str:
    r"""``text`` as literal markdown: HTML specials as entities, markdown punctuation escaped.

    Example
    -------
    >>> from mps_analgesia.cds_hooks._markdown import escape
    >>> print(escape("<img src=x onerror=alert(1)> [x](javascript:alert(1)) a|b"))
    &lt;img src=x onerror=alert\(1\)&gt; \[x\]\(javascript\:alert\(1\)\) a\|b
    """
    out = " ".join(_clean(str(text)).split()).translate(_ESCAPES)
    if "www" in out or "WWW" in out:
        out = _WWW.sub(r"\1\\.", out)
    return "\\" + out if out[:1] in ("-", ".", "=") else out


def cell(text: object) -> str:
    """``text`` escaped for one markdown table cell (no line break, no ``|``)."""
    return escape(text)


def plain(text: object, limit: int = 60) -> str:
    """Untrusted ``text`` for a plain-text summary: no markup characters, at most ``limit``.

    Example
    -------
    >>> from mps_analgesia.cds_hooks._markdown import plain
    >>> plain("<img onerror=x> ![](https://e.x/a.png) oxycodone")
    'img onerror=x https://e.x/a.png oxycodone'
    """
    out = _SUMMARY_MARKUP.sub(" ", _clean(str(text)))
    out = " ".join(out.split())
    if len(out) > limit:
        cut = out[: limit - 1]
        out = (cut[: cut.rfind(" ")] if " " in cut[limit // 2 :] else cut).rstrip() + "…"
    return out


def summary(text: str) -> str:
    """``text`` as a card summary: one line, cut at a word boundary below 140 characters."""
    text = " ".join(_clean(text).split())
    if len(text) <= SUMMARY_MAX:
        return text
    cut = text[: SUMMARY_MAX - 1]
    if " " in cut[40:]:
        cut = cut[: cut.rfind(" ")]
    return cut.rstrip(" ,;:.") + "…"


_TAG_START: Final = re.compile(r"<(?=[A-Za-z/!?])")
_CLAUSE: Final = re.compile(r"[;:]\s|\s\(|,\s")


def neutral(text: str) -> str:
    """Our own text for a summary, with anything that could start markup made inert.

    A ``<`` that could open a tag becomes ``‹``, brackets become parentheses (no link or image
    can form), backticks go; ``<`` or ``>`` between numbers (``5000 mg/day > 4000``) stay.
    """
    out = _TAG_START.sub("‹", _clean(text))
    out = out.replace("[", "(").replace("]", ")").replace("`", "'")
    return " ".join(out.split())


def _fit(text: str, room: int) -> str:
    if len(text) <= room:
        return text
    head = text[:room]
    cuts = [m.start() for m in _CLAUSE.finditer(head) if m.start() >= 40]
    if cuts:
        return head[: cuts[-1]].rstrip(" ,;:.")
    if " " in head[30:]:
        head = head[: head.rfind(" ")]
    return head.rstrip(" ,;:.") + "…"


def summary_text(finding: str, action: str) -> str:
    """A summary: the finding's own sentence (with its number) and the action, < 140 characters.

    The sentence is cut, if it must be, at a clause or a word, never inside one; the action is
    added when it fits.

    Example
    -------
    >>> from mps_analgesia.cds_hooks._markdown import summary_text
    >>> summary_text("Acetaminophen 5000 mg/day is above 4000 mg/day", "Reduce the dose")
    'Acetaminophen 5000 mg/day is above 4000 mg/day. Reduce the dose.'
    """
    first = neutral(finding).rstrip(" .")
    tail = f". {neutral(action).rstrip('.')}." if action else "."
    if len(first) + len(tail) <= SUMMARY_MAX:
        return first + tail
    cut = _fit(first, SUMMARY_MAX - len(tail))
    if len(cut) >= 40 and not cut.endswith("…"):
        return cut + tail
    cut = _fit(first, SUMMARY_MAX - 1)
    return cut if cut.endswith("…") else cut + "."
