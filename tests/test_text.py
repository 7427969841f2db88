import pytest

from dsatok.data.text import load_sentences, normalize_sentence, split_sentences
from dsatok.judges.text import cer, normalize_text, wer


@pytest.mark.parametrize("raw,expected", [
    ("He said \"hello there\" to the old man.", "He said hello there to the old man."),
    ("It\u2019s a fine day for a long walk outside.", "It's a fine day for a long walk outside."),
    ("We met at 10 o'clock near the big station.", None),         # digits
    ("The IBM machine was running all night long.", None),        # acronym
    ("Mr. Smith went to the market on a Sunday.", None),          # abbreviation
    ("Too short here.", None),                                    # < 5 words
    ("no capital letter at the start of this one.", None),
    ("A sentence without a final stop at the end", None),
])
def test_normalize_sentence(raw, expected):
    assert normalize_sentence(raw) == expected


def test_split_sentences():
    assert split_sentences("One two three. Four five!  Six?") == ["One two three.", "Four five!", "Six?"]


def test_offline_text_source_has_5000_distinct_sentences():
    s = load_sentences()
    assert len(s) >= 5000
    assert len({x.lower() for x in s}) == len(s)
    assert all(5 <= len(x.split()) <= 25 for x in s)


def test_wer_normalisation_and_rates():
    assert normalize_text("Hello, World! It's OK.") == "hello world it's ok"
    assert wer(["the cat sat"], ["The cat, sat!"]) == 0.0
    assert wer(["the cat sat on"], ["the dog sat"]) == pytest.approx(0.5)
    assert cer(["abc"], ["abd"]) == pytest.approx(1 / 3)
    with pytest.raises(ValueError):
        wer(["a"], [])


def test_align_words_attributes_each_edit_once():
    from dsatok.judges.text import _edits, align_words

    cases = [("a b c d", "a x c d"), ("a b c", "a c"), ("a b", "a q b z"), ("", "x y"), ("a b c", ""),
             ("the cat sat on the mat", "the cat sit on mat mat now")]
    for r, h in cases:
        rw, hw = r.split(), h.split()
        ok, ins = align_words(rw, hw)
        assert len(ok) == len(rw)
        assert sum(not c for c in ok) + ins == _edits(rw, hw), (r, h)
    assert align_words("a b c d".split(), "a x c d".split()) == ([True, False, True, True], 0)
    assert align_words("a b".split(), "a q b z".split()) == ([True, True], 2)


def test_wer_by_vocabulary_splits_errors_that_add_up_to_wer():
    from dsatok.judges.text import wer, wer_by_vocabulary

    refs = ["Never trust an operating system.", "So many women"]
    hyps = ["never tust an operating sistum", "so meny women too"]
    vocab = {"never", "trust", "an", "so", "women"}
    r = wer_by_vocabulary(refs, hyps, vocab)
    # 8 reference words; out of vocabulary: operating, system, many
    assert r["oov_rate"] == 3 / 8
    assert r["wer_in_vocab"] == 1 / 5  # trust -> tust
    assert r["wer_oov"] == 2 / 3  # system -> sistum, many -> meny; operating right
    assert r["insertion_rate"] == 1 / 8  # too
    n_ref = 8
    total = r["wer_in_vocab"] * (1 - r["oov_rate"]) * n_ref + r["wer_oov"] * r["oov_rate"] * n_ref + r["insertion_rate"] * n_ref
    assert abs(total / n_ref - wer(refs, hyps)) < 1e-9
