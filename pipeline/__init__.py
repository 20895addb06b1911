"""The streaming pipeline and the experiments run on it; home of the command-line entry points.

    stream/        the tf.data graph: TFRecords -> windows -> features -> batches
    experiments/   training, evaluation, run directories, metrics, reports and plots
    benchmark/     speed and memory measurements of the graph
    cli/           flags and error exits shared by the entry points
    serving/       a run as a SavedModel / TFLite file, and the web page to try it
    train.py, evaluate.py, predict.py, compare.py, bench.py, export.py, serve.py
                   thin CLIs (python -m pipeline.X)
"""
