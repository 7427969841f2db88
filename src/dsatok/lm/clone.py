"""Voice cloning with the speech LM: content of one utterance, voice of another, generated."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from .model import SpeechLM

__all__ = ["CloneResult", "clone_tokens", "clone"]


@dataclasses.dataclass
class CloneResult:
    wav: torch.Tensor | None  # [N] at the tokenizer's sample rate; None when nothing decodable came out
    semantic: torch.Tensor  # [T_s]
    acoustic: torch.Tensor  # [L, T_a]
    hit_max: bool  # generation ran into max_new_tokens without <eos_s>


def clone_tokens(lm: SpeechLM, content: tuple[torch.Tensor, torch.Tensor], voice: tuple[torch.Tensor, torch.Tensor],
                 max_new_tokens: int = 0, temperature: float = 0.8, top_k: int = 50, seed: int = 0):
    """Generate C's ``(semantic, acoustic, hit_max)``; the default limit is 3× the prompt's content length."""
    prompt = lm.layout.prompt(content, voice)
    limit = max_new_tokens or 3 * (len(lm.layout.speech(*content)) + 1)
    g = lm.generate(prompt, limit, temperature=temperature, top_k=top_k, seed=seed)
    sem, ac, _ = lm.layout.parse_response(g.ids)
    return sem, ac, g.hit_max


@torch.no_grad()
def clone(tokenizer: Any, lm: SpeechLM, content_wav: torch.Tensor, voice_wav: torch.Tensor, **kw: Any) -> CloneResult:
    """Encode both inputs, generate C's tokens, decode them (``kw``: generation options)."""
    c = tokenizer.encode(content_wav)[0]
    v = tokenizer.encode(voice_wav)[0]
    sem, ac, hit = clone_tokens(lm, (c.semantic[0], c.acoustic[0]), (v.semantic[0], v.acoustic[0]), **kw)
    if sem.numel() == 0 or ac.shape[-1] == 0:
        return CloneResult(None, sem, ac, hit)
    hop = tokenizer.sample_rate / tokenizer.frame_rates[0]
    toks = tokenizer._pack([sem], [ac], [int(round(sem.numel() * hop))])
    return CloneResult(tokenizer.decode(toks)[0], sem, ac, hit)
