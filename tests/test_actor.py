"""Actor profiles (backend/actor/, docs/actor.md): learn from a few seconds of a real clip on CPU,
the folder, strict loading, generate with it through the CLI, and the refusals."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import shared_data

from flowvq.cli import main


def _video(path: Path, frames: int, size: int = 160, fps: int = 25) -> Path:
    import imageio.v2 as imageio

    with imageio.get_writer(path, fps=fps, macro_block_size=16) as w:
        for _ in range(frames):
            w.append_data(np.full((size, size, 3), 200, np.uint8))  # a blank image: no face, no sound
    return path


@pytest.fixture(scope="module")
def learned(tmp_path_factory):
    """A profile from the first 8 s of Obama_clip3 (silent 256 px video + its wav beside it)."""
    video = shared_data("talking_3dmm", "video_silent", "Obama_clip3.mp4")
    wav = shared_data("talking_3dmm", "wav", "Obama_clip3.wav")
    d = tmp_path_factory.mktemp("actor")
    (d / "obama3.mp4").symlink_to(video)
    (d / "obama3.wav").symlink_to(wav)
    from flowvq.actor.learn import learn

    out = learn([d / "obama3.mp4"], d / "obama_actor", holdout=0.3, steps=6, batch=16, eval_every=3,
                max_seconds=8.0, min_seconds=4.0, bank_size=4, progress=False, log=lambda *_: None, keep_work=True)
    return out, wav


def test_profile_folder_describes_itself(learned):
    out, _ = learned
    from flowvq.actor import ActorProfile

    doc = json.loads((out / "actor.json").read_text())
    assert doc["format"] == 1 and doc["kind"] == "flowvq-actor" and doc["id"] == "obama_actor"
    assert len(doc["sources"][0]["sha256"]) == 64 and doc["settings"]["steps_asked"] == 6
    assert doc["settings"]["steps"] == 2  # 8 s of footage: 6 x 8 / 25 (fine_tune_steps)
    for key in ("lead_s", "lead_shift_s", "mouth_scale", "pose_scale", "neutral_expression", "pose_motion",
                "generated_pose_motion", "pose_ratio_raw", "pose_scale_weight"):
        assert key in doc["estimated"]
    est = doc["estimated"]
    assert 0 < est["pose_scale_weight"] < 0.25  # ~5.6 s of footage: mostly the generator's own motion
    assert np.allclose(np.clip(np.asarray(est["pose_ratio_raw"]) ** est["pose_scale_weight"], 0.25, 4),
                       est["pose_scale"][:3], atol=2e-3) and est["pose_scale"][3:] == [1.0, 1.0, 1.0]
    # the shipped model's own head motion on the same audio, for when select chooses it
    assert len(est["generated_pose_motion_default"]) == 3 and est["pose_scale_default"][3:] == [1.0, 1.0, 1.0]
    assert np.allclose(np.clip(np.asarray(est["pose_ratio_raw_default"]) ** est["pose_scale_weight"], 0.25, 4),
                       est["pose_scale_default"][:3], atol=2e-3)
    assert set(doc["fit"]["lipsync_r"]) == {"default", "actor"}
    for key in ("pose_std_ratio", "pose_std_ratio_plain"):
        assert set(doc["fit"][key]) == {"default", "actor"}
    assert "median over 4 s windows" in doc["fit"]["how"]
    # the voice map: from the training part (judged by the held-out stages) and from all of it (shipped)
    vm = est["voice_map"]
    assert 100 <= vm["train"]["mel"]["frames"] < vm["all"]["mel"]["frames"] <= 240
    assert doc["files"]["voice_map"] == "voice_map.npz" and (out / "voice_map.npz").is_file()
    # its weight is chosen on all the footage (out of fold); 2.4 s held out is too short to judge the
    # model: with a voice weight, the default model with it, else everything (as before the selection)
    scores = est["selection"]["voice_weight_r"]
    best = max(scores, key=lambda k: (scores[k], -float(k)))
    assert est["selection"]["judged"] is False and "too short to judge" in est["selection"]["note"]
    if float(best) > 0:
        assert est["selected"] == {"candidate": f"default + voice {best}", "model": "default", "lead_shift": False,
                                   "mouth_scale_power": 0.0, "voice_weight": float(best)}
    else:
        assert est["selected"]["candidate"] == "fine-tuned + lead + mouth" and est["selected"]["voice_weight"] == 0
    assert (out / "fcg.pt").is_file() and (out / "work" / "select.json").is_file()  # kept: keep_work
    assert sorted(p.name for p in (out / "bank").glob("*.png")) == [f"frame_{i:02d}.png" for i in range(4)]
    with np.load(out / "bank" / "bank.npz") as z:
        assert z["expression"].shape == (4, 64) and z["pose"].shape == (4, 6) and z["identity"].ndim == 1
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file() and "work" not in p.parts)
    assert size < 8 * 2**20
    import torch
    sd = torch.load(out / "fcg.pt", weights_only=True)["state_dict"]
    assert all(v.dtype == torch.float16 for v in sd.values() if v.is_floating_point())
    assert ActorProfile.load(out).id == "obama_actor"


def test_show_says_what_the_profile_uses(learned, capsys):
    out, _ = learned
    assert main(["actor", "show", str(out)]) == 0
    text = capsys.readouterr().out
    doc = json.loads((out / "actor.json").read_text())
    assert text.startswith("actor obama_actor: 8.0 s of footage") and f"uses: {doc['estimated']['selected']['candidate']}" in text
    assert "voice map weight" in text and "held-out" in text
    sync = doc["estimated"]["voice_map"]["sync_s"]  # the recording's sync, read against the shipped map
    assert list(sync) == ["obama3.mp4"] and abs(sync["obama3.mp4"]) <= 8 / 30 + 1e-6
    assert f"obama3.mp4 {1000 * sync['obama3.mp4']:+.0f} ms" in text
    assert doc["estimated"]["voice_map"]["all"]["shift_s"] == pytest.approx(sync["obama3.mp4"], abs=1e-4)
    assert main(["actor", "show", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == doc


def test_show_says_which_footage_judged_each_choice():
    """The voice weight is judged out of fold on all the footage, the model on the held-out tail; when the
    tail alone disagrees with the weight's judge, show says so instead of leaving a bare contradiction."""
    from flowvq.actor.cli import summary

    def doc(tail_actor):
        return {"id": "a", "footage_seconds": 50.0, "sources": [{"file": "a.mp4"}],
                "estimated": {"selected": {"candidate": "default + voice 0.7", "voice_weight": 0.7},
                              "selection": {"judged": True, "voice_weight_r": {"0": 0.57, "0.35": 0.56, "0.7": 0.6, "1": 0.59},
                                            "lipsync_r": {"default + voice 0.7": tail_actor}}},
                "fit": {"holdout_seconds": 10.0, "lipsync_r": {"actor": tail_actor, "default": 0.55},
                        "pose_std_ratio": {"actor": 0.9, "default": 0.7}}}

    lines = summary(doc(0.46))
    assert lines[1] == ("uses: default + voice 0.7 (voice weight: out of fold on all the footage; "
                        "model: the held-out tail)")
    assert any(s.startswith("the held-out tail alone puts the profile under the default") and "(0.7: 0.6 vs 0: 0.57)" in s
               for s in lines)
    assert not any("tail alone" in s for s in summary(doc(0.6)))  # the tail agrees: nothing to explain


def test_loading_is_strict(learned, tmp_path):
    out, _ = learned
    from flowvq.actor import ActorError, ActorProfile

    bad = tmp_path / "bad"
    shutil.copytree(out, bad)
    doc = json.loads((bad / "actor.json").read_text())
    (bad / "actor.json").write_text(json.dumps({**doc, "format": 99}))
    with pytest.raises(ActorError, match="format 99"):
        ActorProfile.load(bad)
    (bad / "actor.json").write_text(json.dumps(doc))
    (bad / "fcg.pt").unlink()
    with pytest.raises(ActorError, match="missing fcg.pt"):
        ActorProfile.load(bad)
    with pytest.raises(ActorError, match="not an actor profile"):
        ActorProfile.load(tmp_path)


def test_generate_with_actor_cli(learned, tmp_path, capsys):
    out, wav = learned
    from flowvq_shared.takes import Take

    clip = tmp_path / "line.wav"
    a, sr = sf.read(wav, dtype="float32")
    sf.write(clip, a[6 * sr: 9 * sr], sr)
    rc = main(["generate", str(clip), "--actor", str(out), "--takes", "2", "--emotion", "happy",
               "--seed", "3", "-o", str(tmp_path / "takes"), "-q"])
    assert rc == 0
    takes = [Take.load(tmp_path / "takes" / f"take_{k}.npz") for k in (1, 2)]
    assert all(t.settings.actor == "obama_actor" and t.settings.emotion == "happy" for t in takes)
    assert takes[0].n_frames == 75 and not np.allclose(takes[0].expression, takes[1].expression)
    # an actor id without its profile (a server request) is refused; so is a folder without a profile
    from flowvq import jobs
    from flowvq.audio import load_audio
    from flowvq.errors import BadRequest
    from flowvq_shared.settings import GenerateSettings
    with pytest.raises(BadRequest, match="not loaded"):
        jobs.generate(jobs.Models(), load_audio(clip), GenerateSettings(actor="someone"))
    rc = main(["generate", str(clip), "--actor", str(tmp_path), "-o", str(tmp_path / "y"), "-q"])
    assert rc == 2 and "error: " in capsys.readouterr().err
    # dubbing asks for the profile's own fcg.pt whatever its selection chose (the bank is looked up by shape)
    models = jobs.Models()
    chosen, tuned = models.actor_generator(out), models.actor_generator(out, fine_tuned=True)
    assert tuned is not chosen and tuned.info["actor_model"] == "fine-tuned"
    assert chosen.info["actor_model"] == ("default" if chosen.profile.uses_default_model else "fine-tuned")
    assert models.actor_generator(out, fine_tuned=True) is tuned  # loaded once
    line = jobs.generate(models, load_audio(clip), GenerateSettings(takes=1, seed=3), actor=out, actor_fine_tuned=True)
    assert line[0].settings.actor == "obama_actor" and line[0].n_frames == 75
    models.close()


def _refused(argv, capsys, match):
    rc = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("error: ") and match in err[0], err
    return err[0]


def test_fine_tune_steps_scale_with_short_footage():
    from flowvq.actor.learn import fine_tune_steps

    assert fine_tune_steps(200, 25.0) == 200 and fine_tune_steps(200, 71.0) == 200  # from 25 s on: as asked
    assert fine_tune_steps(200, 10.0) == 80 and fine_tune_steps(100, 15.0) == 60
    assert fine_tune_steps(3, 1.0) == 1  # never none


def test_refusals(tmp_path, capsys):
    speech = shared_data("speech", "hdtf_RD_Radio31_000.wav")
    out = str(tmp_path / "a")
    silent_track = _video(tmp_path / "nosound.mp4", 225)        # 9 s, no audio stream
    _refused(["actor", "learn", str(silent_track), "-o", out, "-q"], capsys, "no usable sound")
    hush = _video(tmp_path / "hush.mp4", 225)
    sf.write(tmp_path / "hush.wav", np.zeros(16000 * 9, np.float32), 16000)
    _refused(["actor", "learn", str(hush), "-o", out, "-q"], capsys, "silent")
    short = _video(tmp_path / "short.mp4", 75)                  # 3 s with speech beside it
    (tmp_path / "short.wav").symlink_to(speech)
    _refused(["actor", "learn", str(short), "-o", out, "-q"], capsys, "too short")
    blank = _video(tmp_path / "blank.mp4", 225)                 # 9 s of a blank image, with speech
    (tmp_path / "blank.wav").symlink_to(speech)
    _refused(["actor", "learn", str(blank), "-o", out, "-q"], capsys, "no face")
    _refused(["actor", "learn", str(tmp_path / "missing.mp4"), "-o", out, "-q"], capsys, "not found")


def test_profile_has_a_mouth_bank(learned):
    """The profile carries their own lower face in every tracked frame (dubbing, plates)."""
    from flowvq.actor.profile import ActorProfile
    from flowvq.render.mouth_bank import MouthBank

    profile = ActorProfile.load(learned[0])
    bank = MouthBank.load(profile.mouth_bank)
    assert len(bank) >= 100 and bank.sources == ["obama3.mp4"]
    crop = bank.crop(0)
    assert crop.ndim == 3 and min(crop.shape[:2]) >= 64
    assert (bank.successor() >= 0).mean() > 0.9  # consecutive frames: runs the selection can play


def test_a_finished_learn_resumes_into_a_profile_without_the_mouth_bank(learned, tmp_path, capsys):
    """Every stage's result in work/ is reused (same footage, nothing re-learned); --no-mouth-bank leaves
    out bank/mouth.npz, so the profile is a few MB to share, says so, and work/ goes after success."""
    import shutil

    from flowvq.actor import ActorProfile
    from flowvq.actor.learn import learn

    out, _ = learned
    copy = tmp_path / "obama_actor"
    shutil.copytree(out, copy)
    (copy / "actor.json").unlink()  # as if the run had stopped after its last stage
    before = (copy / "fcg.pt").read_bytes(), (copy / "work" / "select.json").read_text()
    logs = []
    learn([out.parent / "obama3.mp4"], copy, holdout=0.3, steps=6, batch=16, eval_every=3, max_seconds=8.0,
          min_seconds=4.0, bank_size=4, progress=False, log=logs.append, mouth_bank=False)
    doc = json.loads((copy / "actor.json").read_text())
    assert "mouth_bank" not in doc["files"] and doc["settings"]["mouth_bank"] is False
    assert not (copy / "bank" / "mouth.npz").exists() and not (copy / "work").exists()
    assert (copy / "fcg.pt").read_bytes() == before[0]  # resumed: the fine-tune was not run again
    assert doc["estimated"]["selection"]["voice_weight_r"] == json.loads(before[1])["voice_weight_r"]
    assert ActorProfile.load(copy).mouth_bank is None
    size = sum(p.stat().st_size for p in copy.rglob("*") if p.is_file())
    assert size < 5 * 2**20, size
    assert main(["actor", "show", str(copy)]) == 0
    shown = capsys.readouterr().out.splitlines()[-1]
    assert shown.startswith("size ") and "model 2." in shown and "no mouth bank" in shown, shown
    assert main(["actor", "show", str(out)]) == 0
    assert "mouth bank" in capsys.readouterr().out.splitlines()[-1]


def test_sync_sets_where_new_lines_are_read(learned, tmp_path, capsys):
    """`flowvq actor sync`: a profile's takes read a new line at its footage's sync, the standard timing (0)
    or a time given; the course moves by exactly that, a running backend reloads it, bad values are refused."""
    from flowvq import jobs
    from flowvq.actor import ActorProfile

    out, wav = learned
    copy = tmp_path / "synced"
    shutil.copytree(out, copy, ignore=shutil.ignore_patterns("work"))
    doc = json.loads((copy / "actor.json").read_text())
    learned_shift = doc["estimated"]["voice_map"]["all"]["shift_s"]
    refused = {**doc, "estimated": {**doc["estimated"], "selected": {**doc["estimated"]["selected"], "voice_weight": 0.0}}}
    (copy / "actor.json").write_text(json.dumps(refused))  # a profile that uses no map has no sync to set
    _refused(["actor", "sync", str(copy), "standard"], capsys, "uses no voice map")
    doc["estimated"]["selected"] = {"candidate": "default + voice 1", "model": "default", "lead_shift": False,
                                    "mouth_scale_power": 0.0, "voice_weight": 1.0}
    (copy / "actor.json").write_text(json.dumps(doc))
    a, sr = sf.read(wav, dtype="float32")
    line = a[2 * sr: 8 * sr]
    models = jobs.Models()
    courses = {}
    for choice, shift in (("footage", learned_shift), ("+120", 0.12), ("standard", 0.0)):
        assert main(["actor", "sync", str(copy), choice]) == 0
        said = capsys.readouterr().out
        assert f"a new line at {1000 * shift:+.0f} ms" in said, said
        gen = models.actor_generator(copy)  # reloaded: actor.json changed
        assert gen.voice.shift_s == pytest.approx(shift, abs=1e-4)
        courses[choice] = gen.voice.predict(line, 150, 25.0)  # the sound's map: the same phones either way
    assert ActorProfile.load(copy).estimated["voice_map"]["new_line"] == {"sync": "standard", "shift_s": 0.0,
                                                                         "learned_shift_s": learned_shift}
    # 120 ms later in the sound is 3 frames at 25 fps: the course is the standard one moved 3 frames earlier
    assert np.allclose(courses["+120"][20:-20], courses["standard"][23:-17], atol=1e-6)
    models.close()
    for bad in ("900", "soon"):
        _refused(["actor", "sync", str(copy), bad], capsys, "give footage, standard or milliseconds")
    assert main(["actor", "show", str(copy)]) == 0 and "(standard timing)" in capsys.readouterr().out


def test_measure_compares_the_profile_with_the_default_on_unseen_footage(learned, tmp_path, capsys):
    """`flowvq actor measure`: the issue's measure (lip-sync r, best lag +-2; head motion ratio) of the profile
    and the default on a part of the clip the profile never saw (a silent video + its .wav), and its refusals."""
    out, _ = learned
    video = out.parent / "obama3.mp4"
    rc = main(["actor", "measure", str(video), str(out), "--start", "8", "--end", "13", "--takes", "1",
               "--pose-from-track", str(out / "work" / "track_0.npz"), "-o", str(tmp_path / "m.json")])
    assert rc == 0
    res = json.loads((tmp_path / "m.json").read_text())
    assert json.loads(capsys.readouterr().out) == res and res["span_s"][0] == 8
    for k in ("default", "actor"):
        assert -1 <= res[k]["r_mean"] <= 1 and abs(res[k]["lag"][0]) <= 2 and res[k]["pose_std_ratio_mean"] > 0
    assert res["default"]["r_mean"] > 0.2  # Obama's lips do follow his voice on the shipped model
    _refused(["actor", "measure", str(video), str(out), "--start", "18"], capsys, "with at least 4 s between them")
    _refused(["actor", "measure", str(video), str(out), "--start", "-1"], capsys, "--start must be 0 s or later")
    _refused(["actor", "measure", str(tmp_path / "none.mp4"), str(out), "--start", "0"], capsys, "video not found")
    _refused(["actor", "measure", str(video), str(tmp_path), "--start", "8"], capsys, "not an actor profile")


def test_footage_is_tracked_one_frame_at_a_time(tmp_path, monkeypatch):
    """The track stage reads the footage as a stream (minutes of 1080p are tens of GB as a list: 10 s of the
    1080x1920 shot peaked at 1.8 GB before, 0.3 GB now) and reads back only the bank's frames; the landmarks
    are the ones the whole-list detector finds on the same frames."""
    import weakref

    from flowvq.actor.learn import check_sources, track_source
    from flowvq.tracker import frames as frames_mod
    from flowvq.tracker.track import detect_all

    video = shared_data("video_with_audio", "obama_weekly_address_20s.mp4")
    src = check_sources([video], 2.0, min_seconds=1.0)[0]
    real, alive, most = frames_mod.iter_video, [], [0]

    def counted(path, max_frames=None):  # the real reader, watched: how many of its frames are alive at once
        for rgb in real(path, max_frames):
            alive.append(weakref.ref(rgb))
            most[0] = max(most[0], sum(r() is not None for r in alive))
            yield rgb

    monkeypatch.setattr(frames_mod, "iter_video", counted)
    res = track_source(src, tmp_path / "t.npz", tmp_path / "c.npz", bank_size=4)
    assert len(res.face_found) == src["frames"] == 50 and res.face_found.all()
    assert 0 < most[0] <= 3, most  # a list of the footage would keep all 50
    with np.load(tmp_path / "c.npz") as z:
        assert z["crops"].shape == (4, 128, 128, 3) and z["frames"].tolist() == [0, 16, 33, 49]
    lm, found, _, _ = detect_all(list(real(video, 50)))
    assert np.array_equal(lm, res.landmarks) and found.all()
    short = detect_all(real(video, 10), total=50)  # a stream shorter than its header said
    assert len(short[0]) == 10 and np.array_equal(short[0], lm[:10])


@pytest.mark.parametrize("side", [256, 720], ids=["searched-whole", "hd-followed"])
def test_two_faces_are_refused(tmp_path, capsys, side):
    """Two faces side by side: at 512x256 every frame is searched whole; at 1440x720 (over FOLLOW_ABOVE) the
    face is followed and every 10th frame searched whole, and the count of two faces is scaled from those."""
    import subprocess

    import imageio_ffmpeg

    video = shared_data("talking_3dmm", "video_silent", "Obama_clip3.mp4")
    two = tmp_path / "two.mp4"
    graph = f"[0:v]scale={side}:{side}[a];[1:v]scale={side}:{side}[b];[a][b]hstack"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-v", "error", "-y", "-i", str(video), "-i",
                    str(video), "-t", "9", "-filter_complex", graph, "-pix_fmt", "yuv420p", str(two)], check=True)
    (tmp_path / "two.wav").symlink_to(shared_data("talking_3dmm", "wav", "Obama_clip3.wav"))
    _refused(["actor", "learn", str(two), "-o", str(tmp_path / "a"), "-q"], capsys, "two or more faces")


def test_portrait_plates_take_the_mouth_from_the_actors_bank(learned, tmp_path):
    """`flowvq render --portrait IMG --actor ACTOR_DIR`: the open mouth's inside comes from their own frames
    (the plates differ from the painted interior there, and only around the mouth)."""
    import cv2

    from flowvq.render.writers import frame_name, read_frame
    from flowvq_shared.channels import CHANNEL_INDEX
    from flowvq_shared.settings import GenerateSettings
    from flowvq_shared.takes import Take

    cap = cv2.VideoCapture(str(shared_data("talking_3dmm", "video_silent", "Obama_clip3.mp4")))
    ok, bgr = cap.read()
    cap.release()
    assert ok
    portrait = tmp_path / "portrait.png"
    cv2.imwrite(str(portrait), bgr)
    exp = np.zeros((12, 64), np.float32)
    exp[:, CHANNEL_INDEX["jawOpen"]] = np.linspace(0.0, 0.6, 12)
    take = Take(expression=exp, pose=np.zeros((12, 6), np.float32), settings=GenerateSettings(fps=25.0))
    take_path = take.save(tmp_path / "takes")
    runs = {}
    for name, extra in (("painted", []), ("bank", ["--actor", str(learned[0])])):
        out = tmp_path / name
        assert main(["render", "--portrait", str(portrait), "--take", str(take_path), "-o", str(out), *extra]) == 0
        runs[name] = [read_frame(out / frame_name(i, "png")) for i in range(12)]
        doc = json.loads((out / "plates.json").read_text())
        assert ("mouth bank" in doc["versions"]["renderer"]) == (name == "bank")
    diff = np.abs(runs["bank"][-1].astype(int) - runs["painted"][-1].astype(int)).sum(2)
    ys, xs = np.nonzero(diff > 30)
    assert len(ys) > 50  # the open mouth looks different
    h = bgr.shape[0]
    assert ys.min() > 0.4 * h  # and nothing above the nose changed
    assert np.array_equal(runs["bank"][0][: int(0.4 * h)], runs["painted"][0][: int(0.4 * h)])


def test_render_actor_refusals(tmp_path, capsys):
    portrait = shared_data("portraits")
    img = sorted(p for p in portrait.iterdir() if p.suffix.lower() in (".jpg", ".png"))[0]
    from flowvq_shared.settings import GenerateSettings
    from flowvq_shared.takes import Take

    take = Take(expression=np.zeros((3, 64), np.float32), pose=np.zeros((3, 6), np.float32),
                settings=GenerateSettings(fps=25.0)).save(tmp_path / "takes")
    _refused(["render", "--portrait", str(img), "--take", str(take), "--actor", str(tmp_path), "-o",
              str(tmp_path / "o")], capsys, "not an actor profile")


def test_head_motion_estimate_is_typical_and_shrunk():
    """The head-motion scale (learn.estimate): the median of 4 s window stds ignores one big turn that
    inflates a plain std, and little footage keeps the ratio near 1 (the default model's prior)."""
    from flowvq.actor.learn import POSE_PRIOR_S, motion_windows, pose_ratio, shrunk_pose_scale, typical_motion

    fps, rng = 25.0, np.random.default_rng(0)
    t = np.arange(int(60 * fps)) / fps
    real = 0.02 * rng.standard_normal((len(t), 3))               # typical motion: std 0.02 per axis
    real[:, 1] += 0.4 * np.clip((t - 30.0) / 2.0, 0.0, 1.0)      # one big 0.4 rad turn of the head at 30 s
    generated = 0.01 * rng.standard_normal((len(t), 3))          # the generator moves half as much
    assert real[:, 1].std() > 5 * 0.02                           # the turn dominates one std over all of it
    typ = typical_motion([real], fps)
    assert np.allclose(typ, 0.02, rtol=0.15), typ                # the median window does not see it
    assert np.allclose(typical_motion([generated], fps), 0.01, rtol=0.15)

    raw, w, scale = shrunk_pose_scale(typ, typical_motion([generated], fps), 60.0)
    assert np.allclose(raw, 2.0, rtol=0.2) and w == 60.0 / (60.0 + POSE_PRIOR_S)
    assert np.allclose(scale, raw ** w) and np.all((scale > 1.5) & (scale < 2.0))
    _, w5, scale5 = shrunk_pose_scale(typ, typical_motion([generated], fps), 5.0)
    assert w5 < w and np.all(np.abs(np.log(scale5)) < 0.5 * np.abs(np.log(scale)))  # 5 s: closer to 1
    assert np.allclose(shrunk_pose_scale([0.02, 0.0, 0.02], [0.0, 0.01, 0.02], 60.0)[0], 1.0)  # no motion: no evidence

    # windows: half-overlapping 4 s windows over the track; a track shorter than one window is one window
    assert motion_windows(real, fps).shape == (29, 3) and motion_windows(real[:50], fps).shape == (1, 3)
    mean, axes = pose_ratio([generated], [real], fps)             # the fit's / measure's figure
    assert np.allclose(axes, 0.5, rtol=0.2) and abs(mean - np.mean(axes)) < 1e-3


def test_footage_at_two_frame_rates_is_measured_in_seconds():
    """An interview at 30 fps and a shoot at 24 fps learn one person: the head-motion windows are
    as many seconds in both, and their lips' lead over the sound is one time, not a frame count."""
    from flowvq.actor.learn import _lead_frames, pose_ratio, typical_motion

    def drift(fps):  # the head drifts 0.1 rad/s: a window's std is its length in seconds x 0.1 / sqrt(12)
        return 0.1 * np.tile(np.arange(int(40 * fps))[:, None] / fps, (1, 3))

    one = typical_motion([drift(24.0)], 24.0)
    assert np.allclose(typical_motion([drift(24.0), drift(30.0)], [24.0, 30.0]), one, rtol=0.02)
    assert not np.allclose(typical_motion([drift(24.0), drift(30.0)], 24.0), one, rtol=0.05)  # the old mistake
    assert abs(pose_ratio([drift(24.0), drift(30.0)], [drift(24.0), drift(30.0)], [24.0, 30.0])[0] - 1.0) < 1e-6

    rng = np.random.default_rng(1)
    loud_s = np.convolve(rng.standard_normal(4000), np.ones(40) / 40, "same")  # sound at 1 kHz, 4 s
    curves = []
    for fps in (24.0, 30.0):
        t = np.arange(int(4 * fps)) / fps
        loud = np.interp(t, np.arange(4000) / 1000, loud_s)
        mouth = np.interp(t + 0.125, np.arange(4000) / 1000, loud_s)  # the lips run 125 ms ahead
        curves.append((np.tile(mouth, 5), np.tile(loud, 5), fps))
    assert _lead_frames(curves, 24.0) == 3 and _lead_frames(curves, 30.0) in (4, 5)  # 0.125 s = 3 / 3.75 frames


def test_held_out_selection_picks_and_is_honoured(tmp_path):
    """The select stage's choice (learn.choose_candidate over held-out lip-sync r) and what a profile
    does with it (ActorProfile.adapt, the model it loads; strict; a profile without it applies everything)."""
    from flowvq.actor import ActorError, ActorProfile
    from flowvq.actor.learn import CANDIDATES, MOUTH_PRIOR_S, candidate_settings, choose_candidate
    from flowvq.actor.profile import MOUTH_INDEX

    order = [c[0] for c in CANDIDATES]
    assert order[0] == "default" and order[-1] == "fine-tuned + lead + mouth"
    # Obama_clip2's held-out r: the corrections hurt, the default wins
    scores = {"default": 0.29, "fine-tuned": 0.27, "fine-tuned + lead": 0.2, "fine-tuned + mouth (shrunk)": 0.22,
              "fine-tuned + lead + mouth (shrunk)": 0.18, "fine-tuned + mouth": 0.17, "fine-tuned + lead + mouth": 0.15}
    assert choose_candidate(scores, order) == "default"
    assert choose_candidate({**scores, "fine-tuned + lead": 0.35}, order) == "fine-tuned + lead"
    assert choose_candidate({**scores, "fine-tuned": 0.29}, order) == "default"            # a tie: the simpler
    assert choose_candidate({**scores, "default": float("nan")}, order) == "fine-tuned"     # NaN: the worst
    with pytest.raises(ValueError):
        choose_candidate({}, order)
    w = 20.0 / (20.0 + MOUTH_PRIOR_S)
    sets = {c["candidate"]: c for c in candidate_settings(w)}
    assert sets["fine-tuned + mouth (shrunk)"] == {"candidate": "fine-tuned + mouth (shrunk)", "model": "actor",
                                                   "lead_shift": False, "mouth_scale_power": 0.5, "voice_weight": 0.0}
    assert sets["default"]["model"] == "default" and sets["fine-tuned + lead + mouth"]["mouth_scale_power"] == 1.0

    est = {"lead_shift_s": 0.08, "mouth_scale": [2.0] * 16, "mouth_centre": [0.0] * 16,
           "generated_mouth_centre": [0.0] * 16, "pose_scale": [2.0, 2.0, 2.0, 1.0, 1.0, 1.0],
           "neutral_expression": [0.0] * 64}
    for name in ("fcg.pt", "bank.npz"):
        (tmp_path / name).write_bytes(b"x")
    doc = {"format": 1, "kind": "flowvq-actor", "id": "a", "files": {"fcg": "fcg.pt", "bank": "bank.npz"},
           "estimated": est}
    rng = np.random.default_rng(0)
    exp, pose = rng.standard_normal((50, 64)).astype(np.float32), rng.standard_normal((50, 6)).astype(np.float32)

    def adapt(selected):
        e = dict(est, selected=selected) if selected else est
        (tmp_path / "actor.json").write_text(json.dumps({**doc, "estimated": e}))
        prof = ActorProfile.load(tmp_path)
        return prof, prof.adapt(exp, pose, 25.0)

    old, (e_old, p_old) = adapt(None)  # no selection: lead 2 frames, scale 2, pose 2 (as always)
    assert not old.uses_default_model
    assert np.allclose(e_old[:-2, MOUTH_INDEX], 2 * exp[2:, MOUTH_INDEX])
    prof, (e, p) = adapt(sets["default"])
    assert prof.uses_default_model and np.allclose(e, exp) and np.allclose(p, p_old)  # head motion still theirs
    _, (e, _) = adapt(sets["fine-tuned + mouth (shrunk)"])
    assert np.allclose(e[:, MOUTH_INDEX], 2 ** 0.5 * exp[:, MOUTH_INDEX], atol=1e-5)
    _, (e, _) = adapt(sets["fine-tuned + lead"])
    assert np.allclose(e[:-2, MOUTH_INDEX], exp[2:, MOUTH_INDEX])
    # the head scale is the one measured against the model that made the take: the shipped model moves its
    # head differently from fcg.pt, so a profile that chose it scales by pose_scale_default
    est["pose_scale_default"] = [0.5, 0.5, 0.5, 1.0, 1.0, 1.0]
    prof, (_, p) = adapt(sets["default"])
    mean = pose.mean(0, keepdims=True)
    assert np.allclose(p[:, :3], (mean + 0.5 * (pose - mean))[:, :3], atol=1e-5)
    assert np.allclose(prof.adapt(exp, pose, 25.0, default_model=False)[1], p_old)  # fcg.pt's takes (dubbing)
    _, (_, p) = adapt(sets["fine-tuned"])
    assert np.allclose(p, p_old)
    est["pose_scale_default"] = [0.5, 0.5]
    (tmp_path / "actor.json").write_text(json.dumps({**doc, "estimated": est}))
    with pytest.raises(ActorError, match="pose_scale_default must be 6 numbers"):
        ActorProfile.load(tmp_path)
    del est["pose_scale_default"]
    for bad in ({"model": "other", "lead_shift": True, "mouth_scale_power": 1.0},
                {"model": "actor", "lead_shift": 1, "mouth_scale_power": 1.0},
                {"model": "actor", "lead_shift": True, "mouth_scale_power": 2.0}):
        (tmp_path / "actor.json").write_text(json.dumps({**doc, "estimated": dict(est, selected=bad)}))
        with pytest.raises(ActorError, match="estimated.selected"):
            ActorProfile.load(tmp_path)
