from __future__ import annotations

import pytest

from greval.data import DataError
from greval.scenes import assign_scenes, classify_scene, classify_scenes, normalize_scene
from greval.types import Sample


@pytest.mark.parametrize(
    ("label", "scene"),
    [
        ("natural scene", "natural"),
        ("Agricultural", "natural"),
        ("artificial_landscape", "urban"),
        ("Road-Traffic", "urban"),
        ("industrial", "urban"),
        ("indoor commercial", "urban"),
        ("Indoor_Offices", "urban"),
        ("transportation", "urban"),
        ("entertainment", "urban"),
        ("medical", "urban"),
        ("cultural sites", "landmark"),
        ("iconic  buildings", "landmark"),
        ("nature landmark", "landmark"),
        ("URBAN", "urban"),
        ("natural", "natural"),
        (" Landmark ", "landmark"),
    ],
)
def test_paper_categories_map_to_three_scenes(label, scene):
    assert normalize_scene(label) == scene


@pytest.mark.parametrize("label", ["indoor", "beach party", "", None, 3])
def test_unknown_labels_are_not_guessed(label):
    assert normalize_scene(label) is None


@pytest.mark.parametrize(
    ("text", "scene"),
    [
        ("Snow-capped mountains rise above a pine forest and a glacial lake.", "natural"),
        ("A narrow street with shop signs, parked cars and apartment buildings.", "urban"),
        ("The famous cathedral dominates the view.", "landmark"),
        # One landmark cue (weight 3) outweighs two urban cues.
        ("Cars on the street in front of the iconic tower.", "landmark"),
        # Plurals and case are handled; two-word cues match across whitespace.
        ("LICENSE\nPLATES and Billboards", "urban"),
        ("Sand dunes in the desert", "natural"),
    ],
)
def test_classifier_reads_cues(text, scene):
    assert classify_scene(text) == scene


def test_classifier_tie_prefers_landmark_then_natural():
    # one natural cue vs one urban cue: tie goes to natural
    assert classify_scene("a river next to a road") == "natural"
    # landmark weight 3 vs three natural cues: tie goes to landmark
    assert classify_scene("a monument by the river, the lake and the forest") == "landmark"


def test_classifier_needs_whole_words_and_returns_none_without_cues():
    assert classify_scene("The scarf was carefully woven") is None  # "car" inside words is no cue
    assert classify_scene("") is None
    assert classify_scene(None) is None
    assert classify_scenes(["street", None, "nothing to see"]) == ["urban", None, None]


def _sample(sample_id, cot=None, label=None):
    metadata = {"scene_label": label} if label is not None else {}
    return Sample(sample_id=sample_id, gt_lat=0.0, gt_lon=0.0, gt_cot=cot, metadata=metadata)


def test_assign_priority_manifest_then_data_then_classifier(tmp_path):
    samples = [
        _sample("a", cot="a forest", label="road traffic"),  # data label beats the text
        _sample("b", cot="a forest"),  # classifier
        _sample("c"),  # nothing to go on
        _sample("d", cot="a forest", label="natural scene"),  # manifest overrides the label
    ]
    assert assign_scenes(samples) == []
    assert [(s.scene, s.scene_source) for s in samples] == [
        ("urban", "data"),
        ("natural", "classifier"),
        (None, "none"),
        ("natural", "data"),
    ]
    manifest = tmp_path / "scenes.csv"
    manifest.write_text("sample_id,scene\nd,Cultural Sites\nc,urban\n")
    assert assign_scenes(samples, manifest) == []
    assert [(s.scene, s.scene_source) for s in samples] == [
        ("urban", "data"),
        ("natural", "classifier"),
        ("urban", "manifest"),
        ("landmark", "manifest"),
    ]


def test_manifest_problems_name_the_sample_and_do_not_crash(tmp_path):
    samples = [_sample("a", cot="street"), _sample("b", cot="street")]
    manifest = tmp_path / "scenes.csv"
    manifest.write_text("sample_id,scene\na,underwater\nghost,urban\nb,natural\n")
    problems = assign_scenes(samples, manifest)
    assert {(p.sample_id, p.message.split(" ")[0]) for p in problems} == {("a", "unknown"), ("ghost", "the")}
    text = "\n".join(map(str, problems))
    assert "underwater" in text and f"{manifest}:2" in text and "not in the data" in text
    assert (samples[0].scene, samples[0].scene_source) == ("urban", "classifier")
    assert (samples[1].scene, samples[1].scene_source) == ("natural", "manifest")


def test_manifest_without_header_is_a_data_error(tmp_path):
    manifest = tmp_path / "scenes.csv"
    manifest.write_text("a,urban\n")
    with pytest.raises(DataError, match="sample_id,scene"):
        assign_scenes([_sample("a")], manifest)
    with pytest.raises(DataError, match="cannot read"):
        assign_scenes([_sample("a")], tmp_path / "missing.csv")


def test_unknown_data_label_falls_back_to_classifier_with_a_problem():
    samples = [_sample("a", cot="a quiet beach", label="seaside")]
    problems = assign_scenes(samples)
    assert [(p.sample_id, "seaside" in p.message) for p in problems] == [("a", True)]
    assert (samples[0].scene, samples[0].scene_source) == ("natural", "classifier")
