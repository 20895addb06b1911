"""`python -m pipeline.serve --run RUN`: a local web page to try a trained run.

Starts a web server (127.0.0.1:8000 by default) with one page: choose an audio file and see the
genre the run hears, the top genres and the genre of every window along the song.  Uploads over
--max-upload-mb, empty files, files that are not audio or shorter than one window get a message
on the page; the server keeps answering.  Any run works (Keras or scikit-learn).
"""

from __future__ import annotations

import argparse

from pipeline.cli.entry import run_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline.serve", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="run directory written by pipeline.train")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: 127.0.0.1, this machine only)")
    parser.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    parser.add_argument("--max-upload-mb", type=float, default=50.0,
                        help="largest upload accepted, in MB (default: 50)")
    parser.add_argument("--top", type=int, default=3, help="genres listed (default: 3)")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from core.errors import ConfigError
    from pipeline.serving.web import serve

    if args.max_upload_mb <= 0 or not 0 < args.port < 65536:
        raise ConfigError("--max-upload-mb must be positive and --port in 1..65535")
    serve(args.run, host=args.host, port=args.port, max_upload_mb=args.max_upload_mb, top=args.top)
    return 0


if __name__ == "__main__":
    run_cli(main)
