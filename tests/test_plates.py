"""Must-show numbers of the geometry path on real portraits (../shared/data/portraits):
resolution kept, identity kept (dlib embedding), the mouth follows the take, faces never lost,
sharpness kept. Skipped where the shared data folder is absent."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from flowvq_shared.channels import CHANNEL_INDEX

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
PORTRAITS = DATA / "portraits"
pytestmark = pytest.mark.skipif(not PORTRAITS.is_dir(), reason=f"shared test data not found at {PORTRAITS}")


def hand_take(n: int = 25):
    """Speech-like curves written by hand: jaw opening and closing at ~3 Hz, lips and smile
    following, one blink, a gentle head sway."""
    t = np.arange(n) / 25.0
    exp = np.zeros((n, 64), np.float32)
    jaw = 0.55 * (0.5 - 0.5 * np.cos(2 * np.pi * 2.6 * t)) * (0.7 + 0.3 * np.sin(2 * np.pi * 0.9 * t))
    exp[:, CHANNEL_INDEX["jawOpen"]] = jaw
    exp[:, CHANNEL_INDEX["mouthLowerDownLeft"]] = exp[:, CHANNEL_INDEX["mouthLowerDownRight"]] = 0.3 * jaw
    exp[:, CHANNEL_INDEX["mouthSmileLeft"]] = exp[:, CHANNEL_INDEX["mouthSmileRight"]] = 0.15
    blink = np.exp(-0.5 * ((t - 0.6) / 0.04) ** 2)
    exp[:, CHANNEL_INDEX["eyeBlinkLeft"]] = exp[:, CHANNEL_INDEX["eyeBlinkRight"]] = blink
    pose = np.zeros((n, 6), np.float32)
    pose[:, 0] = 0.04 * np.sin(2 * np.pi * 0.8 * t)
    pose[:, 1] = 0.08 * np.sin(2 * np.pi * 0.5 * t)
    pose[:, 2] = 0.02 * np.sin(2 * np.pi * 0.3 * t)
    return exp, pose


@pytest.mark.parametrize("name", sorted(p.name for p in PORTRAITS.glob("*")) if PORTRAITS.is_dir() else [])
def test_plates_on_real_portraits(name):
    from flowvq.images import load_image
    from flowvq.render import PlateRenderer
    from flowvq.evaluate.faces import IDENTITY_THRESHOLD, plate_report

    portrait = load_image(PORTRAITS / name).rgb
    exp, pose = hand_take(20)
    r = PlateRenderer(portrait)
    # an all-zero take is the portrait itself (an open mouth in the photo keeps its real teeth)
    still = r.frame(np.zeros(64, np.float32), np.zeros(6, np.float32))
    assert np.abs(still.astype(int) - portrait).mean() < 0.5
    plates = [frame for _, frame in r.render(exp, pose)]
    rep = plate_report(portrait, plates, exp[:, CHANNEL_INDEX["jawOpen"]])
    print(name, rep)
    assert rep["same_resolution"] and all(p.shape == portrait.shape for p in plates)
    assert rep["faces_lost"] == 0
    assert rep["identity_distance_max"] < IDENTITY_THRESHOLD
    assert rep["lip_gap_correlation"] >= 0.8
    assert rep["sharpness_ratio_min"] >= 0.7


def test_full_resolution_is_kept_at_2048():
    import cv2

    from flowvq.images import load_image
    from flowvq.render import PlateRenderer
    from flowvq.evaluate.faces import measure_face

    small = load_image(PORTRAITS / "real3dportrait_macron.png").rgb
    big = cv2.resize(small, (2048, 2048), interpolation=cv2.INTER_CUBIC)
    r = PlateRenderer(big)
    exp, pose = hand_take(8)
    frame = r.frame(exp[4], pose[4])
    assert frame.shape == (2048, 2048, 3)
    m = measure_face(cv2.resize(frame, (512, 512), interpolation=cv2.INTER_AREA), embed=False)
    assert m.found and m.lip_gap > 0.1  # the mouth opened at full resolution
