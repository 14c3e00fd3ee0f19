"""Building blocks for tests, usable by greval's users too: a tiny offline VLM and a
generated GREval-Bench-layout fixture."""
