"""Any `transformers` image-text-to-text model on your own GPU (or CPU).

    greval run --adapter hf --model Qwen/Qwen2.5-VL-7B-Instruct --tasks all --batch-size 8

The model is loaded with `AutoProcessor` + `AutoModelForImageTextToText` and prompted
through its own chat template. Batches are generated greedily with left padding, so a
sample's output does not depend on which other samples share its batch. Images are
decoded batch by batch, never all at once.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

from greval.adapters._batching import CPU_AUTO, input_size, probe, remember, remembered
from greval.adapters._local import (
    LocalAdapter,
    LocalOptions,
    cap_pixels,
    chat_messages,
    generation_key,
    load_images,
    resolve_checkpoint,
)

from greval.adapter import AdapterError, read_options, register
from greval.provenance import library_versions
from greval.types import Request, Response, Usage

DEFAULT_BATCH_SIZE = 8


_HINTED: list[bool] = []


def vllm_hint(device: str) -> bool:
    """Once per process: on a CUDA device with vLLM installed, say that it is usually much
    faster than transformers' generate (continuous batching, paged attention)."""
    import importlib.util
    import logging

    if _HINTED or not device.startswith("cuda") or importlib.util.find_spec("vllm") is None:
        return False
    _HINTED.append(True)
    logging.getLogger("greval").warning(
        "vLLM is installed: `--backend vllm` (gre) or `--adapter vllm` is usually several times faster on a GPU"
    )
    return True


def pick_device(device: str | None) -> str:
    import torch

    if device:
        return device
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def pick_dtype(dtype: str | None, device: str):
    """ "auto" = bfloat16 on a GPU that has it (what VLM checkpoints ship in), float16
    on older GPUs, float32 on CPU (bf16 matmuls on CPU are slow and less exact)."""
    import torch

    name = (dtype or "auto").lower()
    if name == "auto":
        if device.startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    aliases = {"bf16": "bfloat16", "fp16": "float16", "half": "float16", "fp32": "float32", "float": "float32"}
    resolved = getattr(torch, aliases.get(name, name), None)
    if not isinstance(resolved, torch.dtype):
        raise AdapterError(f"unknown dtype {dtype!r}: use auto, bfloat16, float16 or float32")
    return resolved


@register("hf")
class HFAdapter(LocalAdapter):
    Options = LocalOptions
    backend_name = "transformers"

    def __init__(self, model: str | None = None, **options: Any) -> None:
        super().__init__(model, **options)
        o = read_options(type(self), options)
        # "auto" (the default on CUDA): sized in prepare(), once the run's inputs are known.
        self.batch_size_setting = str(o.batch_size).lower() if o.batch_size is not None else None
        self.batch_size = DEFAULT_BATCH_SIZE if self.batch_size_setting in (None, "auto") else int(o.batch_size)
        self.batch_size_source = "default" if o.batch_size is None else "given"
        max_new_tokens = options.get("max_new_tokens")  # the run's setting; None: the task's
        self.max_new_tokens = int(max_new_tokens) if max_new_tokens else None
        self.seed = int(options.get("seed") or 0)
        self.trust_remote_code = bool(o.trust_remote_code)
        self.checkpoint = resolve_checkpoint(model, revision=o.revision, adapter=self.name)
        # --option values arrive as strings.
        min_pixels = int(o.min_pixels) if o.min_pixels else None
        max_pixels = int(o.max_pixels) if o.max_pixels else None
        self._load(o.dtype, o.device, o.device_map, o.attn_implementation, min_pixels, max_pixels)
        vllm_hint(str(self.model.device))

    # -- loading ---------------------------------------------------------------------

    def _load(self, dtype, device, device_map, attn_implementation, min_pixels, max_pixels) -> None:
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor, GenerationConfig

        torch.manual_seed(self.seed)
        self.device = pick_device(device)
        self.dtype = pick_dtype(dtype, self.device)
        ckpt = self.checkpoint
        load_kwargs: dict[str, Any] = {"dtype": self.dtype, "trust_remote_code": self.trust_remote_code}
        if device_map:
            load_kwargs["device_map"] = device_map  # e.g. "auto": shard one big model over all GPUs
        if attn_implementation:
            load_kwargs["attn_implementation"] = attn_implementation
        try:
            self.processor = AutoProcessor.from_pretrained(ckpt.path, trust_remote_code=self.trust_remote_code)
            self.model = AutoModelForImageTextToText.from_pretrained(ckpt.path, **load_kwargs).eval()
        except Exception as exc:
            raise AdapterError(
                f"cannot load {ckpt.ref} (from {ckpt.path}) with transformers: {type(exc).__name__}: {exc}. "
                "Pass a folder holding config.json, the weights and the processor files with `--model PATH`"
                + ("; models with custom code need --trust-remote-code." if not self.trust_remote_code else ".")
            ) from exc
        if not device_map:
            self.model.to(self.device)
        tokenizer = getattr(self.processor, "tokenizer", None)
        if (
            tokenizer is None
            or getattr(self.processor, "chat_template", None) is None
            and not getattr(tokenizer, "chat_template", None)
        ):
            raise AdapterError(
                f"{ckpt.ref}: the processor has no tokenizer or chat template; greval prompts through the model's chat template"
            )
        # Left padding keeps every prompt's last token at the end, where generation starts.
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.tokenizer = tokenizer
        self._set_pixel_limits(min_pixels, max_pixels)
        gen = self.model.generation_config
        eos = gen.eos_token_id if gen.eos_token_id is not None else tokenizer.eos_token_id
        self.eos_ids = {int(e) for e in (eos if isinstance(eos, list) else [eos]) if e is not None}
        if tokenizer.eos_token_id is not None:
            self.eos_ids.add(int(tokenizer.eos_token_id))
        self.pad_id = gen.pad_token_id if gen.pad_token_id is not None else tokenizer.pad_token_id
        # transformers fills every setting a call leaves unset from the checkpoint's
        # generation_config.json (Qwen's ships repetition_penalty 1.05, top_k 1, ...).
        # Keep only its token ids, so greedy is plain greedy, as on vLLM; what was
        # dropped is recorded in run.json.
        self.checkpoint_generation_defaults = {
            k: v for k, v in gen.to_diff_dict().items() if not k.endswith("token_id") and k != "transformers_version"
        }
        self.model.generation_config = GenerationConfig(
            bos_token_id=gen.bos_token_id, eos_token_id=sorted(self.eos_ids), pad_token_id=self.pad_id
        )

    def _set_pixel_limits(self, min_pixels: int | None, max_pixels: int | None) -> None:
        """Qwen-style processors budget pixels themselves (and snap to their patch
        grid): give them the limits. Others get images scaled down by greval."""
        image_processor = getattr(self.processor, "image_processor", None)
        size = getattr(image_processor, "size", None)
        self._processor_budgets_pixels = (
            hasattr(image_processor, "merge_size")
            and size is not None
            and "longest_edge" in size
            and "shortest_edge" in size
        )
        if self._processor_budgets_pixels:
            new_size = {
                "shortest_edge": int(min_pixels or size["shortest_edge"]),
                "longest_edge": int(max_pixels or size["longest_edge"]),
            }
            image_processor.size = type(size)(**new_size) if not isinstance(size, dict) else new_size
            self.min_pixels, self.max_pixels = new_size["shortest_edge"], new_size["longest_edge"]
        else:
            self.min_pixels, self.max_pixels = min_pixels, max_pixels

    # -- batching ------------------------------------------------------------------

    def input_size(self, request: Request) -> tuple[int, int]:
        """For the run's length-aware grouping (see adapters/_batching.py)."""
        return input_size(request)

    def prepare(self, requests: list[Request]) -> None:
        """`--batch-size auto` (the default on CUDA): the largest batch that fits."""
        import torch

        on_cuda = str(self.model.device).startswith("cuda")
        if self.batch_size_setting != "auto" and not (self.batch_size_setting is None and on_cuda):
            return
        if not on_cuda or not requests:
            self.batch_size, self.batch_size_source = CPU_AUTO, "auto (CPU)"
            return
        gpu = torch.cuda.get_device_name(self.model.device)
        key = f"{self.checkpoint.fingerprint or self.checkpoint.ref}|{gpu}|{self.max_pixels}"
        known = remembered(key)
        if known:
            self.batch_size, self.batch_size_source = known, "auto (remembered)"
            return
        longest = sorted(requests, key=input_size)[-4:]
        images, _ = load_images(longest)
        pairs = [(r, i) for r, i in zip(longest, images, strict=True) if i is not None]
        gen = generation_key(longest[-1].generation, self.max_new_tokens)
        probe_key = (8, *gen[1:])  # a few tokens: the memory peak is the prompt's, plus the cache

        def try_batch(batch):
            self._generate_batch([r for r, _ in batch], [i for _, i in batch], probe_key)
            torch.cuda.synchronize()

        def is_oom(exc):
            torch.cuda.empty_cache()
            return isinstance(exc, torch.cuda.OutOfMemoryError)

        self.batch_size = probe(try_batch, pairs, is_oom)
        self.batch_size_source = "auto (probed)"
        remember(key, self.batch_size)

    # -- generation ------------------------------------------------------------------

    def generate(self, requests: list[Request]) -> list[Response]:
        images, errors = load_images(requests)
        responses: list[Response | None] = [
            Response(data_problem=errors[i]) if i in errors else None for i in range(len(requests))
        ]
        # One generate() call per distinct decoding setting (tasks may differ in max_tokens).
        groups: dict[tuple, list[int]] = defaultdict(list)
        for i, request in enumerate(requests):
            if i not in errors:
                groups[generation_key(request.generation, self.max_new_tokens)].append(i)
        for key, indices in groups.items():
            outs = self._generate_safely([requests[i] for i in indices], [images[i] for i in indices], key)
            for i, out in zip(indices, outs, strict=True):
                responses[i] = out
        return responses  # type: ignore[return-value]

    def _generate_safely(self, requests: list[Request], images: list, key: tuple) -> list[Response]:
        """Generate; when a batch fails (GPU out of memory, an image the processor
        rejects), retry its halves so only the sample at fault is lost."""
        import torch

        try:
            return self._generate_batch(requests, images, key)
        except Exception as exc:
            if isinstance(exc, torch.cuda.OutOfMemoryError):
                torch.cuda.empty_cache()
            if len(requests) == 1:
                hint = (
                    " (lower --max-pixels or --batch-size, or use a larger GPU)"
                    if isinstance(exc, torch.cuda.OutOfMemoryError)
                    else ""
                )
                return [Response(error=f"sample {requests[0].sample.sample_id}: {type(exc).__name__}: {exc}{hint}")]
            half = len(requests) // 2
            return self._generate_safely(requests[:half], images[:half], key) + self._generate_safely(
                requests[half:], images[half:], key
            )

    def _generate_batch(self, requests: list[Request], images: list, key: tuple) -> list[Response]:
        import torch
        from transformers import GenerationConfig

        max_new_tokens, temperature, top_p, seed = key
        if not self._processor_budgets_pixels and (self.max_pixels or self.min_pixels):
            images = [cap_pixels(img, self.max_pixels, self.min_pixels) for img in images]
        texts = [
            self.processor.apply_chat_template(
                chat_messages(r, {"type": "image"}), add_generation_prompt=True, tokenize=False
            )
            for r in requests
        ]
        inputs = self.processor(text=texts, images=images, padding=True, return_tensors="pt").to(self.model.device)
        # A clean config: the checkpoint's sampling defaults (temperature, top_k,
        # repetition penalty) are not applied, so greedy is plain greedy on every backend.
        config = GenerationConfig(
            max_new_tokens=max_new_tokens,
            do_sample=temperature > 0,
            temperature=temperature if temperature > 0 else None,
            top_p=top_p if temperature > 0 else None,
            top_k=None,
            eos_token_id=sorted(self.eos_ids),
            pad_token_id=self.pad_id,
        )
        if temperature > 0:
            torch.manual_seed(seed)
        started = time.perf_counter()
        with torch.inference_mode():
            output = self.model.generate(**inputs, generation_config=config)
        elapsed = time.perf_counter() - started
        prompt_len = inputs["input_ids"].shape[1]
        input_tokens = inputs["attention_mask"].sum(dim=1).tolist()
        responses = []
        for row, image, n_in in zip(output[:, prompt_len:].tolist(), images, input_tokens, strict=True):
            stop_at = next((j for j, tok in enumerate(row) if tok in self.eos_ids), None)
            kept = row if stop_at is None else row[:stop_at]
            responses.append(
                Response(
                    text=self.tokenizer.decode(kept, skip_special_tokens=True),
                    finish_reason="stop" if stop_at is not None else "length",
                    usage=Usage(input_tokens=int(n_in), output_tokens=len(kept) + (stop_at is not None)),
                    latency_s=elapsed / len(requests),  # the batch's time, shared
                    meta={"image_size": list(image.size), "batch": len(requests)},
                )
            )
        return responses

    # -- provenance ------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        return {
            "adapter": self.name,
            "model": self.model_ref,
            "kind": self.kind,
            "backend": "transformers",
            "checkpoint": self.checkpoint.info(),
            "model_class": type(self.model).__name__,
            "dtype": str(self.dtype).removeprefix("torch."),
            "device": str(self.model.device),
            "device_map": getattr(self.model, "hf_device_map", None),
            "attn_implementation": getattr(self.model.config, "_attn_implementation", None),
            "image_min_pixels": self.min_pixels,
            "image_max_pixels": self.max_pixels,
            "image_resize": "processor"
            if self._processor_budgets_pixels
            else ("greval" if self.max_pixels or self.min_pixels else "processor default"),
            "batch_size": self.batch_size,
            "batch_size_source": self.batch_size_source,
            "max_new_tokens": self.max_new_tokens,
            "decoding": "greedy unless the task sets temperature > 0",
            "checkpoint_generation_defaults_ignored": self.checkpoint_generation_defaults,
            "seed": self.seed,
            "trust_remote_code": self.trust_remote_code,
            "versions": library_versions("torch", "transformers", "accelerate"),
        }

    def dtype_name(self) -> str | None:
        return str(self.dtype)

    def close(self) -> None:
        import gc

        self.model = None
        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:
            pass
