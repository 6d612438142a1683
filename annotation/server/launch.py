"""Start argilla-server with curate's scriptless OpenSearch engine (see curate_engine.py).

Run by `curate argilla up` with argilla-server's own interpreter:
    python launch.py HOST PORT
    python launch.py manage ARGS...   argilla-server's own commands, with the same engine
                                      (its search-engine reindex needs it: the stock engine
                                      fails on a discarded response without values)
Configuration comes from ARGILLA_* environment variables set by curate.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import curate_engine  # noqa: F401  (registers the engine before the app starts)

if __name__ == "__main__":
    if sys.argv[1] == "manage":
        import runpy

        sys.argv = ["argilla_server", *sys.argv[2:]]
        runpy.run_module("argilla_server", run_name="__main__", alter_sys=True)
    else:
        import uvicorn

        host, port = sys.argv[1], int(sys.argv[2])
        uvicorn.run("argilla_server:app", host=host, port=port, log_level="warning")
