"""Experiments on the streaming pipeline: training, evaluation, run directories, reports.

One trained approach (a run directory):
    training.py             train one approach into a run directory (fit, select, test once)
    keras_training.py       model.fit of a Keras approach, resumable after a kill
    distributed_training.py the tf.distribute custom loop (--strategy multi-worker)
    sklearn_training.py     a scikit-learn approach on vectors streamed from the pipeline
    song_cv.py              cross-validation by song of an estimator on window vectors (SongKFold)
    run_dir.py              what a run leaves behind, its lifecycle; locking.py: one writer
    seeding.py              seeds and op determinism, set at entry points
Using a trained run:
    predictor.py            a run as window probabilities (Keras or scikit-learn)
    run_evaluation.py       a run's metrics on a split, written into its run directory
    file_prediction.py      the genre of one audio file, streamed window by window
Several runs:
    comparison_runs.py      the grid of a comparison (approaches x transforms) and its runs
    comparison_report.py    its report: tables, accuracy chart, per-genre recall, confusions
    crossval.py             k-fold by song: every fold a normal run, decisions pooled
    crossval_report.py      the k-fold table with intervals and paired tests
    repeats.py              every fold trained with R seeds (--repeats), decisions pooled
    sweep.py                a parameter sweep: k-fold accuracy per transform setting
    sweep_report.py         its table (in resolution units), paired tests and plots
    parameter_effects.py    which parameters moved a score, over runs or tuner trials
    ensemble.py             late fusion of approaches, weights chosen out of fold
    probe_study.py          moved: says to use python -m tuning.search --model musicnn
Shared:
    metrics.py              window- and song-level metrics (numpy)
    plots.py                confusion matrices, curves, comparisons, genre timelines
"""
