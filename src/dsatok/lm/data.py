"""Voice-cloning triplets (S, A, C) from a corpus, and their tokens.

``S`` (content) and ``A`` (voice) are distinct utterances of different speakers of one split; ``C``
is the **true** utterance of S's text in A's voice, synthesised with A's engine, voice and rate
(the seed used a TTS model's output as target; our corpus can make the real thing).

Layout under the corpus directory::

    triplets/<split>.jsonl                      {"id", "content", "voice", "text", "target_path", ...}
    triplets/wavs/<split>/<S>__<A>.flac         the targets C
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import torch

from ..files import atomic_path, atomic_write_text

__all__ = ["build_triplets", "load_triplets", "tokenize_triplets"]


def build_triplets(corpus: str | Path, split: str, n: int, seed: int = 0, jobs: int = 2,
                   progress: bool = True, log=print) -> Path:
    """Plan ``n`` triplets of ``split`` and synthesise their targets (resumable: finished targets
    are kept, a failed one is reported and its triplet dropped). Returns the jsonl path."""
    from concurrent.futures import ProcessPoolExecutor

    from tqdm import tqdm

    from ..data.corpus import _is_complete, _job
    from ..data.manifests import load_cuts
    from ..data.voices import load_inventory

    root = Path(corpus)
    voices = {v.id: v for v in load_inventory(root / "voices.json")}
    cuts = list(load_cuts(str(root), split))
    if len({c.supervisions[0].speaker for c in cuts}) < 2:
        raise ValueError(f"{root}: split '{split}' needs at least two speakers for triplets")
    rng = random.Random(f"triplets-{seed}-{split}")
    plan, seen = [], set()
    tries = 0
    while len(plan) < n and tries < 50 * n:
        tries += 1
        s, a = rng.choice(cuts), rng.choice(cuts)
        ss, sa = s.supervisions[0], a.supervisions[0]
        if ss.speaker == sa.speaker or ss.text == sa.text or (s.id, a.id) in seen or sa.speaker not in voices:
            continue
        seen.add((s.id, a.id))
        tid = f"{s.id}__{a.id}"
        plan.append({"id": tid, "content": s.id, "voice": a.id, "target": tid, "text": ss.text,
                     "voice_speaker": sa.speaker, "rate": float((sa.custom or {}).get("rate", 1.0)),
                     "target_path": f"triplets/wavs/{split}/{tid}.flac"})
    jobs_ = [(voices[p["voice_speaker"]].to_dict(), p["text"], p["rate"], str(root / p["target_path"]), None, 1.0)
             for p in plan]
    todo = [j for j in jobs_ if not _is_complete(Path(j[3]))]
    for j in todo:
        Path(j[3]).parent.mkdir(parents=True, exist_ok=True)
    failed: set[str] = set()
    if todo:
        with ProcessPoolExecutor(max_workers=max(1, jobs)) as ex:
            for path, err, _ in tqdm(ex.map(_job, todo, chunksize=4), total=len(todo), desc=f"triplets ({split})",
                                  unit="utt", disable=not progress):
                if err:
                    failed.add(path)
                    log(f"skipped: {err}")
    ok = [p for p in plan if str(root / p["target_path"]) not in failed]
    out = root / "triplets" / f"{split}.jsonl"
    atomic_write_text(out, "".join(json.dumps(p) + "\n" for p in ok))
    return out


def load_triplets(corpus: str | Path, split: str) -> list[dict[str, Any]]:
    p = Path(corpus) / "triplets" / f"{split}.jsonl"
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no triplets (run `dsatok lm build-triplets --corpus {corpus} --split {split}`)")
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


@torch.no_grad()
def tokenize_triplets(tokenizer: Any, corpus: str | Path, split: str, limit: int = 0,
                      progress: bool = True, cache: bool = True) -> list[dict[str, Any]]:
    """Each triplet with ``content`` / ``voice`` / ``target`` as ``(semantic [T_s], acoustic [L, T_a])``
    and the audio files of the two sources (``content_path``, ``voice_path``).

    With ``cache`` the tokens are kept in ``<corpus>/triplets/tokens/<fingerprint>.pt`` (keyed by
    the tokenizer's fingerprint, so another tokenizer never reads them), and training and
    evaluation encode each utterance once."""
    from tqdm import tqdm

    from ..audio import load
    from ..data.manifests import load_cuts

    root = Path(corpus)
    paths = {c.id: c.recording.sources[0].source for c in load_cuts(str(root), split)}
    trips = load_triplets(root, split)[: limit or None]
    single = bool(getattr(tokenizer, "single_stream", False))  # baseline: no semantic symbols in the sequence
    store = root / "triplets" / "tokens" / f"{tokenizer.fingerprint}.pt" if cache else None
    memo: dict[str, tuple[torch.Tensor, torch.Tensor]] = _read_tokens(store)
    n_before = len(memo)

    def tok(key: str, path: str) -> tuple[torch.Tensor, torch.Tensor]:
        if key not in memo:
            t = tokenizer.encode(torch.from_numpy(load(path)))[0]
            sem = t.semantic[0, :0] if single else t.semantic[0]
            memo[key] = (sem.clone(), t.acoustic[0].clone())
        return memo[key]

    out = []
    for t in tqdm(trips, desc=f"tokens ({split})", disable=not progress):
        p = dict(t)
        p["content_path"], p["voice_path"] = paths[t["content"]], paths[t["voice"]]
        p["content_tokens"] = tok(t["content"], paths[t["content"]])
        p["voice_tokens"] = tok(t["voice"], paths[t["voice"]])
        p["target_tokens"] = tok("C:" + t["id"], str(root / t["target_path"]))
        out.append(p)
    if store is not None and len(memo) > n_before:
        with atomic_path(store) as tmp:
            torch.save(memo, tmp)
    return out


def _read_tokens(store: Path | None) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The token cache at ``store`` (empty when absent or unreadable: it is rebuilt, never trusted)."""
    if store is None or not store.is_file():
        return {}
    try:
        memo = torch.load(store, weights_only=True)
    except Exception:  # a cache is disposable: a damaged one is recomputed
        return {}
    return memo if isinstance(memo, dict) else {}
