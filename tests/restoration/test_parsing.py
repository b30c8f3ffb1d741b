"""Face-part parsing: the class set, the CelebA mapping, the landmark backend on real aligned faces."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from restoration_testutil import FACES_DIR as FACES
from restoration_testutil import WEIGHTS_DIR as WEIGHTS

from restoration.errors import WeightsMissing
from restoration.generator import generator_mask
from restoration.parsing import (
    BISENET_LABELS,
    LANDMARK_ABSENT,
    NUM_PART_CLASSES,
    PARSENET_LABELS,
    PART_CLASSES,
    celeba_lut,
    get_parser,
    split_person,
    template_prior,
)

TEMPLATE = np.array([[192.98138, 239.94708], [318.90277, 240.1936], [256.63416, 314.01935],
                     [201.26117, 371.41043], [313.08905, 371.15118]])
C = {n: i for i, n in enumerate(PART_CLASSES)}

needs_landmarks = pytest.mark.skipif(not (WEIGHTS / "landmarks" / "face_landmarker.task").is_file(),
                                     reason="no landmark weights")


def _load512(path: Path) -> np.ndarray:
    img = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    return cv2.resize(img, (512, 512), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def faces() -> np.ndarray:
    paths = [FACES / "hq" / "ffhq_gpen" / "00000.png", FACES / "wild" / "cropped" / "codeformer_0143.png"]
    if not all(p.is_file() for p in paths):
        pytest.skip("shared faces not available")
    return np.stack([_load512(p) for p in paths])


@pytest.fixture(scope="module")
def landmark_parser():
    return get_parser("landmarks", WEIGHTS)


def test_class_set() -> None:
    assert len(set(PART_CLASSES)) == NUM_PART_CLASSES and PART_CLASSES[0] == "background"
    assert set(PART_CLASSES) >= LANDMARK_ABSENT


@pytest.mark.parametrize("labels", [BISENET_LABELS, PARSENET_LABELS])
def test_celeba_mapping(labels: list[str]) -> None:
    lut = celeba_lut(labels)
    assert len(lut) == 19 and lut.max() < NUM_PART_CLASSES
    got = {name: PART_CLASSES[lut[i]] for i, name in enumerate(labels)}
    assert got["l_eye"] == got["r_eye"] == "eyes"
    assert got["u_lip"] == got["l_lip"] == "lips"
    assert got["mouth"] == "inner_mouth" and got["nose"] == "nose" and got["hair"] == "hair"
    assert got["background"] == "background" and got["eye_g"] == "eyeglasses"
    assert "irises" not in got.values()


@pytest.mark.parametrize("backend", ["bisenet", "parsenet"])
def test_celeba_backends_need_weights(tmp_path: Path, backend: str) -> None:
    with pytest.raises(WeightsMissing, match=f"parsing_{backend}.pth"):
        get_parser(backend, tmp_path)


def test_landmarks_need_weights(tmp_path: Path) -> None:
    with pytest.raises(WeightsMissing, match="face_landmarker.task"):
        get_parser("auto", tmp_path)



def test_default_weights_dir_honours_weights_dir_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEIGHTS_DIR", str(tmp_path))
    with pytest.raises(WeightsMissing) as e:
        get_parser("landmarks")
    assert str(tmp_path / "landmarks" / "face_landmarker.task") in str(e.value)

def test_none_parser_and_the_generator_mask() -> None:
    labels = get_parser("none", WEIGHTS).parse(np.zeros((2, 512, 512, 3), np.uint8))
    assert labels.shape == (2, 512, 512) and labels.dtype == np.uint8 and not labels.any()
    labels[1, 10:12, 20:22] = C["lips"]
    oh = generator_mask(labels)  # what the generator consumes: one-hot at half size, area-averaged
    assert oh.shape == (2, NUM_PART_CLASSES, 256, 256) and oh.dtype == torch.float32
    assert torch.allclose(oh.sum(1), torch.ones(2, 256, 256)) and oh[1, C["lips"], 5, 10] == 1
    assert generator_mask(torch.from_numpy(labels[0])).shape == (1, NUM_PART_CLASSES, 256, 256)


def test_bad_input_rejected() -> None:
    with pytest.raises(ValueError):
        get_parser("none", WEIGHTS).parse(np.zeros((1, 256, 256, 3), np.uint8))


def _assert_parts_in_place(lab: np.ndarray) -> None:
    """Eye classes at the template eye points, lips between the mouth corners, nose at the nose point."""
    def near(pt: np.ndarray, classes: set[str], r: int) -> bool:
        x, y = int(pt[0]), int(pt[1])
        window = lab[y - r:y + r + 1, x - r:x + r + 1]
        return bool(np.isin(window, [C[c] for c in classes]).any())

    assert near(TEMPLATE[0], {"eyes", "irises"}, 10) and near(TEMPLATE[1], {"eyes", "irises"}, 10)
    assert near(TEMPLATE[2], {"nose"}, 12)
    assert near(TEMPLATE[3:].mean(0), {"lips", "inner_mouth"}, 16)
    assert lab[5, 5] == C["background"] and (lab == C["skin"]).mean() > 0.1


@needs_landmarks
def test_landmark_parser_real_faces(landmark_parser, faces: np.ndarray) -> None:
    assert landmark_parser.name == "landmarks"
    labels = landmark_parser.parse(faces)
    assert labels.shape == (2, 512, 512) and labels.dtype == np.uint8
    for lab in labels:
        present = {PART_CLASSES[i] for i in np.unique(lab)}
        assert present.isdisjoint(LANDMARK_ABSENT)
        assert {"skin", "brows", "eyes", "irises", "nose", "lips", "hair"} <= present
        _assert_parts_in_place(lab)
        # the person mask adds what the mesh cannot see: hair above the eyes, neck below the mouth
        hair_y = np.nonzero(lab == C["hair"])[0]
        assert (lab == C["hair"]).mean() > 0.03 and np.median(hair_y) < TEMPLATE[0, 1]
        if (lab == C["neck"]).any():
            assert np.median(np.nonzero(lab == C["neck"])[0]) > TEMPLATE[3, 1]
    # batching does not change the result
    assert np.array_equal(landmark_parser.parse(faces[1:]), labels[1:])
    mesh = landmark_parser.landmarks(faces)
    assert mesh.points.shape == (2, 478, 3) and np.all(mesh.presence > 0) and np.all(mesh.spread < 0.1)
    irises = mesh.points[:, [468, 473], :2]  # the subject's right, then left iris centre
    assert np.abs(irises - TEMPLATE[None, :2]).max() < 15


@needs_landmarks
def test_landmark_parser_degraded_face(landmark_parser, faces: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    small = cv2.resize(faces[0], (64, 64), interpolation=cv2.INTER_AREA)
    bad = cv2.resize(small, (512, 512), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    bad = np.clip(bad + rng.normal(0, 20, bad.shape), 0, 255).astype(np.uint8)
    ok, jpg = cv2.imencode(".jpg", bad, [cv2.IMWRITE_JPEG_QUALITY, 15])
    bad = cv2.imdecode(jpg, cv2.IMREAD_UNCHANGED)
    gray = np.repeat(cv2.cvtColor(faces[1], cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
    for lab in landmark_parser.parse(np.stack([bad, gray])):
        _assert_parts_in_place(lab)


@needs_landmarks
def test_landmark_parser_falls_back_on_noise(landmark_parser) -> None:
    noise = np.random.default_rng(1).integers(0, 255, (1, 512, 512, 3), dtype=np.uint8)
    lab = landmark_parser.parse(noise)[0]
    assert lab.shape == (512, 512)
    assert np.array_equal(lab, template_prior()) or (lab != 0).any()


def test_split_person_by_place_and_colour() -> None:
    """A drawn portrait: skin-coloured face oval, dark hair above it, skin-coloured neck and ears, a blue
    shirt and dark hair falling on the shoulders; person = all of them."""
    size = 512
    skin, hair, shirt = (225, 175, 145), (50, 35, 25), (40, 60, 200)
    img = np.full((size, size, 3), 240, np.uint8)
    person = np.zeros((size, size), np.float32)
    cv2.ellipse(img, (256, 150), (170, 120), 0, 0, 360, hair, -1)            # hair above the head
    cv2.rectangle(img, (60, 420), (452, 511), shirt, -1)                      # shirt
    cv2.rectangle(img, (70, 380), (130, 511), hair, -1)                       # long hair on a shoulder
    cv2.rectangle(img, (210, 330), (302, 440), skin, -1)                      # neck
    for cx in (140, 372):
        cv2.ellipse(img, (cx, 250), (22, 40), 0, 0, 360, skin, -1)           # ears
    labels = np.zeros((size, size), np.uint8)
    cv2.ellipse(labels, (256, 250), (115, 150), 0, 0, 360, C["skin"], -1)
    cv2.ellipse(labels, (256, 350), (40, 14), 0, 0, 360, C["lips"], -1)
    for cx in (210, 302):
        cv2.ellipse(labels, (cx, 230), (22, 9), 0, 0, 360, C["eyes"], -1)
    img[labels == C["skin"]] = skin
    person[(img != 240).any(-1)] = 1.0
    out = split_person(labels, person, img)
    assert np.array_equal(out[labels > 0], labels[labels > 0])    # the mesh's parts stay as they are
    assert out[60, 256] == C["hair"] and out[250, 125] == C["ears"] and out[250, 387] == C["ears"]
    assert out[430, 256] == C["neck"] and out[490, 400] == C["cloth"] and out[480, 100] == C["hair"]
    assert out[5, 5] == C["background"]


@needs_landmarks
def test_split_person_colours_at_half_size_agree_with_full_size(
    faces: np.ndarray, landmark_parser, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The colour tests run at 256 px (4x fewer pixels, the speed a crowd photo needs): on real faces, a
    clean and a degraded one, the person pixels get the class they get with the tests at 512 px."""
    import restoration.parsing as parsing

    mesh = landmark_parser.landmarks(faces)
    person = landmark_parser.segmenter.person(faces)
    for face, lm, p in zip(faces, mesh.points, person, strict=True):
        labels = parsing.rasterise_landmarks(lm)
        fast = split_person(labels, p, face)
        monkeypatch.setattr(parsing, "SPLIT_COLOUR_SIZE", 512)
        full = split_person(labels, p, face)
        monkeypatch.undo()
        split = (p >= 0.5) & (labels == 0)
        assert split.mean() > 0.05, "the person reaches beyond the mesh: there is something to split"
        assert (fast[split] == full[split]).mean() >= 0.985
        assert np.array_equal(fast[~split], full[~split])


def test_template_prior_parts_in_place() -> None:
    _assert_parts_in_place(template_prior())


def test_bisenet_backend_runs_with_weights(tmp_path: Path) -> None:
    """The real weights are absent here: random weights exercise auto-selection, loading and the mapping.

    (ParseNet shares the code path; its random-weight run takes ~10 s on CPU, so it is not repeated.)
    """
    from facexlib.parsing.bisenet import BiSeNet

    torch.manual_seed(0)
    (tmp_path / "facexlib").mkdir()
    torch.save(BiSeNet(num_class=19).state_dict(), tmp_path / "facexlib" / "parsing_bisenet.pth")
    parser = get_parser("auto", tmp_path)
    assert parser.name == "bisenet"
    labels = parser.parse(np.full((1, 512, 512, 3), 128, np.uint8))
    assert labels.shape == (1, 512, 512) and labels.dtype == np.uint8
    assert set(np.unique(labels)) <= set(celeba_lut(BISENET_LABELS).tolist())


@needs_landmarks
def test_zoomed_views_map_back_onto_the_plain_view(faces: np.ndarray) -> None:
    from restoration.parsing import LandmarkParser

    parser = LandmarkParser(WEIGHTS / "landmarks" / "face_landmarker.task")
    plain = parser.landmarks(faces)
    parser.TTA_BELOW = float("inf")  # every face gets the three views
    tta = parser.landmarks(faces)
    assert np.all(plain.spread == 0) and np.all((tta.spread > 0) & (tta.spread < 0.1))
    assert np.abs(tta.points[..., :2] - plain.points[..., :2]).mean() < 3.0
