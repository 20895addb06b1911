"""What every layer shares: the configuration dataclasses, the error family, the audio format.

The bottom of the project: gtzan_tfds/ (songs -> TFRecords), pipeline/ (TFRecords -> batches,
and the experiments run on them), models/ and tuning/ all import it, and it imports none of
them.  Nothing here changes any state on import.
"""
