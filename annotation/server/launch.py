"""Start argilla-server with curate's scriptless OpenSearch engine (see curate_engine.py).

Run by `curate argilla up` with argilla-server's own interpreter:
    python launch.py HOST PORT
Configuration comes from ARGILLA_* environment variables set by curate.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import curate_engine  # noqa: F401  (registers the engine before the app starts)
import uvicorn

if __name__ == "__main__":
    host, port = sys.argv[1], int(sys.argv[2])
    uvicorn.run("argilla_server:app", host=host, port=port, log_level="warning")
