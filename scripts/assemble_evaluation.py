"""Assemble docs/evaluation.md from the parts each evaluation command writes.

    .venv/bin/python scripts/assemble_evaluation.py

Parts (each names the command that produced its numbers): docs/evaluation_fcg.md (`flowvq eval`),
docs/evaluation_tracker.md (`python -m flowvq.tracker.evaluate`), docs/evaluation_plates.md
(`pytest tests/test_plates.py -s`, `python -m flowvq.render.evaluate`).
"""
from __future__ import annotations

from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"
PARTS = (("FCG: lip-sync, takes, pose, emotion", "evaluation_fcg.md"),
         ("Tracker", "evaluation_tracker.md"),
         ("Plates", "evaluation_plates.md"))
HEAD = """# Evaluation

Quality measured against real recordings that nobody on this project made (`../shared/data`:
talking-head videos with audio, clips with independently fitted Basel 3DMM coefficients, one
MEAD actor in 8 emotions, portraits, the ICT-FaceKit rig). Every number below names the command
that produced it and the machine it ran on; shortfalls are reported as measured. This page is
assembled from the parts by `scripts/assemble_evaluation.py`; edit the parts, not this page.

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


def main() -> int:
    toc = ", ".join(f"[{title}](#{title.lower().replace(':', '').replace(',', '').replace(' ', '-')})"
                    for title, _ in PARTS)
    body = [HEAD.format(toc=toc)]
    for title, name in PARTS:
        path = DOCS / name
        text = path.read_text() if path.exists() else "_not measured yet_"
        lines = text.splitlines()
        if lines and lines[0].startswith("# "):
            lines = lines[1:]  # the part's own title is replaced by the section title
        body.append(f"## {title}\n\n(from `docs/{name}`)\n\n" + demote("\n".join(lines)).strip() + "\n")
    (DOCS / "evaluation.md").write_text("\n".join(body))
    print(DOCS / "evaluation.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
