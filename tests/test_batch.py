"""`flowvq batch` on a real Ray, loopback only (127.0.0.2/127.0.0.3), every wait bounded.

One local-Ray batch (module fixture) covers: takes equal `flowvq generate`'s for the same seed, a
bad audio line failing alone, a worker killed mid-line (test hook) being retried, a portrait's
plates. Then: a re-run skips every line without starting Ray, a two-node cluster (`ray start
--head` + `ray start --address`) runs lines on both nodes. Ray's token auth is on (a token file in
the test's own temp dir), and every Ray process a test started is ended by its pid at teardown.
"""
from __future__ import annotations

import dataclasses
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from flowvq_shared.takes import Take
from raycluster import end_ray, free_port

BIN = Path(sys.executable).parent
FLOWVQ, RAY = str(BIN / "flowvq"), str(BIN / "ray")
RUN_TIMEOUT = 240  # one batch on 2 busy cores: ~30 s; never wait forever

pytestmark = pytest.mark.timeout(600)

LINES = {  # id: (text, emotion, intensity, takes, seed)
    "a1": ("Hello there, how are you today?", "happy", 1.0, 2, 3),
    "b1": ("I cannot believe it.", "sad", 0.8, 2, 5),
}


# ---- fixtures ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def work(tmp_path_factory):
    from flowvq.demo import portrait, speak

    d = tmp_path_factory.mktemp("batch")
    for line_id, (text, *_rest) in LINES.items():
        speak(text, d / f"{line_id}.wav")
    (d / "bad.wav").write_text("this is not audio\n")
    portrait(d / "portrait.png")
    ray_root = tempfile.mkdtemp(prefix="fvqr", dir="/tmp")  # short: Ray's unix socket paths
    token = Path(ray_root) / "token"
    token.write_text(secrets.token_hex(32) + "\n")
    env = dict(os.environ, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token),
               RAY_TMPDIR=ray_root, RAY_USAGE_STATS_ENABLED="0", PYTHONUNBUFFERED="1",
               RAY_worker_niceness="0")  # Ray's default nice 15 starves its workers on a busy machine
    try:
        yield {"dir": d, "env": env, "ray_root": ray_root}
    finally:
        end_ray(ray_root)
        shutil.rmtree(ray_root, ignore_errors=True)


def write_manifest(path: Path, rows: list[dict]) -> Path:
    cols = ["id", "audio", "emotion", "intensity", "takes", "seed", "actor", "portrait", "video"]
    lines = [",".join(cols)] + [",".join(str(r.get(c, "")) for c in cols) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def good_rows(d: Path) -> list[dict]:
    return [{"id": i, "audio": f"{i}.wav", "emotion": e, "intensity": x, "takes": n, "seed": s}
            for i, (_t, e, x, n, s) in LINES.items()]


def batch(env: dict, *args: str) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.perf_counter()
    proc = subprocess.run([FLOWVQ, "batch", *args], capture_output=True, text=True, env=env,
                          timeout=RUN_TIMEOUT)
    return proc, time.perf_counter() - t0


@pytest.fixture(scope="module")
def first(work):
    """Local Ray: a1, b1, a bad audio line, a portrait line; the worker running a1 dies once."""
    d = work["dir"]
    rows = good_rows(d) + [
        {"id": "bad", "audio": "bad.wav", "emotion": "angry", "takes": 1, "seed": 0},
        {"id": "p1", "audio": "b1.wav", "emotion": "surprised", "takes": 1, "seed": 7,
         "portrait": "portrait.png"}]
    manifest = write_manifest(d / "first.csv", rows)
    marker = d / "killed_a1"
    env = dict(work["env"], FLOWVQ_BATCH_TEST_KILL_ONCE=f"a1:{marker}")
    proc, seconds = batch(env, str(manifest), "-o", str(d / "out"), "-q")
    rec = json.loads((d / "out" / "batch.json").read_text())
    return {"proc": proc, "seconds": seconds, "batch": rec, "lines": {r["id"]: r for r in rec["lines"]},
            "out": d / "out", "marker": marker}


@pytest.fixture(scope="module")
def generated(work):
    """`flowvq generate` for the same lines (the reference), in this process."""
    from flowvq.cli import main

    d, out = work["dir"], {}
    for i, (_t, e, x, n, s) in LINES.items():
        assert main(["generate", str(d / f"{i}.wav"), "--emotion", e, "--intensity", str(x),
                     "--takes", str(n), "--seed", str(s), "-o", str(d / "gen" / i), "-q"]) == 0
        out[i] = d / "gen" / i
    return out


def assert_same_takes(batch_dir: Path, gen_dir: Path, n: int) -> None:
    assert sorted(p.name for p in batch_dir.glob("take_*")) == sorted(p.name for p in gen_dir.glob("take_*"))
    for k in range(1, n + 1):
        a, b = Take.load(batch_dir / f"take_{k}.npz"), Take.load(gen_dir / f"take_{k}.npz")
        assert np.abs(a.expression - b.expression).max() <= 1e-5
        assert np.abs(a.pose - b.pose).max() <= 1e-5
        assert a.provenance() == b.provenance()


# ---- (a) takes equal `flowvq generate`'s; a re-run skips everything, fast --------------------------
def test_batch_takes_equal_generate(first, generated):
    assert first["proc"].returncode == 1, first["proc"].stderr[-3000:]  # the bad line failed
    assert "batch: " in first["proc"].stdout
    for i, (*_x, n, _s) in LINES.items():
        rec = first["lines"][i]
        assert rec["status"] == "done", rec
        assert rec["node_ip"] == "127.0.0.2" and rec["seconds"] > 0
        assert_same_takes(first["out"] / i, generated[i], n)
        done = json.loads((first["out"] / i / "done.json").read_text())
        assert done["takes"] == [f"take_{k}.npz" for k in range(1, n + 1)]
        assert sorted(p.name for p in (first["out"] / i).iterdir()) == sorted(
            ["done.json"] + [f"take_{k}.{e}" for k in range(1, n + 1) for e in ("npz", "csv")])
    assert first["batch"]["address"].startswith("local (127.0.0.2)")


def test_rerun_skips_finished_lines_without_ray(work, first):
    d = work["dir"]
    manifest = write_manifest(d / "again.csv", good_rows(d))
    before = {p: p.stat().st_mtime_ns for p in (first["out"] / "a1").iterdir()}
    proc, seconds = batch(work["env"], str(manifest), "-o", str(first["out"]), "-q")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rec = json.loads((first["out"] / "batch.json").read_text())
    assert [r["status"] for r in rec["lines"]] == ["skipped", "skipped"]
    assert rec["workers"] == 0 and rec["address"] is None  # Ray was not even started
    assert {p: p.stat().st_mtime_ns for p in (first["out"] / "a1").iterdir()} == before
    assert seconds < 15, f"a re-run with nothing to do took {seconds:.1f} s"


# ---- (b) a bad line fails with its error; the others finish ---------------------------------------
def test_bad_line_fails_alone(first):
    bad = first["lines"]["bad"]
    assert bad["status"] == "failed"
    assert "not an audio file" in bad["error"] and "bad.wav" in bad["error"]
    assert not (first["out"] / "bad").exists()  # nothing written, no empty folder
    assert "failed: bad (line 4)" in first["proc"].stderr
    assert first["batch"]["summary"]["done"] + first["batch"]["summary"]["failed"] == 4


# ---- (c) a worker killed mid-line: Ray restarts it and the line runs again -------------------------
def test_killed_worker_is_retried(first, generated):
    assert first["marker"].read_text().startswith("killed pid")  # the hook did kill a worker
    a1 = first["lines"]["a1"]
    assert a1["status"] == "done" and a1["attempts"] == 2, a1
    assert_same_takes(first["out"] / "a1", generated["a1"], 2)  # the retried line is exact


def test_portrait_line_renders_plates(first):
    p1 = first["lines"]["p1"]
    assert p1["status"] == "done", p1
    take = Take.load(first["out"] / "p1" / "take_1.npz")
    plates = json.loads((first["out"] / "p1" / "plates" / "plates.json").read_text())
    assert plates["complete"] and plates["frames"] == take.n_frames
    assert len(list((first["out"] / "p1" / "plates").glob("frame_*.png"))) == take.n_frames


# ---- manifest validation: one error line, exit 2, nothing started ----------------------------------
@pytest.mark.parametrize("rows, expect", [
    ([{"id": "x", "audio": "a1.wav"}, {"id": "X", "audio": "b1.wav"}], "is used again"),
    ([{"id": "../x", "audio": "a1.wav"}], "cannot name a folder"),
    ([{"id": "x", "audio": "nowhere.wav"}], "shared storage"),
    ([{"id": "x", "audio": "a1.wav", "actor": "alice"}], "not supported yet"),
    ([{"id": "x", "audio": "a1.wav", "video": "v.mp4"}], "not supported yet"),
    ([{"id": "x", "audio": "a1.wav", "emotion": "grumpy"}], "line 2 (id 'x')"),
    ([{"id": "x", "audio": "a1.wav", "takes": "two"}], "field 'takes' must be an integer"),
])
def test_bad_manifest_is_refused_up_front(work, tmp_path, capsys, rows, expect):
    from flowvq.cli import main

    d = work["dir"]
    rows = [{**r, "audio": str(d / r["audio"])} for r in rows]
    manifest = write_manifest(tmp_path / "m.csv", rows)
    assert main(["batch", str(manifest), "-o", str(tmp_path / "out"), "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and expect in err[0], err
    assert not (tmp_path / "out").exists()


def test_jsonl_manifest_and_changed_line_is_redone(work, tmp_path):
    from flowvq.batch.line import write_json
    from flowvq.batch.manifest import read_manifest
    from flowvq.batch.run import plan

    d = work["dir"]
    m = tmp_path / "m.jsonl"
    m.write_text(json.dumps({"id": "a1", "audio": str(d / "a1.wav"), "emotion": "happy", "takes": 2,
                             "seed": 3, "temperature": 0.5}) + "\n")
    (line,) = read_manifest(m)
    assert line.generate_settings.temperature == 0.5 and line.generate_settings.takes == 2
    (tmp_path / "out" / "a1").mkdir(parents=True)
    write_json(tmp_path / "out" / "a1" / "done.json", {"spec": line.spec()})
    assert plan([line], tmp_path / "out")[0][0]["status"] == "skipped"
    changed = dataclasses.replace(line, settings={**line.settings, "seed": 4})
    recs, todo = plan([changed], tmp_path / "out")
    assert recs[0]["status"] == "pending" and todo == [changed] and "changed" in recs[0]["note"]


# ---- (d) a two-node cluster on loopback: both nodes run lines --------------------------------------
def test_two_node_cluster(work, generated):
    d, root = work["dir"], tempfile.mkdtemp(prefix="fvqc", dir="/tmp")
    env = dict(work["env"], RAY_TMPDIR=root)
    port = free_port("127.0.0.2")
    try:
        head = subprocess.run(
            [RAY, "start", "--head", "--node-ip-address", "127.0.0.2", "--port", str(port),
             "--include-dashboard=false", "--num-cpus", "1", "--temp-dir", root,
             "--disable-usage-stats"], capture_output=True, text=True, env=env, timeout=90)
        assert head.returncode == 0, head.stderr[-3000:]
        node = subprocess.run(
            [RAY, "start", "--address", f"127.0.0.2:{port}", "--node-ip-address", "127.0.0.3",
             "--num-cpus", "1", "--temp-dir", root, "--disable-usage-stats"],
            capture_output=True, text=True, env=env, timeout=90)
        assert node.returncode == 0, node.stderr[-3000:]
        manifest = write_manifest(d / "cluster.csv", good_rows(d))
        proc, _s = batch(env, str(manifest), "-o", str(d / "cluster_out"), "--address",
                         f"127.0.0.2:{port}", "-q")
        assert proc.returncode == 0, proc.stderr[-3000:]
        rec = json.loads((d / "cluster_out" / "batch.json").read_text())
        assert rec["workers"] == 2
        assert sorted(r["node_ip"] for r in rec["lines"]) == ["127.0.0.2", "127.0.0.3"]
        assert sorted(rec["nodes"]) == ["127.0.0.2", "127.0.0.3"]
        for i, (*_x, n, _s2) in LINES.items():
            assert_same_takes(d / "cluster_out" / i, generated[i], n)
    finally:
        end_ray(root)  # what `ray stop` does on each node, limited to the processes started here
        shutil.rmtree(root, ignore_errors=True)
