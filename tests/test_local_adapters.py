"""The local-weights adapters (hf, gre, vllm) on a tiny random Qwen2.5-VL, on CPU.

The tiny model writes random text: these tests check batching, token accounting,
provenance, errors and the run loop, never coordinates.
"""

from __future__ import annotations

import base64
import json

import pytest
from _skips import require, vllm_gpu_reason

require("transformers", "local")
require("torchvision", "local")

from greval.adapter import AdapterError, get_adapter_class  # noqa: E402
from greval.testing import build_tiny_vlm, make_fixture_bench  # noqa: E402
from greval.types import GenerationConfig, Request, Sample  # noqa: E402


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    return make_fixture_bench(tmp_path_factory.mktemp("bench") / "bench", n=6, seed=0)


@pytest.fixture(scope="module")
def hf(tiny):
    adapter = get_adapter_class("hf")(str(tiny), batch_size=4, dtype="float32", device="cpu")
    yield adapter
    adapter.close()


def _samples(bench):
    rows = json.loads((bench / "GREval-Bench.json").read_text())
    return [
        Sample(sample_id=r["sample_id"], gt_lat=r["gt_lat"], gt_lon=r["gt_lon"], image_path=bench / r["image_path"])
        for r in rows
    ]


def _requests(samples, max_tokens=12, system=None):
    return [
        Request(
            sample=s,
            task="t",
            prompt=f"Where was photo {s.sample_id} taken? Think about sample {i}.",
            system=system,
            generation=GenerationConfig(max_tokens=max_tokens),
        )
        for i, s in enumerate(samples)
    ]


def test_batched_greedy_equals_unbatched(hf, bench):
    requests = _requests(_samples(bench))
    one_by_one = [hf.generate([r])[0] for r in requests]
    batched = hf.generate(requests[:4]) + hf.generate(requests[4:])
    texts = [r.text for r in one_by_one]
    assert [r.text for r in batched] == texts
    assert [r.usage.output_tokens for r in batched] == [r.usage.output_tokens for r in one_by_one]
    assert [r.usage.input_tokens for r in batched] == [r.usage.input_tokens for r in one_by_one]
    # The comparison means something only if outputs depend on the input.
    assert len(set(texts)) > 1


def test_token_limit_sets_length_and_usage(hf, bench):
    responses = hf.generate(_requests(_samples(bench)[:3], max_tokens=5))
    for r in responses:
        assert r.error is None and isinstance(r.text, str)
        assert r.usage.input_tokens > 64  # 64 image tokens for a 224x224 photo, plus the chat text
        if r.finish_reason == "length":
            assert r.usage.output_tokens == 5
        else:
            assert r.finish_reason == "stop" and r.usage.output_tokens <= 5
        assert r.meta["image_size"] == [224, 224]


def test_max_new_tokens_option_overrides_the_task(tiny, bench):
    adapter = get_adapter_class("hf")(str(tiny), max_new_tokens=3, dtype="float32", device="cpu")
    (response,) = adapter.generate(_requests(_samples(bench)[:1], max_tokens=50))
    assert response.usage.output_tokens <= 3


def test_unreadable_image_fails_only_its_sample(hf, bench, tmp_path):
    samples = _samples(bench)[:3]
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    samples.insert(1, Sample(sample_id="broken-1", gt_lat=0.0, gt_lon=0.0, image_path=broken))
    requests = _requests(samples)
    responses = hf.generate(requests)
    # A data problem of its sample, naming the sample and the file; not a request error.
    problem = responses[1].data_problem
    assert problem and "broken-1" in problem and str(broken) in problem and "BytesIO" not in problem
    assert responses[1].error is None and responses[1].text is None
    alone = [hf.generate([r])[0].text for i, r in enumerate(requests) if i != 1]
    assert [r.text for i, r in enumerate(responses) if i != 1] == alone


def test_system_prompt_and_pixel_limits_change_the_input(tiny, bench):
    small = get_adapter_class("hf")(str(tiny), max_pixels=112 * 112, dtype="float32", device="cpu", some_future_flag=1)
    base = get_adapter_class("hf")(str(tiny), dtype="float32", device="cpu")
    request = _requests(_samples(bench)[:1], max_tokens=1)
    (a,) = base.generate(request)
    (b,) = small.generate(request)
    # 112x112 -> 4x4 merged patches = 16 image tokens instead of 64
    assert a.usage.input_tokens - b.usage.input_tokens == 64 - 16
    (c,) = base.generate(_requests(_samples(bench)[:1], max_tokens=1, system="Answer briefly."))
    assert c.usage.input_tokens != a.usage.input_tokens
    assert small.info()["image_max_pixels"] == 112 * 112


def test_info_records_provenance(hf, tiny, tmp_path):
    info = hf.info()
    assert info["kind"] == "open-weights" and info["backend"] == "transformers"
    assert info["checkpoint"]["source"] == "local" and len(info["checkpoint"]["fingerprint"]) == 64
    assert info["dtype"] == "float32" and info["device"] == "cpu"
    assert info["versions"]["transformers"] and info["versions"]["torch"]
    assert info["batch_size"] == 4 and info["trust_remote_code"] is False
    assert info["image_max_pixels"] == 224 * 224
    json.dumps(info)  # run.json must be able to hold it
    # Another checkpoint (other weights) has another fingerprint.
    other = build_tiny_vlm(tmp_path / "other", seed=1)
    assert (
        get_adapter_class("hf")(str(other), device="cpu").info()["checkpoint"]["fingerprint"]
        != info["checkpoint"]["fingerprint"]
    )


def test_missing_weights_say_how_to_pass_a_local_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(AdapterError, match="--model PATH") as err:
        get_adapter_class("hf")(str(tmp_path / "nowhere"))
    assert "nowhere" in str(err.value)
    with pytest.raises(AdapterError, match=r"Anonymous0515/GRE.*--model PATH"):
        get_adapter_class("gre")()
    with pytest.raises(AdapterError, match="needs a model"):
        get_adapter_class("hf")()
    (tmp_path / "empty").mkdir()
    with pytest.raises(AdapterError, match="no config.json"):
        get_adapter_class("hf")(str(tmp_path / "empty"))


def test_gre_adapter_uses_its_template_and_the_hf_backend(tiny, bench):
    gre = get_adapter_class("gre")(str(tiny), batch_size=2, dtype="float32", device="cpu")
    assert gre.default_template == "gre" and gre.kind == "open-weights" and gre.batch_size == 2
    info = gre.info()
    assert info["adapter"] == "gre" and info["gre_backend"] == "hf" and info["checkpoint"]["path"] == str(tiny)
    (response,) = gre.generate(_requests(_samples(bench)[:1], max_tokens=4))
    assert response.error is None and response.usage.output_tokens <= 4
    with pytest.raises(AdapterError, match="backend"):
        get_adapter_class("gre")(str(tiny), backend="tgi")


# -- vLLM: request building runs everywhere; the engine only where vLLM and a GPU are --


def _has_vllm() -> bool:
    try:
        import vllm  # noqa: F401
    except ImportError:
        return False
    return True


def test_vllm_request_building(bench):
    from greval.adapters import vllm as v

    sample = _samples(bench)[0]
    request = Request(
        sample=sample,
        task="t",
        prompt="Where?",
        system="Be exact.",
        generation=GenerationConfig(max_tokens=99, seed=7),
    )
    image = sample.load_image()
    messages = v.build_messages(request, v.image_part(image))
    assert messages == [
        {"role": "system", "content": "Be exact."},
        {"role": "user", "content": [{"type": "image_pil", "image_pil": image}, {"type": "text", "text": "Where?"}]},
    ]
    part = v.image_part(image_bytes=sample.image_bytes(), transport="data_url")
    url = part["image_url"]["url"]
    header, payload = url.split(",", 1)
    assert part["type"] == "image_url" and header in ("data:image/jpeg;base64", "data:image/png;base64")
    assert base64.b64decode(payload) == sample.image_bytes()  # lossless: the file's own bytes

    assert v.sampling_kwargs(request.generation) == {"max_tokens": 99, "temperature": 0.0, "seed": 7}
    assert v.sampling_kwargs(request.generation, max_new_tokens=5)["max_tokens"] == 5
    hot = GenerationConfig(max_tokens=10, temperature=0.7, top_p=0.9, seed=1)
    assert v.sampling_kwargs(hot) == {"max_tokens": 10, "temperature": 0.7, "seed": 1, "top_p": 0.9}


def test_vllm_engine_kwargs_pass_settings_through():
    from greval.adapters import vllm as v

    kwargs = v.engine_kwargs(
        "/models/gre",
        dtype="bfloat16",
        tensor_parallel_size="4",  # --option values arrive as strings
        gpu_memory_utilization=0.85,
        max_model_len="8192",
        min_pixels=3136,
        max_pixels=1003520,
        seed=3,
    )
    assert kwargs == {
        "model": "/models/gre",
        "dtype": "bfloat16",
        "tensor_parallel_size": 4,
        "seed": 3,
        "trust_remote_code": False,
        "limit_mm_per_prompt": {"image": 1},
        "gpu_memory_utilization": 0.85,
        "max_model_len": 8192,
        "mm_processor_kwargs": {"min_pixels": 3136, "max_pixels": 1003520},
    }
    assert "mm_processor_kwargs" not in v.engine_kwargs("/m", max_pixels=100, qwen_pixels=False)
    assert v.engine_kwargs("/m", limit_mm_per_prompt='{"image": 2}')["limit_mm_per_prompt"] == {"image": 2}
    with pytest.raises(AdapterError, match="JSON object"):
        v.engine_kwargs("/m", limit_mm_per_prompt="image=2")
    assert v.is_qwen_vl({"model_type": "qwen2_5_vl"}) and not v.is_qwen_vl({"model_type": "llava"})


def test_vllm_data_parallel_layout():
    from greval.adapters import vllm as v

    assert [v.replica_gpus(r, 2, None) for r in range(4)] == ["0,1", "2,3", "4,5", "6,7"]
    assert v.replica_gpus(1, 2, "4,5,6,7") == "6,7"
    with pytest.raises(AdapterError, match="data-parallel-size"):
        v.replica_gpus(2, 2, "0,1,2,3")
    assert [list(r) for r in v.split_evenly(7, 3)] == [[0, 1, 2], [3, 4], [5, 6]]
    assert [list(r) for r in v.split_evenly(2, 4)] == [[0], [1]]


def test_vllm_adapter_hands_its_options_to_the_engine(tiny, monkeypatch):
    """The options the vllm adapter declares reach vllm.LLM (a stand-in that records its
    arguments; real vLLM needs a CUDA machine: test_vllm_engine_generates_on_gpu)."""
    import sys
    import types

    built = {}
    stand_in = types.ModuleType("vllm")
    stand_in.LLM = lambda **kwargs: built.update(kwargs)
    monkeypatch.setitem(sys.modules, "vllm", stand_in)
    adapter = get_adapter_class("vllm")(
        str(tiny),
        tensor_parallel_size="2",  # -M values may arrive as text
        max_model_len=4096,
        max_pixels=50176,
        enforce_eager="false",
        seed=5,
        batch_size=3,
        max_new_tokens=9,
        no_cache=True,
    )
    assert built["model"] == str(tiny.resolve()) and built["tensor_parallel_size"] == 2
    assert built["max_model_len"] == 4096 and built["seed"] == 5 and "enforce_eager" not in built
    assert built["mm_processor_kwargs"]["max_pixels"] == 50176
    assert (adapter.batch_size, adapter.max_new_tokens, adapter.image_transport) == (3, 9, "pil")


@pytest.mark.skipif(_has_vllm(), reason="vLLM is installed here: this test needs an environment without it (pip uninstall vllm)")
def test_vllm_missing_gives_install_hint(tiny):
    with pytest.raises(AdapterError, match=r"pip install 'greval\[vllm\]'"):
        get_adapter_class("vllm")(str(tiny))
    with pytest.raises(AdapterError, match="greval\\[vllm\\]"):
        get_adapter_class("gre")(str(tiny), backend="vllm")


@pytest.mark.gpu
@pytest.mark.skipif(vllm_gpu_reason() is not None, reason=str(vllm_gpu_reason()))
def test_vllm_engine_generates_on_gpu(tiny, bench):
    adapter = get_adapter_class("vllm")(str(tiny), gpu_memory_utilization=0.3, max_model_len=2048, enforce_eager=True)
    try:
        responses = adapter.generate(_requests(_samples(bench), max_tokens=8))
        assert all(r.error is None and r.usage.output_tokens <= 8 and r.usage.input_tokens > 64 for r in responses)
        again = adapter.generate(_requests(_samples(bench), max_tokens=8)[:1])
        assert again[0].text == responses[0].text  # greedy is deterministic
        assert adapter.info()["versions"]["vllm"]
    finally:
        adapter.close()


# -- end to end through the CLI ---------------------------------------------------


def _cli(*args):
    from click.testing import CliRunner

    from greval.cli import main

    result = CliRunner().invoke(main, ["run", "--quiet", *map(str, args)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result


def _lines(run_dir):
    return [json.loads(line) for line in (run_dir / "predictions.jsonl").read_text().splitlines() if line.strip()]


@pytest.mark.parametrize("adapter", ["hf", "gre"])
def test_cli_run_writes_one_prediction_per_sample_and_resumes(adapter, tiny, bench, tmp_path):
    n = len(json.loads((bench / "GREval-Bench.json").read_text()))
    out = tmp_path / "run"
    args = ["--adapter", adapter, "--model", tiny, "--data", bench, "--tasks", "all", "--output", out]
    _cli(*args, "--max-new-tokens", 8, "--batch-size", 4, "--dtype", "float32", "--device", "cpu")
    records = _lines(out)
    assert len(records) == n and len({r["sample_id"] for r in records}) == n
    assert all(r["task"] == "all" and r["status"] != "error" and r["output"] is not None for r in records)
    assert (out / "metrics.json").is_file()
    info = json.loads((out / "run.json").read_text())["adapter_info"]
    assert info["adapter"] == adapter and info["checkpoint"]["fingerprint"]

    # Resume after a crash that lost the last two records: only those are generated again,
    # and (greedy, batch size now 1) they come out the same.
    kept, lost = records[:-2], records[-2:]
    (out / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in kept))
    _cli(*args, "--max-new-tokens", 8, "--batch-size", 1, "--dtype", "float32", "--device", "cpu", "--no-cache")
    after = _lines(out)
    assert len(after) == n
    assert [(r["sample_id"], r["output"]) for r in after[-2:]] == [(r["sample_id"], r["output"]) for r in lost]


def test_local_answers_come_from_the_cache_until_the_weights_change(tiny, bench, tmp_path):
    import os
    import shutil

    tiny = shutil.copytree(tiny, tmp_path / "ckpt")  # its weights are touched below: not the shared one
    n = len(json.loads((bench / "GREval-Bench.json").read_text()))
    common = ["--adapter", "hf", "--model", tiny, "--data", bench, "--tasks", "all", "--max-new-tokens", 8]
    common += ["--batch-size", 4, "--dtype", "float32", "--device", "cpu"]
    _cli(*common, "--output", tmp_path / "a")
    said = _cli(*common, "--output", tmp_path / "b").output  # a new folder: every answer is in the cache
    assert f"{n} of {n} answers came from the response cache" in said
    first, second = _lines(tmp_path / "a"), _lines(tmp_path / "b")
    assert not any(r["cached"] for r in first) and all(r["cached"] for r in second)
    assert [(r["sample_id"], r["output"]) for r in second] == [(r["sample_id"], r["output"]) for r in first]
    info = json.loads((tmp_path / "b" / "run.json").read_text())
    assert info["adapter_summary"]["cached_hits"] == n and info["adapter_info"]["cache"]
    assert info["adapter_summary"]["cached_original_cost_usd"] is None  # no price applies: not a false 0.0
    assert info["throughput"] is None  # nothing was generated: no tokens/s to claim

    # A checkpoint written again in place (same shapes, same header) is a new model: asked afresh.
    weights = next(tiny.glob("*.safetensors"))
    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    _cli(*common, "--output", tmp_path / "c")
    assert not any(r["cached"] for r in _lines(tmp_path / "c"))
    _cli(*common, "--output", tmp_path / "d", "-M", "max_pixels=12544")  # an answer-changing option: a miss
    assert not any(r["cached"] for r in _lines(tmp_path / "d"))
    _cli(*common, "--output", tmp_path / "e", "--no-cache")
    assert not any(r["cached"] for r in _lines(tmp_path / "e"))


def test_checkpoint_decoding_defaults_do_not_change_greedy(tiny, bench, tmp_path):
    """A generation_config.json with a repetition penalty (as Qwen's has) must not turn
    greedy into something else: outputs equal those of the plain checkpoint."""
    import shutil

    from transformers import GenerationConfig

    tweaked = tmp_path / "tweaked"
    shutil.copytree(tiny, tweaked)
    config = GenerationConfig.from_pretrained(tweaked)
    config.repetition_penalty = 5.0
    config.no_repeat_ngram_size = 1
    config.save_pretrained(tweaked)
    requests = _requests(_samples(bench)[:3], max_tokens=24)
    plain = get_adapter_class("hf")(str(tiny), device="cpu").generate(requests)
    adapter = get_adapter_class("hf")(str(tweaked), device="cpu")
    assert [r.text for r in adapter.generate(requests)] == [r.text for r in plain]
    assert adapter.info()["checkpoint_generation_defaults_ignored"]["repetition_penalty"] == 5.0
