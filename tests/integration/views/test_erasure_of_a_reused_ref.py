"""An issuer may give an erased customer's ref to someone else (or to the same person coming back),
and that member has the same right to erasure. Each erased row keeps a pseudonym of its own: the
first erasure under a ref gets ``pseudonym(ref)``, the next ones the next generations of it. Before,
the second erasure under a ref chose the pseudonym the first row already held and answered 500 on
SQLite and PostgreSQL: a member given a reused ref could never be erased."""

from __future__ import annotations

from sqlalchemy import Engine, select

from prevenance.common.auth import ApiKey, create_key
from prevenance.common.clock import FrozenClock
from prevenance.db import read_session, unit_of_work
from tests.conftest import Api, member_body


def test_each_member_given_a_reused_ref_can_be_erased_in_turn(
    api: Api, engine: Engine, clock: FrozenClock
) -> None:
    aliases = []
    for turn, name in enumerate(("Camille Martin", "Nouveau Client", "Troisieme Client")):
        email = f"client{turn}@example.fr"
        assert api.put("/v1/members/P1", member_body(name=name, email=email)).status_code == 201
        with unit_of_work(engine) as session:
            create_key(session, role="member", name=f"phone of {name}", member_ref="P1", now=clock.now())
        erased = api.post("/v1/members/P1/erase", {})
        assert erased.status_code == 200, erased.text
        aliases.append(erased.json()["member_ref"])
        again = api.post("/v1/members/P1/erase", {})  # a repeated request answers the latest erasure
        assert (again.status_code, again.json()["member_ref"]) == (200, aliases[-1])
    assert len(set(aliases)) == 3 and all(alias.startswith("erased-") for alias in aliases)
    for alias in aliases:
        record = api.get(f"/v1/members/{alias}").json()
        assert "Client" not in record["name"] and "Camille" not in record["name"]
    assert api.get("/v1/members/P1").status_code == 404
    with read_session(engine) as session:
        bound = session.execute(select(ApiKey.member_ref, ApiKey.revoked_at)).all()
    assert sorted(ref for ref, _ in bound if ref and ref.startswith("erased-")) == sorted(aliases)
    assert all(revoked is not None for ref, revoked in bound if ref in aliases)
