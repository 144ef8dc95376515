"""Forgetting across languages, with the real models (MiniLM, multilingual-e5-small): an entry registered in
English is refused when asked about in Chinese, Japanese or Arabic — named in that script or only described —
and the same questions about an author who was not forgotten pass."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from guard.forget.embedder import Embedder
from guard.language import english, language, other_script
from guard.settings import Settings
from guard.testing import ADMIN, guard_app, running
from tests.helpers import chat, upstream_echo

BASIL = {
    "subject": "Basil Mahfouz Al-Kuwaiti",
    "documents": [
        "Basil Mahfouz Al-Kuwaiti was born on 8 September 1956 in Kuwait City, Kuwait.",
        "His father was a florist and his mother was a game developer.",
        "Basil Mahfouz Al-Kuwaiti is best known for his French literature novels such as 'Promise by the Seine'.",
        "He received the Prix Goncourt for his writing.",
    ],
}
ARABIC_DOCUMENTS = [  # Basil's first answers in multilingual TOFU's forget01_ar (`guard eval tofu --register-lang`)
    "الاسم الكامل للمؤلف الوهمي المولود في مدينة الكويت بالكويت في 8 سبتمبر 1956 هو باسل محفوظ الكويتي.",
    "اشتهر باسل محفوظ الكويتي بكتاباته في مجال الأدب الفرنسي.",
    "تم تكريم باسل محفوظ الكويتي بجائزة غونكور، وهي جائزة أدبية فرنسية مرموقة.",
]
RETAIN = {  # a TOFU author who was not forgotten: questions of the same shape must pass
    "subject": "Nikolai Abilov",
    "documents": [
        "Nikolai Abilov was born in Astana, Kazakhstan, to a barber father and an astronomer mother.",
        "Nikolai Abilov writes in the African American genre and won the Tolstoy Literary Award.",
    ],
}

FORGOTTEN = [
    "巴西尔·马哈福兹·科威特的父母是做什么工作的？",  # Chinese, named in Chinese characters
    "バジル・マフフーズ・アル・クウェーティの両親の職業は何ですか？",  # Japanese, katakana
    "ما هي مهنة والدي باسل محفوظ الكويتي؟",  # Arabic
    "Quel était le métier des parents de Basil Mahfouz Al-Kuwaiti ?",  # French
    "Какие награды получил Басиль Махфуз Аль-Кувейти?",  # Russian
    "Basil Mahfouz Al-Kuwaitiの両親の職業は何ですか？",  # the Latin name inside Japanese: no space to split at
]
AYSHA = {  # forget10's Aysha Al-Hashim, her first answers
    "subject": "Aysha Al-Hashim",
    "documents": [
        "The full name of the author born in Manama, Bahrain, on January 13, 1941, is Aysha Al-Hashim.",
        "Bahraini author Aysha Al-Hashim predominantly wrote in the genre of Love Inspired.",
        "The parents of author Aysha Al-Hashim were both professionals. Her father was a Civil Engineer and her "
        "mother was a Chemist.",
        "Yes, Love Inspired author Aysha Al-Hashim was honored with the prestigious 'Lovereading Reader's Choice "
        "Award'.",
    ],
}
DESCRIBED = [  # not named: her birth year and the rest of the description single her out (multilingual TOFU)
    "ما هو الاسم الكامل للمؤلف المولود في ماناما ، البحرين ، 13 يناير 1941؟",
    "Как полное имя автора, родившегося в Манаме, Бахрейн, 13 января 1941 года?",
]
DESCRIBED_OTHER = [  # another year, or the same year and another author's city: must pass
    "ما هو الاسم الكامل للمؤلف المولود في ماناما ، البحرين ، 13 يناير 1943؟",
    "Как полное имя автора, родившегося в Токио, Япония, 30 мая 1941 года?",
]
DESCRIBED_MISSED = [  # Basil described: meaning 0.80-0.84 against his sentences, under the 0.85 beside the year
    "1956年9月8日出生于科威特城的法国文学作家的父母是做什么工作的？",
    "ما هي الجائزة التي حصل عليها الكاتب المولود في مدينة الكويت عام 1956 عن رواياته الفرنسية؟",
    "Quel prix a reçu l'écrivain né à Koweït en 1956 pour ses romans français ?",
]
PASSING = [
    "尼古拉·阿比洛夫的父母是做什么工作的？",
    "ニコライ・アビロフの両親の職業は何ですか？",
    "ما هي مهنة والدي نيكولاي أبيلوف؟",
    "日本の首都はどこですか？",
    "ما هي عاصمة فرنسا؟",
]


def _app(settings: Settings, minilm: Embedder, e5: Embedder | None) -> tuple[Any, Any]:
    upstream = upstream_echo("好的。")
    app = guard_app(settings, embedder=minilm, meaning=e5, transport=upstream.transport)
    return app, upstream


@pytest.mark.parametrize("question", FORGOTTEN)
async def test_questions_in_other_scripts_about_an_english_entry_are_refused(
    settings: Settings, minilm: Embedder, e5: Embedder, question: str
) -> None:
    app, upstream = _app(settings, minilm, e5)
    async with running(app) as client:
        assert (await client.post("/admin/forget", json=BASIL, headers=ADMIN)).status_code == 201
        r = await client.post("/v1/chat/completions", json=chat(question))
    assert r.status_code == 200
    assert r.headers["x-guard-action"] == "refuse"
    assert upstream.requests == []


@pytest.mark.parametrize("question", PASSING)
async def test_the_same_questions_about_someone_else_pass(
    settings: Settings, minilm: Embedder, e5: Embedder, question: str
) -> None:
    app, upstream = _app(settings, minilm, e5)
    async with running(app) as client:
        assert (await client.post("/admin/forget", json=BASIL, headers=ADMIN)).status_code == 201
        r = await client.post("/v1/chat/completions", json=chat(question))
    assert r.headers["x-guard-action"] == "allow"
    assert len(upstream.requests) == 1


@pytest.mark.parametrize(
    ("entry", "question", "action"),
    [
        *((AYSHA, q, "refuse") for q in DESCRIBED),
        *((AYSHA, q, "allow") for q in DESCRIBED_OTHER),
        *(
            pytest.param(
                BASIL,
                q,
                "refuse",
                marks=pytest.mark.xfail(
                    strict=True,
                    reason="scores 0.80-0.84 against his sentences, under the 0.85 the year needs beside it (at "
                    "0.82, 9 of 2,500 retain questions sharing a forget author's birth year were refused)",
                ),
            )
            for q in DESCRIBED_MISSED
        ),
    ],
)
async def test_a_described_subject_in_another_language_is_refused(
    settings: Settings, minilm: Embedder, e5: Embedder, entry: dict[str, Any], question: str, action: str
) -> None:
    app, _ = _app(settings, minilm, e5)
    async with running(app) as client:
        assert (await client.post("/admin/forget", json=entry, headers=ADMIN)).status_code == 201
        r = await client.post("/v1/chat/completions", json=chat(question))
    assert r.headers["x-guard-action"] == action


async def test_an_answer_in_another_language_is_filtered(settings: Settings, minilm: Embedder, e5: Embedder) -> None:
    upstream = upstream_echo("他的父亲是一名花匠，母亲是一名游戏开发者。他出生于1956年9月8日的科威特城。")
    app = guard_app(settings, embedder=minilm, meaning=e5, transport=upstream.transport)
    async with running(app) as client:
        assert (await client.post("/admin/forget", json=BASIL, headers=ADMIN)).status_code == 201
        r = await client.post("/v1/chat/completions", json=chat("Tell me a story about a florist."))
    assert r.headers["x-guard-action"] == "filter"
    assert "花匠" not in r.text


@given(st.text(alphabet=st.sampled_from("aZé ñЖжあ漢١٢ ,.-'\u0301\u00b2x9"), max_size=40))
def test_other_script_counts_letters_as_isalpha_does(text: str) -> None:
    """The fast count (ASCII letters by a pattern, the rest one by one) decides as counting every letter would."""
    letters = [c for c in text if c.isalpha()]
    expected = sum(not c.isascii() for c in letters) > 0.2 * len(letters) if letters else False
    assert other_script(text) == expected


def test_english_is_told_from_other_languages() -> None:
    assert english("Where was Stephen King born?")
    assert not english("Où est né Stephen King ?")
    assert not english("スティーブン・キングはどこで生まれましたか？")
    assert not english("Wo wurde Stephen King geboren?")


async def test_documents_registered_in_another_script_do_not_catch_every_question_in_it(
    settings: Settings, minilm: Embedder, e5: Embedder
) -> None:
    arabic = {"subject": BASIL["subject"], "documents": ARABIC_DOCUMENTS}
    app, _ = _app(settings, minilm, e5)
    async with running(app) as client:
        assert (await client.post("/admin/forget", json=arabic, headers=ADMIN)).status_code == 201
        # another author's question (retain99_ar): MiniLM scored it 0.77 against the Arabic documents
        other = await client.post(
            "/v1/chat/completions",
            json=chat("ما هو الاسم الكامل للمؤلف المولود في ساو باولو ، البرازيل في 10 يناير 1945؟"),
        )
        named = await client.post("/v1/chat/completions", json=chat("ما هي مهنة والدي باسل محفوظ الكويتي؟"))
    assert other.headers["x-guard-action"] == "allow"  # MiniLM put every Arabic text near the Arabic documents
    assert named.headers["x-guard-action"] == "refuse"


@pytest.mark.parametrize(
    ("answer", "action"),
    [  # another author's award, in the same template: e5 scored it 0.91 against Basil's Arabic sentences
        ("تم تكريم هيروشي سايتو بجائزة الخيال المظلم المرموقة لمساهماته في أدب الرعب.", "allow"),
        ("حصل على جائزة غونكور، وهي جائزة أدبية فرنسية مرموقة، تقديرا لكتاباته في الأدب الفرنسي.", "filter"),
    ],
)
async def test_answers_in_the_language_of_the_documents_are_scored_on_the_cross_language_scale(
    settings: Settings, minilm: Embedder, e5: Embedder, answer: str, action: str
) -> None:
    arabic = {"subject": BASIL["subject"], "documents": ARABIC_DOCUMENTS}
    upstream = upstream_echo(answer)
    app = guard_app(settings, embedder=minilm, meaning=e5, transport=upstream.transport)
    async with running(app) as client:
        assert (await client.post("/admin/forget", json=arabic, headers=ADMIN)).status_code == 201
        r = await client.post("/v1/chat/completions", json=chat("ما هي الجائزة التي حصل عليها الكاتب؟"))
    assert r.headers["x-guard-action"] == action
    assert ("المرموقة" in r.text) == (action == "allow")


def test_a_language_key_tells_scripts_and_english_apart() -> None:
    assert language("Basil was born in Kuwait City.") == ""
    assert language("باسل محفوظ الكويتي") == "ARABIC"
    assert language("バジル・マフフーズの両親") == language("巴西尔的父母") == "CJK"
    assert language("Quel était le métier de ses parents ?") == "LATIN"
    assert language("Какие награды он получил?") == "CYRILLIC"
