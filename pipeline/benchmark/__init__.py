"""Measurements of the streaming graph: speed against librosa, memory, resampling.

    librosa_reference.py   the seed study's per-window librosa transforms (also the parity
                           reference of the tests)
    throughput.py          windows/s of librosa and of the pipeline, in alternating rounds
    memory.py              peak RSS of streaming, each measurement in a fresh process
    resampling.py          the resamplers against librosa.resample (time, SNR, delay)
"""
