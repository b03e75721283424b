"""Batch generation on Ray (issue #17): a manifest of lines -> OUT/<id>/ takes and plates.

- manifest.py: read and validate a manifest (no Ray)
- line.py: run one line into OUT/<id>/ with jobs.generate / Take.save / write_plates (no Ray)
- pool.py: WorkerPool, Ray actors each holding one jobs.Models (reusable, e.g. by a server)
- run.py: run_batch (skip finished lines, dispatch, OUT/batch.json); cli.py: `flowvq batch`
"""
