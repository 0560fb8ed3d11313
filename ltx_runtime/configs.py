"""The released checkpoints' configurations, as data: what `fullsize.py` builds at full size and what the tiny
weights (`tiny.py`) keep, changing only widths, depths and head counts.

Sources: diffusers `scripts/convert_ltx2_to_diffusers.py` (huggingface/diffusers 58eb52c, versions "2.0" and "2.3"),
which writes the configs of the diffusers-format Lightricks/LTX-2 and LTX-2.3 checkpoints; the text encoder is
Gemma 3 12B (google/gemma-3-12b-it config.json: 48 layers, hidden 3840, 16 heads, 8 KV heads, head dim 256, vocabulary
262208; SigLIP vision tower 27 layers, hidden 1152, 896 px, patch 14).
"""

GEMMA3_12B_TEXT = dict(
    vocab_size=262208, hidden_size=3840, intermediate_size=15360, num_hidden_layers=48, num_attention_heads=16,
    num_key_value_heads=8, head_dim=256, query_pre_attn_scalar=256, sliding_window=1024, max_position_embeddings=131072,
    rope_scaling={"rope_type": "linear", "factor": 8.0},
)  # fmt: skip
GEMMA3_VISION = dict(
    hidden_size=1152, intermediate_size=4304, num_hidden_layers=27, num_attention_heads=16, image_size=896, patch_size=14
)

TRANSFORMER = dict(
    in_channels=128, out_channels=128, patch_size=1, patch_size_t=1, num_attention_heads=32, attention_head_dim=128,
    cross_attention_dim=4096, vae_scale_factors=(8, 32, 32), pos_embed_max_pos=20, base_height=2048, base_width=2048,
    audio_in_channels=128, audio_out_channels=128, audio_patch_size=1, audio_patch_size_t=1,
    audio_num_attention_heads=32, audio_attention_head_dim=64, audio_cross_attention_dim=2048, audio_scale_factor=4,
    audio_pos_embed_max_pos=20, audio_sampling_rate=16000, audio_hop_length=160, num_layers=48,
    activation_fn="gelu-approximate", qk_norm="rms_norm_across_heads", norm_elementwise_affine=False, norm_eps=1e-6,
    caption_channels=3840, attention_bias=True, attention_out_bias=True, rope_theta=10000.0, rope_double_precision=True,
    causal_offset=1, timestep_scale_multiplier=1000, cross_attn_timestep_scale_multiplier=1000, rope_type="split",
)  # fmt: skip
TRANSFORMER_BY_ARCHITECTURE = {
    "ltx-2": dict(gated_attn=False, cross_attn_mod=False, audio_gated_attn=False, audio_cross_attn_mod=False,
                  use_prompt_embeddings=True, perturbed_attn=False),
    "ltx-2.3": dict(gated_attn=True, cross_attn_mod=True, audio_gated_attn=True, audio_cross_attn_mod=True,
                    use_prompt_embeddings=False, perturbed_attn=True),
}  # fmt: skip

CONNECTORS = dict(
    caption_channels=3840, text_proj_in_factor=49, connector_rope_base_seq_len=4096, rope_theta=10000.0,
    rope_double_precision=True, causal_temporal_positioning=False, rope_type="split",
    video_connector_num_learnable_registers=128, audio_connector_num_learnable_registers=128,
)  # fmt: skip
CONNECTORS_BY_ARCHITECTURE = {
    "ltx-2": dict(video_connector_num_attention_heads=30, video_connector_attention_head_dim=128,
                  video_connector_num_layers=2, video_gated_attn=False, audio_connector_num_attention_heads=30,
                  audio_connector_attention_head_dim=128, audio_connector_num_layers=2, audio_gated_attn=False,
                  per_modality_projections=False, proj_bias=False),
    "ltx-2.3": dict(video_connector_num_attention_heads=32, video_connector_attention_head_dim=128,
                    video_connector_num_layers=8, video_gated_attn=True, audio_connector_num_attention_heads=32,
                    audio_connector_attention_head_dim=64, audio_connector_num_layers=8, audio_gated_attn=True,
                    per_modality_projections=True, video_hidden_dim=4096, audio_hidden_dim=2048, proj_bias=True),
}  # fmt: skip

VIDEO_VAE = dict(
    in_channels=3, out_channels=3, latent_channels=128, down_block_types=("LTX2VideoDownBlock3D",) * 4,
    spatio_temporal_scaling=(True, True, True, True), downsample_type=("spatial", "temporal", "spatiotemporal", "spatiotemporal"),
    timestep_conditioning=False, patch_size=4, patch_size_t=1, resnet_norm_eps=1e-6, encoder_causal=True,
    decoder_causal=False, encoder_spatial_padding_mode="zeros", spatial_compression_ratio=32, temporal_compression_ratio=8,
)  # fmt: skip
VIDEO_VAE_BY_ARCHITECTURE = {
    "ltx-2": dict(block_out_channels=(256, 512, 1024, 2048), decoder_block_out_channels=(256, 512, 1024),
                  layers_per_block=(4, 6, 6, 2, 2), decoder_layers_per_block=(5, 5, 5, 5),
                  decoder_spatio_temporal_scaling=(True, True, True), decoder_inject_noise=(False,) * 4,
                  upsample_type=("spatiotemporal",) * 3, upsample_residual=(True, True, True), upsample_factor=(2, 2, 2),
                  decoder_spatial_padding_mode="reflect"),
    "ltx-2.3": dict(block_out_channels=(256, 512, 1024, 1024), decoder_block_out_channels=(256, 512, 512, 1024),
                    layers_per_block=(4, 6, 4, 2, 2), decoder_layers_per_block=(4, 6, 4, 2, 2),
                    decoder_spatio_temporal_scaling=(True, True, True, True), decoder_inject_noise=(False,) * 5,
                    upsample_type=("spatiotemporal", "spatiotemporal", "temporal", "spatial"),
                    upsample_residual=(False,) * 4, upsample_factor=(2, 2, 1, 2), decoder_spatial_padding_mode="zeros"),
}  # fmt: skip

AUDIO_VAE = dict(
    base_channels=128, output_channels=2, ch_mult=(1, 2, 4), num_res_blocks=2, attn_resolutions=None, in_channels=2,
    resolution=256, latent_channels=8, norm_type="pixel", causality_axis="height", dropout=0.0,
    mid_block_add_attention=False, sample_rate=16000, mel_hop_length=160, is_causal=True, mel_bins=64, double_z=True,
)  # fmt: skip (the same for 2.0 and 2.3)

VOCODER_2_0 = dict(
    in_channels=128, hidden_channels=1024, out_channels=2, upsample_kernel_sizes=[16, 15, 8, 4, 4],
    upsample_factors=[6, 5, 2, 2, 2], resnet_kernel_sizes=[3, 7, 11], resnet_dilations=[[1, 3, 5]] * 3,
    act_fn="leaky_relu", leaky_relu_negative_slope=0.1, antialias=False, final_act_fn="tanh", final_bias=True,
    output_sampling_rate=24000,
)  # fmt: skip
VOCODER_2_3 = dict(
    in_channels=128, hidden_channels=1536, out_channels=2, upsample_kernel_sizes=[11, 4, 4, 4, 4, 4],
    upsample_factors=[5, 2, 2, 2, 2, 2], resnet_kernel_sizes=[3, 7, 11], resnet_dilations=[[1, 3, 5]] * 3,
    act_fn="snakebeta", leaky_relu_negative_slope=0.1, antialias=True, antialias_ratio=2, antialias_kernel_size=12,
    final_act_fn=None, final_bias=False, bwe_in_channels=128, bwe_hidden_channels=512, bwe_out_channels=2,
    bwe_upsample_kernel_sizes=[12, 11, 4, 4, 4], bwe_upsample_factors=[6, 5, 2, 2, 2],
    bwe_resnet_kernel_sizes=[3, 7, 11], bwe_resnet_dilations=[[1, 3, 5]] * 3, bwe_act_fn="snakebeta",
    bwe_leaky_relu_negative_slope=0.1, bwe_antialias=True, bwe_antialias_ratio=2, bwe_antialias_kernel_size=12,
    bwe_final_act_fn=None, bwe_final_bias=False, filter_length=512, hop_length=80, window_length=512,
    num_mel_channels=64, input_sampling_rate=16000, output_sampling_rate=48000,
)  # fmt: skip

UPSAMPLER = dict(in_channels=128, mid_channels=1024, num_blocks_per_stage=4, dims=3, spatial_upsample=True,
                  temporal_upsample=False, rational_spatial_scale=2.0)  # fmt: skip
UPSAMPLER_BY_ARCHITECTURE = {"ltx-2": dict(use_rational_resampler=True), "ltx-2.3": dict(use_rational_resampler=False)}

SCHEDULER = dict(use_dynamic_shifting=True, base_shift=0.95, max_shift=2.05, base_image_seq_len=1024,
                  max_image_seq_len=4096, shift_terminal=0.1)  # fmt: skip

GEMMA3_12B = dict(mm_tokens_per_image=256)
"""Gemma3Config keys outside the text and vision towers."""


# --- LTX-2.5 --------------------------------------------------------------------------------------------------------
# The 2.3 architecture with two transformer changes (shared/docs/ltx25.md section 1.1: "same DiT/VAE/audio-VAE
# architecture; drops the video FFN biases, adds a learned keyframe abs-position embedding"), a fine-tuned Gemma 4
# text encoder and a duration head. Both transformer switches are diffusers 0.42.1 `LTX2VideoTransformer3DModel`
# arguments (`ff_bias`, `use_keyframes_abs_pos_embedding`); the audio FFN keeps its biases.
TRANSFORMER_BY_ARCHITECTURE["ltx-2.5"] = dict(
    TRANSFORMER_BY_ARCHITECTURE["ltx-2.3"], ff_bias=False, audio_ff_bias=True, use_keyframes_abs_pos_embedding=True
)
CONNECTORS_BY_ARCHITECTURE["ltx-2.5"] = CONNECTORS_BY_ARCHITECTURE["ltx-2.3"]
VIDEO_VAE_BY_ARCHITECTURE["ltx-2.5"] = VIDEO_VAE_BY_ARCHITECTURE["ltx-2.3"]
UPSAMPLER_BY_ARCHITECTURE["ltx-2.5"] = UPSAMPLER_BY_ARCHITECTURE["ltx-2.3"]
# The vocoder is VOCODER_2_3's: 48 kHz stereo (SGLang's LTX-2.5 cookbook; ltx25.md section 1.1).

DURATION_HEAD = dict(video_cross_attention_dim=4096, audio_cross_attention_dim=2048, pooler_hidden_dim=256,
                     num_queries=1, num_pooler_heads=4, mlp_hidden_dim=256)  # fmt: skip
"""diffusers 0.42.1 `LTX2DurationHead` defaults; its inputs are the 2.3/2.5 connector widths (video 4096, audio
2048)."""
DURATION_SECONDS = (1.0, 20.0)
"""The duration head's bounds (diffusers `predict_num_frames` defaults; ltx-pipelines `AutoDuration`)."""

GEMMA4_TEXT_SWITCHES = dict(
    hidden_activation="gelu_pytorch_tanh", sliding_window=1024, rms_norm_eps=1e-6, attention_bias=False,
    use_bidirectional_attention="vision", attention_k_eq_v=False, num_kv_shared_layers=0, use_double_wide_mlp=False,
)  # fmt: skip
"""transformers 5.24 `Gemma4UnifiedTextConfig` defaults (its docstring checkpoint: google/gemma-4-12B-it) for the
behaviour switches of the text tower. The 12B's widths and depth are not in our sources [U] (only its hidden size:
the vision `mm_embed_dim` default, 3840, "matches the text model hidden_size")."""
GEMMA4_LTX_VERSION = "gemma4-12b-ltx-v1"
"""The fine-tuned encoder's `gemma_version` config stamp, which the official loader checks against the checkpoint
(ltx-core encoder_configurator.py `_check_gemma_version`; ltx-trainer docs/quick-start.md); stock Gemma 4 has none."""
