"""The attack suite's cases (`cases.build`), built from TOFU: used by `bench/attacks/run.py` against a scripted
model, and by `guard ab --attacks` against real endpoints."""
