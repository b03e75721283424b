"""The tracker: a synthetic fitting round trip, real images and clips, and its input handling."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from flowvq.errors import BadImage, NoFace
from flowvq.facemodel import Camera, load_face_model
from flowvq.tracker import FitConfig, LandmarkFitter, TrackResult, track
from flowvq_shared.channels import CHANNEL_INDEX

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
KEYS = ("jawOpen", "eyeBlinkLeft", "eyeBlinkRight", "mouthSmileLeft", "mouthSmileRight")


@pytest.fixture(scope="module")
def model():
    return load_face_model("default")


def _synthetic_clip(model, seed, frames=10, noise=1.0):
    rng = np.random.default_rng(seed)
    cam = Camera.for_image(512, 512)
    identity = rng.normal(size=model.n_identity)
    expr = np.zeros((frames, 64))
    pose = np.zeros((frames, 6))
    obs = np.zeros((frames, 68, 2))
    for t in range(frames):
        for k in KEYS:
            expr[t, CHANNEL_INDEX[k]] = rng.uniform(0, 1)
        pose[t] = np.r_[rng.uniform(-0.25, 0.25, 3), rng.uniform(-3, 3, 2), -rng.uniform(45, 70)]
        pts = model.project(model.pose(model.landmarks(expr[t], identity), pose[t]), cam)
        obs[t] = pts + noise * rng.normal(0, 1.0, (68, 2))         # 1 px noise on a 512 px image
    return cam, identity, expr, pose, obs


_ROUND_TRIPS: dict = {}


def _round_trip(model, seed, noise):
    if (seed, noise) not in _ROUND_TRIPS:               # shared by the round-trip and bound tests
        _ROUND_TRIPS[seed, noise] = _fit_round_trip(model, seed, noise)
    return _ROUND_TRIPS[seed, noise]


def _fit_round_trip(model, seed, noise):
    cam, identity, expr, pose, obs = _synthetic_clip(model, seed, noise=noise)
    fitter = LandmarkFitter(model, cam, FitConfig(temporal_expression=0.0, temporal_pose=0.0))
    ident, pose_f, expr_f, rms = fitter.fit_sequence(obs, np.ones(len(obs), bool))
    keys = [CHANNEL_INDEX[k] for k in KEYS]
    err = np.abs(expr_f[:, keys] - expr[:, keys])
    rot_err = np.degrees(np.abs(pose_f[:, :3] - pose[:, :3]))
    print(f"\nseed {seed}, noise {noise} px: mean |err| {dict(zip(KEYS, err.mean(0).round(3)))}, "
          f"max {err.max(0).round(3)}, frames over 0.1: {(err > 0.1).sum(0)}, "
          f"max rotation error {rot_err.max():.2f} deg, rms {np.nanmean(rms):.2f} px")
    return err, rot_err, rms


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fitting_round_trip_without_noise(model, seed):
    """Exact landmarks: every frame's jawOpen, eyeBlink*, mouthSmile* within 0.1 and rotation within 2 degrees."""
    err, rot_err, rms = _round_trip(model, seed, noise=0.0)
    assert err.max() <= 0.1
    assert rot_err.max() <= 2.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fitting_round_trip(model, seed):
    """Random identity/pose/expressions -> landmarks + 1 px noise -> fit: key channels and rotation recovered.

    Rotation is within 2 degrees on every frame. The channels are within 0.1 on average and on most
    frames; single frames can miss by more because 1 px noise alone puts the best possible blink
    estimate's spread at ~0.06 (test_blink_is_noise_limited_at_1px)."""
    err, rot_err, rms = _round_trip(model, seed, noise=1.0)
    assert rot_err.max() <= 2.0                       # every frame
    assert (err.mean(0) <= 0.08).all()                # per channel over the clip
    jaw_smile = err[:, [0, 3, 4]]
    assert (jaw_smile <= 0.1).mean() >= 0.85 and jaw_smile.max() <= 0.15
    assert (err <= 0.1).mean() >= 0.85
    assert err.max() <= 0.2
    assert np.nanmean(rms) < 1.6                      # fits down to the noise level


def test_blink_is_noise_limited_at_1px(model):
    """Cramer-Rao bound for an oracle that knows the identity and which 5 channels move: with 1 px noise
    its blink estimate still has a spread of ~0.06, so 'every frame within 0.1' cannot hold for blinks;
    our fitter (identity unknown, all 64 channels free) stays within 1.6x of that bound."""
    from scipy.stats import norm

    keys = [CHANNEL_INDEX[k] for k in KEYS]
    sds, errs = [], []
    for seed in (0, 1, 2):
        cam, identity, expr, pose, _ = _synthetic_clip(model, seed)
        for t in range(len(expr)):
            def proj(x, t=t):
                e = expr[t].copy()
                e[keys] = x[6:]
                return model.project(model.pose(model.landmarks(e, identity), x[:6]), cam).astype(float).ravel()

            x0 = np.r_[pose[t], expr[t, keys]]
            j = np.stack([(proj(x0 + 1e-4 * d) - proj(x0 - 1e-4 * d)) / 2e-4 for d in np.eye(len(x0))], 1)
            sds.append(np.sqrt(np.diag(np.linalg.inv(j.T @ j)))[6:])     # noise sd 1 px
        errs.append(_round_trip(model, seed, noise=1.0)[0])
    sds, errs = np.array(sds), np.concatenate(errs)
    blink_sd = sds[:, 1:3]
    expected_misses = (2 * norm.sf(0.1 / blink_sd)).sum()
    rms_ratio = np.sqrt((errs[:, 1:3] ** 2).mean()) / np.sqrt((blink_sd ** 2).mean())
    print(f"\nCRB sd median {np.median(sds, 0).round(3)}; oracle's expected blink frames over 0.1: "
          f"{expected_misses:.1f} of {blink_sd.size}; our blink RMS / CRB = {rms_ratio:.2f}")
    assert np.median(blink_sd) >= 0.04 and expected_misses >= 2.0
    assert rms_ratio <= 1.6


def test_ridge_penalty_is_chosen_inside_the_first_half():
    """The evaluation's ridge: on synthetic (T,64) -> (T,64) data it recovers a known R^2, and on
    unrelated data it stays near 0 instead of overfitting to a large negative score."""
    from flowvq.evaluate.tracker import ridge_r2

    rng = np.random.default_rng(0)
    t = 600
    x = np.zeros((t, 64))
    for i in range(1, t):                                              # stationary, autocorrelated (AR(1))
        x[i] = 0.9 * x[i - 1] + rng.normal(size=64)
    w = rng.normal(size=(64, 64)) * (rng.random((64, 64)) < 0.1)
    signal = x @ w
    noise = rng.normal(size=(t, 64)) * 0.5 * signal[: t // 2].std()
    y = signal + noise
    r2, alpha = ridge_r2(x, y)
    test = slice(t // 2, None)
    true_r2 = 1 - (noise[test] ** 2).sum() / ((y[test] - y[test].mean(0)) ** 2).sum()
    print(f"\nridge R^2 {r2:.3f} (noise ceiling {true_r2:.3f}), alpha {alpha:.3g}")
    assert true_r2 - 0.25 <= r2 <= true_r2 + 0.05
    r2_null, alpha_null = ridge_r2(x, rng.normal(size=(t, 64)))
    print(f"unrelated targets: R^2 {r2_null:.3f}, alpha {alpha_null:.3g}")
    assert -0.1 <= r2_null <= 0.05


def _portrait():
    path = SHARED_DATA / "portraits" / "sadtalker_happy.png"
    if not path.exists():
        pytest.skip(f"shared portraits not present at {path}")
    return path


def test_track_portrait_and_save_load(tmp_path):
    path = _portrait()
    r = track(path)
    assert r.expression.shape == (1, 64) and r.pose.shape == (1, 6) and r.landmarks.shape == (1, 68, 2)
    assert r.fps == 0.0 and r.face_found.all() and 0.3 < r.confidence[0] <= 1
    assert (r.expression >= 0).all() and (r.expression <= 1).all()
    assert r.pose[0, 5] < 0 and np.degrees(np.abs(r.pose[0, :3])).max() < 30
    assert r.expression[0, CHANNEL_INDEX["mouthSmileLeft"]] + r.expression[0, CHANNEL_INDEX["mouthSmileRight"]] > 0.3
    out = r.save(tmp_path / "t.npz")
    again = TrackResult.load(out)
    assert np.array_equal(again.expression, r.expression) and again.camera == r.camera


def test_input_handling():
    from PIL import Image

    rgb = np.asarray(Image.open(_portrait()).convert("RGB"))
    gray = np.asarray(Image.fromarray(rgb).convert("L"))
    rgba = np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 255, np.uint8)], axis=2)
    for img in (gray, rgba):
        assert track(img).face_found.all()
    with pytest.raises(NoFace):
        track(np.full((200, 200, 3), 127, np.uint8))
    with pytest.raises(BadImage):
        track(np.zeros((20, 20, 3), np.uint8))
    # a frame list with one empty frame: flagged, not invented
    r = track([rgb, np.full_like(rgb, 127), rgb])
    assert r.face_found.tolist() == [True, False, True] and r.confidence[1] == 0
    assert np.isnan(r.landmarks[1]).all() and any("no face" in n for n in r.notes)


def test_cmyk_image_file(tmp_path):
    from PIL import Image

    im = Image.open(_portrait()).convert("CMYK")
    im.save(tmp_path / "cmyk.jpg")
    assert track(tmp_path / "cmyk.jpg").face_found.all()


def test_mouth_opening_follows_dlib_on_real_clip(tmp_path, monkeypatch):
    """On a real clip, the fitted mouth opening correlates >= 0.8 with dlib's inner-lip gap."""
    from flowvq.evaluate.tracker import evaluate_clip

    monkeypatch.setenv("FLOWVQ_CACHE", str(tmp_path))         # track for real, not from a cache

    root = SHARED_DATA / "talking_3dmm"
    video, mat = root / "video_silent" / "Obama_clip1.mp4", root / "3DMM" / "Obama_clip1.mat"
    if not (video.exists() and mat.exists()):
        pytest.skip(f"talking_3dmm clips not present under {root}")
    score = evaluate_clip(video, mat, step=2, max_frames=300)
    print(f"\n{score}")
    assert score.frames >= 140
    assert score.mouth_corr >= 0.8
    assert np.isfinite(score.r2_all) and np.isfinite(score.r2_mouth)   # reported in docs/evaluation_tracker.md


# A real mouth's rest shape that the identity basis cannot represent, as the fitter found it on a
# barely-parting real speaker (issue #14): lip-shape channels on in every frame.
REST_MOUTH = {"mouthPucker": 0.95, "mouthShrugLower": 0.45, "mouthRollUpper": 0.45, "mouthRollLower": 0.2,
              "mouthUpperUpLeft": 0.4, "mouthUpperUpRight": 0.4, "mouthFunnel": 0.1}


def _barely_parting_clip(model, seed, frames=40, noise=0.5):
    """Lips that barely part (jawOpen <= 0.04, lipsPart <= 0.4: mean inner-lip gap 0.02-0.04 of the
    eye-corner distance) on top of REST_MOUTH, 25 fps, a face ~90 px between the eye corners, 0.5 px noise."""
    from flowvq.evaluate.mouth import mouth_opening

    rng = np.random.default_rng(seed)
    cam = Camera.for_image(512, 512)
    identity = 0.5 * rng.normal(size=model.n_identity)
    t = np.arange(frames) / 25
    s = np.clip(0.5 + 0.5 * np.sin(2 * np.pi * 2.3 * t + rng.uniform(0, 6)) + 0.15 * rng.normal(size=frames), 0, 1)
    expr = np.zeros((frames, 64))
    for k, v in REST_MOUTH.items():
        expr[:, CHANNEL_INDEX[k]] = v
    expr[:, CHANNEL_INDEX["jawOpen"]] += 0.04 * s
    expr[:, CHANNEL_INDEX["lipsPart"]] += 0.4 * s
    pose = np.zeros((frames, 6))
    pose[:, :3], pose[:, 5] = rng.uniform(-0.1, 0.1, 3), -90.0
    obs = np.stack([model.project(model.pose(model.landmarks(e, identity), pose[0]), cam) for e in expr])
    return cam, mouth_opening(expr), obs + noise * rng.normal(size=obs.shape)


def test_small_mouth_opening_survives_the_fit(model):
    """Issue #14: a barely-parting mouth (gap ~0.03 of the eye-corner distance, 0.5 px landmark noise)
    is fitted with the full tracker settings (priors, bounds, temporal tie); the fitted mouth opening
    follows the true one (mean correlation >= 0.8; the previous fitter gave 0.73 / 0.64: it explained the
    small openings by relaxing the rest-shape channels pucker / shrug / roll, with jawOpen at its bound 0)."""
    from flowvq.evaluate.mouth import lip_gap, mouth_opening

    corrs = []
    for seed in (0, 1):
        cam, true_opening, obs = _barely_parting_clip(model, seed)
        gap = lip_gap(obs).mean()
        assert 0.015 <= gap <= 0.05
        _, _, expr, _ = LandmarkFitter(model, cam).fit_sequence(obs, np.ones(len(obs), bool))
        corrs.append(np.corrcoef(mouth_opening(expr), true_opening)[0, 1])
        print(f"\nseed {seed}: mean gap {gap:.3f}, corr(fitted opening, true opening) {corrs[-1]:.3f}")
    assert np.mean(corrs) >= 0.8 and min(corrs) >= 0.75
