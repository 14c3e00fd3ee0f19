"""build_tiny_vlm writes a complete, reloadable Qwen2.5-VL folder without a network."""

from __future__ import annotations

from _skips import require

require("transformers", "local")
require("torchvision", "local")

from greval.testing import build_tiny_vlm  # noqa: E402


def test_folder_reloads_with_auto_classes_and_generates(tiny):
    import torch
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor

    for name in (
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "processor_config.json",
        "generation_config.json",
    ):
        assert (tiny / name).is_file(), name
    processor = AutoProcessor.from_pretrained(tiny)
    model = AutoModelForImageTextToText.from_pretrained(tiny)
    assert type(model).__name__ == "Qwen2_5_VLForConditionalGeneration"
    assert sum(p.numel() for p in model.parameters()) < 1_000_000

    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Where is this?"}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert text.startswith(
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>Where is this?"
    )
    assert text.endswith("<|im_start|>assistant\n")

    inputs = processor(text=[text], images=[Image.new("RGB", (224, 224), (10, 120, 30))], return_tensors="pt")
    # 224x224 -> 16x16 patches of 14 px -> 8x8 after the 2x2 merge = 64 image tokens
    assert int((inputs["input_ids"] == model.config.image_token_id).sum()) == 64
    with torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=5, do_sample=False)
    assert out.shape[1] > inputs["input_ids"].shape[1]


def test_same_seed_same_weights_other_seed_differs(tmp_path, tiny):
    a = build_tiny_vlm(tmp_path / "a", seed=0)
    b = build_tiny_vlm(tmp_path / "b", seed=1)
    assert (a / "model.safetensors").read_bytes() == (tiny / "model.safetensors").read_bytes()
    assert (b / "model.safetensors").read_bytes() != (tiny / "model.safetensors").read_bytes()


def test_processor_pixel_cap_is_saved(tmp_path):
    from transformers import AutoProcessor

    path = build_tiny_vlm(tmp_path / "small", max_pixels=112 * 112)
    size = AutoProcessor.from_pretrained(path).image_processor.size
    assert size["longest_edge"] == 112 * 112
