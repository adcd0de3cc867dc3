"""The public survey page: ``GET /survey/{token}`` shows the form, ``POST`` records the answer.

No login: the signed link is the credential. The page's stylesheet is a file,
``GET /survey/static/survey.css`` (the strict Content-Security-Policy refuses inline styles); it is
not rate-limited, and a token never contains a ``/`` so the two paths cannot meet. The page speaks the member's language (``?lang=fr|en``
switches). A forged, expired or already used link gets a plain page saying so, with a 4xx status
(404 forged, 410 expired, 409 used), and nothing is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape

from prevenance.common.deps import AppClock, DbEngine
from prevenance.common.i18n import section, translate
from prevenance.common.problems import RateLimited
from prevenance.common.ratelimit import client_address, enforce
from prevenance.db import read_session, run_in_transaction
from prevenance.settings import Settings
from prevenance.voice import invitations, rules, service
from prevenance.voice.errors import SurveyLinkError

router = APIRouter(tags=["survey"], include_in_schema=False)
_ENV = Environment(
    loader=PackageLoader("prevenance.voice", "templates"), autoescape=select_autoescape(["html"])
)
LINK_STATUS = {"invalid": 404, "expired": 410, "used": 409}
STYLESHEET = Path(__file__).parent / "templates" / "survey.css"


def _language(requested: str | None, fallback: str) -> str:
    if requested in rules.LANGUAGES:
        return str(requested)
    return fallback if fallback in rules.LANGUAGES else "en"


def _page(template: str, status: int, lang: str, **context: Any) -> HTMLResponse:
    html = _ENV.get_template(template).render(lang=lang, t=section(lang, "survey."), **context)
    return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})


def _link_error(kind: str, requested: str | None) -> HTMLResponse:
    """The page of an unusable link: in the requested language, else in French and English (a
    forged link names no member whose language we could use)."""
    lang = _language(requested, "fr")
    text = section(lang, "survey.")
    other = None if requested in rules.LANGUAGES else section("en", "survey.")
    return _page(
        "survey_message.html",
        LINK_STATUS[kind],
        lang,
        kind=kind,
        heading=text[f"{kind}_heading"] + (f" / {other[f'{kind}_heading']}" if other else ""),
        message=text[kind],
        message_other=other[kind] if other else None,
    )


def _form(lang: str, status: int, values: dict[str, str | None], errors: dict[str, str]) -> HTMLResponse:
    return _page(
        "survey_form.html",
        status,
        lang,
        values=values,
        errors=errors,
        points=tuple(translate(lang, f"voice.interaction.{point}") for point in rules.INTERACTION_POINTS),
    )


def _throttled(request: Request, requested: str | None) -> HTMLResponse | None:
    """A 429 page when this address asked for survey pages too often (guessing links, or a loop);
    counted per client address over every token, so forging links does not scale."""
    settings: Settings = request.app.state.settings
    try:
        enforce(request, scope="survey", rule=settings.rate_limit_survey, key=client_address(request))
    except RateLimited as error:
        wait = str(error.extra.get("retry_after", 60))
        lang = _language(requested, "fr")
        other = "en" if lang == "fr" else "fr"
        first, second = (translate(language, "survey.too_many", wait=wait) for language in (lang, other))
        body = f"<!doctype html><html lang={lang}><meta charset=utf-8><title>429</title><p>{first}</p><p>{second}</p></html>"
        return HTMLResponse(body, status_code=429, headers={"Retry-After": wait, "Cache-Control": "no-store"})
    return None


def _invitation_id(request: Request, token: str, now: Any) -> str:
    settings: Settings = request.app.state.settings
    return invitations.unsign(
        token, secret=settings.secret_key, max_age_days=settings.survey_link_max_age_days, now=now
    )


@router.get("/survey/static/survey.css")
def survey_stylesheet() -> Response:
    """The survey page's stylesheet (the same for every link; cached an hour, never counted)."""
    return FileResponse(
        STYLESHEET, media_type="text/css; charset=utf-8", headers={"Cache-Control": "public, max-age=3600"}
    )


@router.get("/survey/{token}", response_class=HTMLResponse)
def survey_form(
    token: str,
    request: Request,
    engine: DbEngine,
    clock: AppClock,
    lang: Annotated[str | None, Query(max_length=5)] = None,
) -> HTMLResponse:
    """The survey form for a valid, unused link."""
    if (refused := _throttled(request, lang)) is not None:
        return refused
    try:
        invitation_id = _invitation_id(request, token, clock.now())
        with read_session(engine) as session:
            invitation = service.get_open_invitation(session, invitation_id=invitation_id)
    except SurveyLinkError as error:
        return _link_error(error.kind, lang)
    return _form(_language(lang, invitation["language"]), 200, {}, {})


@router.post("/survey/{token}", response_class=HTMLResponse)
def survey_submit(
    token: str,
    request: Request,
    engine: DbEngine,
    clock: AppClock,
    recommend: Annotated[str | None, Form(max_length=10)] = None,
    interaction: Annotated[str | None, Form(max_length=10)] = None,
    comment: Annotated[str | None, Form(max_length=20_000)] = None,
    suggestion: Annotated[str | None, Form(max_length=20_000)] = None,
    form_lang: Annotated[str | None, Form(alias="lang", max_length=5)] = None,
    lang: Annotated[str | None, Query(max_length=5)] = None,
) -> HTMLResponse:
    """Record the answer once; a faulty form comes back with the errors next to their fields."""
    now = clock.now()
    chosen = lang or form_lang
    if (refused := _throttled(request, chosen)) is not None:
        return refused
    try:
        invitation_id = _invitation_id(request, token, now)
        with read_session(engine) as session:
            invitation = service.get_open_invitation(session, invitation_id=invitation_id)
    except SurveyLinkError as error:
        return _link_error(error.kind, chosen)
    language = _language(chosen, invitation["language"])
    form, errors = rules.read_form(
        recommend=recommend, interaction=interaction, comment=comment, suggestion=suggestion
    )
    if errors:
        values = {
            "recommend": recommend,
            "interaction": interaction,
            "comment": comment,
            "suggestion": suggestion,
        }
        return _form(language, 422, values, errors)
    try:
        run_in_transaction(
            engine,
            lambda s: service.submit_answer(
                s, invitation_id=invitation_id, form=form, language=language, now=now
            ),
        )
    except SurveyLinkError as error:
        return _link_error(error.kind, language)
    text = section(language, "survey.")
    return _page(
        "survey_message.html",
        200,
        language,
        kind="thanks",
        heading=text["thanks_heading"],
        message=text["thanks"],
    )
