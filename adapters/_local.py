"""Helpers shared by the local-weights adapters (hf, vllm, gre).

Nothing here imports torch, transformers or vllm at module level: `greval --help` and
the vLLM request-building tests must run without them.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

from greval.adapter import Adapter, AdapterError, option
from greval.cache import CacheOptions
from greval.types import GenerationConfig, Request, image_problem

# Hub files a VLM needs for inference (weights, configs, tokenizer, processor, template,
# remote code); skips training states and duplicate formats some repos carry.
HUB_ALLOW_PATTERNS = ["*.json", "*.safetensors", "*.jinja", "*.txt", "*.model", "*.tiktoken", "*.py"]
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")
# Weight files below this size are hashed in full; larger ones by header and size,
# because reading 16 GB at every run start is not worth it (hub commits are exact).
_FULL_HASH_LIMIT = 64 * 1024 * 1024


@dataclass
class Checkpoint:
    """Where a model's files are and how to tell this version from any other."""

    ref: str  # what the user passed: a hub id or a folder
    path: Path  # local folder with config.json and weights
    source: str  # "local" or "hub"
    revision: str | None = None  # hub commit hash
    fingerprint: str | None = None  # sha256 over config + weight layout (local folders)

    def info(self) -> dict[str, Any]:
        d = asdict(self)
        d["path"] = str(self.path)
        return d

    def cache_identity(self) -> str | None:
        """What pins these weights in the response cache key: the hub commit, or a local
        folder's fingerprint plus when its weight files were last written (the fingerprint
        of a large file is its header, which a checkpoint retrained in place keeps)."""
        if self.revision:
            return self.revision
        weights = [*self.path.glob("*.safetensors"), *self.path.glob("*.bin")]
        return f"{self.fingerprint}:{max((p.stat().st_mtime_ns for p in weights), default=0)}"


@dataclass
class LocalOptions(CacheOptions):
    """Options of the transformers backend (`-M KEY=VALUE` or the flag of the same name)."""

    batch_size: int | str | None = option(help="samples per generate() call")
    dtype: str | None = option(answer=True, help="bfloat16, float16, float32")
    device: str | None = option(help="cuda, cpu, mps")
    device_map: str | None = option(help="accelerate device map, e.g. auto")
    attn_implementation: str | None = option(help="sdpa, flash_attention_2, eager")
    min_pixels: int | None = option(answer=True, help="image budget, lower bound")
    max_pixels: int | None = option(answer=True, help="image budget, upper bound")
    trust_remote_code: bool | None = option(help="run the checkpoint's own code")
    revision: str | None = option(answer=True, help="checkpoint revision")


class LocalAdapter(Adapter):
    """What the local-weights backends (hf, vllm) share: a checkpoint, and the settings
    that pin their answers in the response cache key."""

    kind = "open-weights"
    backend_name: ClassVar[str] = ""
    checkpoint: Checkpoint
    max_new_tokens: int | None = None
    min_pixels: int | None = None
    max_pixels: int | None = None

    @property
    def model_ref(self) -> str:
        return self.checkpoint.ref

    def dtype_name(self) -> str | None:
        raise NotImplementedError

    def cache_key_extra(self) -> dict[str, Any] | None:
        return {
            "backend": self.backend_name,
            "checkpoint": self.checkpoint.cache_identity(),
            "dtype": self.dtype_name(),
            "min_pixels": self.min_pixels,
            "max_pixels": self.max_pixels,
            "max_new_tokens": self.max_new_tokens,
        }


def how_to_pass_local(ref: str) -> str:
    return (
        f"Download it where you have network access (e.g. `hf download {ref} --local-dir ./ckpt`) "
        "and pass the folder with `--model PATH`."
        if _HUB_ID.match(ref)
        else "Pass a folder holding config.json, the weights and the processor files with `--model PATH`."
    )


def resolve_checkpoint(ref: str | None, *, revision: str | None = None, adapter: str) -> Checkpoint:
    """A local folder as is, or a hub id downloaded (or found in the HF cache) to one.

    Every failure becomes an AdapterError that names the checkpoint and says how to
    pass a local folder instead."""
    if not ref:
        raise AdapterError(f"the {adapter} adapter needs a model: --model HUB_ID or --model PATH (a local folder)")
    local = Path(ref).expanduser()
    if local.exists():
        if not local.is_dir() or not (local / "config.json").is_file():
            raise AdapterError(
                f"{ref}: not a model folder (no config.json). {how_to_pass_local(ref)}"
                " A LoRA checkpoint must be merged into its base model first."
            )
        return Checkpoint(ref=ref, path=local.resolve(), source="local", fingerprint=folder_fingerprint(local))
    if not _HUB_ID.match(ref):
        raise AdapterError(f"model folder not found: {ref}. {how_to_pass_local(ref)}")
    try:
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(ref, revision=revision, allow_patterns=HUB_ALLOW_PATTERNS))
    except Exception as exc:  # offline, gated, missing repo, disk full: all end the same way
        raise AdapterError(
            f"cannot fetch the weights of {ref} from the Hugging Face Hub ({type(exc).__name__}: {exc}). "
            f"{how_to_pass_local(ref)}"
        ) from exc
    # snapshot folders are named after the commit they hold: an exact revision.
    return Checkpoint(ref=ref, path=folder, source="hub", revision=folder.name)


def folder_fingerprint(folder: Path) -> str:
    """sha256 over config.json, any weight index, and each weight file (full content
    when small; safetensors header + size when large, which pins names, shapes and
    dtypes but not every value)."""
    h = hashlib.sha256()
    for name in ("config.json", "generation_config.json", "model.safetensors.index.json"):
        p = folder / name
        if p.is_file():
            h.update(name.encode() + b"\0" + p.read_bytes())
    for p in sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin")):
        size = p.stat().st_size
        h.update(f"{p.name}\0{size}\0".encode())
        with p.open("rb") as f:
            if size <= _FULL_HASH_LIMIT:
                for chunk in iter(lambda f=f: f.read(1 << 20), b""):
                    h.update(chunk)
            else:
                head = f.read(8)
                header_len = int.from_bytes(head, "little") if p.suffix == ".safetensors" else 1 << 20
                h.update(head + f.read(min(header_len, 100 << 20)))
    return h.hexdigest()


def chat_messages(request: Request, image_part: dict[str, Any]) -> list[dict[str, Any]]:
    """OpenAI-style chat messages: an optional system turn, then one user turn with
    the image first and the prompt text after it (the order Qwen-VL was trained on)."""
    messages: list[dict[str, Any]] = []
    if request.system:
        # A plain string: every chat template accepts one for the system turn.
        messages.append({"role": "system", "content": request.system})
    messages.append({"role": "user", "content": [image_part, {"type": "text", "text": request.prompt}]})
    return messages


def max_new_tokens_for(gen: GenerationConfig, override: int | None) -> int:
    return int(override) if override else int(gen.max_tokens)


def generation_key(gen: GenerationConfig, override: int | None) -> tuple:
    """Requests that can share one generate() call (same decoding settings)."""
    return (max_new_tokens_for(gen, override), gen.temperature, gen.top_p, gen.seed)


def cap_pixels(image, max_pixels: int | None, min_pixels: int | None = None):
    """Scale a PIL image (aspect kept) so its pixel count is within [min, max].

    Used for processors that have no pixel budget of their own; Qwen-style
    processors get the limits directly and resize to their patch grid."""
    w, h = image.size
    area = w * h
    scale = 1.0
    if max_pixels and area > max_pixels:
        scale = math.sqrt(max_pixels / area)
    elif min_pixels and area < min_pixels:
        scale = math.sqrt(min_pixels / area)
    if scale == 1.0:
        return image
    from PIL import Image

    size = (max(1, int(w * scale)), max(1, int(h * scale)))
    return image.resize(size, Image.Resampling.BICUBIC)


def load_images(requests: list[Request]) -> tuple[list[Any], dict[int, str]]:
    """This batch's images, decoded now; an unreadable one is a data problem of its sample
    (see Response.data_problem), named with its file."""
    images: list[Any] = []
    errors: dict[int, str] = {}
    for i, request in enumerate(requests):
        try:
            images.append(request.sample.load_image())
        except Exception as exc:
            images.append(None)
            errors[i] = image_problem(request.sample, exc)
    return images, errors


def config_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        return {}
