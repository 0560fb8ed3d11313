"""The tiny weights differ from the released checkpoints only in size: every config key of every component equals
the real one (ltx_runtime/configs.py, built at full size by fullsize.py), except the keys listed here by name."""

from __future__ import annotations

import json

import pytest
import torch
from diffusers import LTX2Pipeline
from diffusers.pipelines.ltx2 import LTX2LatentUpsamplerModel

from ltx_runtime.fullsize import build_full_size

WIDTHS_DEPTHS_HEADS = {
    "transformer": {"in_channels", "out_channels", "num_attention_heads", "attention_head_dim", "cross_attention_dim",
                    "audio_in_channels", "audio_out_channels", "audio_num_attention_heads", "audio_attention_head_dim",
                    "audio_cross_attention_dim", "num_layers", "caption_channels"},
    # text_proj_in_factor is Gemma's layer count + 1 (the connectors read every hidden state): a depth.
    "connectors": {"caption_channels", "text_proj_in_factor", "video_connector_num_attention_heads",
                   "video_connector_attention_head_dim", "video_connector_num_layers",
                   "audio_connector_num_attention_heads", "audio_connector_attention_head_dim",
                   "audio_connector_num_layers", "video_hidden_dim", "audio_hidden_dim"},
    "vae": {"latent_channels", "block_out_channels", "decoder_block_out_channels", "layers_per_block",
            "decoder_layers_per_block"},
    "audio_vae": {"base_channels", "latent_channels", "num_res_blocks"},
    "vocoder": {"hidden_channels", "bwe_hidden_channels"},
    "latent_upsampler": {"in_channels", "mid_channels", "num_blocks_per_stage"},
    "scheduler": set(),
    # layer_types lists each layer's kind: a depth (checked below to follow the real pattern). The image-token ids
    # sit at the end of the (tiny) vocabulary.
    "text_encoder.text_config": {"vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                                 "num_attention_heads", "num_key_value_heads", "head_dim", "layer_types"},
    "text_encoder.vision_config": {"hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads"},
    "text_encoder": {"boi_token_index", "eoi_token_index", "image_token_index"},
}  # fmt: skip
METADATA = {"dtype", "architectures", "transformers_version"}
"""Written by the save itself, not part of the architecture."""


def plain(value):
    return json.loads(json.dumps(value, default=str))


def differing_keys(real: dict, tiny: dict) -> set[str]:
    keys = {key for key in set(real) | set(tiny) if not key.startswith("_") and key not in METADATA}
    return {key for key in keys if plain(real.get(key)) != plain(tiny.get(key))}


def configs(pipeline, upsampler) -> dict[str, dict]:
    found = {name: dict(getattr(pipeline, name).config) for name in
             ("transformer", "connectors", "vae", "audio_vae", "vocoder", "scheduler")}  # fmt: skip
    found["latent_upsampler"] = dict(upsampler.config)
    text = pipeline.text_encoder.config.to_dict()
    found["text_encoder.text_config"] = text.pop("text_config")
    found["text_encoder.vision_config"] = text.pop("vision_config")
    found["text_encoder"] = text
    return found


@pytest.mark.parametrize("architecture", ["ltx-2", "ltx-2.3"])
def test_tiny_configs_equal_the_real_ones_but_for_size(tiny_root, architecture):
    real = build_full_size(architecture, "meta")
    real_configs = configs(real.pipeline, real.latent_upsampler)
    folder = tiny_root / architecture
    tiny = LTX2Pipeline.from_pretrained(folder, dtype=torch.float32, local_files_only=True)
    tiny_configs = configs(tiny, LTX2LatentUpsamplerModel.from_pretrained(folder / "latent_upsampler"))
    assert set(tiny_configs) == set(WIDTHS_DEPTHS_HEADS)
    for component, allowed in WIDTHS_DEPTHS_HEADS.items():
        unexpected = differing_keys(real_configs[component], tiny_configs[component]) - allowed
        assert not unexpected, {key: (real_configs[component].get(key), tiny_configs[component].get(key))
                                for key in unexpected}  # fmt: skip
    real_layers = real_configs["text_encoder.text_config"]["layer_types"]
    tiny_layers = tiny_configs["text_encoder.text_config"]["layer_types"]
    assert tiny_layers == real_layers[: len(tiny_layers)] and "full_attention" in tiny_layers
    assert type(tiny.vocoder) is type(real.pipeline.vocoder)
