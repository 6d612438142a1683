"""A stand-in for `vllm serve POLICY --port PORT` (there is no GPU model here): FakeChatServer,
which answers from the request and lists POLICY as its model, on the given port.

    python tests/loop/fake_policy_server.py POLICY PORT
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.generate.fake_server import FakeChatServer

if __name__ == "__main__":
    FakeChatServer(models=(sys.argv[1],), port=int(sys.argv[2])).serve_forever()
