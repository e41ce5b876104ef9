"""Encoder, tower and single-domain model: shapes, and padding never changing an output."""

import numpy as np
import pytest
import torch

from train.config import ConfigError, EncoderConfig, TowerConfig
from train.model_io import Example, collate
from train.models.encoder import SequenceEncoder, average_frames
from train.models.ge2e import Ge2eEncoder, partial_starts
from train.models.single import FeatureEncoders, SingleDomainModel
from train.models.tower import ClassificationTower


def test_sequence_encoder_shapes_and_attention_weights():
    torch.manual_seed(0)
    enc = SequenceEncoder(40, conv_channels=32, kernel_sizes=(3, 5), lstm_hidden=64, lstm_layers=2, attention_dim=128)
    x = torch.randn(3, 17, 40)
    lengths = torch.tensor([17, 9, 1])
    out, weights = enc(x, lengths, return_weights=True)
    assert out.shape == (3, 128) and enc.output_dim == 128
    assert weights.shape == (3, 17)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3))
    assert torch.all(weights[1, 9:] == 0) and torch.all(weights[2, 1:] == 0)  # padded frames get no attention


def test_sequence_encoder_refuses_even_kernels():
    with pytest.raises(ValueError, match="odd"):
        SequenceEncoder(8, kernel_sizes=(2, 5))


def test_average_frames_averages_only_real_frames():
    x = torch.zeros(2, 6, 1)
    x[0, :5, 0] = torch.tensor([1.0, 3.0, 5.0, 7.0, 9.0])
    x[1, :2, 0] = torch.tensor([4.0, 8.0])
    out, lengths = average_frames(x, torch.tensor([5, 2]), 2)
    assert lengths.tolist() == [3, 1]
    # the last step of utterance 0 is its fifth frame alone, not (9 + 0) / 2; padded steps stay zero
    assert out[..., 0].tolist() == [[2.0, 6.0, 9.0], [6.0, 0.0, 0.0]]
    out3, lengths3 = average_frames(x, torch.tensor([5, 2]), 4)
    assert lengths3.tolist() == [2, 1] and out3[..., 0].tolist() == [[4.0, 9.0], [6.0, 0.0]]


@pytest.mark.parametrize("stats_pooling,input_stats,frame_stride",
                         [(False, False, 1), (True, False, 1), (False, True, 1), (False, True, 3)])
def test_padding_does_not_change_encoder_outputs(stats_pooling, input_stats, frame_stride):
    torch.manual_seed(1)
    enc = SequenceEncoder(6, conv_channels=8, lstm_hidden=8, lstm_layers=2, attention_dim=16, stats_pooling=stats_pooling,
                          input_stats=input_stats, frame_stride=frame_stride).eval()
    assert enc.output_dim == 16 + (32 if stats_pooling else 0) + (24 if input_stats else 0)
    seqs = [torch.randn(n, 6) for n in (12, 5, 1, 8)]
    lengths = torch.tensor([len(s) for s in seqs])
    padded = torch.zeros(4, 20, 6)
    for i, s in enumerate(seqs):
        padded[i, : len(s)] = s
    # garbage in the padding must not matter either: the encoder masks its input
    noisy = padded.clone()
    for i, s in enumerate(seqs):
        noisy[i, len(s):] = 100.0
    batch_out = enc(padded, lengths)
    assert batch_out.shape == (4, enc.output_dim)
    torch.testing.assert_close(enc(noisy, lengths), batch_out)
    for i, s in enumerate(seqs):
        alone = enc(s[None], lengths[i : i + 1])
        torch.testing.assert_close(alone[0], batch_out[i], atol=1e-5, rtol=1e-5)


def test_tower_layers_follow_the_config():
    tower = ClassificationTower(10, 4, units=256, activations=("mish", "gelu"), dropout=0.1)
    kinds = [type(m).__name__ for m in tower.net]
    assert kinds == ["Linear", "Mish", "Dropout", "Linear", "GELU", "Dropout", "Linear"]
    assert tower(torch.randn(5, 10)).shape == (5, 4)
    with pytest.raises(ConfigError, match="unknown activation"):
        ClassificationTower(10, 4, activations=("swishy",))


def _model(torch_seed=0):
    torch.manual_seed(torch_seed)
    encoders = FeatureEncoders(["mfcc", "ge2e"], {"mfcc": "sequence", "ge2e": "embedding"}, {"mfcc": 6, "ge2e": 5},
                               {"mfcc": EncoderConfig(8, (3, 5), 8, 2, 16)})
    return SingleDomainModel(encoders, 4, TowerConfig(32, ("tanh", "relu"), 0.1)).eval()


def _examples(rng, n):
    return [Example(f"u{i}", {"mfcc": torch.from_numpy(rng.normal(size=(int(rng.integers(1, 15)), 6)).astype(np.float32)),
                              "ge2e": torch.from_numpy(rng.normal(size=5).astype(np.float32))}, i % 4) for i in range(n)]


def test_single_domain_model_shapes_and_batch_independence():
    model = _model()
    examples = _examples(np.random.default_rng(0), 6)
    batch = collate(examples)
    assert batch.sequences["mfcc"].shape[0] == 6 and batch.embeddings["ge2e"].shape == (6, 5)
    out = model(batch)
    assert out.logits.shape == (6, 4)
    assert out.representation.shape == (6, 16 + 5) == (6, model.encoders.output_dim)
    torch.testing.assert_close(out.representation[:, 16:], batch.embeddings["ge2e"])  # 1-D features concatenated as is
    for i, e in enumerate(examples):  # same prediction alone as in a padded batch
        alone = model(collate([e]))
        torch.testing.assert_close(alone.logits[0], out.logits[i], atol=1e-5, rtol=1e-5)
    sub = batch.select([4, 1])
    torch.testing.assert_close(model(sub).logits, out.logits[[4, 1]], atol=1e-5, rtol=1e-5)


def test_partial_windows_match_resemblyzer():
    from resemblyzer import VoiceEncoder

    for n_samples in (800, 16000, 25000, 40000, 47999, 100000):
        _, mel_slices = VoiceEncoder.compute_partial_slices(n_samples, rate=1.3, min_coverage=0.75)
        n_frames = 1 + n_samples // 160  # librosa's centred frames, what the extractor stores
        assert partial_starts(n_frames) == [s.start for s in mel_slices], n_samples


def test_ge2e_encoder_loads_resemblyzer_weights_and_reproduces_its_embedding():
    from resemblyzer import VoiceEncoder, audio

    reference = VoiceEncoder(device="cpu", verbose=False)
    ours = Ge2eEncoder.pretrained().eval()
    wav = np.random.default_rng(0).normal(scale=0.1, size=16000 * 3).astype(np.float32)
    expected = reference.embed_utterance(wav)
    mel = torch.from_numpy(audio.wav_to_mel_spectrogram(wav))  # (frames, 40), of the unpadded waveform
    with torch.no_grad():
        got = ours(mel[None], torch.tensor([mel.shape[0]]))[0].numpy()
    assert got.shape == (256,)
    assert float(np.dot(got, expected)) > 0.999  # only the zero-padded tail frame differs


def test_ge2e_encoder_refuses_foreign_checkpoints(tmp_path):
    from sercore.errors import StoreError

    bad = tmp_path / "bad.pt"
    torch.save({"weights": {}}, bad)
    with pytest.raises(StoreError, match="not a resemblyzer VoiceEncoder checkpoint"):
        Ge2eEncoder.pretrained(bad)
    wrong = tmp_path / "wrong.pt"
    torch.save({"model_state": {"lstm.weight_ih_l0": torch.zeros(3, 3)}}, wrong)
    with pytest.raises(StoreError, match="do not fit"):
        Ge2eEncoder.pretrained(wrong)


def test_input_statistics_are_the_utterance_mean_std_and_delta_statistics():
    enc = SequenceEncoder(3, conv_channels=4, lstm_hidden=4, attention_dim=8, input_stats=True).eval()
    x = torch.tensor([[0.0, 1.0, 2.0], [2.0, 1.0, 0.0], [4.0, 1.0, 1.0]])
    padded = torch.zeros(1, 5, 3)
    padded[0, :3] = x
    stats = enc(padded, torch.tensor([3]))[0, 8:]
    d = x[1:] - x[:-1]
    expected = torch.cat([x.mean(0), x.std(0, unbiased=False), d.mean(0), d.std(0, unbiased=False)])
    torch.testing.assert_close(stats, expected, atol=1e-3, rtol=1e-3)


@pytest.mark.parametrize("layers", [1, 2])
def test_bidirectional_lstm_over_padding_equals_the_packed_lstm(layers):
    """The padded, direction-by-direction run gives a packed LSTM's outputs, final states and gradients."""
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    from train.models.encoder import bidirectional_lstm, length_mask

    torch.manual_seed(0)
    lstm = torch.nn.LSTM(8, 5, num_layers=layers, batch_first=True, bidirectional=True)
    lengths = torch.tensor([7, 3, 1, 5])
    x = torch.randn(4, 7, 8, requires_grad=True)
    packed, (h_n, _) = lstm(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))
    ref, _ = pad_packed_sequence(packed, batch_first=True, total_length=7)
    ref_last = torch.cat([h_n[-2], h_n[-1]], dim=-1)
    (ref.sum() + ref_last.sum()).backward()
    ref_grads = [x.grad.clone()] + [p.grad.clone() for p in lstm.parameters()]
    x.grad = None
    lstm.zero_grad()
    out, last = bidirectional_lstm(lstm, x, lengths, length_mask(lengths, 7))
    assert torch.allclose(out, ref, atol=1e-6) and torch.allclose(last, ref_last, atol=1e-6)
    (out.sum() + last.sum()).backward()
    for got, want in zip([x.grad] + [p.grad for p in lstm.parameters()], ref_grads):
        assert torch.allclose(got, want, atol=1e-5)
