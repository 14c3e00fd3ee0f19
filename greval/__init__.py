"""greval: evaluate how well vision-language models geo-locate photos."""

__version__ = "0.1.0"
