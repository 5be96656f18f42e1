"""RxNorm products: the shipped table, normalized names, brands, dose forms."""

from __future__ import annotations

import contextlib
import tomllib
from importlib import resources

import pytest
from hypothesis import given
from hypothesis import strategies as st

import mps_analgesia as mps
from mps_analgesia import products
from mps_analgesia.products import (
    dose_form,
    parse_rxnorm_name,
    products_by_brand,
    rxnorm_product,
)


def _table() -> dict[str, list]:
    text = resources.files("mps_analgesia").joinpath("data/rxnorm-products.toml").read_text()
    return dict(tomllib.loads(text)["products"])


class TestTable:
    def test_table_carries_the_nlm_attribution(self) -> None:
        """The products file keeps the NLM attribution and its source in [meta]."""
        text = resources.files("mps_analgesia").joinpath("data/rxnorm-products.toml").read_text()
        meta = tomllib.loads(text)["meta"]
        assert "National Library of Medicine" in meta["attribution"]
        assert meta["source"] == "omtk-rxnorm-2020"

    def test_table_has_910_products(self) -> None:
        """Every product of the reference table is shipped."""
        assert len(_table()) == 910

    def test_every_table_name_parses_to_the_table_strengths(self) -> None:
        """Reading each product's name gives the table's dose form and opioid strengths.

        Packs and implants are the only names not read (they are refused, never guessed).
        """
        unread = []
        for code, (name, form, rows) in _table().items():
            try:
                parsed = parse_rxnorm_name(name)
            except mps.UnknownProductError:
                unread.append(name)
                continue
            assert parsed.rxnorm_dose_form == form, name
            strengths = sorted((round(i.strength, 6), i.unit) for i in parsed.ingredients)
            for _n, value, unit in rows:
                assert (round(value, 6), unit) in strengths, (code, name)
        assert all(n.startswith("{") or "Drug Implant" in n for n in unread), unread
        assert len(unread) == 6

    @pytest.mark.parametrize(
        ("code", "drug", "route", "formulation", "dose_form", "amount", "per"),
        [
            ("197696", "fentanyl", "transdermal", "patch", "transdermal-system", 0.075, "h"),
            ("1049621", "oxycodone", "oral", "immediate-release", "oral-tablet", 5.0, "unit"),
        ],
    )
    def test_product_code_resolves(
        self,
        code: str,
        drug: str,
        route: str,
        formulation: str,
        dose_form: str,
        amount: float,
        per: str,
    ) -> None:
        """A product code gives the ingredient, strength, dose form, route and formulation."""
        p = rxnorm_product(code)
        assert p is not None
        assert (p.route, p.formulation, p.dose_form) == (route, formulation, dose_form)
        (ingredient,) = p.opioids
        assert (ingredient.drug, ingredient.amount_mg, ingredient.per) == (drug, amount, per)

    def test_combination_product_from_the_table_has_its_acetaminophen(self) -> None:
        """A table combination product lists its non-opioid ingredients from its name."""
        code = next(
            c for c, (n, _f, _r) in _table().items() if n.startswith("acetaminophen 325 MG / oxy")
        )
        p = rxnorm_product(code)
        assert p is not None
        assert [i.drug for i in p.ingredients] == ["acetaminophen", "oxycodone"]

    def test_unknown_code_is_none(self) -> None:
        """A code not in the table is None, never a guess."""
        assert rxnorm_product("999999999") is None


class TestNames:
    def test_combination(self) -> None:
        """Two ingredients, each with its strength."""
        p = parse_rxnorm_name("acetaminophen 325 MG / oxycodone hydrochloride 5 MG Oral Tablet")
        assert [(i.name, i.drug, i.amount_mg) for i in p.ingredients] == [
            ("acetaminophen", "acetaminophen", 325.0),
            ("oxycodone hydrochloride", "oxycodone", 5.0),
        ]

    def test_quantity_brand_and_qualifier(self) -> None:
        """A leading quantity and qualifier and a bracketed brand are read apart."""
        p = parse_rxnorm_name(
            "Abuse-Deterrent 12 HR oxycodone hydrochloride 10 MG Extended Release Oral Tablet "
            "[Oxycontin]"
        )
        assert (p.quantity, p.brand, p.formulation) == ("12 HR", "Oxycontin", "modified-release")

    def test_non_opioid_products(self) -> None:
        """Names outside the opioid table: gabapentin, solutions in MG/ML, MCG."""
        assert parse_rxnorm_name("gabapentin 300 MG Oral Capsule").ingredients[0].drug == (
            "gabapentin"
        )
        sol = parse_rxnorm_name("morphine sulfate 2 MG/ML Oral Solution").ingredients[0]
        assert (sol.drug, sol.amount_mg, sol.per) == ("morphine", 2.0, "mL")
        film = parse_rxnorm_name("fentanyl 200 MCG Buccal Film").ingredients[0]
        assert film.amount_mg == pytest.approx(0.2)

    @pytest.mark.parametrize(
        "name",
        [
            "",
            "OxyContin",
            "oxycodone 5 MG Oral Wafer",
            "oxycodone 5 FOO Oral Tablet",
            "{2 (fentanyl 0.6 MG/ACTUAT Mucosal Spray) } Pack",
            "x" * 600,
        ],
    )
    def test_unreadable_names_are_unknown_products(self, name: str) -> None:
        """A name outside the grammar is an UnknownProductError, also a LookupError."""
        with pytest.raises(mps.UnknownProductError):
            parse_rxnorm_name(name)
        with pytest.raises(LookupError):
            parse_rxnorm_name(name)

    @given(st.text(max_size=200))
    def test_any_text_reads_or_is_refused(self, text: str) -> None:
        """Any text is a product or an UnknownProductError; nothing else escapes."""
        with contextlib.suppress(mps.UnknownProductError):
            parse_rxnorm_name(text)


class TestBrandsAndForms:
    def test_brand(self) -> None:
        """A bracketed brand finds its products, case-insensitively."""
        found = products_by_brand("oxycontin")
        assert found
        assert {p.opioids[0].drug for p in found} == {"oxycodone"}

    def test_unknown_brand(self) -> None:
        """An unknown brand finds nothing."""
        assert products_by_brand("Tylenolx") == ()

    def test_dose_forms_map_onto_the_vocabulary(self) -> None:
        """Every RxNorm dose form of the table maps onto the vocabulary, except packs/implants."""
        forms = {f for _n, f, _r in _table().values()} - {"Pack", "Drug Implant"}
        for name in forms:
            form, formulation = dose_form(name)
            assert form.id in products.dose_forms()
            assert formulation in ("immediate-release", "modified-release", "patch")

    def test_unknown_dose_form(self) -> None:
        """An RxNorm dose form not mapped is refused naming it."""
        with pytest.raises(mps.UnknownProductError, match="Drug Implant"):
            dose_form("Drug Implant")
