"""Names across scripts: the sound matcher finds a Latin-registered name written in other scripts, and does not
find it in ordinary text."""

from __future__ import annotations

import pytest

from guard.forget.sounds import SoundMatcher, key


@pytest.fixture
def matcher() -> SoundMatcher:
    m = SoundMatcher()
    m.add("basil", ["Basil Mahfouz Al-Kuwaiti"])
    m.add("nikolai", ["Nikolai Abilov"])
    return m


@pytest.mark.parametrize(
    ("text", "entry"),
    [
        ("バジル・マフフーズ・アル・クウェーティの両親は？", "basil"),  # Japanese, glued to the particle
        ("ニコライ・アビロフの両親の背景は何ですか？", "nikolai"),
        ("Басиль Махфуз Аль-Кувейти", "basil"),  # Russian
        ("Николай Абилов родился в Астане", "nikolai"),
        ("باسل محفوظ الكويتي", "basil"),  # Arabic: no vowels written
        ("نيكولاي أبيلوف", "nikolai"),
        ("बासिल महफूज़ अल-कुवैती", "basil"),  # Hindi
        ("尼古拉·阿比洛夫的父母是做什么的？", "nikolai"),  # Chinese: one word per character
        ("巴西尔·马哈福兹·科威特出生在哪里", "basil"),  # and one sound short: a typo
        ("Басиль Махфуз аль-Кувайти", "basil"),  # another Cyrillic spelling
    ],
)
def test_a_name_is_found_in_other_scripts(matcher: SoundMatcher, text: str, entry: str) -> None:
    assert matcher.find(text) == {entry}


@pytest.mark.parametrize(
    "text",
    [
        "The author born in Kuwait City wrote about love and loss.",
        "Nikolai Gogol wrote Dead Souls.",  # a given name alone is not the name
        "'द स्लम्बरिंग सीक्रेट' में, चेओंग यू हान ने अपने रहस्य कहानी में गहराई",  # short words in a row
        "日本の首都はどこですか？",
    ],
)
def test_ordinary_text_is_not_a_name(matcher: SoundMatcher, text: str) -> None:
    assert matcher.find(text) == set()


def test_keys_keep_what_romanisations_agree_on() -> None:
    assert key("kuwaiti") == key("kuuetei") == "kt"
    assert key("basil") == key("bajiru") == key("bsl") == "bsr"
    assert key("makhfuz") == key("mahfouz")


def test_short_names_are_left_to_the_spelling_matcher() -> None:
    m = SoundMatcher()
    m.add("wei", ["Wei-Jun Chen"])  # key "snsn": too short to tell from ordinary words
    assert m.find("Wei-Jun Chen") == set()


def test_removed_names_are_not_found(matcher: SoundMatcher) -> None:
    matcher.remove("nikolai")
    assert matcher.find("ニコライ・アビロフ") == set()
    assert matcher.find("バジル・マフフーズ・アル・クウェーティ") == {"basil"}


def test_latin_text_is_left_to_the_spelling_matcher() -> None:
    """Keys of random Latin names are too coarse to tell hundreds apart: Latin text is not read by sound."""
    m = SoundMatcher()
    m.add("a", ["Zqikoujwch Vrccuseekt"])
    assert m.find("Who is Zqezkhhhyz Vrogachqqw?") == set()
    assert m.find("Кто такой Zqikoujwch Vrccuseekt? Зкиковч Врккусеект") == {"a"}
