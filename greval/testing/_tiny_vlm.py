"""A tiny, randomly initialised Qwen2.5-VL built without any network access.

It has the real architecture, tokenizer special tokens, processor and chat template of
Qwen2.5-VL, so every code path of a local adapter (chat template, image tokens, left
padding, batched generation, saving and reloading) runs on a laptop CPU in well under a
second. Its weights are random: it writes gibberish, never coordinates.

    from greval.testing import build_tiny_vlm
    path = build_tiny_vlm("/tmp/tiny-qwen")   # then: greval run --adapter hf --model /tmp/tiny-qwen ...
"""

from __future__ import annotations

from pathlib import Path

# The Qwen2-VL / Qwen2.5-VL chat template, as shipped in the hub checkpoints' processor.
QWEN_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Qwen's special tokens; their order fixes their ids right after the learned vocabulary.
SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
)

# Enough text for a byte-level BPE to learn sensible merges for prompts and answers.
_CORPUS = [
    "You are an expert in geolocating photos. Where was this photo taken?",
    "First reason step by step inside <think> </think>: describe what you see.",
    "Then give your final answer inside <answer> </answer> as decimal degrees.",
    '<answer>{"Latitude": 45.465, "Longitude": 9.191}</answer>',
    '{"latitude": -33.8688, "longitude": 151.2093}',
    "Latitude is positive north of the equator, longitude positive east of Greenwich.",
    "vegetation climate terrain architecture signs language road markings vehicles people",
    "The photo shows a street with buildings, trees, mountains, a river and a bridge.",
    "country region city continent street urban natural landmark scene indicator",
    "0 1 2 3 4 5 6 7 8 9 10 45 90 180 -12.5 0.001 north south east west",
    "You are a helpful assistant. system user assistant",
]


def _build_tokenizer(vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_CORPUS * 4, trainer=trainer)
    bpe.add_special_tokens(list(SPECIAL_TOKENS))
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        padding_side="left",
        chat_template=QWEN_VL_CHAT_TEMPLATE,
        model_max_length=32768,
    )


_SHAPES = {
    "tiny": {
        "vocab_size": 0, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "mrope_section": [2, 3, 3],
        "vision": {"depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "fullatt_block_indexes": [1]},
    },
    "7b": {  # Qwen2.5-VL-7B-Instruct's config.json
        "vocab_size": 152064, "hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28,
        "num_attention_heads": 28, "num_key_value_heads": 4, "mrope_section": [16, 24, 24],
        "vision": {"depth": 32, "hidden_size": 1280, "intermediate_size": 3420, "num_heads": 16,
                   "fullatt_block_indexes": [7, 15, 23, 31]},
    },
}  # fmt: skip


def build_tiny_vlm(
    path: str | Path,
    *,
    seed: int = 0,
    vocab_size: int = 1024,
    max_pixels: int = 224 * 224,
    shape: str = "tiny",
) -> Path:
    """Write a tiny random Qwen2.5-VL (weights, config, tokenizer, processor, chat
    template) to `path` with `save_pretrained`, offline, and return the path.

    `max_pixels` caps the processor's image size so tests stay fast (224×224 → 64 image
    tokens); the same seed always gives the same weights. `shape="7b"` gives the real
    Qwen2.5-VL-7B dimensions (text 3584 × 28 layers, vision 1280 × 32, 152,064-token
    embedding; ~8.3 B random bf16 parameters, for GPU benchmarks) with the same tiny tokenizer.
    """
    import torch
    from transformers import (
        GenerationConfig,
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
    )

    path = Path(path)
    tokenizer = _build_tokenizer(vocab_size)
    token_id = tokenizer.convert_tokens_to_ids
    processor = Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(min_pixels=56 * 56, max_pixels=max_pixels),
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(),
        chat_template=QWEN_VL_CHAT_TEMPLATE,
    )
    dims = _SHAPES[shape]
    head_dim = dims["hidden_size"] // dims["num_attention_heads"]
    config = Qwen2_5_VLConfig(
        text_config={
            "vocab_size": max(len(tokenizer), dims["vocab_size"]),
            "hidden_size": dims["hidden_size"],
            "intermediate_size": dims["intermediate_size"],
            "num_hidden_layers": dims["num_hidden_layers"],
            "num_attention_heads": dims["num_attention_heads"],
            "num_key_value_heads": dims["num_key_value_heads"],
            "max_position_embeddings": 32768 if shape == "7b" else 4096,
            # mrope_section splits head_dim/2 rotary pairs over (time, height, width).
            "rope_parameters": {"rope_type": "default", "rope_theta": 1e6, "mrope_section": dims["mrope_section"]},
            "bos_token_id": token_id("<|endoftext|>"),
            "eos_token_id": token_id("<|im_end|>"),
            "pad_token_id": token_id("<|endoftext|>"),
        },
        vision_config={
            **dims["vision"],
            "out_hidden_size": dims["hidden_size"],
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "window_size": 112,
        },
        image_token_id=token_id("<|image_pad|>"),
        video_token_id=token_id("<|video_pad|>"),
        vision_start_token_id=token_id("<|vision_start|>"),
        vision_end_token_id=token_id("<|vision_end|>"),
    )
    assert sum(config.text_config.rope_parameters["mrope_section"]) == head_dim // 2
    torch.manual_seed(seed)
    if shape == "7b":  # bf16 from the start: 17 GB, not 33 GB of float32
        default = torch.get_default_dtype()
        torch.set_default_dtype(torch.bfloat16)
        try:
            model = Qwen2_5_VLForConditionalGeneration(config).eval()
        finally:
            torch.set_default_dtype(default)
    else:
        model = Qwen2_5_VLForConditionalGeneration(config).eval()
        # The default init (std 0.02) makes every input give near-uniform logits and the
        # same repeated token; wider weights make outputs depend on the image and prompt,
        # so a test comparing outputs (batched vs unbatched) can actually fail.
        with torch.no_grad():
            for param in model.parameters():
                if param.dim() >= 2:
                    param.normal_(0.0, 0.2)
    # Greedy by default, and generation stops at <|im_end|> like the real checkpoints.
    model.generation_config = GenerationConfig(
        bos_token_id=config.text_config.bos_token_id,
        eos_token_id=[token_id("<|im_end|>"), token_id("<|endoftext|>")],
        pad_token_id=token_id("<|endoftext|>"),
        do_sample=False,
    )
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path
