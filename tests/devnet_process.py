"""`paratrain devnet` as a real subprocess on a free loopback port: the harness's DevnetProcess
(paratrain.local), under the name the tests have always imported."""
from __future__ import annotations

from paratrain.local import DevnetProcess

__all__ = ["DevnetProcess"]
