"""MkDocs hooks: the API reference page and the protocol handouts, made at build time.

``api.md`` lists every name of ``mps_analgesia.__all__`` with a mkdocstrings directive pointing at
the module that defines it (so the page can never miss a public name); ``handouts/<id>.pdf``
is each shipped protocol's handout, printed by the library itself (the ``pdf`` extra; without
it the handouts are left out and the protocols page says how to make them).
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from mkdocs.structure.files import File, Files

#: Names documented as a whole module page section rather than one object.
_MODULES = ("fhir", "render")


def _target(name: str) -> str:
    """The dotted path mkdocstrings reads for a public name (its defining module)."""
    import mps_analgesia as mps

    if name in _MODULES:
        return f"mps_analgesia.{name}"
    value = getattr(mps, name)
    if inspect.ismodule(value):
        return value.__name__
    module = getattr(value, "__module__", None)
    lazy = getattr(mps, "_LAZY", {})
    if not (inspect.isclass(value) or inspect.isfunction(value)) or module is None:
        # a constant: documented where it is defined (the lazy map's module, else the package)
        module = "mps_analgesia" + lazy[name] if name in lazy else "mps_analgesia"
    return f"{module}.{name}"


def api_page() -> str:
    """The Markdown of the API reference: one section per public name, alphabetised."""
    import mps_analgesia as mps

    lines = [
        "# API reference",
        "",
        "Every public name of `import mps_analgesia as mps` (the package's `__all__`), generated",
        "from the docstrings. Import them from the package, not from the modules named under",
        "each heading: the modules are the implementation and may move.",
        "",
    ]
    for name in sorted(mps.__all__, key=str.lower):
        if name == "__version__":
            lines += ["## `__version__`", "", f"The library version, `{mps.__version__}`.", ""]
            continue
        lines += [
            f"## `{name}`",
            "",
            f"::: {_target(name)}",
            "    options:",
            "      show_root_heading: false",
            "      show_source: false",
            "      heading_level: 3",
            "      members: false" if name in _MODULES else "      members_order: source",
            "",
        ]
    return "\n".join(lines)


def _handouts() -> dict[str, bytes]:
    try:
        from mps_analgesia.protocols import list_protocols
        from mps_analgesia.render import render
        from mps_analgesia.render.pdf import pdf_engine

        pdf_engine()
    except Exception:  # the pdf extra is absent: no handouts, said on the protocols page
        return {}
    return {p.id: render(p, "pdf", layout="handout") for p in list_protocols()}


def handouts_page(titles: dict[str, str], made: bool) -> str:
    """The Markdown of the handouts page: a PDF link per protocol, or how to make them."""
    lines = [
        "# Handouts",
        "",
        "One or two A4 pages per shipped protocol, for the team or for teaching: who it is for,",
        "dosing, monitoring and (for blocks) anticoagulation tables, the flowchart, numbered",
        "references, the intended-use statement and the data editions. Printed by the library:",
        "",
        "```sh",
        "mps-analgesia summarize takase-2015-methadone-adjuvant --layout handout --format pdf \\",
        "    -o takase.pdf",
        "```",
        "",
    ]
    if made:
        lines += [f"- [{title}](handouts/{pid}.pdf) (PDF)" for pid, title in titles.items()]
    else:
        lines.append(
            "This build of the site had no PDF engine: `pip install -e \".[docs,pdf]\"` and "
            "build again to add the PDFs here."
        )
    return "\n".join(lines) + "\n"


def on_files(files: Files, config: Any, **kwargs: Any) -> Files:
    """Add the generated API page, the handouts page and the handout PDFs to the site."""
    from mps_analgesia.protocols import list_protocols

    importlib.invalidate_caches()
    files.append(File.generated(config, "api.md", content=api_page()))
    pdfs = _handouts()
    for pid, data in pdfs.items():
        files.append(File.generated(config, f"handouts/{pid}.pdf", content=data))
    titles = {p.id: p.title for p in list_protocols()}
    files.append(File.generated(config, "handouts.md", content=handouts_page(titles, bool(pdfs))))
    return files
