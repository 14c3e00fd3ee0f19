"""Local VLMs on the vLLM offline engine: the fast path on one GPU or many.

    pip install 'greval[vllm]'
    greval run --adapter vllm --model Qwen/Qwen2.5-VL-7B-Instruct --tasks all --batch-size 256
    greval run --adapter vllm --model Qwen/Qwen2.5-VL-72B-Instruct --tensor-parallel-size 4 --data-parallel-size 2

Tensor parallel (`--tensor-parallel-size`) splits one model over several GPUs; data
parallel (`--data-parallel-size`) runs that many independent replicas, each in its own
process pinned to its own GPUs, and splits every batch between them. Across nodes, run
one `--shard I/N` per node and join the run folders with `greval merge`, or put
`vllm serve` behind the `openai` adapter with `--base-url`.

vLLM is an optional extra, imported only when this adapter is used. Request building
(`build_messages`, `sampling_kwargs`, `engine_kwargs`) needs no vLLM and is unit-tested
everywhere.
"""

from __future__ import annotations

import base64
import io
import json
import os
from dataclasses import dataclass
from typing import Any

from greval.adapters._local import (
    LocalAdapter,
    LocalOptions,
    cap_pixels,
    chat_messages,
    config_json,
    generation_key,
    load_images,
    resolve_checkpoint,
)

from greval.adapter import AdapterError, option, read_options, register
from greval.provenance import library_versions
from greval.types import GenerationConfig, Request, Response, Usage

DEFAULT_BATCH_SIZE = 128  # per replica; vLLM schedules within a batch itself
INSTALL_HINT = (
    "the vllm adapter needs vLLM, which is not installed: `pip install 'greval[vllm]'` "
    "(Linux with an NVIDIA GPU). Without it, use `--adapter hf`, or run `vllm serve MODEL` "
    "on a GPU machine and evaluate with `--adapter openai --base-url http://HOST:8000/v1`."
)


def import_vllm():
    try:
        import vllm
    except ImportError as exc:
        raise AdapterError(f"{INSTALL_HINT} ({exc})") from exc
    return vllm


def _int(value: Any) -> int | None:
    return None if value in (None, "") else int(value)


def _float(value: Any) -> float | None:
    return None if value in (None, "") else float(value)


def _mapping(value: Any) -> dict[str, Any] | None:
    """A dict option, also when given as JSON text through `--option KEY='{...}'`."""
    if value in (None, ""):
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise AdapterError(f"expected a JSON object, got {value!r}") from exc
    if not isinstance(value, dict):
        raise AdapterError(f"expected a JSON object, got {value!r}")
    return value


# -- request building (pure: no vLLM needed) ----------------------------------------


def image_part(image=None, *, image_bytes: bytes | None = None, transport: str = "pil") -> dict[str, Any]:
    """One image as a vLLM chat content part.

    "pil" hands vLLM the decoded image; "data_url" sends the file's own bytes as a
    base64 data URL (lossless, no re-encoding) for vLLM versions without `image_pil`."""
    if transport == "pil":
        return {"type": "image_pil", "image_pil": image}
    if transport == "data_url":
        from PIL import Image

        if image_bytes is None:
            raise ValueError("data_url transport needs the image file bytes")
        with Image.open(io.BytesIO(image_bytes)) as probe:
            mime = Image.MIME.get(probe.format or "", "image/png")
        url = f"data:{mime};base64,{base64.b64encode(image_bytes).decode()}"
        return {"type": "image_url", "image_url": {"url": url}}
    raise AdapterError(f"unknown image transport {transport!r}: use pil or data_url")


def build_messages(request: Request, part: dict[str, Any]) -> list[dict[str, Any]]:
    """The conversation `LLM.chat` receives for one request."""
    return chat_messages(request, part)


def sampling_kwargs(gen: GenerationConfig, max_new_tokens: int | None = None) -> dict[str, Any]:
    """Keyword arguments for `vllm.SamplingParams`: greedy unless temperature > 0."""
    max_tokens, temperature, top_p, seed = generation_key(gen, max_new_tokens)
    kwargs: dict[str, Any] = {"max_tokens": max_tokens, "temperature": temperature, "seed": seed}
    if temperature > 0:
        kwargs["top_p"] = top_p
    return kwargs


def is_qwen_vl(config: dict[str, Any]) -> bool:
    return str(config.get("model_type", "")).startswith(("qwen2_vl", "qwen2_5_vl", "qwen3_vl"))


def engine_kwargs(
    model_path: str,
    *,
    dtype: str | None = None,
    tensor_parallel_size: Any = None,
    gpu_memory_utilization: Any = None,
    max_model_len: Any = None,
    max_num_seqs: Any = None,
    limit_mm_per_prompt: Any = None,
    min_pixels: Any = None,
    max_pixels: Any = None,
    seed: Any = 0,
    trust_remote_code: bool = False,
    enforce_eager: Any = False,
    qwen_pixels: bool = True,
) -> dict[str, Any]:
    """Keyword arguments for `vllm.LLM(...)`; unset values are left to vLLM's defaults."""
    kwargs: dict[str, Any] = {
        "model": model_path,
        "dtype": dtype or "auto",
        "tensor_parallel_size": _int(tensor_parallel_size) or 1,
        "seed": _int(seed) or 0,
        "trust_remote_code": bool(trust_remote_code),
        # One image per prompt is all greval sends; vLLM reserves memory per image slot.
        "limit_mm_per_prompt": _mapping(limit_mm_per_prompt) or {"image": 1},
    }
    if gpu_memory_utilization not in (None, ""):
        kwargs["gpu_memory_utilization"] = _float(gpu_memory_utilization)
    if max_model_len not in (None, ""):
        kwargs["max_model_len"] = _int(max_model_len)
    if max_num_seqs not in (None, ""):
        kwargs["max_num_seqs"] = _int(max_num_seqs)
    if enforce_eager and str(enforce_eager).lower() not in ("0", "false", "no"):
        kwargs["enforce_eager"] = True
    if qwen_pixels and (min_pixels or max_pixels):
        kwargs["mm_processor_kwargs"] = {
            k: int(v) for k, v in (("min_pixels", min_pixels), ("max_pixels", max_pixels)) if v
        }
    return kwargs


def replica_gpus(rank: int, tensor_parallel_size: int, visible: str | None) -> str:
    """CUDA_VISIBLE_DEVICES for data-parallel replica `rank`: its own slice of the GPUs."""
    devices = [d.strip() for d in visible.split(",") if d.strip()] if visible else None
    first = rank * tensor_parallel_size
    if devices is None:
        return ",".join(str(i) for i in range(first, first + tensor_parallel_size))
    chosen = devices[first : first + tensor_parallel_size]
    if len(chosen) < tensor_parallel_size:
        raise AdapterError(
            f"data parallel replica {rank} needs GPUs {first}..{first + tensor_parallel_size - 1} "
            f"but CUDA_VISIBLE_DEVICES has {len(devices)}: lower --data-parallel-size or --tensor-parallel-size"
        )
    return ",".join(chosen)


def split_evenly(n: int, parts: int) -> list[range]:
    """Contiguous index ranges, sizes differing by at most one (empty ones dropped)."""
    base, extra = divmod(n, parts)
    out, start = [], 0
    for i in range(parts):
        size = base + (i < extra)
        if size:
            out.append(range(start, start + size))
        start += size
    return out


# -- the engine, in this process or in one process per replica ---------------------


def _chat(llm, conversations: list, sampling: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from vllm import SamplingParams

    outputs = llm.chat(conversations, sampling_params=[SamplingParams(**s) for s in sampling], use_tqdm=False)
    results = []
    for out in outputs:
        best = out.outputs[0]
        results.append(
            {
                "text": best.text,
                "finish_reason": "length" if best.finish_reason == "length" else "stop",
                "input_tokens": len(out.prompt_token_ids or []),
                "output_tokens": len(best.token_ids or []),
            }
        )
    return results


def _replica_main(conn, kwargs: dict[str, Any], gpus: str) -> None:
    """A data-parallel replica: one engine on its own GPUs, serving batches over a pipe."""
    os.environ["CUDA_VISIBLE_DEVICES"] = gpus
    try:
        from vllm import LLM

        llm = LLM(**kwargs)
        conn.send(("ready", None))
    except Exception as exc:
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    while True:
        job = conn.recv()
        if job is None:
            return
        try:
            conn.send(("ok", _chat(llm, *job)))
        except Exception as exc:
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


class _Replicas:
    def __init__(self, kwargs: dict[str, Any], data_parallel_size: int) -> None:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")  # CUDA cannot be forked
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        tp = kwargs["tensor_parallel_size"]
        self.conns, self.procs = [], []
        for rank in range(data_parallel_size):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_replica_main, args=(child, kwargs, replica_gpus(rank, tp, visible)), daemon=True)
            proc.start()
            self.conns.append(parent)
            self.procs.append(proc)
        for rank, conn in enumerate(self.conns):
            status, detail = conn.recv()
            if status != "ready":
                self.close()
                raise AdapterError(f"vLLM replica {rank} failed to start: {detail}")

    def chat(self, conversations: list, sampling: list[dict[str, Any]]) -> list[dict[str, Any]]:
        chunks = split_evenly(len(conversations), len(self.conns))
        for conn, idx in zip(self.conns, chunks, strict=False):
            conn.send(([conversations[i] for i in idx], [sampling[i] for i in idx]))
        results: list[dict[str, Any]] = []
        for conn, _ in zip(self.conns, chunks, strict=False):
            status, payload = conn.recv()
            if status != "ok":
                raise RuntimeError(payload)
            results.extend(payload)
        return results

    def close(self) -> None:
        for conn in self.conns:
            try:
                conn.send(None)
            except (OSError, BrokenPipeError):
                pass
        for proc in self.procs:
            proc.join(timeout=30)


@dataclass
class VLLMOptions(LocalOptions):
    """The vLLM backend's options, beyond the transformers backend's."""

    tensor_parallel_size: int | None = option(help="GPUs per model replica")
    data_parallel_size: int | None = option(help="model replicas")
    gpu_memory_utilization: float | None = option(help="share of GPU memory vLLM may take")
    max_model_len: int | None = option(help="context length")
    max_num_seqs: int | None = option(help="sequences in flight")
    limit_mm_per_prompt: dict | None = option(help="images per prompt")
    image_transport: str | None = option(help="pil or bytes")
    enforce_eager: bool | None = option(help="no CUDA graphs")


@register("vllm")
class VLLMAdapter(LocalAdapter):
    Options = VLLMOptions
    backend_name = "vllm"

    def __init__(self, model: str | None = None, **options: Any) -> None:
        super().__init__(model, **options)
        o = read_options(type(self), options)
        vllm = import_vllm()
        self.vllm_version = getattr(vllm, "__version__", None)
        self.data_parallel_size = _int(o.data_parallel_size) or 1
        given = None if str(o.batch_size).lower() == "auto" else _int(o.batch_size)  # vLLM schedules its own
        self.batch_size = given or DEFAULT_BATCH_SIZE * self.data_parallel_size
        self.max_new_tokens = _int(options.get("max_new_tokens"))  # the run's setting; None: the task's
        self.image_transport = o.image_transport or "pil"
        self.checkpoint = resolve_checkpoint(model, revision=o.revision, adapter=self.name)
        # Qwen-VL processors take pixel budgets; for other models greval scales images down.
        self.qwen_pixels = is_qwen_vl(config_json(self.checkpoint.path))
        self.min_pixels, self.max_pixels = _int(o.min_pixels), _int(o.max_pixels)
        self.engine_kwargs = engine_kwargs(
            str(self.checkpoint.path),
            dtype=o.dtype,
            tensor_parallel_size=o.tensor_parallel_size,
            gpu_memory_utilization=o.gpu_memory_utilization,
            max_model_len=o.max_model_len,
            max_num_seqs=o.max_num_seqs,
            limit_mm_per_prompt=o.limit_mm_per_prompt,
            min_pixels=o.min_pixels,
            max_pixels=o.max_pixels,
            seed=options.get("seed"),
            trust_remote_code=o.trust_remote_code,
            enforce_eager=o.enforce_eager,
            qwen_pixels=self.qwen_pixels,
        )
        try:
            if self.data_parallel_size > 1:
                self.engine: Any = _Replicas(self.engine_kwargs, self.data_parallel_size)
            else:
                self.engine = vllm.LLM(**self.engine_kwargs)
        except AdapterError:
            raise
        except Exception as exc:
            raise AdapterError(
                f"vLLM could not load {self.checkpoint.ref} (from {self.checkpoint.path}): {type(exc).__name__}: {exc}. "
                "Check --tensor-parallel-size, --gpu-memory-utilization and --option max_model_len=N, "
                "or pass a local folder with `--model PATH`."
            ) from exc

    def _chat(self, conversations: list, sampling: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if isinstance(self.engine, _Replicas):
            return self.engine.chat(conversations, sampling)
        return _chat(self.engine, conversations, sampling)

    def build_conversation(self, request: Request, image) -> list[dict[str, Any]]:
        if not self.qwen_pixels and (self.max_pixels or self.min_pixels):
            image = cap_pixels(image, self.max_pixels, self.min_pixels)
        if self.image_transport == "data_url":
            return build_messages(request, image_part(image_bytes=request.sample.image_bytes(), transport="data_url"))
        return build_messages(request, image_part(image, transport=self.image_transport))

    def generate(self, requests: list[Request]) -> list[Response]:
        images, errors = load_images(requests)
        responses: list[Response | None] = [
            Response(data_problem=errors[i]) if i in errors else None for i in range(len(requests))
        ]
        todo = [i for i in range(len(requests)) if i not in errors]
        conversations = [self.build_conversation(requests[i], images[i]) for i in todo]
        sampling = [sampling_kwargs(requests[i].generation, self.max_new_tokens) for i in todo]
        try:
            results = self._chat(conversations, sampling) if todo else []
        except Exception as exc:
            # vLLM validates each prompt (e.g. longer than max_model_len) before running
            # any: on failure, retry one by one so only the offending samples error.
            if len(todo) <= 1:
                results = [{"error": f"{type(exc).__name__}: {exc}"}] * len(todo)
            else:
                results = []
                for conv, samp in zip(conversations, sampling, strict=True):
                    try:
                        results.extend(self._chat([conv], [samp]))
                    except Exception as one_exc:
                        results.append({"error": f"{type(one_exc).__name__}: {one_exc}"})
        for i, result in zip(todo, results, strict=True):
            if "error" in result:
                responses[i] = Response(error=f"sample {requests[i].sample.sample_id}: {result['error']}")
            else:
                responses[i] = Response(
                    text=result["text"],
                    finish_reason=result["finish_reason"],
                    usage=Usage(input_tokens=result["input_tokens"], output_tokens=result["output_tokens"]),
                    meta={"image_size": list(images[i].size)},
                )
        return responses  # type: ignore[return-value]

    def info(self) -> dict[str, Any]:
        engine = {k: v for k, v in self.engine_kwargs.items() if k != "model"}
        return {
            "adapter": self.name,
            "model": self.checkpoint.ref,
            "kind": self.kind,
            "backend": "vllm",
            "checkpoint": self.checkpoint.info(),
            "engine": engine,
            "data_parallel_size": self.data_parallel_size,
            "image_min_pixels": self.min_pixels,
            "image_max_pixels": self.max_pixels,
            "image_transport": self.image_transport,
            "batch_size": self.batch_size,
            "max_new_tokens": self.max_new_tokens,
            "decoding": "greedy unless the task sets temperature > 0",
            "seed": engine.get("seed"),
            "versions": library_versions("vllm", "torch", "transformers"),
        }

    def dtype_name(self) -> str | None:
        return self.engine_kwargs.get("dtype")

    def close(self) -> None:
        if isinstance(getattr(self, "engine", None), _Replicas):
            self.engine.close()
        self.engine = None
