"""SER Lab: speech emotion recognition with center loss (Dai et al., ICASSP 2019).

A plain Python package (no Streamlit): data, features, model, losses, trainer, runs,
analysis, inference and the command line (`python -m ser_lab ...`).
"""

__version__ = "0.1.0"

# Bumped whenever the on-disk layout of a run folder changes incompatibly.
RUN_FORMAT_VERSION = 1
