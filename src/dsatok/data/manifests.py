"""lhotse manifests of a dsatok corpus: writing, loading and importing real corpora.

Every corpus (built or imported) has ``manifests/dsatok_recordings_<split>.jsonl.gz`` and
``manifests/dsatok_supervisions_<split>.jsonl.gz`` for ``split`` in train / dev / test, with
absolute audio paths and supervisions carrying ``text``, ``speaker``, ``gender`` and
``custom`` fields (``engine``, ``voice``, ``rate``, ``accent`` for synthetic speech).
"""

from __future__ import annotations

import csv
import random
import re
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..files import atomic_path, atomic_write_json

if TYPE_CHECKING:  # pragma: no cover
    from lhotse import CutSet

    from .corpus import Utterance
    from .voices import Voice

__all__ = ["write_split_manifests", "load_split", "load_cuts", "spread", "import_lhotse", "import_tsv", "CorpusError"]

SPLITS = ("train", "dev", "test")
PREFIX = "dsatok"


class CorpusError(ValueError):
    """A corpus or manifest problem; one line naming the file and the problem."""


def _paths(root: Path, split: str) -> tuple[Path, Path]:
    m = root / "manifests"
    return m / f"{PREFIX}_recordings_{split}.jsonl.gz", m / f"{PREFIX}_supervisions_{split}.jsonl.gz"


def _atomic_to_file(manifest: Any, path: Path) -> None:
    with atomic_path(path) as tmp:  # keeps .jsonl.gz: lhotse picks the format from it
        manifest.to_file(str(tmp))


def write_split_manifests(root: Path, utts: "list[Utterance]", voices: "dict[str, Voice]") -> dict[str, dict]:
    """Write recordings + supervisions for each split; returns per-split counts and hours."""
    import soundfile as sf
    from lhotse import AudioSource, Recording, SupervisionSegment

    per_split: dict[str, tuple[list, list]] = {s: ([], []) for s in SPLITS}
    for u in utts:
        path = (root / u.path).resolve()
        info = sf.info(str(path))
        dur = info.frames / info.samplerate
        v = voices[u.speaker]
        per_split[u.split][0].append(Recording(
            id=u.id, sources=[AudioSource(type="file", channels=[0], source=str(path))],
            sampling_rate=info.samplerate, num_samples=info.frames, duration=dur))
        per_split[u.split][1].append(SupervisionSegment(
            id=u.id, recording_id=u.id, start=0.0, duration=dur, channel=0,
            text=u.text, speaker=u.speaker, gender=v.gender, language="English",
            custom={"engine": v.engine, "voice": v.name, "rate": u.rate, "accent": v.accent,
                    "pitch": v.pitch, "shift_cents": v.shift_cents}))
    return _save_sets(root, per_split)


def load_split(root: str | Path, split: str):
    """``(RecordingSet, SupervisionSet)`` of ``split`` in corpus ``root``."""
    from lhotse import RecordingSet, SupervisionSet

    root = Path(root)
    if split not in SPLITS:
        raise CorpusError(f"{root}: unknown split {split!r} (choose from {', '.join(SPLITS)})")
    rp, sp = _paths(root, split)
    for p in (rp, sp):
        if not p.exists():
            raise CorpusError(f"{p}: manifest not found (is {root} a dsatok corpus?)")
    recs, sups = RecordingSet.from_file(str(rp)), SupervisionSet.from_file(str(sp))
    return (recs.to_eager() if recs.is_lazy else recs), (sups.to_eager() if sups.is_lazy else sups)


def load_cuts(root: str | Path, split: str) -> "CutSet":
    """lhotse ``CutSet`` of ``split`` (one cut per supervision, trimmed to it)."""
    from lhotse import CutSet

    recs, sups = load_split(root, split)
    cuts = CutSet.from_manifests(recordings=recs, supervisions=sups)
    return cuts.trim_to_supervisions(keep_overlapping=False).to_eager()


def spread(items: list, n: int) -> list:
    """``n`` of ``items`` spread evenly over the list (item ``int(i * len / n)``), all of them when
    ``n`` is 0 or at least their number: a test subset that covers every voice of a split."""
    if not n or n >= len(items):
        return list(items)
    return [items[int(i * len(items) / n)] for i in range(n)]


def _split_of(part: str) -> str | None:
    p = part.lower()
    if "train" in p:
        return "train"
    if "dev" in p or "valid" in p or "val" == p:
        return "dev"
    if "test" in p or "eval" in p:
        return "test"
    return None


def _speaker_split(speakers: list[str], seed: int, test_frac: float, dev_frac: float) -> dict[str, str]:
    spk = sorted(set(speakers))
    if len(spk) < 3:
        raise CorpusError(f"need at least 3 speakers for speaker-disjoint splits, found {len(spk)}")
    random.Random(f"import-{seed}").shuffle(spk)
    n_test = max(1, round(len(spk) * test_frac))
    n_dev = max(1, round(len(spk) * dev_frac))
    out = {s: "test" for s in spk[:n_test]}
    out.update({s: "dev" for s in spk[n_test : n_test + n_dev]})
    out.update({s: "train" for s in spk[n_test + n_dev :]})
    return out


def _write_meta(out: Path, builder: str, source: str, counts: dict, extra: dict | None = None) -> dict:
    meta = {"format_version": 1, "builder": builder, "source": source, "counts": counts, **(extra or {})}
    atomic_write_json(out / "corpus.json", meta)
    return meta


def _save_sets(out: Path, per_split: dict[str, tuple[list, list]]) -> dict[str, dict]:
    from lhotse import RecordingSet, SupervisionSet

    counts = {}
    for split in SPLITS:
        recs, sups = per_split.get(split, ([], []))
        rp, sp = _paths(out, split)
        _atomic_to_file(RecordingSet.from_recordings(recs), rp)
        _atomic_to_file(SupervisionSet.from_segments(sups), sp)
        counts[split] = {"utterances": len(sups), "speakers": len({s.speaker for s in sups}),
                         "hours": round(sum(s.duration for s in sups) / 3600, 4)}
    return counts


def _check_disjoint(per_split: dict[str, tuple[list, list]], source: str) -> None:
    spk = {s: {x.speaker for x in per_split.get(s, ([], []))[1]} for s in SPLITS}
    for a, b in (("train", "test"), ("dev", "test"), ("train", "dev")):
        both = spk[a] & spk[b]
        if both:
            raise CorpusError(f"{source}: speakers {sorted(both)[:3]} occur in both {a} and {b}; "
                              f"splits must be speaker-disjoint")


def import_lhotse(src: str | Path, out: str | Path, *, seed: int = 0, test_frac: float = 0.1,
                  dev_frac: float = 0.05) -> dict:
    """Import a lhotse manifest directory (e.g. the LibriSpeech / LibriTTS recipes' output).

    Parts are matched by name (``<prefix>_recordings_<part>`` with ``<prefix>_supervisions_<part>``)
    and mapped to train / dev / test by their names; when no dev or test part exists, all parts
    are pooled and split by speaker with the seed.
    """
    from lhotse import RecordingSet, SupervisionSet

    src, out = Path(src), Path(out)
    if not src.is_dir():
        raise CorpusError(f"{src}: not a directory of lhotse manifests")
    parts: dict[str, dict[str, Path]] = defaultdict(dict)
    for p in sorted(src.iterdir()):
        m = re.match(r"^(.*?)_(recordings|supervisions)_(.+?)\.jsonl(\.gz)?$", p.name)
        if m:
            parts[m.group(3)][m.group(2)] = p
    pairs = {k: v for k, v in parts.items() if "recordings" in v and "supervisions" in v}
    if not pairs:
        raise CorpusError(f"{src}: no <prefix>_recordings_<part>.jsonl.gz with matching supervisions found")
    loaded = {}
    for part, files in sorted(pairs.items()):
        try:
            recs = RecordingSet.from_file(str(files["recordings"]))
            sups = SupervisionSet.from_file(str(files["supervisions"]))
        except Exception as e:
            raise CorpusError(f"{files['recordings']}: unreadable manifest ({type(e).__name__}: {e})") from None
        bad = [s.id for s in sups if not (s.text or "").strip() or not s.speaker]
        if bad:
            raise CorpusError(f"{files['supervisions']}: supervision {bad[0]} has no text or speaker")
        loaded[part] = (list(recs), list(sups))
    per_split: dict[str, tuple[list, list]] = {s: ([], []) for s in SPLITS}
    mapped = {part: _split_of(part) for part in loaded}
    if {"train", "test"} <= set(mapped.values()) and "dev" in mapped.values():
        for part, (recs, sups) in loaded.items():
            split = mapped[part]
            if split is None:
                continue
            per_split[split][0].extend(recs)
            per_split[split][1].extend(sups)
    else:
        recs = [r for rs, _ in loaded.values() for r in rs]
        sups = [s for _, ss in loaded.values() for s in ss]
        assign = _speaker_split([s.speaker for s in sups], seed, test_frac, dev_frac)
        rec_by_id = {r.id: r for r in recs}
        for s in sups:
            split = assign[s.speaker]
            per_split[split][1].append(s)
        for split in SPLITS:
            ids = {s.recording_id for s in per_split[split][1]}
            per_split[split][0].extend(rec_by_id[i] for i in sorted(ids) if i in rec_by_id)
    _check_disjoint(per_split, str(src))
    counts = _save_sets(out, per_split)
    return _write_meta(out, "dsatok corpus import (lhotse)", str(src.resolve()), counts,
                       {"parts": {p: mapped[p] for p in loaded}})


def import_tsv(tsv: str | Path, out: str | Path, *, seed: int = 0, test_frac: float = 0.1,
               dev_frac: float = 0.05, log=print) -> dict:
    """Import ``path<TAB>text<TAB>speaker[<TAB>gender]`` lines (relative paths: to the TSV's folder).

    Unreadable or missing audio files are reported and skipped; splits are by speaker.
    """
    import soundfile as sf
    from lhotse import AudioSource, Recording, SupervisionSegment

    tsv, out = Path(tsv), Path(out)
    if not tsv.is_file():
        raise CorpusError(f"{tsv}: TSV file not found")
    rows = []
    with tsv.open(newline="", encoding="utf-8") as f:
        for i, row in enumerate(csv.reader(f, delimiter="\t"), 1):
            if not row or (i == 1 and row[0].strip().lower() == "path"):
                continue
            if len(row) < 3 or not row[1].strip() or not row[2].strip():
                raise CorpusError(f"{tsv}:{i}: expected path<TAB>text<TAB>speaker, got {len(row)} field(s)")
            rows.append((i, row))
    if not rows:
        raise CorpusError(f"{tsv}: no rows")
    items = []
    skipped = 0
    for i, row in rows:
        p = Path(row[0])
        p = p if p.is_absolute() else (tsv.parent / p)
        try:
            info = sf.info(str(p))
            if info.frames <= 0:
                raise ValueError("empty audio")
        except Exception as e:
            log(f"skipped: {p}: unreadable audio ({str(e).splitlines()[0] if str(e) else type(e).__name__})")
            skipped += 1
            continue
        items.append((i, p.resolve(), row, info))
    assign = _speaker_split([r[2].strip() for _, _, r, _ in items], seed, test_frac, dev_frac)
    per_split: dict[str, tuple[list, list]] = {s: ([], []) for s in SPLITS}
    for i, p, row, info in items:
        rid = f"{row[2].strip()}-{i:07d}"
        dur = info.frames / info.samplerate
        rec = Recording(id=rid, sources=[AudioSource(type="file", channels=list(range(info.channels)), source=str(p))],
                        sampling_rate=info.samplerate, num_samples=info.frames, duration=dur)
        gender = row[3].strip().upper()[:1] if len(row) > 3 and row[3].strip() else None
        sup = SupervisionSegment(id=rid, recording_id=rid, start=0.0, duration=dur, channel=0,
                                 text=row[1].strip(), speaker=row[2].strip(), gender=gender, language="English")
        split = assign[sup.speaker]
        per_split[split][0].append(rec)
        per_split[split][1].append(sup)
    counts = _save_sets(out, per_split)
    return _write_meta(out, "dsatok corpus import (tsv)", str(tsv.resolve()), counts, {"skipped": skipped})
