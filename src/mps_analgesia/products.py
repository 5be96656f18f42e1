"""Medicinal products: an RxNorm product code or normalized name → ingredients, strength, dose form.

EHRs order products ("72 HR fentanyl 0.075 MG/HR Transdermal System", RXCUI 197696), not
ingredients.  This module resolves a product to what the checks need:

- :func:`rxnorm_product` looks a product code up in the shipped RxNorm opioid product table
  (``data/rxnorm-products.toml``: 910 products of the CDC opioid MME calculator, derived from NLM
  RxNav; its attribution is in the file's ``[meta]``), completed by reading the product's name
  (the table lists only opioid ingredients; a combination's acetaminophen is in the name);
- :func:`parse_rxnorm_name` reads an RxNorm normalized clinical or branded drug name, whose
  grammar is regular: ``[quantity] ingredient strength [/ ingredient strength …] dose form
  [brand]``;
- :func:`products_by_brand` finds the products a bracketed brand name (``[Oxycontin]``) names.

The dose form (``data/dose-forms.toml``) gives the step's ``dose_form`` and, where the form says
it, the route (a transdermal system is transdermal) and the formulation (extended release is
modified-release).  Anything that cannot be resolved raises :class:`UnknownProductError`: an
unknown product never becomes a number.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from typing import Any, Final

import attrs

from . import _catalog
from .errors import DataFileError, UnknownDrugError, UnknownProductError

__all__ = [
    "DoseForm",
    "Ingredient",
    "RxNormProduct",
    "dose_form",
    "dose_forms",
    "parse_rxnorm_name",
    "products_by_brand",
    "rxnorm_product",
]

_PRODUCTS_FILE: Final = "rxnorm-products.toml"
_FORMS_FILE: Final = "dose-forms.toml"

#: RxNorm strength units: (milligrams per unit of the numerator, what the strength is per).
#: ``per``: ``unit`` (each tablet, capsule, film …), ``mL``, ``h`` or ``actuation``.
_STRENGTH_UNITS: Final[Mapping[str, tuple[float, str]]] = {
    "MG": (1.0, "unit"),
    "MCG": (0.001, "unit"),
    "G": (1000.0, "unit"),
    "MG/ML": (1.0, "mL"),
    "MCG/ML": (0.001, "mL"),
    "MG/HR": (1.0, "h"),
    "MCG/HR": (0.001, "h"),
    "MG/ACTUAT": (1.0, "actuation"),
    "MCG/ACTUAT": (0.001, "actuation"),
}
_NUMBER: Final = r"\d+(?:\.\d+)?"
_PART: Final = re.compile(
    rf"(?P<name>[a-z][a-z0-9 ,'()-]*?) (?P<value>{_NUMBER}) (?P<unit>[A-Z]+(?:/[A-Z]+)?)"
)
_QUANTITY: Final = re.compile(rf"(?P<value>{_NUMBER}) (?P<unit>HR|ML|ACTUAT|MG|DAY)\s+")
# A leading qualifier of capitalised words: "Abuse-Deterrent", "Matrix Delivery".
_QUALIFIER: Final = re.compile(r"(?P<qualifier>(?:[A-Z][A-Za-z-]* )+)(?=[a-z0-9])")
_BRAND: Final = re.compile(r"\s*\[(?P<brand>[^\[\]]+)\]\s*$")
_MAX_NAME: Final = 500


@attrs.define(frozen=True)
class DoseForm:
    """One dose form of the closed vocabulary: its id, display words, implied route (``""``: the
    form does not say) and the count annotations meaning one unit of it."""

    id: str
    display: str
    route: str
    counts: tuple[str, ...]


@attrs.define(frozen=True)
class Ingredient:
    """One active ingredient of a product, with its strength.

    ``name`` as RxNorm writes it (``oxycodone hydrochloride``); ``drug`` the catalog drug id, or
    ``None`` when the catalog does not know the ingredient; ``strength`` and ``unit`` as RxNorm
    writes them (``5``, ``MG``); ``amount_mg`` the canonical milligrams per ``per`` (``unit``,
    ``mL``, ``h`` or ``actuation``).
    """

    name: str
    drug: str | None
    strength: float
    unit: str
    amount_mg: float
    per: str

    @property
    def strength_text(self) -> str:
        """The strength as RxNorm writes it: ``5 MG``, ``0.075 MG/HR``."""
        return f"{self.strength:g} {self.unit}"


@attrs.define(frozen=True)
class RxNormProduct:
    """A medicinal product: code (RXCUI, or ``None`` when read from a name), name, ingredients.

    ``rxnorm_dose_form`` is RxNorm's dose form name; ``dose_form`` the library's id for it,
    with the ``route`` (``None`` when the form does not say) and ``formulation`` it implies;
    ``brand`` the bracketed brand (``Oxycontin``) or ``""``; ``quantity`` the leading quantity
    (``72 HR``, ``1 ML``) or ``""``; ``source`` says where it was read: ``table`` or ``name``.
    """

    code: str | None
    name: str
    rxnorm_dose_form: str
    dose_form: str
    route: str | None
    formulation: str
    ingredients: tuple[Ingredient, ...]
    brand: str = ""
    quantity: str = ""
    source: str = "name"

    @property
    def opioids(self) -> tuple[Ingredient, ...]:
        """The ingredients that are opioids in the catalog."""
        return tuple(
            i for i in self.ingredients if i.drug and _catalog.drug(i.drug).drug_class == "opioid"
        )

    def ingredient(self, drug: str) -> Ingredient | None:
        """The ingredient of catalog drug ``drug`` (the first), or ``None``."""
        return next((i for i in self.ingredients if i.drug == drug), None)


# ---- data ---------------------------------------------------------------------------------------


@cache
def dose_forms() -> Mapping[str, DoseForm]:
    """The dose form vocabulary of ``data/dose-forms.toml``, by id.

    Example
    -------
    >>> from mps_analgesia.products import dose_forms
    >>> dose_forms()["buccal-film"].route
    'buccal'
    """
    raw = _catalog.data_file(_FORMS_FILE).get("forms", {})
    return {
        str(k): DoseForm(str(k), str(v["display"]), str(v.get("route", "")), tuple(v["counts"]))
        for k, v in raw.items()
    }


@cache
def _rxnorm_forms() -> Mapping[str, tuple[str, str]]:
    raw = _catalog.data_file(_FORMS_FILE).get("rxnorm", {})
    out = {}
    for name, row in raw.items():
        form = str(row["dose_form"])
        if form not in dose_forms():
            raise DataFileError(f"{_FORMS_FILE}: rxnorm.{name!r}: unknown dose_form {form!r}")
        out[str(name)] = (form, str(row["formulation"]))
    return out


@cache
def _forms_longest_first() -> tuple[str, ...]:
    return tuple(sorted(_rxnorm_forms(), key=len, reverse=True))


@cache
def _salts() -> frozenset[str]:
    return frozenset(str(s) for s in _catalog.data_file(_FORMS_FILE)["names"]["salts"])


def dose_form(rxnorm_name: str) -> tuple[DoseForm, str]:
    """The library dose form and the formulation an RxNorm dose form name implies.

    Example
    -------
    >>> from mps_analgesia.products import dose_form
    >>> form, formulation = dose_form("Extended Release Oral Tablet")
    >>> form.id, form.route, formulation
    ('oral-tablet', 'oral', 'modified-release')
    """
    row = _rxnorm_forms().get(" ".join(str(rxnorm_name).split()))
    if row is None:
        raise UnknownProductError(
            "dose form",
            str(rxnorm_name),
            field="dose form",
            reason=f"the RxNorm dose form {rxnorm_name!r} is not one this library reads "
            f"(known: {', '.join(sorted(_rxnorm_forms()))})",
        )
    return dose_forms()[row[0]], row[1]


def _drug_id(name: str) -> str | None:
    """The catalog drug of an RxNorm ingredient name, salt words dropped; ``None`` if unknown."""
    words = name.split()
    while words:
        try:
            return _catalog.drug(" ".join(words)).id
        except UnknownDrugError:
            if len(words) > 1 and words[-1] in _salts():
                words = words[:-1]
                continue
            return None
    return None


def _ingredient(name: str, value: float, unit: str, where: str) -> Ingredient:
    row = _STRENGTH_UNITS.get(unit)
    if row is None:
        raise UnknownProductError(
            "product",
            where,
            field="strength",
            reason=f"{where!r}: the strength unit {unit!r} is not one this library reads "
            f"({', '.join(_STRENGTH_UNITS)})",
        )
    factor, per = row
    return Ingredient(name, _drug_id(name), value, unit, value * factor, per)


def _unknown(name: str, why: str) -> UnknownProductError:
    return UnknownProductError(
        "product",
        name,
        field="medication",
        reason=f"unknown product {name!r}: {why}; send the RxNorm product code or the RxNorm "
        "normalized name (e.g. 'oxycodone hydrochloride 5 MG Oral Tablet'), or the ingredient "
        "with the dose in mg",
    )


@cache
def parse_rxnorm_name(name: str) -> RxNormProduct:
    """Read an RxNorm normalized clinical or branded drug name into a product.

    The grammar: ``[quantity] ingredient strength [/ ingredient strength …] dose form [brand]``.
    Raises :class:`UnknownProductError` saying what could not be read.

    Example
    -------
    >>> from mps_analgesia.products import parse_rxnorm_name
    >>> p = parse_rxnorm_name("acetaminophen 325 MG / oxycodone hydrochloride 5 MG Oral Tablet")
    >>> [(i.drug, i.amount_mg) for i in p.ingredients], p.dose_form, p.formulation
    ([('acetaminophen', 325.0), ('oxycodone', 5.0)], 'oral-tablet', 'immediate-release')
    >>> p = parse_rxnorm_name("12 HR oxycodone hydrochloride 10 MG Extended Release Oral Tablet "
    ...                       "[Oxycontin]")
    >>> p.brand, p.quantity, p.formulation
    ('Oxycontin', '12 HR', 'modified-release')
    """
    if not isinstance(name, str) or not name.strip():
        raise _unknown(str(name), "there is no name")
    if len(name) > _MAX_NAME:
        raise _unknown(name[:60] + "…", f"the name is longer than {_MAX_NAME} characters")
    text = " ".join(name.split())
    brand = ""
    m = _BRAND.search(text)
    if m is not None:
        brand = m.group("brand").strip()
        text = text[: m.start()].rstrip()
    if text.startswith("{"):
        raise _unknown(name, "a pack of several products is not read; order its products")
    qualifier = _QUALIFIER.match(text)
    if qualifier is not None:
        text = text[qualifier.end() :]
    quantity = ""
    q = _QUANTITY.match(text)
    if q is not None and _PART.match(text[q.end() :]):
        quantity = f"{q.group('value')} {q.group('unit')}"
        text = text[q.end() :]
    form_name = next((f for f in _forms_longest_first() if text.endswith(" " + f)), None)
    if form_name is None:
        raise _unknown(name, "it does not end in an RxNorm dose form this library reads")
    body = text[: -len(form_name) - 1]
    ingredients = []
    for part in body.split(" / "):
        pm = _PART.fullmatch(part.strip())
        if pm is None:
            raise _unknown(name, f"{part.strip()!r} is not 'ingredient strength UNIT'")
        ingredients.append(
            _ingredient(pm.group("name"), float(pm.group("value")), pm.group("unit"), name)
        )
    form, formulation = dose_form(form_name)
    return RxNormProduct(
        code=None,
        name=" ".join(name.split()),
        rxnorm_dose_form=form_name,
        dose_form=form.id,
        route=form.route or None,
        formulation=formulation,
        ingredients=tuple(ingredients),
        brand=brand,
        quantity=quantity,
        source="name",
    )


@cache
def _table() -> Mapping[str, Any]:
    return dict(_catalog.data_file(_PRODUCTS_FILE).get("products", {}))


@cache
def rxnorm_product(code: str) -> RxNormProduct | None:
    """The product of an RxNorm product code (RXCUI) in the shipped table, or ``None``.

    The opioid ingredients and strengths come from the table; the other ingredients of a
    combination product from its name.

    Example
    -------
    >>> from mps_analgesia.products import rxnorm_product
    >>> p = rxnorm_product("197696")
    >>> p.name, p.route, p.formulation, p.ingredients[0].amount_mg, p.ingredients[0].per
    ('72 HR fentanyl 0.075 MG/HR Transdermal System', 'transdermal', 'patch', 0.075, 'h')
    >>> rxnorm_product("1") is None
    True
    """
    row = _table().get(str(code).strip())
    if row is None:
        return None
    name, form_name, opioid_rows = str(row[0]), str(row[1]), row[2]
    form, formulation = dose_form(form_name)
    opioids = [_ingredient(str(n), float(v), str(u), name) for n, v, u in opioid_rows]
    try:
        parsed = parse_rxnorm_name(name)
    except UnknownProductError:
        parsed = None
    others: list[Ingredient] = []
    brand = quantity = ""
    if parsed is not None:
        opioid_drugs = {i.drug for i in opioids}
        others = [i for i in parsed.ingredients if i.drug not in opioid_drugs]
        brand, quantity = parsed.brand, parsed.quantity
    else:
        m = _BRAND.search(name)
        brand = m.group("brand").strip() if m is not None else ""
    return RxNormProduct(
        code=str(code).strip(),
        name=name,
        rxnorm_dose_form=form_name,
        dose_form=form.id,
        route=form.route or None,
        formulation=formulation,
        ingredients=tuple(others + opioids) if parsed is not None else tuple(opioids),
        brand=brand,
        quantity=quantity,
        source="table",
    )


@cache
def _brands() -> Mapping[str, tuple[str, ...]]:
    out: dict[str, list[str]] = {}
    for code, row in _table().items():
        m = _BRAND.search(str(row[0]))
        if m is not None:
            out.setdefault(m.group("brand").strip().casefold(), []).append(str(code))
    return {k: tuple(v) for k, v in out.items()}


def products_by_brand(brand: str) -> tuple[RxNormProduct, ...]:
    """The table's products whose normalized name carries ``[brand]`` (case-insensitive).

    Example
    -------
    >>> from mps_analgesia.products import products_by_brand
    >>> sorted({p.formulation for p in products_by_brand("OxyContin")})
    ['modified-release']
    """
    codes = _brands().get(" ".join(str(brand).split()).casefold(), ())
    return tuple(p for c in codes if (p := rxnorm_product(c)) is not None)
