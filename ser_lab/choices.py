"""The names some run settings may take, spelled once. Kept apart from the modules that use
them (the torch-importing trainer, the scikit-learn-importing splits) so the command line can
offer them as choices without importing either."""

# Split protocols (ser_lab.data.splits.make_folds): the paper's stratified 5-fold, speaker-
# independent k-fold, IEMOCAP leave-one-session-out.
PROTOCOLS: tuple[str, ...] = ("paper", "speaker", "session")

# Devices (ser_lab.learn.trainer.select_device): "auto" is CUDA, then Apple MPS, then CPU.
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda", "mps")

# Feature kinds (ser_lab.data.features.FeatureConfig): 128 Mel bands or 513 STFT bins.
KINDS: tuple[str, ...] = ("mel", "stft")

# How spectrograms are standardised per frequency bin (ser_lab.data.features.normalise):
# with the statistics of the fold's training part ("corpus"), or of each utterance's own
# speaker over all of that speaker's utterances ("speaker"; a single clip of an unknown
# speaker at inference time: its own statistics).
NORMALISATIONS: tuple[str, ...] = ("corpus", "speaker")

# Learning-rate schedules (ser_lab.learn.trainer.epoch_lr): the paper's constant rate, or
# "plateau": halved after `lr_patience` epochs without a better validation UA.
LR_SCHEDULES: tuple[str, ...] = ("constant", "plateau")
