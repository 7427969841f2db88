"""Reference speaker embeddings of corpus utterances, computed once and cached on disk."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from ..files import atomic_path

__all__ = ["speaker_cache"]


def speaker_cache(corpus: str, splits: tuple[str, ...], encoder_spec: str = "resemblyzer",
                  cache_dir: str | Path | None = None, progress: bool = True) -> dict[str, torch.Tensor]:
    """``{cut_id: embedding [D]}`` for every cut of ``splits``; stored under ``cache_dir`` (default:
    ``<corpus>/cache``) keyed by the encoder, so a re-run loads instead of recomputing."""
    from tqdm import tqdm

    from ..data.manifests import load_cuts
    from ..judges.speaker import load_speaker_encoder
    from ..data.batches import load_cut_audio

    d = Path(cache_dir) if cache_dir else Path(corpus) / "cache"
    key = hashlib.sha1(encoder_spec.encode()).hexdigest()[:8]
    out: dict[str, torch.Tensor] = {}
    enc = None
    for split in splits:
        path = d / f"speaker-{key}-{split}.pt"
        cuts = load_cuts(corpus, split)
        if path.is_file():
            cached = torch.load(path)
            if all(c.id in cached for c in cuts):
                out.update(cached)
                continue
        enc = enc or load_speaker_encoder(encoder_spec)
        emb = {c.id: torch.from_numpy(enc.embed(load_cut_audio(c))) for c in
               tqdm(cuts, desc=f"speaker embeddings ({split})", disable=not progress)}
        with atomic_path(path) as tmp:
            torch.save(emb, tmp)
        out.update(emb)
    return out
