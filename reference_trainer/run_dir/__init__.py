"""A run's directory: its lock, logs, checkpoint, trackers and report; what a run leaves behind
and how a resume finds it again."""
