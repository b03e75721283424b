"""The person matte and the clean plate (render/matte.py), and what they are for: a head turn moves
the person, not the background (issue #16). The real-portrait tests skip where the shared data
folder is absent; the synthetic ones run everywhere."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from flowvq.render.matte import clean_plate, feathered_alpha, grabcut_seeds, person_layers, person_mask

PORTRAITS = Path(__file__).resolve().parents[2] / "shared" / "data" / "portraits"
needs_portraits = pytest.mark.skipif(not PORTRAITS.is_dir(), reason=f"shared portraits not found at {PORTRAITS}")
NAMES = sorted(p.name for p in PORTRAITS.glob("*")) if PORTRAITS.is_dir() else []
TURN = np.float32([0.08, 0.2, 0.05, 0, 0, 0])  # pitch, yaw, roll (rad): a clear head turn


def _synthetic_person(size=240, seed=0):
    """A skin-coloured head and a dark body on a noisy blue-grey wall; face points inside the head."""
    rng = np.random.default_rng(seed)
    img = np.clip(rng.normal(150, 12, (size, size, 3)) * [0.8, 0.9, 1.1], 0, 255).astype(np.uint8)
    c = size // 2
    cv2.rectangle(img, (c - 70, int(size * 0.72)), (c + 70, size), (40, 35, 60), -1)  # body
    cv2.rectangle(img, (c - 15, int(size * 0.55)), (c + 15, int(size * 0.75)), (200, 150, 120), -1)  # neck
    cv2.ellipse(img, (c, int(size * 0.42)), (38, 50), 0, 0, 360, (210, 160, 130), -1)  # head
    t = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    pts = np.stack([c + 30 * np.cos(t), size * 0.45 + 38 * np.sin(t)], 1).astype(np.float32)
    return img, pts


def test_seeds_pin_the_face_and_the_free_border():
    img, pts = _synthetic_person()
    seeds = grabcut_seeds(img.shape, pts)
    c = img.shape[1] // 2
    assert seeds[int(pts[:, 1].mean()), c] == cv2.GC_FGD
    assert seeds[0, 0] == cv2.GC_BGD and seeds[2, -3] == cv2.GC_BGD  # top corners: sure background
    assert seeds[-1, c] == cv2.GC_PR_FGD  # below the face, down to the image's bottom: maybe person
    assert not (seeds[-1] == cv2.GC_BGD).any()  # the bottom border is never pinned (the body leaves there)


def test_matte_and_plate_on_a_synthetic_person():
    img, pts = _synthetic_person()
    mask = person_mask(img, pts)
    head = np.zeros(mask.shape, np.uint8)
    cv2.ellipse(head, (120, int(240 * 0.42)), (34, 46), 0, 0, 360, 1, -1)
    assert mask[head > 0].all()  # the whole head, not only the face points' hull
    assert mask[-5:, 100:140].all()  # the body down to the bottom
    assert not mask[:10, :10].any() and not mask[:10, -10:].any() and not mask[:, :20].any()
    alpha, hole = feathered_alpha(mask, 3, 3)
    assert (alpha[hole] == 1).all() and (alpha[~cv2.dilate(hole.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)] == 0).all()
    plate = clean_plate(img, hole)
    assert np.array_equal(plate[~hole], img[~hole])  # outside the hole: the portrait, bit for bit
    # inside, the wall is continued: no skin colour and no black hole where the head was
    inside = plate[head > 0].astype(float)
    wall = img[:40, :40].reshape(-1, 3).astype(float).mean(0)
    assert np.abs(inside.mean(0) - wall).max() < 25


@needs_portraits
@pytest.mark.parametrize("name", NAMES)
def test_matte_covers_the_face_and_not_the_corners(name):
    from flowvq.facemodel import load_face_model
    from flowvq.images import load_image
    from flowvq.render.fit import fit_portrait

    rgb = load_image(PORTRAITS / name).rgb
    fit = fit_portrait(rgb, load_face_model("default"))
    layers = person_layers(rgb, fit.landmarks)
    lm = np.round(fit.landmarks).astype(int).clip(0, [rgb.shape[1] - 1, rgb.shape[0] - 1])
    # the jaw's contour points lie on the face's edge: the grown hole (what moves) holds them all
    assert layers.hole[lm[:, 1], lm[:, 0]].all() and layers.person[lm[:, 1], lm[:, 0]].mean() > 0.95
    k = max(4, min(rgb.shape[:2]) // 25)
    assert not layers.hole[:k, :k].any() and not layers.hole[:k, -k:].any()  # the top corners are background
    assert np.array_equal(layers.plate[~layers.hole], rgb[~layers.hole])
    assert (layers.alpha[layers.hole] == 1).all()


@needs_portraits
@pytest.mark.parametrize("name", NAMES)
def test_head_turn_moves_the_person_not_the_background(name):
    """Background pixels around the head (outside the person's matte, in the portrait and in the
    frame) stay exactly the portrait's; with the old warp (static_background=False) they were
    dragged. The face moves; what the head uncovers is the clean plate, not a hole."""
    from flowvq.images import load_image
    from flowvq.render import PlateRenderer
    from flowvq.render.warp import FaceWarper, WarpSettings

    rgb = load_image(PORTRAITS / name).rgb
    r = PlateRenderer(rgb)
    zero = np.zeros(64, np.float32)
    frame, alpha = r.warper.frame(zero, TURN, with_alpha=True)
    old = FaceWarper(rgb, r.face_model, r.fit, WarpSettings(static_background=False)).frame(zero, TURN)
    hole = r.warper.layers.hole

    lm = r.fit.landmarks
    face_size = float(np.ptp(lm, 0).max())
    near = cv2.distanceTransform((~hole).astype(np.uint8), cv2.DIST_L2, 5) < 0.5 * face_size  # the head's surroundings
    person = cv2.dilate((hole | (alpha > 0)).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    band = near & ~person
    assert band.sum() > 100, "no background left around the head to measure"

    def drag(img):
        d = np.abs(img.astype(int) - rgb).mean(2)[band]
        return float(d.mean()), float((d > 8).mean() * 100)

    before, after = drag(old), drag(frame)
    print(f"{name}: background band {band.sum()} px, mean |diff| before {before[0]:.2f} ({before[1]:.1f} % > 8) "
          f"after {after[0]:.2f} ({after[1]:.1f} %)")
    assert np.array_equal(frame[band], rgb[band])  # the background does not move at all
    assert before[0] > after[0]  # ... and the old warp did move it

    face = np.zeros(rgb.shape[:2], np.uint8)
    cv2.fillConvexPoly(face, cv2.convexHull(lm.astype(np.int32)), 1)
    assert np.abs(frame.astype(int) - rgb).mean(2)[face > 0].mean() > 5  # the head did turn

    uncovered = hole & (alpha == 0)  # where the person was and is no longer: the clean plate shows
    assert uncovered.sum() > 50
    assert np.array_equal(frame[uncovered], r.warper.layers.plate[uncovered])
    def black(px):
        return float((px.max(-1) < 4).mean())

    assert black(frame[uncovered]) <= black(rgb[band]) + 0.01

    still = r.frame(zero, np.zeros(6, np.float32))
    assert np.array_equal(still, rgb)  # an all-zero take is still the portrait, bit for bit
