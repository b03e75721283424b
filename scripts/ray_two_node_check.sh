#!/bin/bash
# issue #17 must-show by hand: a two-node loopback cluster, flowvq batch --address, re-run, generate equality
set -u
# Writes film.csv from ../shared/data (4 held-out lines: several emotions and emotion keys, 2 takes each,
# one with a portrait), runs it on a head (127.0.0.2) + one worker node (127.0.0.3) through
# `flowvq batch --address`, re-runs it, and compares two lines with `flowvq generate`.
cd "$(dirname "$0")"/.. && REPO=$PWD && WORK=${WORK:-$(mktemp -d /tmp/fvqfilm.XXXX)} && cd "$WORK"
BIN=$REPO/.venv/bin
export RAY_TMPDIR=$(mktemp -d /tmp/fvqf.XXXX) RAY_AUTH_MODE=token RAY_USAGE_STATS_ENABLED=0
export RAY_AUTH_TOKEN_PATH=$RAY_TMPDIR/token; openssl rand -hex 32 > $RAY_AUTH_TOKEN_PATH
PORT=46391
D=$REPO/../shared/data
cat > film.csv <<CSV
id,audio,emotion,intensity,takes,seed,actor,portrait,video
radio31,$D/speech/hdtf_RD_Radio31_000.wav,angry,1.0,2,7,,,
radio34,$D/speech/hdtf_RD_Radio34_002.wav,sad,0.8,2,7,,,
may,$D/video_with_audio/theresa_may_5s.mp4,happy,1.2,2,11,,$D/portraits/sadtalker_happy.png,
face4,$D/video_with_audio/videoretalking_face4_woman_bluebg_7s.mp4,"surprised:0,neutral:3",1.0,2,5,,,
CSV
$BIN/ray start --head --node-ip-address 127.0.0.2 --port $PORT --include-dashboard=false --num-cpus 1 --temp-dir $RAY_TMPDIR --disable-usage-stats > head.log 2>&1
$BIN/ray start --address 127.0.0.2:$PORT --node-ip-address 127.0.0.3 --num-cpus 1 --temp-dir $RAY_TMPDIR --disable-usage-stats > node.log 2>&1
rm -rf OUT
/usr/bin/time -f "first run %e s" $BIN/flowvq batch film.csv -o OUT --address 127.0.0.2:$PORT -q; echo "exit $?"
cp OUT/batch.json first.json
/usr/bin/time -f "re-run %e s" $BIN/flowvq batch film.csv -o OUT --address 127.0.0.2:$PORT -q; echo "exit $?"
# what `ray stop` does, limited to the processes of this temp dir
pkill -f "$RAY_TMPDIR"; sleep 3; pkill -9 -f "$RAY_TMPDIR"
python3 - <<'PY'
import json
rec = json.load(open("first.json"))
print("nodes", rec.get("nodes"), "workers", rec.get("workers"))
for l in rec["lines"]:
    print(l["id"], l["status"], l.get("node_ip"), l.get("seconds"), l.get("error"))
PY
# the same lines through flowvq generate: equal takes
$BIN/flowvq generate $D/speech/hdtf_RD_Radio31_000.wav --emotion angry --intensity 1.0 --takes 2 --seed 7 -o GEN/radio31 -q
$BIN/flowvq generate $D/video_with_audio/videoretalking_face4_woman_bluebg_7s.mp4 --emotion "surprised:0,neutral:3" --takes 2 --seed 5 -o GEN/face4 -q
$BIN/python - <<'PY'
import numpy as np
for i in ("radio31", "face4"):
    for k in (1, 2):
        a, b = np.load(f"OUT/{i}/take_{k}.npz"), np.load(f"GEN/{i}/take_{k}.npz")
        print(i, k, "max |batch - generate|", float(max(np.abs(a["expression"] - b["expression"]).max(), np.abs(a["pose"] - b["pose"]).max())))
PY
ls OUT/may/plates | head -3; ls OUT/may/plates | wc -l
