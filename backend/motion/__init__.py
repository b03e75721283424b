"""Face motion besides speech, authored in readable terms and shared by inference and training:
the 9 emotion styles (emotion.py: offsets, dynamics, blink rate, head scale) and blinks and
gaze (eyes.py). The generator's blinks (fcg/blinks.py) and the starter corpus both use them."""
