"""The bundled GRE trainer on a tiny random Qwen2.5-VL, on CPU: data readers, real TRL
SFT / GRPO steps, the rewards TRL calls (with which columns), and checkpoints that the
`gre` adapter loads and generates from."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import pytest
from _skips import require

require("trl", "train")
require("peft", "train")
require("torchvision", "train")

from click.testing import CliRunner  # noqa: E402
from greval.adapters._local import folder_fingerprint  # noqa: E402
from PIL import Image  # noqa: E402

from greval.adapter import get_adapter_class  # noqa: E402
from greval.prompts import load_template  # noqa: E402
from greval.reward import geo_reward  # noqa: E402
from greval.train import (  # noqa: E402
    PROVENANCE_FILE,
    TrainDataError,
    TrainError,
    TrainSettings,
    geo_rewards,
    judge_rewards,
    read_geo,
    read_judge,
    read_sft,
    run_grpo_geo,
    run_grpo_judge,
    to_prompt_completion,
    train_cli,
)
from greval.types import GenerationConfig, Request, Sample  # noqa: E402

N = 4
LATS = [45.465, -33.87, 35.68, 51.5]
LONS = [9.191, 151.21, 139.69, -0.13]
SIZES = [(64, 64), (72, 64), (64, 80), (96, 64)]
ANSWER = '<think>Gothic cathedral.</think><answer>{"Latitude": "45.465 °", "Longitude": "9.191 °"}</answer>'

CPU = ["--use-cpu", "--no-bf16", "--max-steps", "2", "--per-device-train-batch-size", "2"]
CPU += ["--gradient-accumulation-steps", "1", "--save-steps", "0", "--logging-steps", "1"]


def cpu_settings(**kw) -> TrainSettings:
    base = dict(
        use_cpu=True,
        bf16=False,
        max_steps=2,
        per_device_train_batch_size=2,
        gradient_accumulation_steps=1,
        save_steps=0,
        logging_steps=1,
        num_generations=2,
        max_completion_length=12,
    )
    return TrainSettings(**{**base, **kw})


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """Four distinct images in imgs/ and one data file per stage, paths relative."""
    root = tmp_path_factory.mktemp("train-data")
    (root / "imgs").mkdir()
    for i, size in enumerate(SIZES):
        Image.new("RGB", size, (40 * i, 200 - 30 * i, 90)).save(root / "imgs" / f"{i}.jpg")
    sft = [
        {
            "image": f"imgs/{i}.jpg",
            "conversations": [
                {"from": "human", "value": f"<image>\nPhoto {i}: where was it taken?"},
                {"from": "gpt", "value": ANSWER},
            ],
            "gt_lat": LATS[i],
            "gt_lon": LONS[i],
        }
        for i in range(N)
    ]
    (root / "sft.json").write_text(json.dumps(sft))
    geo = [
        {
            "id": f"s{i}",
            "image": f"imgs/{i}.jpg",
            "instructions": f"<image>\nPhoto {i}: where?",
            "gt_lat": LATS[i],
            "gt_lon": LONS[i],
        }
        for i in range(N)
    ]
    (root / "geo.jsonl").write_text("\n".join(json.dumps(r) for r in geo) + "\n")
    judge = [
        {"image": f"imgs/{i}.jpg", "predicted_cot": f"Chain {i}.", "predicted_answer": "45.4, 9.1", "label": i % 2 == 0}
        for i in range(N)
    ]
    (root / "judge.json").write_text(json.dumps(judge))
    return root


def prompt_text(prompt) -> str:
    return " ".join(p["text"] for m in prompt for p in m["content"] if p.get("type") == "text")


def photo_index(prompt) -> int:
    """Which data row a prompt came from (its "Photo i" / "Chain i" marker)."""
    text = prompt_text(prompt)
    for i in range(N):
        if f"Photo {i}" in text or f"Chain {i}." in text:
            return i
    raise AssertionError(f"no row marker in {text!r}")


def recording(fn, calls: list):
    """Our real reward function, with every call's keyword arguments and result kept
    (and the global step at call time: TRL passes one live TrainerState)."""

    def wrapper(**kwargs):
        out = fn(**kwargs)
        calls.append(({**kwargs, "step": kwargs["trainer_state"].global_step}, out))
        return out

    wrapper.__name__ = fn.__name__
    return wrapper


def generates(checkpoint: Path, image: Path) -> None:
    adapter = get_adapter_class("gre")(model=str(checkpoint), device="cpu")
    try:
        sample = Sample("x", 0.0, 0.0, image_path=image)
        prompt = load_template("gre").template
        [response] = adapter.generate([Request(sample, "t", prompt, generation=GenerationConfig(max_tokens=6))])
    finally:
        adapter.close()
    assert response.error is None and isinstance(response.text, str)
    assert response.usage.output_tokens > 0


# ------------------------------------------------------------------ readers


def test_sft_reader_builds_typed_messages_with_the_image_where_the_placeholder_was(data):
    train = read_sft(data / "sft.json")
    assert len(train.rows) == N and train.n_skipped == 0
    assert train.sha256 == hashlib.sha256((data / "sft.json").read_bytes()).hexdigest()
    row = train.rows[1]
    assert row["images"] == [str(data / "imgs" / "1.jpg")]
    assert row["messages"] == [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Photo 1: where was it taken?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": ANSWER}]},
    ]
    split = to_prompt_completion(row)
    assert split["prompt"] == row["messages"][:1] and split["completion"] == row["messages"][1:]


def test_bad_rows_are_skipped_with_a_message_naming_them(tmp_path, data, caplog):
    Image.new("RGB", (8, 8)).save(tmp_path / "ok.png")
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    good = {
        "image": "ok.png",
        "conversations": [{"from": "human", "value": "<image>Where?"}, {"from": "gpt", "value": "x"}],
    }
    rows = [
        good,
        {**good, "image": "missing.jpg"},
        {**good, "image": "broken.jpg"},
        {**good, "conversations": [{"from": "human", "value": "<image>Where?"}]},
        {**good, "conversations": [{"from": "human", "value": "<image><image>"}, {"from": "gpt", "value": "x"}]},
        {**good, "conversations": [{"from": "robot", "value": "hi"}, {"from": "gpt", "value": "x"}]},
        {**good, "sample_id": "abc", "conversations": "nope"},
    ]
    lines = [json.dumps(r) for r in rows] + ["{not json"]
    (tmp_path / "sft.jsonl").write_text("\n".join(lines))
    with caplog.at_level(logging.WARNING, logger="greval.train"):
        train = read_sft(tmp_path / "sft.jsonl")
    assert len(train.rows) == 1 and train.n_skipped == 7
    text = "\n".join(train.problems)
    for expected in (
        "sft.jsonl row 1: image not found",
        "row 2: image",
        "not readable",
        "row 3: the conversation does not end with a gpt turn",
        "row 4: 2 <image> placeholders",
        "row 5: conversation turn 0: unknown speaker 'robot'",
        "row 6 (id 'abc'): no 'conversations' list",
        "row 7: line 8 is not valid JSON",
    ):
        assert expected in text
    assert all(p in caplog.text for p in train.problems)


def test_geo_and_judge_readers(tmp_path, data):
    geo = read_geo(data / "geo.jsonl")
    assert [r["gt_lat"] for r in geo.rows] == LATS and [r["gt_lon"] for r in geo.rows] == LONS
    assert geo.rows[2]["prompt"][0]["content"] == [{"type": "image"}, {"type": "text", "text": "Photo 2: where?"}]
    judge = read_judge(data / "judge.json")
    assert [r["label"] for r in judge.rows] == [True, False, True, False]
    assert "Chain 3." in prompt_text(judge.rows[3]["prompt"]) and "45.4, 9.1" in prompt_text(judge.rows[3]["prompt"])

    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    rows = [
        {"image": "a.png", "gt_lat": 10, "gt_lon": 20},  # no instructions: greval's gre prompt
        {"image": "a.png", "gt_lat": 91, "gt_lon": 0},
        {"image": "a.png", "gt_lat": "north", "gt_lon": 0},
        {"image": "a.png", "gt_lat": 1, "gt_lon": float("nan")},
    ]
    (tmp_path / "geo.json").write_text(json.dumps(rows))
    geo = read_geo(tmp_path / "geo.json")
    assert len(geo.rows) == 1 and geo.n_skipped == 3
    assert prompt_text(geo.rows[0]["prompt"]) == load_template("gre").template
    assert "gt_lat 91 is out of range" in geo.problems[0] and "'north', not a number" in geo.problems[1]

    (tmp_path / "judge.json").write_text(
        json.dumps([{"image": "a.png", "predicted_cot": "c", "predicted_answer": "a", "label": "maybe"}])
    )
    with pytest.raises(TrainDataError, match="none of 1 rows.*not a True/False label: 'maybe'"):
        read_judge(tmp_path / "judge.json")


# ------------------------------------------------------------------ training


def test_sft_cli_trains_a_checkpoint_the_gre_adapter_loads(tiny, data, tmp_path):
    out = tmp_path / "sft"
    result = CliRunner().invoke(
        train_cli, ["sft", str(data / "sft.json"), "--model", str(tiny), "--output", str(out), *CPU]
    )
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.output
    for name in ("config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja", PROVENANCE_FILE):
        assert (out / name).is_file(), name

    from safetensors.torch import load_file

    before, after = load_file(tiny / "model.safetensors"), load_file(out / "model.safetensors")
    assert before.keys() == after.keys()
    assert any(not before[k].equal(after[k]) for k in before), "two SFT steps changed no weight"

    prov = json.loads((out / PROVENANCE_FILE).read_text())
    assert prov["stage"] == "sft" and prov["loss_on"] == "answer"
    assert prov["data"]["sha256"] == hashlib.sha256((data / "sft.json").read_bytes()).hexdigest()
    assert prov["data"]["rows_used"] == N and prov["data"]["rows_skipped"] == 0
    assert len(prov["data"]["images_sha256"]) == 64
    assert prov["base_model"]["fingerprint"] == folder_fingerprint(tiny)
    assert prov["versions"]["trl"] and prov["versions"]["transformers"] and prov["versions"]["torch"]
    assert prov["result"]["global_step"] == 2 and prov["settings"]["learning_rate"] == 1e-5
    assert prov["trl_config"]["max_steps"] == 2 and prov["trl_config"]["use_cpu"] is True
    assert json.loads((out / "config.json").read_text())["text_config"]["use_cache"] is True
    generates(out, data / "imgs" / "0.jpg")

    again = CliRunner().invoke(
        train_cli, ["sft", str(data / "sft.json"), "--model", str(tiny), "--output", str(out), *CPU]
    )
    assert again.exit_code == 1 and "already holds a trained checkpoint" in again.output


def test_grpo_geo_calls_the_rewards_with_each_rows_columns(tiny, data, tmp_path):
    geo_calls: list = []
    format_calls: list = []
    geo_fn, format_fn = geo_rewards("country")
    out = run_grpo_geo(
        data / "geo.jsonl",
        tmp_path / "geo",
        model=str(tiny),
        tau="country",
        settings=cpu_settings(),
        reward_funcs=[recording(geo_fn, geo_calls), recording(format_fn, format_calls)],
    )
    assert len(geo_calls) == len(format_calls) == 2  # one call per step: 1 prompt x 2 generations
    for kwargs, rewards in geo_calls:
        completions = kwargs["completions"]
        assert len(completions) == len(rewards) == 2
        for completion in completions:
            assert isinstance(completion, list) and completion[0]["role"] == "assistant"
            assert isinstance(completion[0]["content"], str)
        for j, prompt in enumerate(kwargs["prompts"]):
            i = photo_index(prompt)  # the truth and the image travel with their own prompt
            assert kwargs["gt_lat"][j] == LATS[i] and kwargs["gt_lon"][j] == LONS[i]
            assert kwargs["image"][j].size == SIZES[i]
        assert rewards == geo_reward(completions, kwargs["gt_lat"], kwargs["gt_lon"], tau_km=750)
    assert [kwargs["step"] for kwargs, _ in geo_calls] == [0, 1]
    assert format_calls[0][0]["completions"] == geo_calls[0][0]["completions"]

    prov = json.loads((out / PROVENANCE_FILE).read_text())
    assert prov["stage"] == "grpo-geo" and prov["tau_schedule_km"] == [[0, 750.0]]
    assert prov["rewards"] == ["geo_reward", "format_reward"] and prov["reward_weights"] == [1.0, 1.0]
    assert prov["trl_config"]["beta"] == 0.04 and prov["trl_config"]["num_generations"] == 2
    assert any("rewards/geo_reward/mean" in entry for entry in prov["result"]["log_history"])
    generates(out, data / "imgs" / "1.jpg")


def distinct_characters(completions, **_):
    """A reward that differs between random completions, so GRPO has an advantage to follow
    (the real rewards are all 0 for a random model's gibberish)."""
    return [float(len(set(c[0]["content"]))) for c in completions]


def test_grpo_judge_with_lora_gets_labels_and_saves_a_merged_model(tiny, data, tmp_path):
    calls: list = []
    out = run_grpo_judge(
        data / "judge.json",
        tmp_path / "judge",
        model=str(tiny),
        settings=cpu_settings(lora=True, lora_r=4, lora_alpha=8, learning_rate=1e-3),
        reward_funcs=[recording(f, calls) for f in judge_rewards()] + [distinct_characters],
    )
    assert len(calls) == 2
    for kwargs, rewards in calls:
        for j, prompt in enumerate(kwargs["prompts"]):
            assert kwargs["label"][j] is (photo_index(prompt) % 2 == 0)
        assert all(r in (0.0, 1.0) for r in rewards)
    assert not (out / "adapter_config.json").exists()  # merged: a plain model folder
    from safetensors.torch import load_file

    before, after = load_file(tiny / "model.safetensors"), load_file(out / "model.safetensors")
    assert before.keys() == after.keys()
    assert any(not before[k].equal(after[k]) for k in before), "the trained LoRA deltas were not merged"
    prov = json.loads((out / PROVENANCE_FILE).read_text())
    assert prov["settings"]["lora"] is True and prov["rewards"] == ["judge_reward", "distinct_characters"]
    generates(out, data / "imgs" / "2.jpg")


def test_grpo_geo_cli_needs_a_valid_tau(tiny, data, tmp_path):
    args = ["grpo-geo", str(data / "geo.jsonl"), "--model", str(tiny), "--output", str(tmp_path / "o"), *CPU]
    with pytest.raises(TypeError):
        run_grpo_geo(data / "geo.jsonl", tmp_path / "o", model=str(tiny))  # τ has no default
    missing = CliRunner().invoke(train_cli, args)
    assert missing.exit_code == 2 and "--tau" in missing.output
    bad = CliRunner().invoke(train_cli, [*args, "--tau", "country,city"])
    assert bad.exit_code == 2 and "needs @STEP" in bad.output
    assert not (tmp_path / "o").exists()


def test_resume_continues_from_the_last_intermediate_checkpoint(tiny, data, tmp_path):
    out = tmp_path / "geo"
    run_grpo_geo(data / "geo.jsonl", out, model=str(tiny), tau=750, settings=cpu_settings(max_steps=1, save_steps=1))
    assert (out / "checkpoint-1").is_dir()
    with pytest.raises(TrainError, match="already holds a trained checkpoint"):
        run_grpo_geo(data / "geo.jsonl", out, model=str(tiny), tau=750, settings=cpu_settings(max_steps=2))
    with pytest.raises(TrainError, match="no checkpoint-N folder"):
        run_grpo_geo(
            data / "geo.jsonl", tmp_path / "fresh", model=str(tiny), tau=750, settings=cpu_settings(resume=True)
        )
    calls: list = []
    geo_fn, format_fn = geo_rewards(750)
    run_grpo_geo(
        data / "geo.jsonl",
        out,
        model=str(tiny),
        tau=750,
        settings=cpu_settings(max_steps=2, save_steps=1, resume=True),
        reward_funcs=[recording(geo_fn, calls), format_fn],
    )
    assert [kwargs["step"] for kwargs, _ in calls] == [1]  # step 0 was done before the restart
    assert json.loads((out / PROVENANCE_FILE).read_text())["result"]["global_step"] == 2
