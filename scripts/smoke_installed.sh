#!/usr/bin/env bash
# Smoke test of the installed package, not the checkout (run by .ci/run after `make test`):
#   1. build the wheel from a clean copy of the sources (what a clone holds),
#   2. install it into a fresh venv (no pip; the dependencies are reused from .venv by a .pth
#      line, so nothing is downloaded),
#   3. from another folder: `flowvq generate <espeak-ng wav> -o takes`, then `flowvq serve` and
#      a raw TCP client that must read the hello frame within 1 s of `listening on`.
# Usage: scripts/smoke_installed.sh [VENV]   (default .venv). Exit 0 = all good.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
DEPS_VENV="$(cd "${1:-$REPO/.venv}" && pwd)"
PY="$DEPS_VENV/bin/python"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/flowvq-smoke.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
now() { date +%s.%N; }
say() { echo "smoke: $*"; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

t0=$(now)
mkdir -p "$WORK/src" "$WORK/dist" "$WORK/elsewhere"
(cd "$REPO" && git ls-files -z -co --exclude-standard -- backend shared pyproject.toml setup.py README.md \
   | while IFS= read -r -d '' f; do [ -f "$f" ] && printf '%s\0' "$f"; done \
   | xargs -0 cp --parents -t "$WORK/src")
"$PY" -m pip wheel -q --no-deps --no-build-isolation -w "$WORK/dist" "$WORK/src" >/dev/null
WHEEL=$(ls "$WORK"/dist/flowvq-*.whl)
t1=$(now); say "built $(basename "$WHEEL") ($("$PY" -c 'import sys,zipfile; print(len(zipfile.ZipFile(sys.argv[1]).namelist()))' "$WHEEL") files) in $(secs "$t0" "$t1") s"

ENV="$WORK/venv"
"$PY" -m venv --without-pip "$ENV"
PURELIB=$("$ENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
"$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' > "$PURELIB/flowvq_deps.pth"
"$PY" -m pip --python "$ENV/bin/python" install -q --no-deps --no-index --ignore-installed "$WHEEL"
t2=$(now); say "installed into a fresh venv in $(secs "$t1" "$t2") s"

cd "$WORK/elsewhere"
unset PYTHONPATH VIRTUAL_ENV
where=$("$ENV/bin/python" -c 'import flowvq; print(flowvq.__file__)')
case "$where" in "$ENV"/*) say "flowvq imports from the install: $where";;
  *) echo "smoke: FAIL flowvq imports from $where, not from the installed copy"; exit 1;; esac

espeak-ng -w speech.wav "Bob bought a big blue map, and we will open every window today."
t3=$(now)
"$ENV/bin/flowvq" generate speech.wav --takes 2 -q -o takes
[ -f takes/take_1.npz ] && [ -f takes/take_2.npz ] || { echo "smoke: FAIL no takes written"; ls -la takes; exit 1; }
t4=$(now); say "flowvq generate (2 takes) from the install in $(secs "$t3" "$t4") s"

"$ENV/bin/python" - "$ENV/bin/flowvq" <<'PYEOF'
import os, select, socket, subprocess, sys, time
import msgpack
from flowvq_shared import protocol as p

env = dict(os.environ, PYTHONUNBUFFERED="1")
t0 = time.monotonic()
proc = subprocess.Popen([sys.argv[1], "serve", "--port", "0", "--no-zeroconf"],
                        stdout=subprocess.PIPE, text=True, env=env)
try:
    ready, _, _ = select.select([proc.stdout], [], [], 60)
    line = proc.stdout.readline().strip() if ready else ""
    t_listen = time.monotonic()
    assert line.startswith("listening on "), f"server did not start: {line!r}"
    port = int(line.rsplit(":", 1)[1])
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    hello = p.recv_frame(s)
    t_hello = time.monotonic()
    assert hello["type"] == "hello", hello
    took = t_hello - t_listen
    print(f"smoke: serve: `listening on` {t_listen - t0:.2f} s after start, hello {took * 1000:.0f} ms "
          f"later (loading {hello['loading']})")
    assert took < 1.0, f"hello took {took:.2f} s after `listening on` (limit 1 s)"
    p.send_frame(s, {"type": "shutdown", "id": 1})
    assert p.recv_frame(s)["type"] == "result"
    s.close()
    rc = proc.wait(60)
    assert rc == 0, f"server exited with {rc}"
finally:
    if proc.poll() is None:
        proc.kill()
PYEOF
say "OK in $(secs "$t0" "$(now)") s"
