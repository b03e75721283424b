"""Evaluation against reality: lip-sync on real clips (with a loudness baseline, a phone baseline
and a measurement ceiling), take diversity, pose statistics, emotion recognisability."""
