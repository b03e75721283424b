"""Assemble docs/evaluation.md from the parts each evaluation command writes.

    .venv/bin/python -m flowvq.evaluate.assemble [--docs DOCS]

Parts (each names the command that produced its numbers): docs/evaluation_fcg.md (`flowvq eval`),
docs/evaluation_tracker.md (`python -m flowvq.evaluate.tracker`), docs/evaluation_plates.md
(`pytest tests/test_plates.py -s`, `python -m flowvq.evaluate.plates`), docs/evaluation_dub.md
(`python -m flowvq.dub.measure`), docs/evaluation_emotion.md (`python -m flowvq.evaluate.emotion_measure`),
docs/evaluation_emotion_lipsync.md (`... emotion_measure --lipsync-only`), docs/evaluation_voice.md
(`python -m flowvq.evaluate.voice_check`), docs/evaluation_actor.md (`python -m flowvq.actor.measure`,
written up by hand). Top-level sections written
into evaluation.md by hand (not a part's) are kept after the parts.
"""
from __future__ import annotations

import argparse
from pathlib import Path

DOCS = Path(__file__).resolve().parents[2] / "docs"  # the repository's docs/ (backend/evaluate/assemble.py)
PARTS = (("FCG: lip-sync, takes, pose, emotion", "evaluation_fcg.md"),
         ("Tracker", "evaluation_tracker.md"),
         ("Plates", "evaluation_plates.md"),
         ("Dubbing", "evaluation_dub.md"),
         ("Emotion from real faces", "evaluation_emotion.md"),
         ("Emotion: lip-sync over more takes", "evaluation_emotion_lipsync.md"),
         ("Voice map", "evaluation_voice.md"),
         ("Actors", "evaluation_actor.md"))
HEAD = """# Evaluation

Quality measured against real recordings that nobody on this project made (`../shared/data`:
talking-head videos with audio, clips with independently fitted Basel 3DMM coefficients, one
MEAD actor in 8 emotions, portraits, the ICT-FaceKit rig). Every number below names the command
that produced it and the machine it ran on; shortfalls are reported as measured. This page is
assembled from the parts by `python -m flowvq.evaluate.assemble`; edit the parts, not this page.

Contents: {toc}
"""


def demote(text: str) -> str:
    """Shift every heading one level down so each part nests under its section."""
    out = []
    fence = False
    for line in text.splitlines():
        if line.startswith("```"):
            fence = not fence
        out.append("#" + line if line.startswith("#") and not fence else line)
    return "\n".join(out)


def extra_sections(text: str, titles) -> list[str]:
    """Top-level (`## `) sections of an existing evaluation.md that are not a part's (written by hand into
    this page): kept, in their order, after the parts, so re-assembling never drops them."""
    sections, cur, fence = [], None, False
    for line in text.splitlines():
        if line.startswith("```"):
            fence = not fence
        if not fence and line.startswith("## "):
            cur = [line]
            sections.append(cur)
        elif cur is not None:
            cur.append(line)
    return ["\n".join(sec).strip() + "\n" for sec in sections if sec[0][3:].strip() not in titles]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=Path, default=DOCS, help=f"the docs folder (default {DOCS})")
    docs = ap.parse_args(argv).docs
    toc = ", ".join(f"[{title}](#{title.lower().replace(':', '').replace(',', '').replace(' ', '-')})"
                    for title, _ in PARTS)
    body = [HEAD.format(toc=toc)]
    for title, name in PARTS:
        path = docs / name
        text = path.read_text() if path.exists() else "_not measured yet_"
        lines = text.splitlines()
        if lines and lines[0].startswith("# "):
            lines = lines[1:]  # the part's own title is replaced by the section title
        body.append(f"## {title}\n\n(from `docs/{name}`)\n\n" + demote("\n".join(lines)).strip() + "\n")
    page = docs / "evaluation.md"
    kept = extra_sections(page.read_text(), {t for t, _ in PARTS}) if page.exists() else []
    for sec in kept:
        print(f"kept hand-written section: {sec.splitlines()[0]}")
    page.write_text("\n".join(body + kept))
    print(docs / "evaluation.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
