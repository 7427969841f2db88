import pytest

from dsatok.data.text import load_sentences, normalize_sentence, split_sentences
from dsatok.eval.text import cer, normalize_text, wer


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
