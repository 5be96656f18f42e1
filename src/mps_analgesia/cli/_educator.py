"""The educator subcommands of ``mps-analgesia``: protocols, summarize, plan, convert, assess.

:func:`add_subcommands` adds them to the command line's subparsers (the package's
``__init__`` calls it); each subparser sets ``handler``.

Each handler is ``cmd_xxx(args, out, err) -> int`` and returns the exit code: 0 done, 1 the
output holds an error-severity finding (or an eligibility check that failed), 2 unreadable or
invalid input (the message goes to ``err``, never a traceback).

``summarize CASE`` and ``plan`` also take ``--timeline FILE`` (the timeline chart; SVG drawn by
the library, or with ``--timeline-engine matplotlib`` SVG/PNG/PDF through the optional ``plot``
extra: without matplotlib the handler prints how to install it and exits 2, writing nothing).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Final, TextIO

from ..errors import MpsAnalgesiaError
from ._common import (
    EXIT_FINDINGS,
    EXIT_INPUT,
    EXIT_OK,
    STDIN,
    add_table_options,
    fail,
    load_case_arg,
    read_table,
    table_arg,
)
from ._parsing import add_format, lower

__all__ = [
    "EXIT_FINDINGS",
    "EXIT_INPUT",
    "EXIT_OK",
    "RT_TABLE_ID",
    "add_subcommands",
    "cmd_assess",
    "cmd_convert",
    "cmd_plan",
    "cmd_protocols",
    "cmd_summarize",
]

#: The id ``summarize`` accepts for the table of shipped radiotherapy schedules.
RT_TABLE_ID: Final = "radiotherapy-schedules"
_FORMATS: Final = ("text", "markdown", "html", "json")


def _add_output(parser: argparse.ArgumentParser) -> None:
    add_format(
        parser,
        _FORMATS,
        "text",
        "text for the terminal (default), markdown, html (one self-contained page), or json "
        "(the data; its JSON Schema: mps-analgesia schema output-COMMAND)",
    )
    parser.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        default=None,
        help="write to FILE (UTF-8) instead of standard output",
    )


def _add_layout(parser: argparse.ArgumentParser) -> None:
    """``--layout summary|handout`` and ``--format pdf`` (a file, with the ``pdf`` extra)."""
    from ..render import LAYOUTS

    parser.add_argument(
        "--layout",
        type=lower,
        choices=LAYOUTS,
        default="summary",
        help="summary: everything the object holds (default); handout: one or two A4 pages in "
        "plain words, for a protocol or a plan (with --format pdf -o FILE.pdf: needs the "
        "'pdf' extra)",
    )
    fmt = next(a for a in parser._actions if a.dest == "format")
    fmt.choices = (*(fmt.choices or ()), "pdf")


def _add_timeline(parser: argparse.ArgumentParser) -> None:
    from ..render.timeline import ENGINES

    parser.add_argument(
        "--timeline",
        metavar="FILE",
        default=None,
        help="also write the timeline chart (dose of each drug and total OME over days, "
        "titration steps, ECG checks) to FILE: .svg, or with --timeline-engine matplotlib "
        ".svg, .png or .pdf",
    )
    parser.add_argument(
        "--timeline-engine",
        choices=ENGINES,
        default="svg",
        help="svg: drawn by the library, no dependency (default); matplotlib: needs the "
        "'plot' extra (pip install 'mps-analgesia[plot]')",
    )


def _write_timeline(args: argparse.Namespace, obj: Any, err: TextIO) -> None:
    """Write the timeline of ``obj`` to ``--timeline FILE`` (nothing without the option).

    Raises an :class:`MpsAnalgesiaError` (a missing matplotlib, a file type the engine does not
    write, a file that cannot be written) so the handler exits 2 with the message.
    """
    if not args.timeline:
        return
    from ..render.timeline import save_timeline

    try:
        save_timeline(obj, args.timeline, engine=args.timeline_engine)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise MpsAnalgesiaError(f"{args.timeline}: cannot write the timeline: {reason}") from None
    print(f"wrote {args.timeline}", file=err)


def _no_timeline(args: argparse.Namespace, target: str) -> None:
    """``--timeline`` with a target that has no days (a protocol, the radiotherapy table)."""
    if args.timeline:
        raise MpsAnalgesiaError(
            f"{target}: --timeline needs a case file (a protocol has no days until it is "
            f"instantiated for a patient: use 'mps-analgesia plan ID --patient CASE "
            f"--timeline {args.timeline}')"
        )


def _emit(args: argparse.Namespace, obj: Any, out: TextIO, err: TextIO) -> int:
    from ..render import _write, document

    layout = getattr(args, "layout", "summary")
    if args.format == "json":
        import json

        from ._json import to_json

        text = json.dumps(to_json(obj), indent=2, ensure_ascii=False)
        if args.output:
            Path(args.output).write_text(text + "\n", encoding="utf-8")
            print(f"wrote {args.output}", file=err)
        else:
            out.write(text + "\n")
        return EXIT_OK
    if args.format == "pdf":  # bytes: to a file only
        try:
            if not args.output:
                raise MpsAnalgesiaError("--format pdf writes a file: add -o FILE.pdf")
            data = _write(document(obj, layout), "pdf")
        except MpsAnalgesiaError as exc:
            return fail(err, exc)
        Path(args.output).write_bytes(data)
        print(f"wrote {args.output}", file=err)
        return EXIT_OK
    try:
        text = _write(document(obj, layout), args.format)
    except MpsAnalgesiaError as exc:  # e.g. a layout the object does not have
        return fail(err, exc)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote {args.output}", file=err)
    else:
        out.write(text if text.endswith("\n") else text + "\n")
    return EXIT_OK


def _protocols(what: str = "protocols") -> Any:
    import importlib

    try:
        return importlib.import_module("mps_analgesia.protocols")
    except ModuleNotFoundError as exc:  # pragma: no cover - protocols ship with the package
        raise MpsAnalgesiaError(
            f"{what}: protocols are not available in this installation "
            "(mps_analgesia.protocols is missing)"
        ) from exc


# ---- protocols ----------------------------------------------------------------------------------


def cmd_protocols(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """List the shipped protocols: id, status, evidence level and title."""
    try:
        from ..render._objects import protocol_listing

        listed = _protocols().list_protocols()
        doc: Any = protocol_listing(listed) if args.format != "json" else _listing(listed)
    except MpsAnalgesiaError as exc:
        return fail(err, exc)
    _emit(args, doc, out, err)
    return EXIT_OK


def _listing(protocols: Any) -> dict[str, Any]:
    return {
        "protocols": [
            {
                "id": p.id,
                "version": p.version,
                "status": p.status,
                "evidence": p.evidence.level,
                "title": p.title,
            }
            for p in protocols
        ]
    }


# ---- summarize ----------------------------------------------------------------------------------


def _is_case(data: dict[str, Any]) -> bool:
    """A case file has a patient or steps, and none of a protocol's keys."""
    protocol_keys = ("evidence", "phase", "indication", "eligibility")
    return not any(k in data for k in protocol_keys) and ("patient" in data or "step" in data)


def cmd_summarize(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Summarise a protocol (id or file), a case file (its validation report) or the RT table."""
    target: str = args.target
    code = EXIT_OK
    try:
        obj: Any
        if target == RT_TABLE_ID:
            from ..render.rt_table import rt_table_document

            _no_timeline(args, target)
            obj = rt_table_document()
        else:
            path = Path(target)
            if target == STDIN or (path.suffix.lower() in (".toml", ".json") and path.is_file()):
                data = read_table(path)
                if _is_case(data):
                    from ..io import case_from_dict
                    from ..render import _build
                    from ..rules import validate

                    case = (
                        case_from_dict(data, file=str(path))
                        if target == STDIN
                        else load_case_arg(path)
                    )
                    table = table_arg(args)
                    options = {"ome_table": table} if table is not None else None
                    report = validate(case.regimen, case.patient, options=options)
                    obj = (
                        {"file": "<stdin>" if target == STDIN else target, **report.to_dict()}
                        if args.format == "json"
                        else _build.report_document(report, title=case.name)
                    )
                    code = EXIT_FINDINGS if report.has_errors else EXIT_OK
                    _write_timeline(args, case, err)
                elif target == STDIN:
                    raise MpsAnalgesiaError(
                        "-: standard input holds no case (a protocol is read from a file or by id)"
                    )
                else:
                    obj = _protocols(target).load_protocol(path)
                    _no_timeline(args, target)
            elif path.suffix.lower() in (".toml", ".json"):
                raise MpsAnalgesiaError(f"{target}: no such file")
            else:
                obj = _protocols(target).load_protocol(target)
                _no_timeline(args, target)
    except MpsAnalgesiaError as exc:
        return fail(err, exc)
    return _emit(args, obj, out, err) or code


# ---- plan ---------------------------------------------------------------------------------------


def _choices(values: list[str]) -> dict[str, Any]:
    """``["side=left", "confirm=a,b"]`` → ``{"side": "left", "confirm": ("a", "b")}``."""
    from ..errors import StepError

    out: dict[str, Any] = {}
    for item in values:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise StepError("--choice", f"{item!r} must look like KEY=VALUE")
        if key == "confirm":
            out[key] = tuple(v.strip() for v in value.split(",") if v.strip())
        else:
            out[key] = value.strip()
    return out


def cmd_plan(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Instantiate a protocol for the patient of a case file and show the plan.

    The case's steps are the patient's current regimen (a case with no step: none).
    """
    try:
        protocol = _protocols(args.protocol).load_protocol(args.protocol)
        case = load_case_arg(args.patient)
        choices = _choices(args.choice)
        plan = protocol.instantiate(
            case.patient, current_regimen=case.regimen, choices=choices or None
        )
        _write_timeline(args, plan, err)
    except MpsAnalgesiaError as exc:
        return fail(err, exc)
    if _emit(args, plan, out, err):
        return EXIT_INPUT
    from ..render._objects import plan_has_errors

    return EXIT_FINDINGS if plan_has_errors(plan) else EXIT_OK


# ---- convert ------------------------------------------------------------------------------------


def cmd_convert(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Convert a daily opioid dose (``"60 mg/day oral morphine"``) to another opioid."""
    try:
        from ._text import convert_from_text

        conversion = convert_from_text(
            args.source,
            to_drug=args.to,
            to_route=args.to_route,
            reduction=args.reduction,
            table=table_arg(args),
        )
    except MpsAnalgesiaError as exc:
        return fail(err, exc)
    _emit(args, conversion, out, err)
    return EXIT_OK


# ---- assess -------------------------------------------------------------------------------------


def cmd_assess(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Assess the clinical features in a TOML/JSON file against the published MPS definitions."""
    try:
        from ._text import assess_from_mapping

        data = read_table(Path(args.features))
        assessment = assess_from_mapping(data, file=args.features)
    except MpsAnalgesiaError as exc:
        return fail(err, exc)
    _emit(args, assessment, out, err)
    return EXIT_OK


# ---- wiring -------------------------------------------------------------------------------------


def add_subcommands(subparsers: Any) -> None:
    """Add ``protocols``, ``summarize``, ``plan``, ``convert`` and ``assess`` to ``subparsers``.

    Each subparser sets ``handler`` to its ``cmd_xxx`` function.

    Example
    -------
    >>> import argparse
    >>> from mps_analgesia.cli._educator import add_subcommands
    >>> parser = argparse.ArgumentParser(prog="mps-analgesia")
    >>> add_subcommands(parser.add_subparsers(dest="command"))
    >>> args = parser.parse_args(["summarize", "radiotherapy-schedules", "--format", "html"])
    >>> args.handler.__name__, args.format
    ('cmd_summarize', 'html')
    """
    p = subparsers.add_parser(
        "protocols",
        help="list the shipped protocols",
        description="List the shipped protocols with their status and evidence level.",
    )
    _add_output(p)
    p.set_defaults(handler=cmd_protocols)

    p = subparsers.add_parser(
        "summarize",
        help="summarise a protocol, a case file, or the radiotherapy table",
        description="Summarise a protocol (by id or file), a case file (its validation report; "
        f"exit 1 when it has an error finding) or, with the id {RT_TABLE_ID!r}, the shipped "
        "radiotherapy schedules with BED and EQD2.",
    )
    p.add_argument(
        "target",
        metavar="ID_OR_FILE",
        help="a protocol id, a protocol or case file, - for a case on standard input",
    )
    _add_output(p)
    _add_layout(p)
    _add_timeline(p)
    add_table_options(p, "for a case file's report")
    p.set_defaults(handler=cmd_summarize)

    p = subparsers.add_parser(
        "plan",
        help="instantiate a protocol for a patient and show the plan",
        description="Instantiate a protocol for the patient of a case file (its steps are the "
        "current regimen) and show the plan with its decisions. Exit 1 when the plan has an "
        "error finding or an eligibility check failed.",
    )
    p.add_argument("protocol", metavar="ID", help="a protocol id or file")
    p.add_argument(
        "--patient",
        required=True,
        metavar="CASE",
        help="case file with the patient (and regimen); - reads it from standard input",
    )
    p.add_argument(
        "--choice",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a choice the protocol offers (repeatable): --choice side=left, "
        "--choice GROUP=OPTION_ID, --choice confirm=CHECK_ID,CHECK_ID",
    )
    _add_output(p)
    _add_layout(p)
    _add_timeline(p)
    p.set_defaults(handler=cmd_plan)

    p = subparsers.add_parser(
        "convert",
        help="convert a daily opioid dose to another opioid",
        description='Convert a daily opioid dose, e.g. "60 mg/day oral morphine" or '
        '"25 mcg/h transdermal fentanyl", to another opioid, with the receipt.',
    )
    p.add_argument("source", metavar="DOSE", help='e.g. "60 mg/day oral morphine"')
    p.add_argument("--to", required=True, metavar="DRUG", help="the opioid to convert to")
    p.add_argument("--to-route", default=None, metavar="ROUTE", help="its route (default oral)")
    p.add_argument(
        "--reduction",
        default=None,
        metavar="RANGE",
        help="reduction for incomplete cross-tolerance, e.g. '25-50 %%' (default: the table's)",
    )
    add_table_options(p, "used on both sides")
    _add_output(p)
    p.set_defaults(handler=cmd_convert)

    p = subparsers.add_parser(
        "assess",
        help="check clinical features against the published MPS definitions",
        description="Read the clinical features (TOML or JSON) and show, for each published "
        "definition of malignant psoas syndrome, which criteria are met, not met or unknown.",
    )
    p.add_argument(
        "features",
        metavar="FEATURES_FILE",
        help="features file (.toml or .json); - reads it from standard input",
    )
    _add_output(p)
    p.set_defaults(handler=cmd_assess)
