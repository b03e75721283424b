"""All measurement, none of it imported by inference: lip-sync on real clips (with a loudness
baseline, a phone baseline and a measurement ceiling), take diversity, pose statistics, emotion
recognisability (`flowvq eval`: run.py); the tracker against fitted Basel coefficients
(tracker.py); plates against real video (plates.py, faces.py); the corpus studies
(real_check.py, fit_jaw.py, timing_check.py, emotion_check.py); docs/evaluation.md from its parts
(assemble.py). dlib comes from flowvq.tracker.dlib_models; the lip gap is mouth.lip_gap."""
