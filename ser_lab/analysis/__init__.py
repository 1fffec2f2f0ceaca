"""The analysis layer: maps (PCA, UMAP), discriminability, statistics and run comparison, read
from run folders with numpy only (no torch). Imports the base modules and itself."""
