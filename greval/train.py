"""The three GRE training stages on TRL: cold-start SFT, GRPO as a judge, GRPO on geo.

    greval train sft        GRE30K-CoT.json   --model Qwen/Qwen2.5-VL-7B-Instruct --output ckpt/sft
    greval train grpo-judge GRE30K-Judge.json --model ckpt/sft   --output ckpt/judge
    greval train grpo-geo   seeds.jsonl       --model ckpt/judge --output ckpt/gre --tau country,region@400

Each stage writes a checkpoint folder (`save_pretrained`: weights, config, processor,
chat template; LoRA adapters merged in) that the next stage and greval's `hf` / `gre`
adapters load with `--model PATH`, and `greval_train.json` in it: arguments, the TRL
config, data hash, base model, library versions.

Data files (read by greval/train_data.py) are JSON lists or JSONL; image paths are relative
to the data file's folder.
  stage 1 (SFT):  {"image", "conversations": [{"from": "human", "value": "<image>\\n…"},
                   {"from": "gpt", "value": "…"}, …], "gt_lat", "gt_lon"}
  stage 2 (judge): {"image", "predicted_cot", "predicted_answer", "label"} — `label` is
                   the truth of the chain + answer: true/false (bool, 1/0, or a string
                   true/false/yes/no/correct/incorrect). An optional `instructions` is the
                   whole user prompt; otherwise JUDGE_PROMPT is filled in.
  stage 3 (geo):   {"image", "instructions", "gt_lat", "gt_lon"}; without `instructions`
                   the prompt is greval's `gre` template (the one evaluation uses).
A bad row is skipped with a warning that names the file, row and problem; the count is
recorded. Images are decoded lazily, batch by batch.

Defaults follow the paper where that is sensible on GPUs: lr 1e-5, 1 epoch, 8
generations, β 0.04 (TRL 1.16's own default is 0.0), 2,048 completion tokens; SFT loss
on the answer only. Multi-GPU: launch the same module with accelerate, e.g.
`accelerate launch --num_processes 8 -m greval.train sft …` (add `--config_file` for a
DeepSpeed ZeRO-2/3 config); this file has no distributed code of its own.

Only click is imported at module level: `greval --help` must not pay for torch.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import click

from greval.train_data import (  # noqa: F401  (JUDGE_PROMPT, TrainDataError, read_train_data: public here too)
    JUDGE_PROMPT,
    TrainData,
    TrainDataError,
    TrainError,
    as_dataset,
    read_geo,
    read_judge,
    read_sft,
    read_train_data,
    to_prompt_completion,
)

log = logging.getLogger("greval.train")

PROVENANCE_FILE = "greval_train.json"

# --------------------------------------------------------------------------- settings


@dataclass
class TrainSettings:
    """What a stage's run can change. None means "the stage's default" (see STAGE_DEFAULTS)."""

    learning_rate: float = 1e-5
    num_train_epochs: float = 1.0
    max_steps: int = -1  # > 0 overrides epochs
    per_device_train_batch_size: int | None = None
    gradient_accumulation_steps: int | None = None
    use_cpu: bool = False
    bf16: bool | None = None  # None: on for GPUs that have it, off on CPU
    gradient_checkpointing: bool | None = None  # None: on GPU, off on CPU
    seed: int = 0
    save_steps: int = 500  # intermediate checkpoints (to resume); 0 = none
    logging_steps: int = 10
    resume: bool = False
    max_pixels: int | None = None  # image pixel budget for Qwen-style processors
    lora: bool = False
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_target_modules: str = "all-linear"
    # GRPO only
    num_generations: int = 8
    beta: float = 0.04
    max_completion_length: int = 2048
    temperature: float = 1.0
    loss_type: str | None = None  # None: TRL's default
    # any other SFTConfig / GRPOConfig field, e.g. {"warmup_ratio": 0.03}
    extra: dict[str, Any] = field(default_factory=dict)
    # SFT only: train on the whole conversation instead of the answer only
    train_on_prompt: bool = False


# Paper: SFT batch 128 = 4 per device x 4 accumulation x 8 GPUs; GRPO: one prompt's 8
# generations per device and step.
STAGE_DEFAULTS: dict[str, dict[str, int]] = {
    "sft": {"per_device_train_batch_size": 4, "gradient_accumulation_steps": 4},
    "grpo": {"per_device_train_batch_size": 8, "gradient_accumulation_steps": 1},
}


def _hardware(settings: TrainSettings) -> tuple[bool, bool]:
    import torch

    gpu = torch.cuda.is_available() and not settings.use_cpu
    bf16 = settings.bf16 if settings.bf16 is not None else (gpu and torch.cuda.is_bf16_supported())
    checkpointing = settings.gradient_checkpointing if settings.gradient_checkpointing is not None else gpu
    return bool(bf16), bool(checkpointing)


def _checkpointing_field() -> str:
    """transformers 5.x renamed gradient_checkpointing to activation_checkpointing."""
    from transformers import TrainingArguments

    names = {f.name for f in fields(TrainingArguments)}
    return "activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing"


def _common_config(settings: TrainSettings, output_dir: Path, stage: str) -> dict[str, Any]:
    bf16, checkpointing = _hardware(settings)
    defaults = STAGE_DEFAULTS["sft" if stage == "sft" else "grpo"]
    config = {
        "output_dir": str(output_dir),
        "learning_rate": settings.learning_rate,
        "num_train_epochs": settings.num_train_epochs,
        "max_steps": settings.max_steps,
        "per_device_train_batch_size": settings.per_device_train_batch_size or defaults["per_device_train_batch_size"],
        "gradient_accumulation_steps": settings.gradient_accumulation_steps or defaults["gradient_accumulation_steps"],
        "use_cpu": settings.use_cpu,
        "bf16": bf16,
        _checkpointing_field(): checkpointing,
        "seed": settings.seed,
        "save_strategy": "steps" if settings.save_steps > 0 else "no",
        "save_steps": settings.save_steps if settings.save_steps > 0 else 500,
        "logging_steps": settings.logging_steps,
        "report_to": "none",
    }
    if stage != "sft":
        config.update(
            num_generations=settings.num_generations,
            beta=settings.beta,
            max_completion_length=settings.max_completion_length,
            temperature=settings.temperature,
        )
        if settings.loss_type:
            config["loss_type"] = settings.loss_type
    config.update(settings.extra)
    return config


def _peft_config(settings: TrainSettings):
    if not settings.lora:
        return None
    from peft import LoraConfig

    targets = settings.lora_target_modules
    return LoraConfig(
        r=settings.lora_r,
        lora_alpha=settings.lora_alpha,
        lora_dropout=settings.lora_dropout,
        target_modules=targets if targets == "all-linear" else [t.strip() for t in targets.split(",")],
        task_type="CAUSAL_LM",
    )


def _processor(model: str, settings: TrainSettings):
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(model)
    if settings.max_pixels:
        image_processor = getattr(processor, "image_processor", None)
        size = getattr(image_processor, "size", None)
        if size is None or "longest_edge" not in size:
            raise TrainError(f"--max-pixels: the processor of {model} has no pixel budget to set")
        new = {**dict(size), "longest_edge": int(settings.max_pixels)}
        image_processor.size = new if isinstance(size, dict) else type(size)(**new)
    return processor


# --------------------------------------------------------------------------- running


def _require_train_extra(lora: bool) -> None:
    """Say which package is missing before any work is done, and how to get it."""
    import importlib.util

    needed = ["torch", "transformers", "trl", "datasets", "accelerate"] + (["peft"] if lora else [])
    missing = [name for name in needed if importlib.util.find_spec(name) is None]
    if missing:
        raise TrainError(f"greval train needs {', '.join(missing)}: pip install 'greval[train]'")


def _prepare_output(output_dir: str | Path, settings: TrainSettings) -> tuple[Path, str | None]:
    output_dir = Path(output_dir).expanduser()
    if (output_dir / PROVENANCE_FILE).is_file() and not settings.resume:
        raise TrainError(f"{output_dir} already holds a trained checkpoint: choose another --output")
    resume_from = None
    if settings.resume:
        from transformers.trainer_utils import get_last_checkpoint

        resume_from = get_last_checkpoint(str(output_dir)) if output_dir.is_dir() else None
        if resume_from is None:
            raise TrainError(f"--resume: no checkpoint-N folder in {output_dir} to resume from")
        log.warning("resuming from %s", resume_from)
    output_dir.mkdir(parents=True, exist_ok=True)
    return output_dir, resume_from


def _save(trainer, processor, output_dir: Path, lora: bool) -> None:
    """The final model as a plain checkpoint folder (LoRA merged) plus the processor."""
    model = trainer.accelerator.unwrap_model(trainer.model)
    # Training turns the KV cache off for gradient checkpointing; inference wants it on.
    for config in (model.config, getattr(model.config, "text_config", None)):
        if config is not None and hasattr(config, "use_cache"):
            config.use_cache = True
    if not lora:
        trainer.save_model(str(output_dir))  # gathers ZeRO-3 / FSDP shards; writes the processor
        return
    # Merging needs whole weights: fine for DDP and ZeRO-2; with ZeRO-3 save the adapter
    # (`--option save_only_model=true`) and merge offline.
    trainer.accelerator.wait_for_everyone()
    if trainer.accelerator.is_main_process:
        merged = model.merge_and_unload()
        merged.save_pretrained(str(output_dir))
        processor.save_pretrained(str(output_dir))


def _base_model_info(model: str) -> dict[str, Any]:
    path = Path(model).expanduser()
    if path.is_dir():
        from greval.adapters._local import folder_fingerprint

        return {"ref": model, "path": str(path.resolve()), "fingerprint": folder_fingerprint(path)}
    return {"ref": model, "source": "hub"}


def _write_provenance(trainer, output_dir: Path, record: dict[str, Any]) -> None:
    if not trainer.accelerator.is_main_process:
        return
    import torch

    from greval.provenance import library_versions
    from greval.records import write_json_atomic

    state = trainer.state
    record.update(
        versions=library_versions("torch", "transformers", "trl", "peft", "accelerate", "datasets"),
        hardware={
            "num_processes": trainer.accelerator.num_processes,
            "device": str(trainer.accelerator.device),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        },
        result={
            "global_step": state.global_step,
            "epoch": state.epoch,
            "log_history": state.log_history,
        },
        trl_config=json.loads(trainer.args.to_json_string()),
    )
    write_json_atomic(output_dir / PROVENANCE_FILE, record)


def _images_listing_hash(rows: list[dict[str, Any]]) -> str:
    h = hashlib.sha256()
    for row in rows:
        for image in row.get("images") or [row["image"]]:
            h.update(f"{image}\0{Path(image).stat().st_size}\n".encode())
    return h.hexdigest()


def _provenance(stage: str, data: TrainData, model: str, settings: TrainSettings, **more: Any) -> dict[str, Any]:
    return {
        "stage": stage,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": sys.argv,
        "base_model": _base_model_info(model),
        "data": {
            "path": str(data.path.resolve()),
            "sha256": data.sha256,
            # Images are not read in full here (20k photos); their paths and sizes are.
            "images_sha256": _images_listing_hash(data.rows),
            "rows_used": len(data.rows),
            "rows_skipped": data.n_skipped,
            "problems": data.problems[:100],
        },
        "settings": asdict(settings),
        **more,
    }


def run_sft(data: str | Path, output_dir: str | Path, *, model: str, settings: TrainSettings | None = None) -> Path:
    """Stage 1: supervised fine-tuning on chains of thought. Returns the checkpoint folder."""
    settings = settings or TrainSettings()
    _require_train_extra(settings.lora)
    from trl import SFTConfig, SFTTrainer

    train = read_sft(data)
    output_dir, resume_from = _prepare_output(output_dir, settings)
    rows = train.rows if settings.train_on_prompt else [to_prompt_completion(r) for r in train.rows]
    # max_length None: never cut the image tokens out of a sample.
    config = SFTConfig(max_length=None, **_common_config(settings, output_dir, "sft"))
    processor = _processor(model, settings)
    trainer = SFTTrainer(
        model=model,
        args=config,
        train_dataset=as_dataset(rows),
        processing_class=processor,
        peft_config=_peft_config(settings),
    )
    record = _provenance(
        "sft", train, model, settings, loss_on="conversation" if settings.train_on_prompt else "answer"
    )
    trainer.train(resume_from_checkpoint=resume_from)
    _save(trainer, processor, output_dir, settings.lora)
    _write_provenance(trainer, output_dir, record)
    return output_dir


def _run_grpo(
    stage: str,
    train: TrainData,
    output_dir: str | Path,
    model: str,
    settings: TrainSettings,
    reward_funcs: Sequence[Callable[..., list[float]]],
    reward_weights: Sequence[float] | None,
    **more: Any,
) -> Path:
    _require_train_extra(settings.lora)
    from trl import GRPOConfig, GRPOTrainer

    output_dir, resume_from = _prepare_output(output_dir, settings)
    common = _common_config(settings, output_dir, stage)
    if reward_weights is not None:
        common.setdefault("reward_weights", list(reward_weights))
    config = GRPOConfig(**common)
    processor = _processor(model, settings)
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=list(reward_funcs),
        args=config,
        train_dataset=as_dataset(train.rows),
        processing_class=processor,
        peft_config=_peft_config(settings),
    )
    names = [getattr(f, "__name__", type(f).__name__) for f in reward_funcs]
    record = _provenance(stage, train, model, settings, rewards=names, reward_weights=reward_weights, **more)
    trainer.train(resume_from_checkpoint=resume_from)
    _save(trainer, processor, output_dir, settings.lora)
    _write_provenance(trainer, output_dir, record)
    return output_dir


def judge_rewards() -> list[Callable[..., list[float]]]:
    """Stage 2's reward functions (TRL shape): the verdict matches the label."""
    from greval.reward import judge_reward_trl

    return [judge_reward_trl]


def geo_rewards(tau: str | float, earth: str = "haversine") -> list[Callable[..., list[float]]]:
    """Stage 3's reward functions (TRL shape): geo reward at τ (a stage name, km, or a
    schedule like "country,region@400"), then the format reward."""
    from greval.reward import format_reward_trl, make_geo_reward, parse_tau

    schedule = parse_tau(str(tau))
    return [make_geo_reward(schedule[0][1] if len(schedule) == 1 else schedule, earth=earth), format_reward_trl]


def run_grpo_judge(
    data: str | Path,
    output_dir: str | Path,
    *,
    model: str,
    settings: TrainSettings | None = None,
    reward_funcs: Sequence[Callable[..., list[float]]] | None = None,
) -> Path:
    """Stage 2: GRPO where the model judges a given chain + answer True/False."""
    return _run_grpo(
        "grpo-judge",
        read_judge(data),
        output_dir,
        model,
        settings or TrainSettings(),
        reward_funcs or judge_rewards(),
        None,
    )


def run_grpo_geo(
    data: str | Path,
    output_dir: str | Path,
    *,
    model: str,
    tau: str | float,
    earth: str = "haversine",
    format_weight: float = 1.0,
    settings: TrainSettings | None = None,
    reward_funcs: Sequence[Callable[..., list[float]]] | None = None,
) -> Path:
    """Stage 3: GRPO on seed images with the geo reward (τ as in `geo_rewards`) and the
    format reward weighted `format_weight`. `reward_funcs` replaces both (same order)."""
    from greval.reward import parse_tau

    schedule = parse_tau(str(tau))  # fail before loading anything
    funcs = reward_funcs or geo_rewards(tau, earth)
    return _run_grpo(
        "grpo-geo",
        read_geo(data),
        output_dir,
        model,
        settings or TrainSettings(),
        funcs,
        [1.0, float(format_weight)] if len(funcs) == 2 else None,
        tau_schedule_km=schedule,
        earth=earth,
    )


# --------------------------------------------------------------------------- CLI


def _parse_options(pairs: Sequence[str]) -> dict[str, Any]:
    import yaml

    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{pair!r}: use KEY=VALUE", param_hint="--option")
        out[key.strip()] = yaml.safe_load(value)
    return out


def _common_options(grpo: bool):
    def wrap(fn):
        opts = [
            click.argument("data", type=click.Path(exists=True, dir_okay=False)),
            click.option("--model", required=True, help="Base model: a local folder or a hub id."),
            click.option(
                "--output", "output_dir", required=True, type=click.Path(), help="Checkpoint folder to write."
            ),
            click.option("--learning-rate", "--lr", type=float, default=1e-5, show_default=True),
            click.option("--epochs", "num_train_epochs", type=float, default=1.0, show_default=True),
            click.option("--max-steps", type=int, default=-1, help="Stop after N optimiser steps (overrides epochs)."),
            click.option("--per-device-train-batch-size", type=int, default=None, help="[sft 4, grpo 8]"),
            click.option("--gradient-accumulation-steps", type=int, default=None, help="[sft 4, grpo 1]"),
            click.option("--use-cpu", is_flag=True, help="Train on the CPU (tests, tiny models)."),
            click.option("--bf16/--no-bf16", default=None, help="[on for GPUs that support it]"),
            click.option("--gradient-checkpointing/--no-gradient-checkpointing", default=None, help="[on on GPU]"),
            click.option("--seed", type=int, default=0, show_default=True),
            click.option(
                "--save-steps", type=int, default=500, show_default=True, help="0: no intermediate checkpoints."
            ),
            click.option("--logging-steps", type=int, default=10, show_default=True),
            click.option("--resume", is_flag=True, help="Continue from the last checkpoint-N in --output."),
            click.option("--max-pixels", type=int, default=None, help="Image pixel budget (Qwen-style processors)."),
            click.option("--lora", is_flag=True, help="Train LoRA adapters (merged into the saved model)."),
            click.option("--lora-r", type=int, default=16, show_default=True),
            click.option("--lora-alpha", type=int, default=32, show_default=True),
            click.option("--lora-dropout", type=float, default=0.05, show_default=True),
            click.option("--lora-target-modules", default="all-linear", show_default=True),
            click.option(
                "--option", "extra", multiple=True, help="Any other TRL config field: KEY=VALUE (repeatable)."
            ),
        ]
        if grpo:
            opts += [
                click.option("--num-generations", type=int, default=8, show_default=True),
                click.option(
                    "--beta", type=float, default=0.04, show_default=True, help="KL weight (TRL's default 0)."
                ),
                click.option("--max-completion-length", type=int, default=2048, show_default=True),
                click.option("--temperature", type=float, default=1.0, show_default=True),
                click.option("--loss-type", default=None, help="TRL loss_type (grpo, dapo, dr_grpo, ...) [TRL's]"),
            ]
        for opt in reversed(opts):
            fn = opt(fn)
        return fn

    return wrap


def _settings(kwargs: dict[str, Any]) -> TrainSettings:
    names = {f.name for f in fields(TrainSettings)}
    values = {k: v for k, v in kwargs.items() if k in names and k != "extra"}
    return TrainSettings(**values, extra=_parse_options(kwargs.get("extra", ())))


def _run_and_report(run: Callable[[], Path]) -> None:
    try:
        path = run()
    except TrainError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"wrote {path} (evaluate: greval run --adapter gre --model {path} ...)")


@click.group("train")
def train_cli() -> None:
    """Train GRE-style models: sft, then grpo-judge, then grpo-geo (needs greval[train])."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")


@train_cli.command("sft")
@_common_options(grpo=False)
@click.option("--train-on-prompt", is_flag=True, help="Loss on the whole conversation, not only the answer.")
def sft_command(data: str, model: str, output_dir: str, **kwargs: Any) -> None:
    """Stage 1: cold-start SFT on chains of thought (GRE30K-CoT format)."""
    settings = _settings(kwargs)
    _run_and_report(lambda: run_sft(data, output_dir, model=model, settings=settings))


@train_cli.command("grpo-judge")
@_common_options(grpo=True)
def grpo_judge_command(data: str, model: str, output_dir: str, **kwargs: Any) -> None:
    """Stage 2: GRPO judging given chains True/False (GRE30K-Judge format, field `label`)."""
    settings = _settings(kwargs)
    _run_and_report(lambda: run_grpo_judge(data, output_dir, model=model, settings=settings))


@train_cli.command("grpo-geo")
@_common_options(grpo=True)
@click.option(
    "--tau",
    required=True,
    help="Geo reward scale τ in km or by stage (country 750, region 200, city 25); "
    "a schedule tightens it at given steps: country,region@400,city@900.",
)
@click.option("--earth", type=click.Choice(["haversine", "geodesic"]), default="haversine", show_default=True)
@click.option("--format-weight", type=float, default=1.0, show_default=True)
def grpo_geo_command(
    data: str, model: str, output_dir: str, tau: str, earth: str, format_weight: float, **kwargs: Any
) -> None:
    """Stage 3: GRPO on seed images with the geo and format rewards."""
    from greval.reward import parse_tau

    try:
        parse_tau(tau)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--tau") from None
    settings = _settings(kwargs)
    _run_and_report(
        lambda: run_grpo_geo(
            data, output_dir, model=model, tau=tau, earth=earth, format_weight=format_weight, settings=settings
        )
    )


if __name__ == "__main__":  # accelerate launch -m greval.train …
    train_cli()
