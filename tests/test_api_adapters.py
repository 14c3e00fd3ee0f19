"""The openai and anthropic adapters against a real HTTP server on 127.0.0.1, through the
real SDK clients: images, keys, generation settings, the response cache, prices and the
--max-cost budget. Faults: test_api_faults.py; a killed run: test_api_kill.py."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import logging

import pytest
from _fake_api import FakeAPI, make_requests
from greval.adapters._images import ImageSettings, prepare_image
from PIL import Image

from greval.adapter import AdapterError, AdapterUnavailable, get_adapter_class
from greval.cache import with_cache
from greval.pricing import PriceTable
from greval.types import GenerationConfig, Request, Sample

PROTOCOLS = ["openai", "anthropic"]
MODELS = {"openai": "gpt-4o", "anthropic": "claude-sonnet-4-6"}


@pytest.fixture(autouse=True)
def _no_real_keys(monkeypatch):
    for var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_BASE_URL"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture()
def api():
    with FakeAPI() as server:
        yield server


def make_adapter(protocol: str, server: FakeAPI, tmp_path, **options):
    cls = get_adapter_class(protocol)
    url = server.openai_url if protocol == "openai" else server.anthropic_url
    options.setdefault("cache_dir", tmp_path / "cache")
    options.setdefault("backoff_base", 0.01)
    # Behind the response cache, as `greval run` and `greval judge` send.
    return with_cache(cls(model=options.pop("model", MODELS[protocol]), base_url=url, **options))


def run(adapter, requests):
    return asyncio.run(adapter.agenerate(requests))


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- images ------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_images_arrive_byte_for_byte_with_sent_size_recorded(protocol, api, tmp_path):
    requests = make_requests(tmp_path / "imgs", 4)
    for r in requests:
        r.system = "You are a geolocation expert."
    responses = run(make_adapter(protocol, api, tmp_path), requests)

    assert len(api.log) == 4
    by_prompt = {entry.prompt: entry for entry in api.log}
    for request, response in zip(requests, responses, strict=True):
        entry = by_prompt[request.prompt]
        raw = request.sample.image_bytes()
        assert [i["sha256"] for i in entry.images] == [sha(raw)]  # small JPEG: never re-encoded
        assert entry.system == "You are a geolocation expert."
        assert entry.authorized
        assert response.error is None and response.text.endswith(f"image={sha(raw)[:12]}")
        assert response.meta["image_bytes_sent"] == len(raw)
        assert response.meta["image_size_sent"] == [320, 240]
        assert response.attempts == 1 and not response.cached
        if protocol == "openai":
            assert entry.images[0]["detail"] == "high"  # the default: geolocation lives in details


def _jpeg(size, **save) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (10, 120, 200)).save(out, format="JPEG", **save)
    return out.getvalue()


def test_prepare_image_resizes_only_when_over_the_limits():
    settings = ImageSettings(max_side=1024, max_pixels=None, jpeg_quality=85, max_bytes=20 << 20)
    wide = prepare_image(_jpeg((3000, 1500)), settings)
    assert wide.size == (1024, 512) and wide.reencoded == "resized" and wide.media_type == "image/jpeg"
    assert Image.open(io.BytesIO(wide.data)).size == (1024, 512)

    by_pixels = prepare_image(_jpeg((1000, 1000)), ImageSettings(None, 250_000, 85, 20 << 20))
    assert by_pixels.size == (500, 500)

    small = _jpeg((800, 600))
    kept = prepare_image(small, settings)
    assert kept.data is small and kept.reencoded is None  # under the limits: the original bytes

    png = io.BytesIO()
    Image.new("RGBA", (64, 64)).save(png, format="PNG")
    assert prepare_image(png.getvalue(), settings).media_type == "image/png"

    bmp = io.BytesIO()
    Image.new("RGB", (64, 64)).save(bmp, format="BMP")
    converted = prepare_image(bmp.getvalue(), settings)
    assert converted.media_type == "image/jpeg" and converted.reencoded == "format BMP"


def test_exif_gps_never_reaches_the_api(api, tmp_path):
    """A user's own photo may carry its answer in EXIF: it is stripped before sending."""
    img = Image.new("RGB", (200, 100), (90, 90, 90))
    exif = Image.Exif()
    exif[0x8825] = {1: "N", 2: (48.0, 51.0, 24.0), 3: "E", 4: (2.0, 21.0, 8.0)}
    path = tmp_path / "gps.jpg"
    img.save(path, exif=exif)
    assert 0x8825 in Image.open(path).getexif()
    request = Request(sample=Sample("gps", 48.85, 2.35, image_path=path), task="all", prompt="Where? [gps]")
    (response,) = run(make_adapter("openai", api, tmp_path), [request])
    assert api.log[0].images[0]["exif_gps"] is False
    assert response.meta["image_reencoded"] == "exif_gps"
    assert api.log[0].images[0]["size"] == [200, 100]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_big_image_is_sent_at_the_user_resolution(protocol, api, tmp_path):
    requests = make_requests(tmp_path / "imgs", 1, size=(4000, 3000))
    (response,) = run(make_adapter(protocol, api, tmp_path, max_image_side=800, jpeg_quality=70), requests)
    sent = api.log[0].images[0]
    assert sent["size"] == [800, 600] and sent["format"] == "JPEG"
    assert response.meta["image_size_sent"] == [800, 600]
    assert response.meta["image_bytes_sent"] == sent["bytes"]
    assert response.meta["image_size_original"] == [4000, 3000]


# -- keys --------------------------------------------------------------------------------


@pytest.mark.parametrize(("protocol", "var"), [("openai", "OPENAI_API_KEY"), ("anthropic", "ANTHROPIC_API_KEY")])
def test_missing_key_for_the_provider_is_one_line_naming_the_variable(protocol, var, monkeypatch, tmp_path):
    cls = get_adapter_class(protocol)
    with pytest.raises(AdapterError, match=var) as err:
        cls(model=MODELS[protocol], cache_dir=tmp_path)
    assert "\n" not in str(err.value)
    with pytest.raises(AdapterError, match="MY_TEAM_KEY"):
        cls(model=MODELS[protocol], api_key_env="MY_TEAM_KEY", cache_dir=tmp_path)
    monkeypatch.setenv(var, "sk-test")
    cls(model=MODELS[protocol], cache_dir=tmp_path)  # present: fine
    with pytest.raises(AdapterError, match="--model"):
        cls(model=None, cache_dir=tmp_path)


def test_local_server_needs_no_key(api, tmp_path):
    responses = run(make_adapter("openai", api, tmp_path), make_requests(tmp_path / "imgs", 1))
    assert responses[0].error is None


def test_key_is_sent_but_never_written(api, tmp_path, monkeypatch):
    secret = "sk-greval-test-9f8e7d6c5b4a"
    monkeypatch.setenv("MY_TEAM_KEY", secret)
    adapter = make_adapter("openai", api, tmp_path, api_key_env="MY_TEAM_KEY")
    requests = make_requests(tmp_path / "imgs", 2)
    # A 401 before any success stops the run (adapters/_api.py's breaker): answer one first.
    first = run(adapter, requests[1:])
    api.script("s000", "401")
    responses = run(adapter, requests[:1]) + first
    assert api.log[0].authorized
    assert responses[0].error.startswith("auth: HTTP 401") and responses[0].attempts == 1  # not retried
    dumped = json.dumps([adapter.info(), adapter.run_summary(), [vars(r) | {"usage": None} for r in responses]])
    assert secret not in dumped and "MY_TEAM_KEY" in dumped
    assert adapter._redact(f"bad key {secret}") == "bad key ***"
    fresh = make_adapter("openai", api, tmp_path, api_key_env="MY_TEAM_KEY", cache_dir=tmp_path / "other")
    api.script("s001", "401")
    with pytest.raises(AdapterUnavailable) as stopped:  # a refused key before any success
        run(fresh, requests[1:])
    assert "401" in str(stopped.value) and secret not in str(stopped.value) and "MY_TEAM_KEY" in str(stopped.value)


# -- generation settings -------------------------------------------------------------------


def test_openai_reasoning_model_settings_and_reasoning_tokens(tmp_path):
    with FakeAPI(reasoning_tokens=50) as server:
        adapter = make_adapter("openai", server, tmp_path, model="o4-mini", reasoning_effort="high")
        requests = make_requests(tmp_path / "imgs", 1)
        requests[0].generation = GenerationConfig(max_tokens=777, temperature=0.0)
        (response,) = run(adapter, requests)
        body = server.log[0].body
    assert body["max_completion_tokens"] == 777 and "max_tokens" not in body
    assert "temperature" not in body and body["reasoning_effort"] == "high"
    assert response.usage.reasoning_tokens == 50
    assert response.usage.output_tokens >= 50  # reasoning is billed as output
    assert adapter.run_summary()["reasoning_tokens"] == 50


def test_openai_compatible_server_gets_max_tokens_and_overrides(api, tmp_path):
    adapter = make_adapter("openai", api, tmp_path, max_new_tokens=99, temperature=0.7, seed=5, detail="low")
    run(adapter, make_requests(tmp_path / "imgs", 1))
    body = api.log[0].body
    assert body["max_tokens"] == 99 and body["temperature"] == 0.7 and body["seed"] == 5
    assert body["messages"][0]["content"][0]["image_url"]["detail"] == "low"


def test_anthropic_thinking_budget_is_added_to_the_answer_allowance(tmp_path):
    with FakeAPI(reasoning_tokens=30) as server:
        adapter = make_adapter("anthropic", server, tmp_path, reasoning_effort="2048", max_new_tokens=500)
        run(adapter, make_requests(tmp_path / "imgs", 1))
        body = server.log[0].body
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert body["max_tokens"] == 2548 and "temperature" not in body


# -- cache -----------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_cache_never_pays_twice(protocol, api, tmp_path):
    requests = make_requests(tmp_path / "imgs", 3)
    first = run(make_adapter(protocol, api, tmp_path), requests)
    assert len(api.log) == 3 and all(r.cost_usd > 0 for r in first)

    again = make_adapter(protocol, api, tmp_path)  # a new run (new process) sharing the cache
    second = run(again, requests)
    assert len(api.log) == 3  # nothing sent
    for a, b in zip(first, second, strict=True):
        assert b.cached and b.text == a.text and b.cost_usd == 0.0 and b.attempts == 0
        assert b.meta["original_cost_usd"] == pytest.approx(a.cost_usd)
    summary = again.run_summary()
    assert summary["cached_hits"] == 3 and summary["attempts"] == 0 and summary["cost_usd"] == 0.0
    assert summary["cached_original_cost_usd"] == pytest.approx(sum(r.cost_usd for r in first))

    # Anything that changes the answer misses: generation settings, image preparation, image bytes.
    run(make_adapter(protocol, api, tmp_path, max_new_tokens=64), requests[:1])
    run(make_adapter(protocol, api, tmp_path, max_image_side=100), requests[:1])
    other = make_requests(tmp_path / "other", 1, size=(321, 240))  # same prompt, other image
    run(make_adapter(protocol, api, tmp_path), other)
    assert len(api.log) == 6
    run(make_adapter(protocol, api, tmp_path, no_cache=True), requests)
    assert len(api.log) == 9


def test_errors_and_empty_answers_are_never_cached(api, tmp_path):
    requests = make_requests(tmp_path / "imgs", 3)
    api.script("s000", "empty", "empty")
    api.script("s001", "400")
    first = run(make_adapter("openai", api, tmp_path, max_attempts=2), requests)
    assert first[0].text == "" and first[0].error is None and first[0].attempts == 2
    assert first[1].error and first[1].text is None
    assert first[2].text
    before = len(api.log)
    second = run(make_adapter("openai", api, tmp_path, max_attempts=2), requests)
    assert len(api.log) == before + 2  # s000 and s001 asked again, s002 from the cache
    assert not second[0].cached and not second[1].cached and second[2].cached


def test_cache_is_shared_across_tasks_that_render_the_same_prompt(api, tmp_path):
    (request,) = make_requests(tmp_path / "imgs", 1)
    run(make_adapter("openai", api, tmp_path), [request])
    other_task = Request(sample=request.sample, task="urban", prompt=request.prompt)
    (response,) = run(make_adapter("openai", api, tmp_path), [other_task])
    assert response.cached and len(api.log) == 1


# -- cost ------------------------------------------------------------------------------------


def test_prices_lookup_override_and_unknown_model(tmp_path, caplog):
    table = PriceTable()
    assert table.lookup("gpt-4o-2024-08-06").input_per_m == 2.5
    assert table.lookup("gpt-4o-mini-2024-07-18").input_per_m == 0.15  # longest prefix wins
    assert table.lookup("claude-sonnet-4-5-20250929").output_per_m == 15.0
    assert table.lookup("openai/gpt-4.1-mini").input_per_m == 0.40
    assert table.lookup("Qwen/Qwen2.5-VL-7B-Instruct") is None
    path = tmp_path / "prices.yaml"
    path.write_text("Qwen/Qwen2.5-VL-7B-Instruct: {input: 0.2, output: 0.6}\ngpt-4o: {input: 1, output: 2}\n")
    custom = PriceTable(path)
    assert custom.lookup("Qwen/Qwen2.5-VL-7B-Instruct").output_per_m == 0.6
    assert custom.lookup("gpt-4o").input_per_m == 1.0
    with caplog.at_level(logging.WARNING, logger="greval.pricing"):
        assert table.price_or_warn("mystery-vlm") is None
        assert table.price_or_warn("mystery-vlm") is None
    assert sum("mystery-vlm" in r.message for r in caplog.records) == 1  # warned once
    bad = tmp_path / "bad.json"
    bad.write_text('{"m": {"input": "x"}}')
    with pytest.raises(ValueError, match="'m'"):
        PriceTable(bad)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_cost_is_tokens_times_price(protocol, api, tmp_path):
    adapter = make_adapter(protocol, api, tmp_path)
    responses = run(adapter, make_requests(tmp_path / "imgs", 2))
    price = adapter.price
    for r in responses:
        assert r.usage.input_tokens > 0 and r.usage.output_tokens > 0
        assert r.cost_usd == pytest.approx(price.cost(r.usage.input_tokens, r.usage.output_tokens))
    summary = adapter.run_summary()
    assert summary["cost_usd"] == pytest.approx(sum(r.cost_usd for r in responses), abs=1e-6)
    assert summary["input_tokens"] == sum(r.usage.input_tokens for r in responses)


def test_unknown_model_costs_none_without_crashing(api, tmp_path):
    adapter = make_adapter("openai", api, tmp_path, model="my-finetune")
    (response,) = run(adapter, make_requests(tmp_path / "imgs", 1))
    assert response.error is None and response.cost_usd is None
    assert adapter.run_summary()["cost_complete"] is False
    with pytest.raises(AdapterError, match="--prices"):
        make_adapter("openai", api, tmp_path, model="my-finetune", max_cost=1.0)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_max_cost_stops_sending_and_never_passes_the_budget(protocol, tmp_path):
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"pricey": {"input": 1000.0, "output": 1000.0}}))  # $0.001 a token
    with FakeAPI(latency=0.05) as server:
        adapter = make_adapter(
            protocol, server, tmp_path, model="pricey", prices=prices, max_cost=3.0, max_new_tokens=50, concurrency=4
        )
        responses = run(adapter, make_requests(tmp_path / "imgs", 20))
        sent = len(server.log)
    answered = [r for r in responses if r.error is None]
    unsent = [r for r in responses if r.error is not None]
    assert answered and unsent and len(answered) + len(unsent) == 20
    assert len(answered) == sent  # every sent request's answer was kept
    assert all(r.error.startswith("not sent: --max-cost budget of $3.00") and r.attempts == 0 for r in unsent)
    spent = sum(r.cost_usd for r in answered)
    assert spent <= 3.0
    assert spent > 3.0 - 2 * max(r.cost_usd for r in answered)  # and it used the budget
    summary = adapter.run_summary()
    assert summary["max_cost_stopped"] is True and summary["not_sent_max_cost"] == len(unsent)
    assert summary["cost_usd"] == pytest.approx(spent, abs=1e-6)


# -- concurrency -------------------------------------------------------------------------------


def test_requests_run_concurrently_within_the_bound(tmp_path):
    with FakeAPI(latency=0.3) as server:
        adapter = make_adapter("openai", server, tmp_path, concurrency=8)
        requests = make_requests(tmp_path / "imgs", 24)
        responses = run(adapter, requests)
        peak = server.peak_in_flight
    assert all(r.error is None for r in responses)
    # In order, each with its own image's answer.
    assert [r.text.rsplit("=", 1)[1] for r in responses] == [sha(r.sample.image_bytes())[:12] for r in requests]
    assert peak == 8  # all slots used, never more (speed itself: benchmarks/api_throughput.py)


def test_cli_max_cost_records_unsent_samples_and_a_bigger_budget_finishes(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from greval.cli import main
    from greval.records import read_predictions
    from greval.testing import make_fixture_bench

    monkeypatch.setenv("GREVAL_CACHE_DIR", str(tmp_path / "cache"))
    bench = make_fixture_bench(tmp_path / "bench", n=10, seed=0)
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"pricey": {"input": 1000.0, "output": 1000.0}}))
    out = tmp_path / "run"
    with FakeAPI() as server:
        base = ["run", "--adapter", "openai", "--model", "pricey", "--base-url", server.openai_url]
        base += ["--data", str(bench), "--tasks", "all", "--output", str(out), "--prices", str(prices)]
        base += ["--max-tokens", "50", "--concurrency", "2", "--quiet"]
        result = CliRunner().invoke(main, [*base, "--max-cost", "2.5"], catch_exceptions=False)
        assert result.exit_code == 3, result.output  # finished, with unsent samples to retry
        sent = server.count
        records = read_predictions(out)
        unsent = [r for r in records if r["status"] == "error"]
        assert len(records) == 10 and 0 < len(unsent) < 10 and sent == 10 - len(unsent)
        assert all(r["error"].startswith("not sent: --max-cost") for r in unsent)
        info = json.loads((out / "run.json").read_text())
        assert info["adapter_summary"]["max_cost_stopped"] is True
        assert info["adapter_summary"]["not_sent_max_cost"] == len(unsent)
        assert info["cost_usd"] <= 2.5

        result = CliRunner().invoke(main, [*base, "--max-cost", "100"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        assert server.count == 10  # only the unsent ones went out
        assert all(r["status"] != "error" for r in read_predictions(out))


def test_a_broken_cache_file_costs_no_answer(api, tmp_path):
    """The cache is a saving, never a risk: when its file cannot be read or written the
    requests still go out and every answer comes back (nothing paid for is lost)."""
    requests = make_requests(tmp_path / "imgs", 2)
    adapter = make_adapter("openai", api, tmp_path)
    adapter.cache.close()  # every read and write of the sqlite file now raises
    answers = run(adapter, requests)
    assert len(api.log) == 2 and all(r.error is None and r.text and not r.cached for r in answers)


def test_a_cache_folder_that_cannot_be_made_runs_uncached(api, tmp_path, caplog):
    requests = make_requests(tmp_path / "imgs", 1)
    (tmp_path / "blocked").write_text("a file where the cache folder should go")
    adapter = make_adapter("openai", api, tmp_path, cache_dir=tmp_path / "blocked" / "cache")
    answers = run(adapter, requests)
    assert not hasattr(adapter, "cache") and answers[0].text and len(api.log) == 1
    assert "cannot be opened" in caplog.text
