"""`python -m pipeline.serve --run RUN`: a local web page to try a trained run.

Starts a web server (waitress, 127.0.0.1:8000 by default) with one page: choose an audio file
and see the genre the run hears, the top genres and the genre of every window along the song.
Uploads over --max-upload-mb (413), empty files, files that are not audio, shorter than one
window or longer than --max-audio-seconds of decoded audio (400, decided from the header before
decoding) get a message on the page; a prediction past --request-timeout-seconds is stopped
(503); the server keeps answering.  Any run works (Keras or scikit-learn).
"""

from __future__ import annotations

import argparse

from pipeline.cli.entry import run_cli


def build_parser() -> argparse.ArgumentParser:
    from core.config import ServeConfig
    from pipeline.cli.flags import add_dataclass_args

    parser = argparse.ArgumentParser(prog="python -m pipeline.serve", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="run directory written by pipeline.train")
    add_dataclass_args(parser, ServeConfig, "server")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from core.config import ServeConfig
    from pipeline.cli.flags import config_from_args
    from pipeline.serving.web import serve

    serve(args.run, config_from_args(args, ServeConfig).validate())
    return 0


if __name__ == "__main__":
    run_cli(main)
