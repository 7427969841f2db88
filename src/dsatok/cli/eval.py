"""``dsatok eval KIND``: measurements that write JSON (and Markdown) reports."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from ..files import atomic_write_text
from .codec import _decode_kw, add_decode_args, float_list, model_arg, positive_int, unit_interval


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate models (semantic, recon, recomb, probe, ...)")
    ps = p.add_subparsers(dest="kind", metavar="KIND")
    ps.required = True

    s = ps.add_parser("semantic", help="stage 1: CTC CER / WER from the semantic tokens, codebook usage")
    s.add_argument("model_dir", help="exported semantic tokenizer (with ctc_head.safetensors)")
    s.add_argument("--corpus", required=True)
    s.add_argument("--split", default="test")
    s.add_argument("--limit", type=int, default=0, help="first N utterances only (0: all)")
    s.add_argument("--train-corpus", default=None,
                   help="the corpus the model was trained on: its train words split the WER into seen / unseen "
                        "words (default: --corpus)")
    s.add_argument("--reference-asr", default="",
                   help="also transcribe the clean audio with this ASR (faster-whisper | pocketsphinx | CTranslate2 "
                        "Whisper dir | transformers Whisper dir): the ceiling for the tokens' CER / WER")
    s.add_argument("-o", "--out", default=None, help="write the JSON report here")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=_semantic)

    for kind, helptext in (("recon", "Table 1: reconstruction of test utterances"),
                           ("recomb", "Table 1: cross-utterance recombination of the corpus's test pairs")):
        s = ps.add_parser(kind, help=helptext)
        s.add_argument("--model", type=model_arg, default=None, help="model directory or dsa (default: the bundled model)")
        if kind == "recon":  # a corpus split, or the user's own recordings
            src = s.add_mutually_exclusive_group(required=True)
            src.add_argument("--corpus")
            src.add_argument("--list", default=None, metavar="FILE",
                             help="instead of --corpus: a list file of path<TAB>text lines (your own recordings; "
                                  "relative paths from the file's folder)")
        else:
            s.add_argument("--corpus", required=True)
        s.add_argument("--limit", type=int, default=0, help="first N utterances / pairs (0: all)")
        if kind == "recon":
            s.add_argument("--split", default="test", choices=("train", "dev", "test"),
                           help="corpus split to reconstruct (default test: unseen voices); train tells "
                                "under-fitting (seen data fails too) from poor generalisation")
        add_decode_args(s)
        s.add_argument("--seed", type=int, default=0)
        s.add_argument("--device", default="cpu")
        s.add_argument("--vocoder", default=None,
                       help="override the model's vocoder (directory, 'griffinlim' or 'griffinlim:N')")
        s.add_argument("--asr", default="faster-whisper",
                       help="faster-whisper (tiny.en) | base | pocketsphinx | CTranslate2 Whisper dir | transformers "
                            "Whisper dir; a comma list (tiny,base) adds a wer_<name> column per extra judge")
        s.add_argument("--speaker", default="resemblyzer", help="resemblyzer | local WavLM-SV directory")
        s.add_argument("--mos", default="dnsmos,distillmos", help="comma list: dnsmos, distillmos, UTMOS path")
        s.add_argument("-o", "--out", required=True, help="report directory (report.json, report.md, PNGs)")
        s.add_argument("--quiet", action="store_true")
        s.set_defaults(func=_table)

    s = ps.add_parser("ablation", help="Table 3: recon + recomb of several models (full, ablations, single-stream)")
    s.add_argument("models", nargs="+", metavar="NAME=DIR", help="models to compare, e.g. full=runs/a nospk=runs/b")
    s.add_argument("--corpus", required=True)
    s.add_argument("--limit", type=int, default=0, help="first N test utterances (0: all)")
    s.add_argument("--recomb-limit", type=int, default=0, help="first N recombination pairs (0: all)")
    add_decode_args(s)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--vocoder", default=None,
                   help="one vocoder for every model (directory, 'griffinlim' or 'griffinlim:N')")
    _evaluator_args(s)
    s.set_defaults(func=_ablation)

    s = ps.add_parser("probe", help="Table 4: CTC-ASR and speaker-ID probes on every token stream")
    s.add_argument("--model", default=None, help="a DSA model directory (default: bundled) or a semantic tokenizer directory")
    s.add_argument("--corpus", required=True)
    s.add_argument("--epochs", type=int, default=12)
    s.add_argument("--limit", type=int, default=0, help="first N utterances of each split (0: all)")
    s.add_argument("--tasks", default="asr,speaker",
                   help="comma-separated probes: asr (CTC over characters), speaker (speaker ID)")
    s.add_argument("-o", "--out", default=None, help="write the JSON report here (and a .md table beside it)")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=_probe)

    s = ps.add_parser("render", help="renderability probe: WER of a fixed small mel decoder trained on a token stream")
    s.add_argument("--model", default=None,
                   help="a DSA model directory (default: bundled) or a semantic tokenizer directory")
    s.add_argument("--corpus", required=True, help="train split fits the probe; test split (unseen voices) scores it")
    s.add_argument("--inputs", default="continuous,codes",
                   help="comma list of: continuous, codes, table, codes+acoustic, acoustic (the last two need a DSA model)")
    s.add_argument("--steps", type=positive_int, default=2500, help="probe training steps (16 x 4 s crops each)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--limit", type=positive_int, default=40, help="test utterances, spread evenly over the split")
    s.add_argument("--train-limit", type=int, default=0, help="first N train utterances (0: all)")
    s.add_argument("--vocoder", default=None, help="vocoder directory (default: the bundled model's)")
    s.add_argument("--asr", default="tiny,base", help="ASR judges, comma list (first: wer, others: wer_<name>)")
    s.add_argument("-o", "--out", required=True, help="write the JSON report here (and a .md table beside it)")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=_render)

    s = ps.add_parser("linear-probe", help="X-ARES-style linear probes of continuous latents (Dasheng, DSA tokens)")
    s.add_argument("--dasheng", default=None, help="a DashengTokenizer directory (semantic / acoustic / unified rows)")
    s.add_argument("--model", default=None, help="a DSA model directory (its token streams as rows); 'none' to skip")
    s.add_argument("--corpus", required=True)
    s.add_argument("--tasks", default=",".join(("speaker", "gender", "engine", "rate", "pitch", "keyword", "noise")))
    s.add_argument("--limit", type=int, default=400, help="utterances per split (0: all)")
    s.add_argument("--epochs", type=int, default=100)
    s.add_argument("-o", "--out", required=True, help="report directory (linear_probe.json + .md)")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=_linear_probe)


    s = ps.add_parser("dasheng", help="DashengTokenizer reconstruction: unified vs semantic-only latents")
    s.add_argument("models", nargs="+", metavar="NAME=DIR", help="DashengTokenizer directories, e.g. "
                   "unified=runs/d/final semantic_only=runs/s/final")
    s.add_argument("--corpus", required=True)
    s.add_argument("--limit", type=int, default=0, help="first N test utterances (0: all)")
    s.add_argument("--revocode", default=None,
                   help="a mel vocoder directory: also score each decode's log-mel re-synthesised by it")
    _evaluator_args(s)
    s.set_defaults(func=_dasheng)

    s = ps.add_parser("vocoder", help="vocoder copy-synthesis of test audio: PESQ/STOI/MCD/SIM/WER and RTF")
    s.add_argument("vocoders", nargs="+", metavar="NAME=SPEC",
                   help="vocoders to compare: a trained vocoder directory, 'griffinlim' or 'griffinlim:N' (N "
                        "iterations, default 32), e.g. gl=griffinlim gl100=griffinlim:100 vocos=runs/vocoder/best")
    s.add_argument("--corpus", required=True)
    s.add_argument("--limit", type=int, default=0, help="first N test utterances (0: all)")
    s.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    _evaluator_args(s)
    s.set_defaults(func=_vocoder)

    s = ps.add_parser("enhance", help="speech enhancement on the Dasheng latent: PESQ/STOI/DNSMOS before and after")
    s.add_argument("--model", default=None,
                   help="an enhancer directory (dsatok train enhance; default: the one bundled with dasheng)")
    s.add_argument("--corpus", required=True)
    s.add_argument("--limit", type=int, default=0, help="first N test utterances (0: all)")
    s.add_argument("--steps", type=positive_int, default=None, help="ODE steps (default: the model's default_steps)")
    s.add_argument("--start", type=unit_interval, default=0.0,
                   help="begin the ODE at this flow time from the noisy latent (warm start, 0 <= start < 1)")
    s.add_argument("--snrs", type=float_list, default="-5,0,5,10,15",
                   help="comma list of SNRs in dB that cycle over the test utterances (default -5,0,5,10,15; "
                        "write --snrs=-5,0 when the list starts with a negative value)")
    s.add_argument("--seed", type=int, default=0)
    _evaluator_args(s)
    s.set_defaults(func=_enhance)


def _evaluator_args(s: argparse.ArgumentParser) -> None:
    """The options every multi-model report shares: evaluators, output directory, quiet."""
    s.add_argument("--asr", default="faster-whisper",
                   help="faster-whisper | pocketsphinx | CTranslate2 Whisper dir | transformers Whisper dir")
    s.add_argument("--speaker", default="resemblyzer", help="resemblyzer | local WavLM-SV directory")
    s.add_argument("--mos", default="dnsmos", help="comma list: dnsmos, distillmos, UTMOS path ('' for none)")
    s.add_argument("-o", "--out", required=True, help="report directory (report.json, report.md)")
    s.add_argument("--quiet", action="store_true")


def _named_dirs(specs: list[str], what: str = "model", named=lambda spec: False,
                expected: str = "NAME=DIR") -> dict[str, str]:
    """``NAME=DIR`` pairs, each directory checked; ``named(spec)`` true lets a non-directory spec
    through (e.g. ``griffinlim``) and may raise ``ConfigError`` for a malformed one."""
    from ..config import ConfigError
    from .main import CLIError

    out = {}
    for m in specs:
        name, sep, d = m.partition("=")
        if not sep or not name or not d:
            raise CLIError(f"{what} '{m}': expected {expected}")
        try:
            ok = named(d) or Path(d).is_dir()
        except ConfigError as e:
            raise CLIError(str(e)) from None
        if not ok:
            raise CLIError(f"{d}: {what} directory not found")
        out[name] = d
    return out


def _report(rep: dict, out_dir: str | Path, md: str, t0: float, title: str = "") -> None:
    """Write ``report.md`` (``md`` + settings + run time), ``report.json`` and ``metrics.png`` (one
    bar chart per metric of ``rep["table"]``) into ``out_dir``."""
    from ..eval.plots import plot_bars

    rep["command_seconds"] = round(time.perf_counter() - t0, 1)
    md += "\nSettings: `" + json.dumps(rep["settings"]) + f"`; {rep['command_seconds']} s\n"
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if plot_bars(rep.get("table") or [], out / "metrics.png", title=title or None):
        md += "\n![metrics](metrics.png)\n"
    atomic_write_text(out / "report.md", md)
    _write(rep, str(out / "report.json"), echo=False)
    print(md)


def _dasheng(a: argparse.Namespace) -> int:
    from ..eval.dasheng import evaluate_dasheng_reconstruction
    from ..eval.tables import load_evaluators, markdown_table
    from ..dasheng_tokenizer import DashengTokenizer
    from ..models.io import model_files_digest

    t0 = time.perf_counter()
    specs = _named_dirs(a.models)
    models = {n: DashengTokenizer.from_pretrained(d) for n, d in specs.items()}
    ev = load_evaluators(a.asr, a.speaker, tuple(m for m in a.mos.split(",") if m))
    revoc = None
    if a.revocode:
        from ..models.vocoder import load_vocoder

        revoc = load_vocoder(a.revocode).eval()
    rep = evaluate_dasheng_reconstruction(models, a.corpus, ev, limit=a.limit, revocoder=revoc, progress=not a.quiet)
    rep["settings"] = {"models": specs, "file_digests": {n: model_files_digest(d) for n, d in specs.items()},
                       "latent_fingerprints": {n: m.fingerprint for n, m in models.items()},
                       "corpus": str(a.corpus), "evaluators": ev.names(), "limit": a.limit, "revocode": a.revocode}
    _report(rep, a.out, markdown_table(rep["table"], f"DashengTokenizer reconstruction ({a.corpus}, test)"), t0)
    return 0


def _vocoder(a: argparse.Namespace) -> int:
    import torch

    from ..config import MelConfig
    from ..eval.tables import load_evaluators, markdown_table
    from ..eval.vocoder import evaluate_vocoders
    from ..models.io import model_files_digest
    from ..models.vocoder import VocosVocoder, griffin_lim_iterations, load_vocoder

    t0 = time.perf_counter()
    if a.threads:
        torch.set_num_threads(a.threads)
    specs = _named_dirs(a.vocoders, "vocoder", lambda spec: griffin_lim_iterations(spec) is not None,
                        "NAME=DIR or NAME=griffinlim[:N]")
    trained = {n: VocosVocoder.from_pretrained(s) for n, s in specs.items() if griffin_lim_iterations(s) is None}
    # Griffin-Lim rows follow the trained vocoders' mel settings (evaluate_vocoders checks they agree)
    mel = next(iter(trained.values())).mel_config if trained else MelConfig()
    vocoders = {n: (trained[n] if n in trained else load_vocoder(s, mel)).eval() for n, s in specs.items()}
    ev = load_evaluators(a.asr, a.speaker, tuple(m for m in a.mos.split(",") if m))
    rep = evaluate_vocoders(vocoders, a.corpus, ev, limit=a.limit, progress=not a.quiet)
    rep["settings"] = {"vocoders": specs, "file_digests": {n: model_files_digest(s) for n, s in specs.items()
                                                           if n in trained},
                       "corpus": str(a.corpus), "evaluators": ev.names(), "limit": a.limit,
                       "threads": torch.get_num_threads()}
    _report(rep, a.out, markdown_table(rep["table"], f"Vocoder copy-synthesis ({a.corpus}, test)"), t0)
    return 0


def _enhance(a: argparse.Namespace) -> int:
    from ..eval.dasheng import evaluate_enhancement
    from ..eval.tables import load_evaluators, markdown_table
    from ..models.enhancer import SpeechEnhancer
    from ..models.io import model_files_digest

    from ..resources import bundled_enhancer_dir

    t0 = time.perf_counter()
    if a.model is None:
        a.model = str(bundled_enhancer_dir())
    enh = SpeechEnhancer.from_pretrained(a.model)
    ev = load_evaluators(a.asr, a.speaker, tuple(m for m in a.mos.split(",") if m))
    rep = evaluate_enhancement(enh, a.corpus, ev, limit=a.limit, steps=a.steps, seed=a.seed, start=a.start,
                               snrs=a.snrs, progress=not a.quiet)
    steps = rep["steps"]
    rep["settings"] = {"model": str(a.model), "file_digest": model_files_digest(a.model), "corpus": str(a.corpus),
                       "steps": steps, "start": a.start, "snrs": list(a.snrs), "prior": enh.enhancer.cfg.prior,
                       "seed": a.seed, "evaluators": ev.names(), "limit": a.limit}
    md = markdown_table(rep["table"], f"Latent speech enhancement ({a.corpus}, test, {steps} steps)")
    md += "\n" + markdown_table(rep["groups"], "Noisy input, its tokenizer pass-through and enhanced, per SNR and noise")
    _report(rep, a.out, md, t0)
    return 0


def _write(report: dict, out: str | None, echo: bool = True) -> None:
    text = json.dumps(report, indent=1)
    if out:
        atomic_write_text(out, text + "\n")
    if echo:
        print(text)


def _semantic(a: argparse.Namespace) -> int:
    from ..train.semantic_eval import evaluate_semantic

    t0 = time.perf_counter()
    ref_asr = None
    if a.reference_asr:
        from ..eval.asr import load_asr

        ref_asr = load_asr(a.reference_asr)
    rep = evaluate_semantic(a.model_dir, a.corpus, a.split, a.limit, progress=not a.quiet,
                            train_corpus=a.train_corpus, reference_asr=ref_asr)
    rep["command_seconds"] = round(time.perf_counter() - t0, 1)
    _write(rep, a.out)
    return 0


def _probe(a: argparse.Namespace) -> int:
    from ..eval.probe import ProbeConfig, dsa_source, probe_streams, semantic_source
    from ..tokenizer import DSATokenizer, default_model_dir

    d = Path(a.model) if a.model else default_model_dir()
    kind = json.loads((d / "config.json").read_text()).get("kind") if (d / "config.json").is_file() else None
    if kind == "dsatok-semantic":
        from ..models.semantic import SemanticTokenizer

        src = semantic_source(SemanticTokenizer.from_pretrained(d))
    else:
        src = dsa_source(DSATokenizer.from_pretrained(d))
    tasks = tuple(t.strip() for t in a.tasks.split(",") if t.strip())
    if not tasks or any(t not in ("asr", "speaker") for t in tasks):
        raise SystemExit(f"dsatok eval probe: --tasks must list asr and/or speaker, got '{a.tasks}'")
    rep = probe_streams(*src, a.corpus, ProbeConfig(epochs=a.epochs), limit=a.limit, progress=not a.quiet,
                        tasks=tasks)
    rep["model"] = str(d)
    if a.out:
        lines = ["| stream | rate (Hz) | codebook | ASR WER | ASR CER | speaker acc | chance |", "|---|---|---|---|---|---|---|"]
        for n, r in rep["streams"].items():
            asr, spk = r["asr"], r["speaker"]
            cell = lambda d, k: f"{d[k]:.3f}" if k in d else "–"  # noqa: E731 (a probe not run)
            lines.append(f"| {n} | {r['frame_rate']:g} | {r['codebook_size']} | {cell(asr, 'test_wer')} | "
                         f"{cell(asr, 'test_cer')} | {cell(spk, 'test_acc')} | {cell(spk, 'chance')} |")
        from ..files import atomic_write_text

        atomic_write_text(Path(a.out).with_suffix(".md"), "\n".join(lines) + "\n")
        from ..eval.plots import plot_bars

        bars = [{"system": n, "asr_wer": r["asr"].get("test_wer"), "asr_cer": r["asr"].get("test_cer"),
                 "speaker_acc": r["speaker"].get("test_acc"), "speaker_chance": r["speaker"].get("chance")}
                for n, r in rep["streams"].items()]
        plot_bars(bars, Path(a.out).with_suffix(".png"), title=f"Probes per token stream ({a.corpus})")
    _write(rep, a.out)
    return 0


def _render(a: argparse.Namespace) -> int:
    from ..eval.render_probe import RENDER_INPUTS, RenderProbeConfig, render_probe
    from ..eval.tables import load_evaluators
    from ..models.vocoder import load_vocoder
    from ..tokenizer import default_model_dir

    d = Path(a.model) if a.model else default_model_dir()
    if not (d / "config.json").is_file():
        raise SystemExit(f"dsatok eval render: --model {d}: no config.json (not a model directory)")
    inputs = [x.strip() for x in a.inputs.split(",") if x.strip()]
    bad = [x for x in inputs if x not in RENDER_INPUTS]
    if not inputs or bad:
        raise SystemExit(f"dsatok eval render: --inputs: unknown '{','.join(bad) or a.inputs}' "
                         f"(choose from {', '.join(RENDER_INPUTS)})")
    if any("acoustic" in x for x in inputs) and not (d / "acoustic" / "config.json").is_file():
        raise SystemExit(f"dsatok eval render: --inputs {a.inputs}: the acoustic inputs need a DSA model directory, "
                         f"got {d}")
    voc_dir = Path(a.vocoder) if a.vocoder else default_model_dir() / "vocoder"
    vocoder = load_vocoder(voc_dir).eval()
    ev = load_evaluators(a.asr, "resemblyzer", ())
    t0 = time.perf_counter()
    rep = render_probe(d, a.corpus, inputs, ev, vocoder, RenderProbeConfig(steps=a.steps, seed=a.seed), a.limit,
                       a.train_limit, progress=not a.quiet)
    rep.update({"vocoder": str(voc_dir), "seconds": round(time.perf_counter() - t0, 1)})
    labels = [k for k in next(iter(rep["inputs"].values())) if k.startswith("wer")]
    lines = [f"| input | {' | '.join(labels)} | mel L1 |", "|---|" + "---|" * (len(labels) + 1)]
    for k, r in rep["inputs"].items():
        lines.append(f"| {k} | " + " | ".join(f"{r[x]:.3f}" for x in labels) + f" | {r['mel_l1']:.3f} |")
    atomic_write_text(Path(a.out).with_suffix(".md"), "\n".join(lines) + "\n")
    print("\n".join(lines))
    _write(rep, a.out, echo=False)
    return 0


def _linear_probe(a: argparse.Namespace) -> int:
    from ..eval.linear_probe import dasheng_reps, dsa_reps, markdown, probe_suite, write_report

    t0 = time.perf_counter()
    reps = []
    if a.dasheng:
        from ..dasheng_tokenizer import DashengTokenizer

        reps.append(dasheng_reps(DashengTokenizer.from_pretrained(a.dasheng)))
    if a.model != "none":
        from ..tokenizer import DSATokenizer

        reps.append(dsa_reps(DSATokenizer.from_pretrained(a.model)))
    tasks = tuple(t for t in a.tasks.split(",") if t)
    rows = probe_suite(reps, a.corpus, tasks, limit=a.limit, epochs=a.epochs, progress=not a.quiet)
    meta = {"corpus": str(a.corpus), "dasheng": a.dasheng, "model": a.model, "limit": a.limit, "epochs": a.epochs,
            "seconds": round(time.perf_counter() - t0, 1)}
    write_report(rows, a.out, meta)
    print(markdown(rows))
    return 0


def _guidance(a: argparse.Namespace, o) -> dict:
    """The guidance scales an evaluation ran with (its flags, else the model's defaults ``o``)."""
    return {"cfg": o.cfg_scale if a.cfg is None else a.cfg,
            "voice_cfg": o.voice_cfg if a.voice_cfg is None else a.voice_cfg,
            "content_cfg": o.content_cfg if a.content_cfg is None else a.content_cfg}


def _ablation(a: argparse.Namespace) -> int:
    from ..eval.tables import evaluate_ablation, load_evaluators, markdown_table
    from ..tokenizer import DSATokenizer

    t0 = time.perf_counter()
    specs = _named_dirs(a.models)
    models = {n: DSATokenizer.from_pretrained(d, vocoder=a.vocoder) for n, d in specs.items()}
    ev = load_evaluators(a.asr, a.speaker, tuple(m for m in a.mos.split(",") if m))
    kw = _decode_kw(a)  # the decode flags, as the codec commands pass them
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    rep = evaluate_ablation(models, a.corpus, ev, limit=a.limit, recomb_limit=a.recomb_limit, decode_kw=kw,
                            progress=not a.quiet, on_row=lambda r: _write(r, str(out / "partial.json"), echo=False))
    first = next(iter(models.values()))
    rep["settings"] = {"models": specs, "corpus": str(a.corpus), "steps": a.steps or first.decode_options.steps,
                       **_guidance(a, first.decode_options), "seed": a.seed,
                       "vocoder": {n: type(m.vocoder).__name__ for n, m in models.items()},
                       "evaluators": ev.names(), "limit": a.limit, "recomb_limit": a.recomb_limit}
    title = f"Ablations ({a.corpus}, steps {rep['settings']['steps']}, cfg {rep['settings']['cfg']})"
    _report(rep, out, markdown_table(rep["table"], title), t0, title)
    return 0


def _table(a: argparse.Namespace) -> int:
    from ..eval.tables import evaluate_recombination, evaluate_reconstruction, load_evaluators, markdown_table
    from ..tokenizer import DSATokenizer, default_model_dir

    t0 = time.perf_counter()
    model = DSATokenizer.from_pretrained(a.model, device=a.device, vocoder=a.vocoder)
    ev = load_evaluators(a.asr, a.speaker, tuple(m for m in a.mos.split(",") if m))
    kw = _decode_kw(a)  # the decode flags, as the codec commands pass them
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    fn = evaluate_reconstruction if a.kind == "recon" else evaluate_recombination
    split = a.split if a.kind == "recon" else "test"  # recombination pairs are the corpus's test pairs
    listed = getattr(a, "list", None)
    rep = fn(model, a.corpus, ev, limit=a.limit, decode_kw=kw, progress=not a.quiet, plot_dir=out,
             **({"split": split, "recordings": listed} if a.kind == "recon" else {}))
    if listed:
        split = "list"
    o = model.decode_options
    rep["settings"] = {"model": str(a.model or default_model_dir()), "fingerprint": model.fingerprint,
                       "corpus": str(listed or a.corpus), "split": split, "steps": a.steps or o.steps, **_guidance(a, o),
                       "solver": o.solver, "sway": o.sway, "seed": a.seed, "prior_only": bool(o.prior_only if a.prior_only is None else a.prior_only),
                       "refiner": model.refiner is not None and bool(o.refine if a.refine is None else a.refine),
                       "vocoder": type(model.vocoder).__name__,
                       "bitrate_bps": round(model.bitrate, 1), "evaluators": ev.names(), "limit": a.limit}
    title = "Reconstruction" if a.kind == "recon" else "Recombination"
    title = f"{title} ({listed or a.corpus} {split}, steps {rep['settings']['steps']}, cfg {rep['settings']['cfg']})"
    _report(rep, out, markdown_table(rep["table"], title), t0, title)
    return 0
