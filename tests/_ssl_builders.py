"""Tiny random Hugging Face speech encoders of every supported architecture, saved with save_pretrained.

Two transformer layers, widths of 16-32: a few hundred kilobytes each, built in well under a second. The CNN
front ends keep the real kernels and strides (320-sample hop, 400-sample receptive field), narrowed to 8 channels.
"""

from __future__ import annotations

from pathlib import Path

ARCHITECTURES = ("wav2vec2", "hubert", "wavlm", "data2vec-audio", "whisper")

_SMALL = dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
              conv_dim=(8,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)


def tiny_encoder(folder: Path, model_type: str, *, seed: int = 0, layer_norm: bool = False,
                 normalize: bool = False) -> Path:
    """Save a randomly initialised ``model_type`` encoder (and its feature extractor) into ``folder``.

    ``layer_norm``: wav2vec-style CNN with layer norm (as the large models / WavLM), else group norm (base models).
    """
    import torch
    from extract.extractors.ssl import import_transformers

    tf = import_transformers()

    torch.manual_seed(seed)
    norm = "layer" if layer_norm else "group"
    if model_type == "whisper":
        config = tf.WhisperConfig(d_model=16, encoder_layers=2, encoder_attention_heads=2, decoder_layers=1,
                                  decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, num_mel_bins=80,
                                  max_source_positions=100, max_target_positions=16, vocab_size=64,
                                  pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1)
        model = tf.WhisperModel(config)
        # 100 encoder positions = 200 mel frames = a 2 s window (the real models: 1500 = 30 s)
        processor = tf.WhisperFeatureExtractor(feature_size=80, chunk_length=2)
    else:
        kind = {"wav2vec2": (tf.Wav2Vec2Config, tf.Wav2Vec2Model), "hubert": (tf.HubertConfig, tf.HubertModel),
                "wavlm": (tf.WavLMConfig, tf.WavLMModel),
                "data2vec-audio": (tf.Data2VecAudioConfig, tf.Data2VecAudioModel)}[model_type]
        extra = {"conv_pos_kernel_size": 5} if model_type == "data2vec-audio" else {}
        small = dict(_SMALL)
        if model_type == "data2vec-audio":
            small["num_conv_pos_embeddings"] = 2
        config = kind[0](feat_extract_norm=norm, do_stable_layer_norm=layer_norm, **small, **extra)
        model = kind[1](config)
        processor = tf.Wav2Vec2FeatureExtractor(do_normalize=normalize, return_attention_mask=layer_norm)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder
