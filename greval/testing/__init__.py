"""Building blocks for tests, usable by greval's users too: a tiny offline VLM and a
generated GREval-Bench-layout fixture."""

from greval.testing._bench import make_fixture_bench as make_fixture_bench
from greval.testing._tiny_vlm import build_tiny_vlm as build_tiny_vlm
