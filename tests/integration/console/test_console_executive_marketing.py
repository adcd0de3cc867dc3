"""The executive and marketing screens on SQLite and PostgreSQL: countries raw and calibrated with
their intervals, the quarterly report download, offers with their ROI or its refusal, benefit usage,
the catalogue form and the FX rate form (administrators only)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import Engine, select

from prevenance.common.clock import FrozenClock
from prevenance.customers import service as customers
from prevenance.db import read_session, unit_of_work
from prevenance.loyalty import programme
from prevenance.loyalty import service as loyalty
from prevenance.loyalty.tables import ProgrammeVersion
from prevenance.offers.tables import Offer, OfferDecision
from prevenance.voice import service as voice
from tests.conftest import Api
from tests.integration.console.support import (
    browser,
    csrf_of,
    error_near,
    make_user,
    sign_in,
)
from tests.integration.console.test_console_voice_security import answers

QUARTER = "2025Q4"


def test_the_executive_page_compares_countries_with_their_intervals(
    world: Api, engine: Engine, clock: FrozenClock
) -> None:
    answers(engine, clock)
    client = browser(world)
    sign_in(client, "sup1")
    page = client.get(f"/console/executive?quarter={QUARTER}")
    assert page.status_code == 200
    with read_session(engine) as session:
        expected = voice.country_comparison(session, quarter=QUARTER)
    table = page.text[page.text.index('data-testid="countries"') :]
    assert expected["countries"]
    for c in expected["countries"]:
        row = table[table.index(f'<th scope="row">{c["country"]}</th>') :].split("</tr>")[0]
        assert f">{c['n']}<" in row
        assert f"{c['raw']['value']:.1f}" in row and f"{c['raw']['ci_high']:.1f}" in row
        assert f"{c['calibrated']['value']:.1f}" in row
    for name in ("countries_rtf", "countries_excellence", "trend_rtf", "trend_excellence"):
        assert f'id="spec-{name}"' in page.text and f'data-spec="spec-{name}"' in page.text
    assert client.get("/console/executive?quarter=2025Q9").status_code == 200  # falls back to now's quarter


def test_the_quarterly_report_downloads_as_one_html_file(
    world: Api, engine: Engine, clock: FrozenClock
) -> None:
    answers(engine, clock)
    client = browser(world)
    sign_in(client, "mkt1")
    report = client.get(f"/console/executive/report.html?quarter={QUARTER}&lang=en")
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/html")
    assert (
        "attachment" in report.headers["content-disposition"]
        and QUARTER in report.headers["content-disposition"]
    )
    assert "<html" in report.text.lower() and QUARTER in report.text
    assert not re.search(r'<script[^>]+src="http', report.text)  # self-contained
    assert client.get("/console/executive/report.html?quarter=nope").status_code == 422


def test_the_report_and_page_of_every_quarter_of_the_window_and_only_those(world: Api) -> None:
    """The report's trends read the quarters before the one asked for: for 2000's quarters they
    reached 1999, which the desk's figures refuse, and the download of an accepted quarter was a
    422. The history starts with the window; a quarter outside it is still refused, never a 500."""
    client = browser(world)
    sign_in(client, "mkt1")
    for quarter in ("2000Q1", "2000Q3", "2099Q4"):
        report = client.get(f"/console/executive/report.html?quarter={quarter}&lang=en")
        assert report.status_code == 200, (quarter, report.status_code)
        assert quarter in report.text
        assert client.get(f"/console/executive?quarter={quarter}").status_code == 200
    for quarter in ("1999Q4", "0001Q1", "9999Q4", "2026Q5"):
        assert client.get(f"/console/executive/report.html?quarter={quarter}").status_code == 422


def test_agents_cannot_open_the_executive_or_marketing_pages(world: Api) -> None:
    client = browser(world)
    sign_in(client, "agent1")
    assert client.get("/console/executive").status_code == 403
    assert client.get("/console/marketing").status_code == 403


# --- marketing ------------------------------------------------------------------------------------


def _offer(offer_id: str, at: datetime) -> Offer:
    return Offer(
        id=offer_id,
        partner_merchant="Maison Laurent",
        partner_category="dining",
        reward_kind="bonus_points",
        reward={"points": 500},
        eligibility={},
        cap_per_member=1,
        budget_points=None,
        spent_points=0,
        unit_cost_eur="3.50",
        margin_rate="0.30",
        expected_spend_eur="100",
        holdout_share="0.30",
        decision_days=30,
        valid_from=at,
        valid_until=at + timedelta(days=60),
        title_fr="Dîner offert",
        title_en="Dinner on us",
        text_fr="500 points",
        text_en="500 points",
        status="active",
        fingerprint="f" * 64,
        created_at=at,
        updated_at=at,
    )


def test_an_offer_whose_groups_are_too_small_shows_the_refusal_not_a_number(
    world: Api, engine: Engine, clock: FrozenClock
) -> None:
    at = clock.now() - timedelta(days=40)
    with unit_of_work(engine) as session:
        session.add(_offer("OF-SMALL", at))
        session.flush()
        for n, ref in enumerate(("M1", "M2")):
            member = customers.get_member(session, ref=ref)
            session.add(
                OfferDecision(
                    id=f"D{n}",
                    offer_id="OF-SMALL",
                    member_id=member.id,
                    transaction_id=f"trigger-{n}",
                    arm=("treatment", "control")[n],
                    decided_at=at,
                    expires_at=at + timedelta(days=30),
                    propensity=0.2,
                    expected_value=1.0,
                    model_version=None,
                    status=("made", "would_have_received")[n],
                    rewarded_at=None,
                    reward_points=None,
                )
            )
    client = browser(world)
    sign_in(client, "mkt1")
    page = client.get("/console/marketing")
    assert page.status_code == 200
    cell = page.text[page.text.index('data-testid="roi-OF-SMALL"') :].split("</td>")[0]
    assert "Pas encore mesurable" in cell and "trop peu de membres" in cell
    assert "Dîner offert" in page.text


def test_an_offer_with_enough_members_shows_its_roi_and_interval(
    world: Api, engine: Engine, clock: FrozenClock
) -> None:
    """Forty members per arm, the treated spending 20 € more after the decision: the page shows the
    ROI the offers domain computes, with its interval."""
    from prevenance.offers.roi import service as roi_service

    at = datetime(2025, 11, 1, tzinfo=UTC)
    with unit_of_work(engine) as session:
        session.add(_offer("OF-BIG", at))
        session.flush()
        for n in range(80):
            ref = f"R{n:03d}"
            customers.upsert(
                session,
                ref=ref,
                data=customers.MemberData(f"Membre {n}", f"m{n}@example.fr", "fr", "FR", "gold"),
                now=at - timedelta(days=200),
            )
            arm = "treatment" if n % 2 else "control"
            for k, (when, amount) in enumerate(
                [
                    (at - timedelta(days=10), Decimal(50 + n % 7)),
                    (at + timedelta(days=10), Decimal(50 + n % 7 + (20 if arm == "treatment" else 0))),
                ]
            ):
                loyalty.record_transaction(
                    session,
                    tx=loyalty.TransactionInput(
                        id=f"TX{n}-{k}",
                        member_ref=ref,
                        amount=str(amount),
                        currency="EUR",
                        merchant="Maison Laurent",
                        category="dining",
                        occurred_at=when,
                    ),
                    now=when,
                )
            member = customers.get_member(session, ref=ref)
            session.add(
                OfferDecision(
                    id=f"B{n}",
                    offer_id="OF-BIG",
                    member_id=member.id,
                    transaction_id=f"trig-{n}",
                    arm=arm,
                    decided_at=at,
                    expires_at=at + timedelta(days=30),
                    propensity=0.2,
                    expected_value=1.0,
                    model_version=None,
                    status="rewarded" if arm == "treatment" else "would_have_received",
                    rewarded_at=at + timedelta(days=3) if arm == "treatment" else None,
                    reward_points=500 if arm == "treatment" else None,
                )
            )
    with read_session(engine) as session:
        report = roi_service.roi_report(session, offer_id="OF-BIG", now=clock.now())
    client = browser(world)
    sign_in(client, "mkt1")
    page = client.get("/console/marketing")
    cell = page.text[page.text.index('data-testid="roi-OF-BIG"') :].split("</td>")[0]
    assert report["roi"]["value"] is not None
    assert f"{report['roi']['value'] * 100:.1f} %" in cell
    assert (
        f"{report['roi']['ci_low'] * 100:.1f} %" in cell and f"{report['roi']['ci_high'] * 100:.1f} %" in cell
    )


def test_marketing_creates_then_replaces_a_catalogue_item_and_bad_input_writes_nothing(
    world: Api, engine: Engine
) -> None:
    client = browser(world)
    sign_in(client, "mkt1")
    page = client.get("/console/marketing")
    form = {
        "csrf": csrf_of(page.text),
        "sku": "SCARF",
        "name": "Carré de soie",
        "points": "1200",
        "stock": "7",
    }
    assert client.post("/console/marketing/catalogue", data=form).status_code == 303
    assert client.post("/console/marketing/catalogue", data={**form, "stock": "9"}).status_code == 303
    with read_session(engine) as session:
        item = loyalty.find_catalogue_item(session, sku="SCARF")
        assert item is not None and (item.name, item.points, item.stock) == ("Carré de soie", 1200, 9)
    refused = client.post("/console/marketing/catalogue", data={**form, "sku": "BAD SKU", "points": "12"})
    assert refused.status_code == 422 and error_near(refused.text, "sku")
    negative = client.post("/console/marketing/catalogue", data={**form, "sku": "NEW", "points": "-5"})
    assert negative.status_code == 422 and error_near(negative.text, "points")
    with read_session(engine) as session:
        assert loyalty.find_catalogue_item(session, sku="NEW") is None
        assert loyalty.find_catalogue_item(session, sku="SCARF").points == 1200  # type: ignore[union-attr]


def test_only_an_administrator_changes_an_fx_rate_and_it_makes_a_new_programme_version(
    world: Api, engine: Engine, clock: FrozenClock
) -> None:
    make_user(engine, clock, "boss", "admin")
    marketing = browser(world)
    sign_in(marketing, "mkt1")
    page = marketing.get("/console/marketing")
    assert 'action="/console/marketing/fx-rates"' not in page.text
    tried = marketing.post(
        "/console/marketing/fx-rates", data={"csrf": csrf_of(page.text), "currency": "GBP", "rate": "2"}
    )
    assert tried.status_code == 403
    with read_session(engine) as session:
        before = programme.current_document(session)
    assert before is not None
    admin = browser(world)
    sign_in(admin, "boss")
    page = admin.get("/console/marketing")
    token = csrf_of(page.text)
    assert (
        admin.post(
            "/console/marketing/fx-rates", data={"csrf": token, "currency": "gbp", "rate": "1,19"}
        ).status_code
        == 303
    )
    bad = admin.post("/console/marketing/fx-rates", data={"csrf": token, "currency": "GBP", "rate": "-1"})
    assert bad.status_code == 422 and error_near(bad.text, "rate")
    with read_session(engine) as session:
        after = programme.current_document(session)
    assert after is not None and after[0] == before[0] + 1 and after[1]["fx_rates"]["GBP"] == "1.19"


def test_an_administrator_with_the_longest_username_changes_an_fx_rate(
    world: Api, engine: Engine, clock: FrozenClock
) -> None:
    """A username may be 120 characters; the console records the new programme version as
    ``console:<username>``, 8 more than the 120 of ``programme_versions.created_by``, which
    PostgreSQL refused with a 500. The name written fits its column and still names that user alone."""
    long_names = ["b" * 119 + "1", "b" * 119 + "2"]
    for name in long_names:
        make_user(engine, clock, name, "admin")
    recorded = []
    for name, rate in zip(long_names, ("1.19", "1.21"), strict=True):
        admin = browser(world)
        sign_in(admin, name)
        page = admin.get("/console/marketing")
        changed = admin.post(
            "/console/marketing/fx-rates", data={"csrf": csrf_of(page.text), "currency": "GBP", "rate": rate}
        )
        assert changed.status_code == 303, changed.text
        assert changed.headers["location"].endswith("&done=fx")
        with read_session(engine) as session:
            newest = session.scalars(select(ProgrammeVersion).order_by(ProgrammeVersion.id.desc())).first()
        assert newest is not None and newest.document["fx_rates"]["GBP"] == rate
        assert len(newest.created_by) <= 120 and newest.created_by.startswith("console:bbb")
        recorded.append(newest.created_by)
    assert recorded[0] != recorded[1]
