"""Training-only code: the starter corpus, the dataset format, the FCG and VQIG training loops
and their commands (`flowvq corpus build`, `flowvq dataset build`, `flowvq train fcg|vqig`).

Inference (fcg model and generator, generate, render, tracker, server) never imports this
package (tests/test_architecture.py checks it)."""
