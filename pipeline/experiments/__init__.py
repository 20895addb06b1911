"""Experiments on the streaming pipeline: training, evaluation, run directories, reports.

    training.py     train one approach into a run directory (fit, select, test)
    predictor.py    a trained run as window probabilities (Keras or scikit-learn)
    evaluation.py   metrics of a run on a split, written into its run directory
    run_dir.py      what a run leaves behind, its lifecycle and its lock
    metrics.py      window- and song-level metrics (numpy)
    plots.py        confusion matrices, curves, comparisons, genre timelines
"""
