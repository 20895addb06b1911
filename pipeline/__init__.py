"""The streaming pipeline: gtzan_tfds TFRecords -> windows -> features -> batches.

Also home of the command-line entry points (train, evaluate, predict, compare, bench).
"""
