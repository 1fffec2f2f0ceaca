"""The experiments layer: sweeps, their report, the background launcher, the demo runs and the
quick start. Imports base, data, analysis, learn and itself."""
