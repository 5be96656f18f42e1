"""Recognising malignant psoas syndrome: the three published definitions and the differential."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mps_analgesia.assess import (
    BIOPSY_RESULTS,
    NOT_A_DIAGNOSIS,
    MpsAssessment,
    MpsFeatures,
    assess_mps,
)
from mps_analgesia.errors import StepError, UnknownNameError

#: The seed case (Yoshioka 2025, Cureus 17(5):e84403), as the report describes it: a left psoas
#: mass on CT and MRI, confirmed by CT-guided biopsy; mild throbbing left hip pain judged
#: nociceptive; MRI without neurological involvement; normal white cells, neutrophils and CRP;
#: no systemic signs of infection; PET-CT uptake SUVmax 11.2; the mass grew from 65 × 18 to
#: 67 × 32 mm; no relevant history for a cold abscess.  Hip flexion, bone sites and other
#: radiculopathy are not described, so they are unknown.
SEED_CASE: dict[str, Any] = {
    "psoas_involvement": True,
    "involvement_evidence": "imaging-and-pathology",
    "side": "left",
    "nociceptive_pain": True,
    "neuropathic_pain": False,
    "painful_hip_flexion": None,
    "osseous_lumbar_metastasis": None,
    "other_radiculopathy": None,
    "inflammatory_markers_raised": False,
    "systemic_infection_signs": False,
    "imaging_suggests_abscess": True,
    "pet_uptake": True,
    "lesion_enlarging": True,
    "tuberculosis_history": False,
    "biopsy": "malignant",
}

#: The four patients of Stevens & Gonet 1990 as the abstract describes them (reference notes
#: §2.5, §6.2): proximal lumbosacral plexopathy, painful flexion of the ipsilateral hip with a
#: positive psoas stretch test, psoas involvement confirmed radiologically in all.  Nothing is
#: said of lumbar bone metastases, other radiculopathy or nociceptive pain: unknown.
STEVENS_1990_CASE: dict[str, Any] = {
    "psoas_involvement": True,
    "involvement_evidence": "imaging",
    "painful_hip_flexion": True,
    "neuropathic_pain": True,
}


def _status(a: MpsAssessment) -> dict[str, str]:
    return {d.id: d.status for d in a.definitions}


class TestSeedCase:
    def test_definitions(self) -> None:
        """The seed case meets Yoshioka 2025 but not Agar's triad or the four 1990 features."""
        a = assess_mps(SEED_CASE)
        assert _status(a) == {
            "stevens-gonet-1990": "not satisfied",
            "agar-2004": "not satisfied",
            "yoshioka-2025": "satisfied",
        }

    def test_criteria(self) -> None:
        """Per definition: which criteria are met, not met and unknown."""
        a = assess_mps(SEED_CASE)
        yoshioka = a.definition("yoshioka-2025")
        assert yoshioka.met == ("psoas-involvement", "nociceptive-pain")
        assert yoshioka.not_met == ("proximal-neuropathic-pain",)
        assert yoshioka.unknown == ("psoas-spasm",)
        agar = a.definition("agar-2004")
        assert agar.met == ("psoas-involvement",)
        assert agar.not_met == ("proximal-plexopathy",)
        assert agar.unknown == ("painful-hip-flexion",)
        stevens = a.definition("stevens-gonet-1990")
        assert stevens.unknown == ("painful-hip-flexion", "no-other-cause")
        assert (stevens.source, stevens.level) == ("stevens-gonet-1990", "S")
        assert a.satisfied_by == ("yoshioka-2025",)

    def test_differential(self) -> None:
        """The differential lists the four entities with the findings the seed case weighed."""
        a = assess_mps(SEED_CASE)
        entities = [i.entity for i in a.differential]
        assert entities == [
            "pyogenic abscess",
            "cold (tuberculous) abscess",
            "haematoma",
            "metastasis (malignant psoas involvement)",
        ]
        pyogenic = {f.feature: f for f in a.differential[0].findings}
        assert pyogenic["inflammatory_markers_raised"].observed == "no"
        assert "unlikely" in pyogenic["inflammatory_markers_raised"].bearing
        metastasis = {f.feature: f for f in a.differential[3].findings}
        assert "SUVmax 11.2" in metastasis["pet_uptake"].bearing
        assert "gold standard" in metastasis["biopsy"].bearing
        assert all(f.source == "yoshioka-2025" for i in a.differential for f in i.findings)

    def test_information_not_a_diagnosis(self) -> None:
        """Text and dict say it is information, not a diagnosis; the dict is JSON-ready."""
        a = assess_mps(SEED_CASE)
        assert "not a diagnosis" in a.to_text()
        data = json.loads(json.dumps(a.to_dict()))
        assert data["note"] == NOT_A_DIAGNOSIS
        assert data["features"]["side"] == "left"


class TestStevensGonet1990Cases:
    @pytest.mark.parametrize("case", [1, 2, 3, 4])
    def test_cases_as_described(self, case: int) -> None:
        """Each 1990 case meets Agar's triad and Yoshioka's definition; the four-feature form
        stays undetermined because the abstract does not report the exclusions."""
        a = assess_mps(STEVENS_1990_CASE)
        assert _status(a) == {
            "stevens-gonet-1990": "undetermined",
            "agar-2004": "satisfied",
            "yoshioka-2025": "satisfied",
        }
        assert a.definition("stevens-gonet-1990").unknown == ("no-other-cause",)

    def test_with_the_exclusions_known(self) -> None:
        """With no lumbar bone metastasis and no other radiculopathy, all three are satisfied."""
        a = assess_mps(
            {**STEVENS_1990_CASE, "osseous_lumbar_metastasis": False, "other_radiculopathy": False}
        )
        assert a.satisfied_by == ("stevens-gonet-1990", "agar-2004", "yoshioka-2025")

    def test_a_lumbar_bone_metastasis_excludes_the_four_feature_form(self) -> None:
        """An osseous lumbar metastasis makes the 1990 exclusion criterion not met."""
        a = assess_mps({**STEVENS_1990_CASE, "osseous_lumbar_metastasis": True})
        assert a.definition("stevens-gonet-1990").status == "not satisfied"
        assert a.definition("stevens-gonet-1990").not_met == ("no-other-cause",)


class TestDefinitionLogic:
    def test_nothing_known_is_undetermined(self) -> None:
        """With no feature known no definition is satisfied or excluded."""
        a = assess_mps({})
        assert set(_status(a).values()) == {"undetermined"}
        assert all(d.satisfied is None for d in a.definitions)

    def test_yoshioka_needs_involvement(self) -> None:
        """No psoas involvement: not satisfied, whatever the pain."""
        a = assess_mps({"psoas_involvement": False, "nociceptive_pain": True})
        assert a.definition("yoshioka-2025").status == "not satisfied"

    def test_yoshioka_all_three_features_absent(self) -> None:
        """Involvement with none of the three features: not satisfied."""
        a = assess_mps(
            {
                "psoas_involvement": True,
                "nociceptive_pain": False,
                "neuropathic_pain": False,
                "painful_hip_flexion": False,
            }
        )
        assert a.definition("yoshioka-2025").status == "not satisfied"

    def test_yoshioka_involvement_unknown(self) -> None:
        """A feature present but the involvement unknown: undetermined."""
        a = assess_mps({"nociceptive_pain": True})
        assert a.definition("yoshioka-2025").status == "undetermined"

    def test_unknown_definition_id(self) -> None:
        """Asking for an unknown definition suggests the close one."""
        with pytest.raises(UnknownNameError, match="agar-2004"):
            assess_mps({}).definition("agar-2005")


class TestFeatures:
    def test_unknown_feature_name(self) -> None:
        """A misspelt feature name is refused with a suggestion."""
        with pytest.raises(StepError, match="did you mean 'neuropathic_pain'"):
            assess_mps({"neuropathic_pian": True})

    @pytest.mark.parametrize("value", [1, "yes", 0.5])
    def test_values_are_true_false_or_unknown(self, value: object) -> None:
        """Only True, False, None or 'unknown' are accepted for a feature."""
        with pytest.raises(StepError, match="must be true, false or unknown"):
            MpsFeatures(psoas_involvement=value)  # type: ignore[arg-type]

    def test_unknown_text_is_none(self) -> None:
        """The text 'unknown' (for TOML, which has no null) means unknown."""
        assert MpsFeatures(pet_uptake="unknown").pet_uptake is None  # type: ignore[arg-type]

    def test_choices_are_normalised_and_checked(self) -> None:
        """Side and biopsy are normalised; a wrong value is refused with a suggestion."""
        f = MpsFeatures(side="Left", biopsy="Non_Diagnostic")
        assert (f.side, f.biopsy) == ("left", "non-diagnostic")
        with pytest.raises(StepError, match="did you mean 'malignant'"):
            MpsFeatures(biopsy="malignent")

    def test_not_a_mapping(self) -> None:
        """A list is not a set of features."""
        with pytest.raises(StepError, match="must be a mapping"):
            assess_mps(["psoas_involvement"])  # type: ignore[arg-type]

    @pytest.mark.parametrize("biopsy", BIOPSY_RESULTS)
    def test_every_biopsy_result_has_a_bearing(self, biopsy: str) -> None:
        """Each biopsy result has a statement for every entity."""
        a = assess_mps({"biopsy": biopsy})
        for item in a.differential:
            bearing = {f.feature: f.bearing for f in item.findings}["biopsy"]
            assert bearing
            assert "no histology yet" not in bearing


_TRI = st.sampled_from([True, False, None])
_FEATURE_NAMES = (
    "psoas_involvement",
    "painful_hip_flexion",
    "neuropathic_pain",
    "nociceptive_pain",
    "osseous_lumbar_metastasis",
    "other_radiculopathy",
)


class TestMoreInformation:
    @settings(max_examples=150, deadline=None)
    @given(
        values=st.fixed_dictionaries(dict.fromkeys(_FEATURE_NAMES, _TRI)),
        name=st.sampled_from(_FEATURE_NAMES),
        new=st.booleans(),
    )
    def test_a_decided_definition_stays_decided(
        self, values: dict[str, bool | None], name: str, new: bool
    ) -> None:
        """Learning an unknown feature never reverses a satisfied or not-satisfied verdict."""
        if values[name] is not None:
            return
        before = _status(assess_mps(values))
        after = _status(assess_mps({**values, name: new}))
        for key, verdict in before.items():
            if verdict != "undetermined":
                assert after[key] == verdict
