"""The medication of an order: a catalog drug, or a product with ingredients, strength and form.

A medication CodeableConcept is resolved, in order: the project's drug code; an RxNorm
ingredient code; an RxNorm product code of the shipped product table; then each name (``text``,
the codings' displays) as a catalog drug name, an RxNorm normalized name, or a bracketed brand.
An NDC or any other code that none of these resolves is an
:class:`~mps_analgesia.errors.UnknownProductError` naming it: never a guess.

A product dose is read from ``doseQuantity`` as a mass (``mg``), a count of the product's units
(``{tablet}``, ``{patch}``, ``TAB``, ``1``) times the strength, or a volume times a
concentration (``5 mL`` of ``1 MG/ML``); a patch count gives a rate (``1 {patch}`` of ``0.075
MG/HR`` is 75 mcg/h).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from functools import cache
from typing import Any, Final

import attrs

from .. import _catalog, _units, products
from .._memo import Memo
from ..errors import MpsAnalgesiaError, StepError, UnitError, UnknownProductError
from ..products import Ingredient, RxNormProduct
from ._base import CS_DRUG, RXNORM, UCUM, _codes_in, _finite_number, _rxnorm_reverse, _shown
from ._quantity import _ANNOTATION, from_fhir_quantity

__all__ = ["Medication", "may_be_opioid", "names_opioid", "product_amount", "resolve_medication"]

NDC: Final = "http://hl7.org/fhir/sid/ndc"
#: HL7 v3 orderable drug forms (``TAB``, ``CAP``) sent as a dose unit's system.
V3_DRUG_FORM: Final = "http://terminology.hl7.org/CodeSystem/v3-orderableDrugForm"
#: Count words that mean one unit of whatever the product is.
_GENERIC_COUNTS: Final = frozenset({"1", "each", "ea", "unit", "units", "dose-unit"})


@attrs.define(frozen=True)
class Medication:
    """A resolved medication: the catalog ``drug`` the step gives, the ``product`` when one was
    named (with ``ingredient``, the drug's own ingredient, and ``partners``, the other
    ingredients each given as a step of its own)."""

    drug: str
    product: RxNormProduct | None = None
    ingredient: Ingredient | None = None
    partners: tuple[Ingredient, ...] = ()


def _from_product(product: RxNormProduct, field: str) -> Medication:
    unknown = [i.name for i in product.ingredients if i.drug is None]
    if unknown:
        raise UnknownProductError(
            "product",
            product.name,
            field=field,
            reason=f"{product.name!r}: the ingredient {unknown[0]!r} is not in the drug catalog, "
            "so its checks cannot run and the order is not read",
        )
    drugs = list(dict.fromkeys(i.drug for i in product.ingredients if i.drug is not None))
    opioids = [d for d in drugs if _catalog.drug(d).drug_class == "opioid"]
    if len(opioids) > 1:
        raise UnknownProductError(
            "product",
            product.name,
            field=field,
            reason=f"{product.name!r} holds two opioids ({', '.join(opioids)}); the library "
            "reads one opioid per order",
        )
    primary = opioids[0] if opioids else drugs[0]
    rows = [i for i in product.ingredients if i.drug == primary]
    if len({(i.per, i.unit) for i in rows}) != 1:
        raise UnknownProductError(
            "product", product.name, field=field, reason="its strengths cannot be added up"
        )
    # Salts of one drug (oxycodone hydrochloride + terephthalate) add up.
    ingredient = attrs.evolve(
        rows[0],
        strength=sum(i.strength for i in rows),
        amount_mg=sum(i.amount_mg for i in rows),
    )
    partners = []
    for d in drugs:
        if d == primary:
            continue
        same = [i for i in product.ingredients if i.drug == d]
        partners.append(attrs.evolve(same[0], amount_mg=sum(i.amount_mg for i in same)))
    return Medication(primary, product, ingredient, tuple(partners))


def _from_brand(brand: str, field: str) -> Medication | None:
    found = products.products_by_brand(brand.strip().strip("[]"))
    if not found:
        return None
    shapes = {
        (tuple(i.drug for i in p.ingredients), p.dose_form, p.route, p.formulation) for p in found
    }
    if len(shapes) != 1:
        raise UnknownProductError(
            "product",
            brand,
            field=field,
            reason=f"the brand {brand!r} names {len(found)} products of different ingredients or "
            "forms; send the RxNorm product code",
        )
    # One shape: the drug, route, form and formulation are known, the strength is not.
    med = _from_product(found[0], field)
    if med.partners:
        raise UnknownProductError(
            "product",
            brand,
            field=field,
            reason=f"the brand {brand!r} is a combination product whose strengths the brand "
            "does not say; send the RxNorm product code",
        )
    return Medication(med.drug, attrs.evolve(found[0], code=None, source="brand"), None, ())


#: Resolved medications by their codings ``(system, code, display)`` and text: canonical values,
#: bounded in bytes (a name longer than 160 characters is not kept).  Only a success is kept.
_MEDICATIONS: Final = Memo("fhir.medication", max_bytes=512 * 1024, max_text=160)
#: What one memoized Medication costs beyond its key (its records are shared with the catalog,
#: or parsed from the name in the key).
_MEDICATION_BYTES: Final = 600


def resolve_medication(concept: object, *, field: str = "medication") -> Medication:
    """The drug (and product) a medication CodeableConcept names; raises if it names none.

    Example
    -------
    >>> from mps_analgesia.fhir._medication import resolve_medication
    >>> rx = "http://www.nlm.nih.gov/research/umls/rxnorm"
    >>> m = resolve_medication({"coding": [{"system": rx, "code": "1049621"}]})
    >>> m.drug, m.product.name
    ('oxycodone', 'oxycodone hydrochloride 5 MG Oral Tablet')
    >>> m = resolve_medication({"text": "acetaminophen 325 MG / oxycodone hydrochloride 5 MG "
    ...                                 "Oral Tablet"})
    >>> m.drug, [p.drug for p in m.partners]
    ('oxycodone', ['acetaminophen'])
    """
    if not isinstance(concept, Mapping):
        raise StepError(
            field,
            "a medicationCodeableConcept or a medicationReference to a Medication is required",
        )
    codes = _codes_in(concept)
    text = concept.get("text")
    key = (tuple(codes), text if isinstance(text, str) else None)
    hit = _MEDICATIONS.get(key)
    if hit is not None:
        return hit  # type: ignore[no-any-return]
    size = _MEDICATION_BYTES + sum(len(s) for c in codes for s in c) + len(key[1] or "")
    return _MEDICATIONS.put(key, _resolve(codes, key[1], field), size)


def _resolve(codes: list[tuple[str, str, str]], text: str | None, field: str) -> Medication:
    for system, code, _d in codes:
        if system == CS_DRUG:
            return Medication(_catalog.drug(code, field=field).id)
    for system, code, _d in codes:
        if system == RXNORM and code in _rxnorm_reverse():
            return Medication(_catalog.drug(_rxnorm_reverse()[code], field=field).id)
    for system, code, _d in codes:
        if system == RXNORM:
            product = products.rxnorm_product(code)
            if product is not None:
                return _from_product(product, field)
    names = [text] + [d for _s, _c, d in codes]
    last: MpsAnalgesiaError | None = None
    for name in names:
        if not isinstance(name, str) or not name.strip():
            continue
        try:
            return Medication(_catalog.drug(name, field=field).id)
        except MpsAnalgesiaError as exc:
            last = last or exc
        try:
            return _from_product(products.parse_rxnorm_name(name), field)
        except UnknownProductError as exc:
            if any(ch.isdigit() for ch in name):
                last = exc
        med = _from_brand(name, field)
        if med is not None:
            return med
    sent = [f"{s.rsplit('/', 1)[-1] or 'a code'} {c}" for s, c, _d in codes if c]
    if any(s == NDC for s, _c, _d in codes) and last is None:
        raise UnknownProductError(
            "product",
            ", ".join(sent),
            field=field,
            reason=f"unknown product ({', '.join(sent)}): NDC codes are not resolved; send the "
            "RxNorm product code (RXCUI) or its normalized name",
        )
    if last is not None:
        raise last
    if sent:
        raise UnknownProductError(
            "product",
            ", ".join(sent),
            field=field,
            reason=f"unknown product ({', '.join(sent)}): not an RxNorm code of the shipped "
            "product table (a 2020 snapshot) and no name this library can read; send the "
            "normalized name as text",
        )
    raise StepError(field, "the medication has no code or text this library knows")


def _count_word(q: Mapping[str, Any]) -> str | None:
    """The count word of a dose unit (``{tablet}`` → ``tablet``; ``TAB`` → ``tab``), or None."""
    system, code, unit = q.get("system"), q.get("code"), q.get("unit")
    if isinstance(code, str):
        if system == V3_DRUG_FORM:
            return code.strip().casefold()
        if system in (None, UCUM):
            bare = _ANNOTATION.sub("", code).strip()
            if bare in ("", "1"):
                words = [a.strip("{} ").casefold() for a in _ANNOTATION.findall(code)]
                return words[0] if words else "1"
        return None
    if isinstance(unit, str):
        word = unit.strip().strip("{}").casefold()
        if (word and word.isalpha()) or word == "1":
            return word
    return None


def product_amount(
    q: object, medication: Medication, ingredient: Ingredient, *, field: str
) -> tuple[str, Any]:
    """``("dose", mass)`` or ``("rate", mass rate)`` of ``ingredient`` in a product dose ``q``.

    Example
    -------
    >>> from mps_analgesia.fhir._medication import product_amount, resolve_medication
    >>> m = resolve_medication({"coding": [{"system":
    ...     "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "197696"}]})
    >>> product_amount({"value": 1, "code": "{patch}"}, m, m.ingredient, field="dose")
    ('rate', <Quantity(0.075, 'milligram / hour')>)
    """
    product = medication.product
    assert product is not None
    if not isinstance(q, Mapping):
        raise UnitError(_shown(q), "is not a FHIR Quantity", "send {value, system, code}", field)
    word = _count_word(q)
    if word is not None:
        value = _finite_number(q.get("value"), field, "send the count as a number")
        if not value > 0:
            raise StepError(field, f"a count of {_shown(q.get('value'))} units is not a dose")
        form = products.dose_forms()[product.dose_form]
        if word not in _GENERIC_COUNTS and word not in form.counts:
            raise StepError(
                field,
                f"a dose of {_shown(q.get('value'))} {word!r} does not fit {product.name!r} "
                f"(a {form.display}); send a count of {', '.join(form.counts) or 'mL'} or a mass",
            )
        if ingredient.per == "mL":
            raise StepError(
                field, f"{product.name!r} is a liquid: send the dose in mL or in mg, not a count"
            )
        if ingredient.amount_mg <= 0 or product.source == "brand":
            raise StepError(field, f"the strength of {product.name!r} is not known: send mg")
        amount = value * ingredient.amount_mg
        if ingredient.per == "h":
            return "rate", _units.Q(amount, "mg/h")
        return "dose", _units.Q(amount, "mg")
    read = from_fhir_quantity(q, field=field)
    dimension = _units.lookup_unit(_units.format_unit(read.units)).dimension
    if dimension == "mass":
        if ingredient.per == "h":
            raise StepError(
                field,
                f"{product.name!r} delivers a rate: send the dose as a count of patches or "
                "the rate as rateQuantity (e.g. ug/h), not a mass",
            )
        if medication.partners:
            raise StepError(
                field,
                f"{product.name!r} is a combination product: a mass does not say of which "
                "ingredient; send the dose as a count of its units (e.g. 1 {tablet})",
            )
        return "dose", read
    if dimension == "volume":
        if ingredient.per != "mL":
            raise StepError(field, f"{product.name!r} is not a liquid: send a count or a mass")
        ml = _units.magnitude_in(read, "mL")
        amount = ml * ingredient.amount_mg
        if not math.isfinite(amount):
            raise StepError(field, "is too large to compute with")
        return "dose", _units.Q(amount, "mg")
    raise StepError(
        field, f"a dose in {_units.format_unit(read.units)} cannot be read for a product"
    )


# ---- does a name name an opioid? (for orders that could not be read) ---------------------------

_WORD: Final = re.compile(r"[a-z]{3,}")
_BRAND: Final = re.compile(r"\[([A-Za-z][A-Za-z \-]+)\]")
#: Salt and other words shared by opioid and non-opioid names: they name no drug.
_GENERIC_WORDS: Final = frozenset(
    {"hydrochloride", "sulfate", "sulphate", "citrate", "phosphate", "tartrate"}
)


@cache
def _drug_words() -> tuple[frozenset[str], frozenset[str]]:
    """Words naming an opioid (catalog names, RxNorm opioid ingredients and brands), and words
    naming a catalog drug that is not an opioid."""
    opioid: set[str] = set()
    other: set[str] = set()
    for drug_id in _catalog.drug_ids():
        record = _catalog.drug(drug_id)
        words = {w for n in (drug_id, *record.names) for w in _WORD.findall(n.lower())}
        (opioid if record.drug_class == "opioid" else other).update(words)
    table = _catalog.data_file("rxnorm-products.toml").get("products", {})
    for row in table.values():
        name, _form, ingredients = row
        opioid.update(str(i[0]).lower() for i in ingredients)
        opioid.update(b.lower() for b in _BRAND.findall(str(name)))
    return frozenset(opioid - _GENERIC_WORDS), frozenset(other - opioid - _GENERIC_WORDS)


def names_opioid(name: str) -> bool:
    """Whether a medicine name names an opioid (a catalog name, an RxNorm ingredient or brand).

    Example
    -------
    >>> from mps_analgesia.fhir._medication import names_opioid
    >>> names_opioid("OxyContin 10 MG"), names_opioid("acetaminophen 500 MG Oral Tablet")
    (True, False)
    """
    return bool(set(_WORD.findall(name.lower())) & _drug_words()[0])


def may_be_opioid(name: str) -> bool:
    """Whether a medicine name names an opioid, or names no drug the library knows (then it
    could be one).

    Example
    -------
    >>> from mps_analgesia.fhir._medication import may_be_opioid
    >>> may_be_opioid("MedicationRequest/x"), may_be_opioid("gabapentin 300 MG Oral Capsule")
    (True, False)
    """
    opioid, other = _drug_words()
    words = set(_WORD.findall(name.lower()))
    return bool(words & opioid) or not words & other
