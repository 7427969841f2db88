"""Voice cloning with the speech LM: content of one utterance, voice of another, generated."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from .model import SpeechLM

__all__ = ["CloneResult", "clone_tokens", "clone", "decode_generated"]


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
    single = bool(getattr(tokenizer, "single_stream", False))
    c = tokenizer.encode(content_wav)[0]
    v = tokenizer.encode(voice_wav)[0]

    def pair(t):
        return (t.semantic[0, :0] if single else t.semantic[0]), t.acoustic[0]

    sem, ac, hit = clone_tokens(lm, pair(c), pair(v), **kw)
    wav = decode_generated(tokenizer, sem, ac)
    return CloneResult(wav, sem, ac, hit)


def decode_generated(tokenizer: Any, sem: torch.Tensor, ac: torch.Tensor) -> torch.Tensor | None:
    """Decode generated tokens; the output length follows the semantic stream (DSA) or, for the
    single-stream baseline, the acoustic one (its semantic stream is a placeholder)."""
    single = bool(getattr(tokenizer, "single_stream", False))
    if ac.shape[-1] == 0 or (not single and sem.numel() == 0):
        return None
    if single:
        n = int(round(ac.shape[-1] * tokenizer.sample_rate / tokenizer.frame_rates[1]))
        sem = torch.zeros(max(1, int(round(n / tokenizer.sample_rate * tokenizer.frame_rates[0]))), dtype=torch.long)
    else:
        n = int(round(sem.numel() * tokenizer.sample_rate / tokenizer.frame_rates[0]))
    return tokenizer.decode(tokenizer.make_tokens([sem], [ac], [n]))[0]
