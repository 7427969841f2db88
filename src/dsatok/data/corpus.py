"""Offline multi-voice corpus builder (``dsatok corpus build``).

Layout of a built corpus::

    OUT/corpus.json                    metadata: seed, hours, voices, splits, counts, text source
    OUT/voices.json                    the voice inventory used (engine settings per speaker)
    OUT/wavs/<split>/<speaker>/<utt>.flac   16 kHz mono 16-bit FLAC
    OUT/manifests/dsatok_{recordings,supervisions}_<split>.jsonl.gz   lhotse manifests
    OUT/recomb/pairs.jsonl             recombination test pairs (content S, voice A, true target)
    OUT/recomb/targets/<S>__<A>.flac   S's text synthesised with A's voice settings
    OUT/asr_check.jsonl                per-clip ASR verdicts of the checked (neural) engines

Splits are speaker-disjoint *and* sentence-disjoint (test voices and test sentences never occur in
train or dev). The plan (which voice says which sentence at which rate) depends only on the seed,
the requested hours, the voice inventory and the sentence pool, so a build is deterministic.
Files appear atomically; a re-run skips finished files, deletes stale partial files and redoes
unreadable ones. Clips of the engines in ``clip_check_engines`` (the neural voices) are kept only
when an ASR model's WER on them is at most ``clip_max_wer``; refused clips leave the plan's hours
short by the rejection rate (``corpus.json``'s ``asr_check``), and stay refused on a re-run. When the voice inventory stores
speaker centroids, training voices near a test voice are left out (``far_test``), and ``corpus.json``
records them and each test voice's nearest training voice.
"""

from __future__ import annotations

import dataclasses
import json
import random
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from ..files import atomic_write_json, atomic_write_text
from .clip_check import CHECK_FILE, append_checks, load_checks
from .text import load_sentences
from .voices import SynthesisError, Voice, load_inventory, load_inventory_meta, load_voice_centroids, synthesize

__all__ = ["BuildOptions", "Utterance", "plan_corpus", "build_corpus", "keep_train_far", "nearest_training_voice",
           "SPLITS", "MANIFEST_PREFIX"]

SPLITS = ("train", "dev", "test")
MANIFEST_PREFIX = "dsatok"
FORMAT_VERSION = 1
_SEC_PER_WORD = 0.28  # speaking time per word at rate 1.0 (fit on a built corpus), to plan hours


@dataclasses.dataclass(frozen=True)
class BuildOptions:
    hours: float = 1.0
    seed: int = 0
    jobs: int = 2
    test_speakers: int = 8
    dev_speakers: int = 4
    test_sentence_fraction: float = 0.1
    dev_sentence_fraction: float = 0.05
    recomb_pairs: int = 100
    rate_range: tuple[float, float] = (0.85, 1.15)
    engines: tuple[str, ...] = ()  # empty: all engines of the inventory
    # test / dev voices are drawn from voices an ASR model understands (inventory WER <= this),
    # so that WER measured on them reflects the model, not the synthesiser; 0 or no WERs: any voice
    eval_max_wer: float = 0.35
    # per-clip ASR check (dsatok.data.clip_check): clips of these engines are kept only when the
    # ASR's WER on them is at most clip_max_wer (0: no check); build_corpus needs an asr_factory then
    clip_max_wer: float = 0.5
    clip_check_engines: tuple[str, ...] = ("kokoro", "hibari")
    # a training voice whose speaker centroid (the inventory's meta.centroids) is at least this
    # similar to a test voice's is left out, so no training voice is near a test voice (0: off)
    far_test: float = 0.75


@dataclasses.dataclass(frozen=True)
class Utterance:
    id: str
    split: str
    speaker: str
    text: str
    rate: float
    path: str  # relative to the corpus root


def _engine_family(v: Voice) -> str:
    if v.engine == "espeak":
        return "mbrola" if v.name.startswith("mb-") else "espeak"
    return v.engine


def split_speakers(voices: list[Voice], n_test: int, n_dev: int, seed: int,
                   eligible: set[str] | None = None, centroids: Mapping[str, Sequence[float]] | None = None,
                   far: float = 0.0) -> dict[str, list[Voice]]:
    """Speaker-disjoint split; test and dev draw from every engine family in turn.

    ``eligible``: ids of voices that may be test / dev speakers (default: all); the others train.
    With ``centroids`` and ``far > 0``, each family offers its most isolated voices first (fewest
    other voices at cosine similarity ``>= far``; ties in seeded order), so that keeping training
    voices far from the test voices (:func:`keep_train_far`) moves as few of them as it can.
    """
    if n_test + n_dev >= len(voices):
        raise ValueError(f"{len(voices)} voices cannot give {n_test} test + {n_dev} dev speakers and a train set")
    if eligible is not None and len([v for v in voices if v.id in eligible]) < n_test + n_dev:
        eligible = None  # too few intelligible voices: fall back to all
    rng = random.Random(f"speakers-{seed}")
    fams: dict[str, list[Voice]] = defaultdict(list)
    rest: list[Voice] = []
    for v in sorted(voices, key=lambda x: x.id):
        if eligible is None or v.id in eligible:
            fams[_engine_family(v)].append(v)
        else:
            rest.append(v)
    for f in fams.values():
        rng.shuffle(f)
    if centroids and far > 0:
        known = [v.id for v in voices if v.id in centroids]
        m = np.stack([_unit(centroids[i]) for i in known]) if known else np.zeros((0, 1))
        crowd = {i: int((m @ m[k] >= far).sum()) - 1 for k, i in enumerate(known)}
        for f in fams.values():  # pop() takes from the end: isolated voices last, the sort is stable
            f.sort(key=lambda v: -crowd.get(v.id, 0))
    order: list[Voice] = []
    names = sorted(fams)
    rng.shuffle(names)
    while any(fams.values()):
        for n in names:
            if fams[n]:
                order.append(fams[n].pop())
    return {
        "test": sorted(order[:n_test], key=lambda x: x.id),
        "dev": sorted(order[n_test : n_test + n_dev], key=lambda x: x.id),
        "train": sorted(order[n_test + n_dev :] + rest, key=lambda x: x.id),
    }


def _unit(c) -> np.ndarray:
    v = np.asarray(c, dtype=np.float64)
    return v / max(float(np.linalg.norm(v)), 1e-12)


def keep_train_far(by_split: dict[str, list[Voice]], centroids: Mapping[str, Sequence[float]],
                   far: float) -> tuple[dict[str, list[Voice]], dict[str, dict]]:
    """Leave out every training voice whose centroid's cosine similarity to a test voice's is
    ``>= far`` (voices without a centroid stay). Returns the new split and ``{left-out id: {"near":
    test id, "similarity": s}}``; the left-out voices are in no split, so the planned hours go to
    the others."""
    tests = [(v.id, _unit(centroids[v.id])) for v in by_split["test"] if v.id in centroids]
    out: dict[str, dict] = {}
    train: list[Voice] = []
    for v in by_split["train"]:
        if v.id in centroids and tests:
            c = _unit(centroids[v.id])
            sim, near = max((float(c @ t), tid) for tid, t in tests)
            if sim >= far:
                out[v.id] = {"near": near, "similarity": round(sim, 4)}
                continue
        train.append(v)
    return {"test": by_split["test"], "dev": by_split["dev"], "train": train}, out


def nearest_training_voice(speakers: Mapping[str, Sequence[str]],
                           centroids: Mapping[str, Sequence[float]]) -> dict[str, dict]:
    """``{test voice: {"voice": nearest training voice, "similarity": cosine}}`` over the voices
    with a centroid (a test voice without one, or no training centroid: absent)."""
    train = [(v, _unit(centroids[v])) for v in speakers.get("train", ()) if v in centroids]
    out: dict[str, dict] = {}
    for v in speakers.get("test", ()):
        if v in centroids and train:
            c = _unit(centroids[v])
            sim, near = max((float(c @ t), tid) for tid, t in train)
            out[v] = {"voice": near, "similarity": round(sim, 4)}
    return out


def _left_out(voices: list[Voice], utts: list[Utterance], centroids: Mapping[str, Sequence[float]],
              far: float) -> dict[str, dict]:
    """The inventory voices the plan left out for being near a test voice (:func:`keep_train_far`)."""
    planned = {u.speaker for u in utts}
    test = [v for v in voices if v.id in {u.speaker for u in utts if u.split == "test"}]
    left = [v for v in voices if v.id not in planned]
    if not left or far <= 0:
        return {}
    return keep_train_far({"test": test, "dev": [], "train": left}, centroids, far)[1]


def split_sentences(sentences: list[str], opts: BuildOptions) -> dict[str, list[str]]:
    """Sentence-disjoint pools per split, shuffled by the seed."""
    s = sorted(sentences)
    random.Random(f"sentences-{opts.seed}").shuffle(s)
    n_test = max(1, int(len(s) * opts.test_sentence_fraction))
    n_dev = max(1, int(len(s) * opts.dev_sentence_fraction))
    return {"test": s[:n_test], "dev": s[n_test : n_test + n_dev], "train": s[n_test + n_dev :]}


def plan_corpus(voices: list[Voice], sentences: list[str], opts: BuildOptions,
                voice_wer: dict[str, float] | None = None,
                centroids: Mapping[str, Sequence[float]] | None = None) -> tuple[list[Utterance], list[dict]]:
    """Deterministic plan: the utterances of every split and the recombination pairs.

    Hours are shared between splits in proportion to their speakers; each speaker reads
    sentences of its split's pool in a seeded order (cycling only when the pool runs out).
    With ``centroids`` and ``opts.far_test > 0``, training voices near a test voice are left out
    (:func:`keep_train_far`).
    """
    eligible = None
    if voice_wer and opts.eval_max_wer > 0:
        eligible = {v.id for v in voices if voice_wer.get(v.id, 1.0) <= opts.eval_max_wer}
    by_split = split_speakers(voices, opts.test_speakers, opts.dev_speakers, opts.seed, eligible,
                              centroids, opts.far_test)
    if centroids and opts.far_test > 0:
        by_split, _ = keep_train_far(by_split, centroids, opts.far_test)
        if not by_split["train"]:
            raise ValueError(f"far_test={opts.far_test}: every training voice is near a test voice")
    n_voices = sum(len(v) for v in by_split.values())
    pools = split_sentences(sentences, opts)
    budget_s = opts.hours * 3600.0
    utts: list[Utterance] = []
    for split in SPLITS:
        spk = by_split[split]
        share = budget_s * len(spk) / n_voices
        rng = random.Random(f"plan-{split}-{opts.seed}")
        pool = pools[split]
        used = 0.0
        k = 0
        while used < share or k < 2 * len(spk):  # at least 2 utterances per speaker
            v = spk[k % len(spk)]
            text = pool[k % len(pool)]
            lo, hi = opts.rate_range
            rate = round(rng.uniform(lo, hi), 2)
            used += 0.32 + _SEC_PER_WORD * len(text.split()) / rate
            uid = f"{v.id}-{k:06d}"
            utts.append(Utterance(uid, split, v.id, text, rate, f"wavs/{split}/{v.id}/{uid}.flac"))
            k += 1
    pairs = _plan_pairs([u for u in utts if u.split == "test"], opts)
    return utts, pairs


def _plan_pairs(test: list[Utterance], opts: BuildOptions) -> list[dict]:
    """Recombination pairs (S, A): different speaker, different text, different length."""
    rng = random.Random(f"pairs-{opts.seed}")
    pairs: list[dict] = []
    seen: set[tuple[str, str]] = set()
    if len({u.speaker for u in test}) < 2:
        return pairs
    tries = 0
    while len(pairs) < opts.recomb_pairs and tries < 50 * max(opts.recomb_pairs, 1):
        tries += 1
        s, a = rng.choice(test), rng.choice(test)
        if s.speaker == a.speaker or s.text == a.text or (s.id, a.id) in seen:
            continue
        if abs(len(s.text.split()) - len(a.text.split())) < 3:  # lengths must differ clearly
            continue
        seen.add((s.id, a.id))
        tid = f"{s.id}__{a.id}"
        pairs.append({
            "id": tid, "content": s.id, "voice": a.id, "text": s.text,
            "content_speaker": s.speaker, "voice_speaker": a.speaker, "target_rate": a.rate,
            "content_path": s.path, "voice_path": a.path, "target_path": f"recomb/targets/{tid}.flac",
        })
    return pairs


def _is_complete(path: Path) -> bool:
    """A finished FLAC: exists, decodes, has frames."""
    if not path.exists():
        return False
    try:
        import soundfile as sf

        info = sf.info(str(path))
        if info.frames <= 0:
            return False
        with sf.SoundFile(str(path)) as f:  # decode the tail: catches truncated files
            f.seek(max(info.frames - 1600, 0))
            f.read(1600)
        return True
    except Exception:
        return False


def _job(args: tuple) -> tuple[str, str | None, dict | None]:
    """Synthesise one clip; with an ASR factory, transcribe it and delete it when its WER exceeds
    the limit. Returns (path, error message or None, ASR verdict or None)."""
    vd, text, rate, out, asr_factory, max_wer = args
    try:
        synthesize(Voice.from_dict(vd), text, out, rate=rate)
        if asr_factory is None:
            return out, None, None
        from .clip_check import cached_asr, clip_wer

        w, hyp = clip_wer(out, text, cached_asr(asr_factory))
        if w > max_wer:
            Path(out).unlink(missing_ok=True)
        return out, None, {"text": text, "hyp": hyp, "wer": round(w, 4)}
    except SynthesisError as e:
        return out, str(e), None
    except Exception as e:  # keep the batch going; report the file
        return out, f"{out}: {type(e).__name__}: {e}", None


def _check_summary(opts: BuildOptions, checked: set[str], specs: list[tuple], verdicts: dict[str, dict],
                   rejected: set[str]) -> dict:
    """The per-clip ASR check in numbers (clips of the checked voices planned in this build)."""
    rels = [rel for spk, _, _, rel in specs if spk in checked]
    ws = [verdicts[r]["wer"] for r in rels if r in verdicts]
    return {"engines": list(opts.clip_check_engines), "max_wer": opts.clip_max_wer, "voices": len(checked),
            "clips": len(rels), "checked": len(ws), "rejected": len(rejected),
            "rejection_rate": round(len(rejected) / len(ws), 4) if ws else None,
            "mean_wer_checked": round(sum(ws) / len(ws), 4) if ws else None,
            "verdicts": CHECK_FILE if ws else None}


def _clean_partials(root: Path) -> int:
    n = 0
    for sub in ("wavs", "recomb"):
        d = root / sub
        if d.exists():
            for p in d.rglob(".*.part*"):
                p.unlink(missing_ok=True)
                n += 1
    return n


def build_corpus(
    out: str | Path,
    opts: BuildOptions,
    *,
    voices: list[Voice] | None = None,
    sentences: list[str] | None = None,
    voice_wer: dict[str, float] | None = None,
    centroids: Mapping[str, Sequence[float]] | None = None,
    progress: bool = True,
    log=print,
    asr_factory=None,
) -> dict:
    """Build (or resume) a corpus in ``out``; returns the metadata written to ``corpus.json``.

    ``asr_factory``: a picklable callable returning an ASR (``transcribe(wav) -> str``) for the
    per-clip check of ``opts.clip_check_engines`` (required when such voices are built and
    ``opts.clip_max_wer > 0``)."""
    from tqdm import tqdm

    t0 = time.time()
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    if voices is None:
        voices = load_inventory()
        if voice_wer is None:
            voice_wer = load_inventory_meta().get("asr_wer")
        if centroids is None:
            centroids = load_voice_centroids()
    voices = list(voices)
    if opts.engines:
        voices = [v for v in voices if v.engine in opts.engines or _engine_family(v) in opts.engines]
        if not voices:
            hint = " (Kokoro / hibari voices: use the inventory 'all' or 'natural')" if set(opts.engines) & {"kokoro", "hibari"} else ""
            from .manifests import CorpusError  # a ValueError: one line from the CLI

            raise CorpusError(f"no voice of engines {list(opts.engines)} in the inventory{hint}")
    sentences = sentences if sentences is not None else load_sentences()
    if not sentences:
        raise ValueError("no sentences: install Debian's 'fortunes' package (scripts/setup.sh)")
    utts, pairs = plan_corpus(voices, sentences, opts, voice_wer, centroids)
    vmap = {v.id: v for v in voices}

    checked = {v.id for v in voices if opts.clip_max_wer > 0
               and (v.engine in opts.clip_check_engines or _engine_family(v) in opts.clip_check_engines)}
    if checked and asr_factory is None:
        raise ValueError(f"the per-clip ASR check of {sorted(opts.clip_check_engines)} needs an asr_factory "
                         "(or clip_max_wer=0)")
    n_partial = _clean_partials(root)
    uby = {u.id: u for u in utts}
    specs = [(u.speaker, u.text, u.rate, u.path) for u in utts]
    specs += [(p["voice_speaker"], p["text"], uby[p["voice"]].rate, p["target_path"]) for p in pairs]
    verdicts = load_checks(root) if checked else {}
    rejected: set[str] = set()  # relative paths the ASR check refused
    todo = []
    for spk, text, rate, rel in specs:
        path, check = root / rel, spk in checked
        v = verdicts.get(rel) if check else None
        if v is not None and v.get("text") == text and v["wer"] > opts.clip_max_wer:
            path.unlink(missing_ok=True)
            rejected.add(rel)
        elif _is_complete(path) and (not check or (v is not None and v.get("text") == text)):
            continue
        else:
            path.unlink(missing_ok=True)
            todo.append((vmap[spk].to_dict(), text, rate, str(path), asr_factory if check else None,
                         opts.clip_max_wer))
    n_done = len(specs) - len(todo) - len(rejected)
    log(f"corpus: {len(utts)} utterances + {len(pairs)} recombination targets planned; "
        f"{n_done} done, {len(rejected)} refused by the ASR check, {len(todo)} to synthesise"
        + (f", {n_partial} partial files removed" if n_partial else ""))
    failed: dict[str, str] = {}
    if todo:
        with ProcessPoolExecutor(max_workers=max(1, opts.jobs)) as ex:
            for path, err, verdict in tqdm(ex.map(_job, todo, chunksize=4), total=len(todo), desc="synthesise",
                                           unit="utt", disable=not progress):
                if err:
                    failed[path] = err
                if verdict is not None:
                    rel = str(Path(path).relative_to(root))
                    append_checks(root, [{"path": rel, **verdict}])
                    verdicts[rel] = {"path": rel, **verdict}
                    if verdict["wer"] > opts.clip_max_wer:
                        rejected.add(rel)
    for msg in list(failed.values())[:10]:
        log(f"skipped: {msg}")
    if len(failed) > 10:
        log(f"... and {len(failed) - 10} more failed files")

    from .manifests import write_split_manifests

    ok = [u for u in utts if str(root / u.path) not in failed and u.path not in rejected]
    counts = write_split_manifests(root, ok, vmap)
    good_pairs = [p for p in pairs if str(root / p["target_path"]) not in failed and p["target_path"] not in rejected
                  and p["content"] in {u.id for u in ok} and p["voice"] in {u.id for u in ok}]
    (root / "recomb").mkdir(exist_ok=True)
    atomic_write_text(root / "recomb" / "pairs.jsonl", "".join(json.dumps(p) + "\n" for p in good_pairs))

    from .voices import save_inventory

    save_inventory(voices, root / "voices.json", meta={"source": "dsatok.resources/voices.json"})
    used_sent = {u.text for u in ok}
    meta = {
        "format_version": FORMAT_VERSION,
        "builder": "dsatok corpus build",
        "options": dataclasses.asdict(opts),
        "text_source": "Debian packages fortunes + fortunes-min (/usr/share/games/fortunes)",
        "sentence_pool": len(sentences),
        "sentences_used": len(used_sent),
        "speakers": {s: sorted({u.speaker for u in ok if u.split == s}) for s in SPLITS},
        "test_nearest_train": nearest_training_voice({s: {u.speaker for u in ok if u.split == s} for s in SPLITS},
                                                     centroids or {}),
        "left_out_near_test": _left_out(voices, utts, centroids or {}, opts.far_test),
        "counts": counts,
        "recomb_pairs": len(good_pairs),
        "failed": len(failed),
        "asr_check": _check_summary(opts, checked, specs, verdicts, rejected),
        "build_seconds": round(time.time() - t0, 1),
    }
    atomic_write_json(root / "corpus.json", meta)
    return meta
