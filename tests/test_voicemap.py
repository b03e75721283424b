"""Voice maps (backend/generate/voicemap.py; docs/actor.md and docs/fcg.md "Voice map"): learns how a mouth
opens with a voice from paired sound and lip gap, predicts unseen sound, blends into a take only its
opening, saves and loads strictly; a profile that names one uses it."""
from __future__ import annotations

import json

import numpy as np
import pytest

from flowvq.generate.voicemap import INDEX, LAMBDAS, N_FEATURES, VoiceMap, apply_voice, cv_lambda, out_of_fold
from flowvq.evaluate.lipsync import best_lag_corr
from flowvq.evaluate.mouth import mouth_opening

FPS = 25.0
SR = 16000


def _voice(seconds: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Syllables of noise whose loudness opens a mouth 2 frames ahead of it (lips lead the sound):
    -> (audio, lip gap per frame)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * FPS)
    env = np.zeros(n)
    t = 0
    while t + 10 < n:  # syllables 4-10 frames long, pauses 2-8
        k = int(rng.integers(4, 11))
        env[t:t + k] = rng.uniform(0.3, 1.0) * np.hanning(k + 2)[1:-1]
        t += k + int(rng.integers(2, 9))
    hop = int(SR / FPS)
    loud = np.repeat(env, hop)[: n * hop]
    audio = (loud * rng.standard_normal(n * hop) * 0.3 + 1e-3 * rng.standard_normal(n * hop)).astype(np.float32)
    gap = 0.02 + 0.1 * np.r_[env[2:], np.zeros(2)] + 0.003 * rng.standard_normal(n)  # gap leads the sound
    return audio, gap


def test_the_map_learns_a_voice_and_predicts_unseen_sound():
    audio, gap = _voice(30.0, 0)
    vm = VoiceMap.fit([(audio, FPS, gap, None)])
    assert vm.phones is None and vm.info["mel"]["frames"] == len(gap)  # no phones: the sound-only map
    test_audio, test_gap = _voice(10.0, 1)
    course = vm.predict(test_audio, len(test_gap), FPS)
    assert course.shape == (len(test_gap),)
    r, lag = best_lag_corr(course, test_gap)
    assert r > 0.8, r  # unseen syllables: their opening follows the sound the map learned
    # frames without a face (NaN gap) are left out, not learned as zeros
    holey = gap.copy()
    holey[100:200] = np.nan
    assert VoiceMap.fit([(audio, FPS, holey, None)]).info["mel"]["frames"] == len(gap) - 100
    with pytest.raises(ValueError, match="needs 100 frames"):
        VoiceMap.fit([(audio[: 3 * SR], FPS, gap[:75], None)])


def test_out_of_fold_never_predicts_what_it_saw():
    audio, gap = _voice(20.0, 2)
    noisy = gap + np.random.default_rng(3).standard_normal(len(gap)) * 0.05  # mostly noise a map could memorise
    oof = out_of_fold([(audio, FPS, noisy, None)])[0]
    inside = VoiceMap.fit([(audio, FPS, noisy, None)]).predict(audio, len(gap), FPS)
    r_oof, r_in = np.corrcoef(oof, noisy)[0, 1], np.corrcoef(inside, noisy)[0, 1]
    assert oof.shape == gap.shape and r_oof < r_in  # fitted on its own frames it looks better than it is
    assert np.corrcoef(oof, gap)[0, 1] > 0.5  # and still finds the voice


def test_ridge_strength_by_speaker_holds_each_speaker_out():
    """The shipped map's ridge is judged on speakers it never saw: one fold per speaker, each scored on
    its own r (the mean), never on frames of the speaker it was fitted with."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((300, 6))
    groups = np.repeat([0, 1, 2], 100)
    gap = x[:, 0] + np.choose(groups, [x[:, 1], -x[:, 1], 2 * x[:, 2]]) + 0.5 * rng.standard_normal(300)
    best, scale, scores = cv_lambda(x, gap, groups)
    assert scale == 1.0  # no sound block: nothing to scale
    for lam in LAMBDAS:
        rs = []
        for k in range(3):
            tr, te = groups != k, groups == k
            w = np.linalg.solve(x[tr].T @ x[tr] + lam * np.eye(6), x[tr].T @ (gap[tr] - gap[tr].mean()))
            rs.append(np.corrcoef(x[te] @ w, gap[te])[0, 1])
        assert scores[f"{lam:g}"] == pytest.approx(np.mean(rs), abs=1e-4)
    assert scores[f"{best:g}"] == max(scores.values())
    # a map fitted by speaker says so; each speaker's frames are one fold
    a1, g1 = _voice(12.0, 5)
    a2, g2 = _voice(12.0, 6)
    vm = VoiceMap.fit([(a1, FPS, g1, None), (a2, FPS, g2, None)], by_speaker=True)
    assert vm.info["mel"]["cv_folds"] == "by speaker"
    assert VoiceMap.fit([(a1, FPS, g1, None)]).info["mel"]["cv_folds"] == "contiguous"


def test_apply_voice_moves_only_the_opening():
    from flowvq_shared.channels import OPENING_WEIGHTS, SPEECH_ARTICULATORS

    assert set(OPENING_WEIGHTS) <= set(SPEECH_ARTICULATORS)  # what apply_voice's direction relies on
    rng = np.random.default_rng(0)
    n = 200
    exp = np.clip(rng.uniform(0.1, 0.4, (n, 64)), 0, 1).astype(np.float32)
    exp[:, INDEX] += 0.1 * np.sin(np.arange(n) / 3.0)[:, None].astype(np.float32)
    course = np.cos(np.arange(n) / 5.0) * np.sqrt(2)  # standardised, as VoiceMap.predict gives it
    same = apply_voice(exp, course, 0.0)
    assert np.array_equal(same, exp)
    moved = apply_voice(exp, course, 1.0)
    other = np.setdiff1d(np.arange(64), INDEX)
    assert np.array_equal(moved[:, other], exp[:, other])  # brows, eyes, cheeks: the take's own
    o0, o1 = mouth_opening(exp), mouth_opening(moved)
    assert np.corrcoef(o1, course)[0, 1] > 0.95 and np.corrcoef(o0, course)[0, 1] < 0.3
    assert abs(o1.mean() - o0.mean()) < 0.02 and abs(o1.std() / o0.std() - 1) < 0.15  # its mean and range kept
    half = mouth_opening(apply_voice(exp, course, 0.5))
    assert np.corrcoef(o0, course)[0, 1] < np.corrcoef(half, course)[0, 1] < np.corrcoef(o1, course)[0, 1]
    assert moved.min() >= 0 and moved.max() <= 1


def test_save_load_is_strict(tmp_path):
    audio, gap = _voice(12.0, 4)
    vm = VoiceMap.fit([(audio, FPS, gap, None)])
    path = tmp_path / "voice_map.npz"
    vm.save(path)
    back = VoiceMap.load(path)
    assert np.array_equal(back.predict(audio, len(gap), FPS), vm.predict(audio, len(gap), FPS))
    with np.load(path) as z:
        arrays = dict(z)
    bad = dict(arrays, mel_w=np.zeros(N_FEATURES - 1))
    np.savez(tmp_path / "short.npz", **bad)
    with pytest.raises(ValueError, match="mel_w"):
        VoiceMap.load(tmp_path / "short.npz")
    info = json.loads(str(arrays["info"]))
    np.savez(tmp_path / "future.npz", **dict(arrays, info=np.array(json.dumps({**info, "format": 9}))))
    with pytest.raises(ValueError, match="format 9"):
        VoiceMap.load(tmp_path / "future.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a map")
    with pytest.raises(ValueError, match="cannot read voice map"):
        VoiceMap.load(tmp_path / "junk.npz")


def test_a_profile_uses_its_voice_map_and_refuses_a_broken_one(tmp_path):
    from flowvq.actor import ActorError, ActorProfile

    audio, gap = _voice(12.0, 5)
    VoiceMap.fit([(audio, FPS, gap, None)]).save(tmp_path / "voice_map.npz")
    for name in ("fcg.pt", "bank.npz"):
        (tmp_path / name).write_bytes(b"x")
    est = {"lead_shift_s": 0.0, "mouth_scale": [1.0] * 16, "mouth_centre": [0.0] * 16,
           "generated_mouth_centre": [0.0] * 16, "pose_scale": [1.0] * 6, "neutral_expression": [0.0] * 64,
           "selected": {"candidate": "default + voice 1", "model": "default", "lead_shift": False,
                        "mouth_scale_power": 0.0, "voice_weight": 1.0}}
    files = {"fcg": "fcg.pt", "bank": "bank.npz", "voice_map": "voice_map.npz"}
    doc = {"format": 1, "kind": "flowvq-actor", "id": "a", "files": files, "estimated": est}

    def load(d):
        (tmp_path / "actor.json").write_text(json.dumps(d))
        return ActorProfile.load(tmp_path)

    prof = load(doc)
    assert prof.voice_weight == 1.0 and prof.voice_map == tmp_path / "voice_map.npz"
    rng = np.random.default_rng(0)
    exp = rng.uniform(0.1, 0.4, (len(gap), 64)).astype(np.float32)
    pose = np.zeros((len(gap), 6), np.float32)
    course = VoiceMap.load(prof.voice_map).predict(audio, len(gap), FPS)
    e, _ = prof.adapt(exp, pose, FPS, voice=course)
    assert best_lag_corr(mouth_opening(e), gap)[0] > 0.8 > best_lag_corr(mouth_opening(exp), gap)[0]
    e_none, _ = prof.adapt(exp, pose, FPS)  # no course given (no map loaded): the take as it was
    assert np.allclose(e_none, exp)
    with pytest.raises(ActorError, match="names none"):
        load({**doc, "files": {"fcg": "fcg.pt", "bank": "bank.npz"}})
    with pytest.raises(ActorError, match="voice_weight"):
        load({**doc, "estimated": {**est, "selected": {**est["selected"], "voice_weight": 1.5}}})
    (tmp_path / "voice_map.npz").write_bytes(b"broken")
    with pytest.raises(ActorError, match="cannot read voice map"):
        load(doc)


def test_sound_block_penalised_apart_from_the_phones():
    """With a sound block, its scale is chosen with the ridge strength: where each speaker's sound
    means something else and the phones mean the same, leaving a speaker out favours the phones, and
    the fitted map keeps the scale in its normalisation (course() needs nothing new)."""
    from flowvq.generate.voicemap import SOUND_SCALES, Ridge

    rng = np.random.default_rng(7)
    groups = np.repeat([0, 1, 2, 3], 150)
    sound = rng.standard_normal((600, 40))
    phones = rng.standard_normal((600, 2))
    own = rng.standard_normal((4, 40)) * 0.6  # what a speaker's sound says about their lips: theirs alone
    gap = phones[:, 0] + np.einsum("ij,ij->i", sound, own[groups]) + 0.3 * rng.standard_normal(600)
    x = np.concatenate([sound, phones], axis=1)
    lam, scale, scores = cv_lambda((x - x.mean(0)) / x.std(0), gap, groups, sound=40)
    assert set(scores) == {f"{la:g}/{s:g}" for la in LAMBDAS for s in SOUND_SCALES}
    assert scale > 1.0 and scores[f"{lam:g}/{scale:g}"] > scores[f"{lam:g}/1"]
    r = Ridge.fit(x, gap, groups=groups, sound=40)
    assert r.info["sound_scale"] == scale and r.info["lambda"] == lam
    z = (x - x.mean(0)) / (x.std(0) + 1e-6)
    z[:, :40] /= scale
    w = np.linalg.solve(z.T @ z + lam * np.eye(42), z.T @ (gap - gap.mean()))
    assert np.corrcoef(r.course(x), z @ w)[0, 1] > 0.9999


def test_a_map_of_the_first_format_still_reads_its_own_phone_features(tmp_path):
    """Actor profiles learned before 2026-12-02 carry format-1 maps (the phones' articulators at one
    frame); they load and predict with their own layout, and a format-2 layout in a format-1 file is refused."""
    from flowvq.generate.voicemap import FORMAT, Ridge, features, n_phone_features, phone_features

    audio, gap = _voice(12.0, 5)
    phones = [("AA", 0.5, 0.9), ("M", 0.9, 1.0), ("IY", 1.0, 1.4), ("S", 3.0, 3.2), ("OW", 3.2, 3.8)]
    assert FORMAT == 3 and n_phone_features(1) < n_phone_features(2) == n_phone_features(3)
    old = phone_features(phones, len(gap), FPS, fmt=1)
    assert old.shape == (len(gap), n_phone_features(1))
    new = phone_features(phones, len(gap), FPS)
    assert np.array_equal(new[:, :9], old[:, :9])  # the opening over +-4 frames is the same in both
    vm = VoiceMap.fit([(audio, FPS, gap, phones)])
    assert vm.info["format"] == 3 and vm.info["articulator_frames"] == [-2, 0, 2] and vm.shift_s == 0.0
    xs = features(audio, len(gap), FPS)
    ph1 = Ridge.fit(np.concatenate([xs, old], axis=1), gap, lam=100.0)
    v1 = VoiceMap(vm.mel, ph1, {"format": 1, "mel": vm.mel.info, "phones": ph1.info})
    v1.save(tmp_path / "v1.npz")
    back = VoiceMap.load(tmp_path / "v1.npz")
    assert np.allclose(back.predict(audio, len(gap), FPS, phones), ph1.course(np.concatenate([xs, old], axis=1)))
    vm.save(tmp_path / "v2.npz")
    with np.load(tmp_path / "v2.npz") as z:
        arrays = dict(z)
    info = json.loads(str(arrays["info"]))
    np.savez(tmp_path / "mixed.npz", **dict(arrays, info=np.array(json.dumps({**info, "format": 1}))))
    with pytest.raises(ValueError, match="phones_mu"):
        VoiceMap.load(tmp_path / "mixed.npz")


def test_recordings_out_of_step_are_each_read_at_their_own_sync(tmp_path):
    """Footage from two recordings whose picture is late on its sound by different amounts (a
    camera's audio chain; the development footage ranges over +33 to +200 ms): each recording's
    sync is read against a map of other footage, the map reads each at its own, so it learns one
    shape instead of a blur of two, and a new line is read at their mean (shift_s, saved, checked)."""
    from flowvq.actor.learn import sync_offset, synced_pairs
    from flowvq.evaluate.lipsync import lag_profile

    r_audio, r_gap = _voice(20.0, 10)
    ref = VoiceMap.fit([(r_audio, FPS, r_gap, None)])  # the reference: "other footage", in step
    a_audio, a_gap = _voice(20.0, 11)
    b_audio, b_gap = _voice(20.0, 12)
    b_late = np.r_[np.full(6, np.nan), b_gap[:-6]]  # B's picture 6 frames (0.24 s) late on its sound
    a, b = (a_audio, FPS, a_gap, None), (b_audio, FPS, b_late, None)
    assert abs(sync_offset([a], ref)) <= 1 / FPS
    assert abs(sync_offset([b], ref) + 6 / FPS) <= 1 / FPS  # < 0: their lips come after the sound

    def shape(vm):  # how well a new line's course follows its lips at their best lag (+-8 frames)
        audio, gap = _voice(12.0, 13)
        return max(lag_profile(vm.predict(audio, len(gap), FPS), gap, 8).values())

    # 12.5 fps footage whose picture is 0.56 s late: +-8 frames (0.64 s) would find it, past what a map
    # may read (MAX_SYNC_S = 0.5); the search stops at 0.48 s and the map it makes loads
    slow = (b_audio, FPS / 2, np.r_[np.full(7, np.nan), b_gap[::2][:-7]], None)
    s_slow = sync_offset([slow], ref)
    assert abs(s_slow) <= 0.5, s_slow
    VoiceMap.fit([(*slow, s_slow)]).save(tmp_path / "slow.npz")
    assert VoiceMap.load(tmp_path / "slow.npz").shift_s == pytest.approx(s_slow, abs=1e-4)
    # the learn's bookkeeping: each recording's own figure, by file (two files may share a name)
    pairs, sync = synced_pairs([{"video": 0}, {"video": 1}], [a, b], [{"file": "take.mp4"}, {"file": "take.mp4"}], ref)
    assert [p[4] for p in pairs] == [sync_offset([a], ref), sync_offset([b], ref)]
    assert list(sync) == ["take.mp4 (video 1)", "take.mp4 (video 2)"]
    blurred = VoiceMap.fit([a, b])
    synced = VoiceMap.fit([(*a, sync_offset([a], ref)), (*b, sync_offset([b], ref))])
    assert shape(synced) > shape(blurred) + 0.05, (shape(synced), shape(blurred))
    assert blurred.shift_s == 0.0 and abs(synced.shift_s - (sync_offset([a], ref) + sync_offset([b], ref)) / 2) < 1e-3
    synced.save(tmp_path / "v3.npz")
    back = VoiceMap.load(tmp_path / "v3.npz")
    audio, gap = _voice(5.0, 14)
    assert back.shift_s == synced.shift_s and np.allclose(back.predict(audio, len(gap), FPS),
                                                           synced.predict(audio, len(gap), FPS))
    with np.load(tmp_path / "v3.npz") as z:
        arrays = dict(z)
    info = json.loads(str(arrays["info"]))
    for bad in (2.0, "late", None):
        np.savez(tmp_path / "bad.npz", **dict(arrays, info=np.array(json.dumps({**info, "shift_s": bad}))))
        with pytest.raises(ValueError, match="shift_s"):
            VoiceMap.load(tmp_path / "bad.npz")
