"""The streaming tf.data graph: gtzan_tfds TFRecords -> songs -> windows -> feature batches.

    dataset.py     reading songs, windowing them, shuffling, batching, prefetching
    windowing.py   songs -> fixed-length windows (one cutter for training and prediction)
    transforms.py  raw/fft/stft/mel/mfcc with tf.signal, also as a Keras layer

It knows nothing of models, runs or command lines.
"""
