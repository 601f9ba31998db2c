"""What both backends share: code generation helpers, data files, checkpoints and run folders,
metrics and plots (numpy and matplotlib; no framework)."""
