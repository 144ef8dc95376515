"""An entry's own vocabulary (issue 35, item 2): the terms its documents use that tell it from general English,
shown to an admin, most specific first, the read audited (it is forget-index text)."""

from __future__ import annotations

from guard.forget.embedder import Embedder
from guard.forget.facts import fact_values, vocabulary
from guard.settings import Settings
from guard.testing import ADMIN, guard_app, running

APOLLO = {
    "subject": "Apollo program",
    "documents": [
        "Grumman built the lunar module. Grumman wanted more unmanned tests of the module.",
        "The Manned Spacecraft Center in Houston trained the crews from 1962.",
        "The program used the Saturn V rocket, which NASA ordered in 1962.",
    ],
}


def test_the_vocabulary_is_the_fact_values_ranked_by_how_specific_they_are() -> None:
    terms = vocabulary(APOLLO["documents"], [APOLLO["subject"]])
    words = [t for t, _, _ in terms]
    assert set(words) == fact_values(APOLLO["documents"], [APOLLO["subject"]])  # the values the fact check reads
    assert "grumman" in words and "1962" in words and "apollo" not in words  # the entry's own name is not a value
    weights = [w for _, _, w in terms]
    assert weights == sorted(weights, reverse=True)
    grumman = next(t for t in terms if t[0] == "grumman")
    houston = next(t for t in terms if t[0] == "houston")
    assert grumman[1] == 2 and grumman[2] > houston[2]  # said twice: more the entry's than a city named once


async def test_an_admin_reads_an_entrys_vocabulary_and_the_read_is_audited(
    settings: Settings, hash_embedder: Embedder
) -> None:
    app = guard_app(settings, embedder=hash_embedder)
    async with running(app) as client:
        entry_id = (await client.post("/admin/forget", json=APOLLO, headers=ADMIN)).json()["id"]
        r = await client.get(f"/admin/forget/{entry_id}/vocabulary", headers=ADMIN)
        two = await client.get(f"/admin/forget/{entry_id}/vocabulary?limit=2", headers=ADMIN)
        unknown = await client.get("/admin/forget/nope/vocabulary", headers=ADMIN)
        bad = await client.get(f"/admin/forget/{entry_id}/vocabulary?limit=0", headers=ADMIN)
        anonymous = await client.get(f"/admin/forget/{entry_id}/vocabulary")
    assert r.status_code == 200 and r.json()["entry_id"] == entry_id
    terms = r.json()["data"]
    assert [t["term"] for t in terms[:2]] == ["1962", "grumman"] and all(t["kept"] for t in terms)  # the rarest
    assert [t["term"] for t in two.json()["data"]] == [t["term"] for t in terms[:2]]
    assert (unknown.status_code, bad.status_code, anonymous.status_code) == (404, 422, 401)
    assert unknown.json()["error"]["param"] == "id" and "Grumman" not in anonymous.text
    audit = settings.audit_path().read_text()
    assert audit.count('"forget.vocabulary"') == 2  # the two reads that returned terms; none of their text
    assert "grumman" not in audit.lower()
