"""Measuring the forgetting: the TOFU evaluation, a memorizing reference model, and A/B reports."""
