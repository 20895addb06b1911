"""A trained run as something people use: a self-contained SavedModel, TFLite, a web page.

    input_rates.py    raw audio at any supported rate -> 22,050 Hz, inside a graph
    saved_model.py    the served graph (tf.Module): audio + rate -> window/song probabilities
    exporting.py      run directory -> SavedModel directory (+ TFLite), written atomically
    tflite.py         the window-level part as TFLite, and what converts
    checking.py       an export beside pipeline.predict: differences and latency (--check)
    web.py            the Flask app behind ``python -m pipeline.serve`` (one page to try a run)

It sits on top of ``experiments`` (``Predictor`` loads the run, ``prediction`` predicts a file
for the page) and ``stream`` (resampling, windowing and the transform are traced into the
SavedModel from the very functions training uses); nothing below imports it.  Thin CLIs:
``python -m pipeline.export`` and ``python -m pipeline.serve``.
"""
