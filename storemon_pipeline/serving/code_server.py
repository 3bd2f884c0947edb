"""Dagster's code server for storemon, starting run workers from a warm fork server.

    python -m storemon_pipeline.serving.code_server -h 127.0.0.1 -p PORT

is ``dagster api grpc`` for the storemon code location, with one difference: Dagster's code
server starts every run worker as a fresh interpreter ("spawn"), which imports Dagster and
the definitions again for each run; ten reports at once on two cores then spend most of
their time importing. Here run workers are forked from a fork server that has imported
them once (multiprocessing's "forkserver" with a preload). The fork server is itself a
fresh single-threaded process, not a fork of the gRPC server, so forking from it is safe.
Runs, their termination and their logs are otherwise exactly Dagster's.
"""

import multiprocessing
import sys

PRELOAD = ["dagster", "dagster._grpc.impl", "storemon_pipeline.serving.run_worker_preload"]


class _WarmContexts:
    """Stands in for the multiprocessing module inside Dagster's gRPC server."""

    def __getattr__(self, name):
        return getattr(multiprocessing, name)

    @staticmethod
    def get_context(method=None):
        if method == "spawn":
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(PRELOAD)
            return context
        return multiprocessing.get_context(method)


def main() -> None:
    from dagster._cli import main as dagster_main
    from dagster._grpc import server

    server.multiprocessing = _WarmContexts()
    # Each StartRun call holds a server thread until its worker has started; the default pool
    # (cores + 4) would start ten concurrent reports a few at a time.
    sys.argv = [
        "dagster",
        "api",
        "grpc",
        "-m",
        "storemon_pipeline.definitions",
        "-a",
        "defs",
        "--max-workers",
        "32",
        *sys.argv[1:],
    ]
    dagster_main()


if __name__ == "__main__":
    main()
