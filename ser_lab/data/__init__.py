"""The data layer: audio reading, features, corpora and their adapters, splits. Imports only the
base modules (errors, paths, fileio, procs, choices, runs) and itself."""
