"""Speech as the mouth sees it: phone labels (phonemes.py), pocketsphinx recognition and forced
alignment (align.py), viseme targets and Cohen-Massaro coarticulation (visemes.py).

Shared by inference (phone guidance) and training (the starter corpus); imports nothing else of
flowvq but errors, and no torch."""
