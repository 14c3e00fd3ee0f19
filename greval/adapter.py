"""The adapter protocol and registry: one adapter file per model family.

An adapter turns a batch of `Request`s into the same number of `Response`s, in order.
Implement `generate` (sync: local models, run in a worker thread) or `agenerate`
(async: API clients). The run loop hands an adapter batches of `batch_size` requests
and keeps at most `concurrency` batches in flight.

Built-in adapters live in the top-level `adapters/` folder (installed as
`greval.adapters`) and are imported only when named, so `greval --help` never pays
for torch. A user's own adapter is a file: `--adapter path/to/my_model.py`.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import pkgutil
from pathlib import Path, PurePath
from typing import Any, ClassVar

from greval.errors import GrevalError
from greval.types import Request, Response
from greval.user_code import load_file

_REGISTRY: dict[str, type[Adapter]] = {}


class AdapterError(GrevalError):
    """A user-facing problem with an adapter (bad name, missing extra, no weights)."""


class AdapterUnavailable(AdapterError):
    """The model cannot be reached at all (no server at the URL, refused key, unknown
    model): the run stops at once instead of failing every sample, keeping what it has."""


class Adapter:
    name: ClassVar[str] = ""
    kind: ClassVar[str] = "other"  # "api", "open-weights", "offline"
    default_template: ClassVar[str] = "coords"
    batch_size: int = 1
    concurrency: int = 1

    def __init__(self, model: str | None = None, **options: Any) -> None:
        self.model = model
        self.options = options

    def generate(self, requests: list[Request]) -> list[Response]:
        raise NotImplementedError

    async def agenerate(self, requests: list[Request]) -> list[Response]:
        return await asyncio.to_thread(self.generate, requests)

    def cache_key_extra(self) -> dict[str, Any] | None:
        """Settings that change outputs, for the response cache; None = do not cache."""
        return None

    def info(self) -> dict[str, Any]:
        """Provenance written to run.json (model revision, dtype, backend, ...)."""
        return {"adapter": self.name, "model": self.model, "kind": self.kind}

    def close(self) -> None:
        pass


def register(name: str):
    """Class decorator: `@register("openai") class OpenAIAdapter(Adapter): ...`."""

    def wrap(cls: type[Adapter]) -> type[Adapter]:
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return wrap


# Which pip extra brings each built-in adapter's libraries.
EXTRAS = {"openai": "api", "anthropic": "api", "hf": "local", "gre": "local", "vllm": "vllm"}


def missing_extra(adapter: str, error: ModuleNotFoundError) -> str:
    """One line saying which library is missing and how to install it."""
    extra = EXTRAS.get(adapter)
    hint = f"pip install 'greval[{extra}]'" if extra else f"pip install {error.name}"
    return f"the {adapter} adapter needs the {error.name!r} package, which is not installed: {hint}"


def builtin_names() -> list[str]:
    import greval.adapters as pkg

    return sorted(m.name for m in pkgutil.iter_modules(pkg.__path__) if not m.name.startswith("_"))


def get_adapter_class(name: str) -> type[Adapter]:
    """Find an adapter by registered name, built-in module name, or a .py file path."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    if name.endswith(".py"):
        path = Path(name)
        module = load_file(path, "greval_user_adapter", "adapter file", AdapterError)
        found = [
            c
            for c in vars(module).values()
            if isinstance(c, type) and issubclass(c, Adapter) and c is not Adapter and c.__module__ == module.__name__
        ]
        if not found:
            raise AdapterError(f"{path} defines no Adapter subclass")
        return found[-1]
    if name not in builtin_names():
        raise AdapterError(f"unknown adapter {name!r}; built-in: {', '.join(builtin_names())}, or a path to a .py file")
    try:
        importlib.import_module(f"greval.adapters.{name}")
    except ModuleNotFoundError as e:
        raise AdapterError(missing_extra(name, e)) from e
    if name not in _REGISTRY:
        raise AdapterError(f"greval.adapters.{name} registers no adapter named {name!r}")
    return _REGISTRY[name]


# --------------------------------------------------------------------------- options
# An adapter declares its options as a dataclass `Options` (class attribute): each field
# is one `-M KEY=VALUE` / flag, its type, its default, and whether it changes the answers
# (`option(..., answer=True)`): those make the resume guard refuse a folder made under
# another value. Options the run itself passes every adapter need no declaration.

RUN_OPTIONS = {"seed", "max_new_tokens", "temperature"}


def option(default: Any = None, *, answer: bool = False, help: str = ""):
    """A field of an adapter's Options dataclass; `answer=True` when it changes the answers."""
    from dataclasses import field

    return field(default=default, metadata={"answer": answer, "help": help})


def declared_options(adapter_cls: type) -> dict[str, Any] | None:
    """name -> dataclass Field of the adapter's Options, or None when it declares none."""
    import dataclasses

    options = getattr(adapter_cls, "Options", None)
    if options is None or not dataclasses.is_dataclass(options):
        return None
    return {f.name: f for f in dataclasses.fields(options)}


def answer_option_names(adapter_cls: type) -> tuple[str, ...] | None:
    """Options that change the answers, from the marks; None when nothing is declared."""
    fields = declared_options(adapter_cls)
    return None if fields is None else tuple(sorted(n for n, f in fields.items() if f.metadata.get("answer")))


# A path is a str option too (a click.Path flag, or a caller handing a Path).
_TYPES = {"int": (int,), "float": (int, float), "str": (str, PurePath), "bool": (bool,), "dict": (dict,), "list": (list,)}


def check_options(adapter_cls: type, options: dict[str, Any]) -> None:
    """Refuse unknown option names (with a did-you-mean) and values of the wrong type."""
    import difflib

    fields = declared_options(adapter_cls)
    if fields is None:
        return  # a user's adapter without Options takes its **options as they are
    known = sorted(set(fields) | RUN_OPTIONS)
    for key, value in options.items():
        if key in RUN_OPTIONS:
            continue
        if key not in fields:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise AdapterError(
                f"unknown option {key!r} for the {adapter_cls.name or adapter_cls.__name__} adapter{hint} Known: {', '.join(known)}"
            )
        kinds = [_TYPES[t.strip()] for t in str(fields[key].type).split("|") if t.strip() in _TYPES]
        ok = (
            value is None
            or not kinds
            or any(isinstance(value, k) and not (isinstance(value, bool) and bool not in k) for k in kinds)
        )
        if not ok:
            raise AdapterError(f"option {key}={value!r}: expected {fields[key].type}")
