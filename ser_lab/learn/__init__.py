"""The learning layer: model, losses, objectives, the trainer and its evaluation, the 2-D toy,
the classical baseline and cross-corpus scoring. Imports base, data, analysis and itself."""
