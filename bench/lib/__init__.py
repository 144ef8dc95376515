"""What the benchmarks share. Entry scripts (`python -m bench.X`) import from here and from bench.procs, never
from one another."""
