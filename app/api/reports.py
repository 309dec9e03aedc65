"""``/v1/screenings/{id}/report``: the screening as a self-contained HTML report."""

from __future__ import annotations

import json
import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse

from app import report, screenings
from app.api.deps import ReadSession, off_loop, require
from app.api.problems import STANDARD_ERRORS, problem_response
from app.auth import Principal, Scope

router = APIRouter(tags=["screenings"], responses=STANDARD_ERRORS)
Reader = Annotated[Principal, require(Scope.SCREENINGS_READ)]
ScreeningId = Annotated[uuid.UUID, Path(description="The screening's id.")]

# Inline styles and nothing else: no script, no font, no remote image, not framed.
REPORT_CSP = f"{report.CSP}; frame-ancestors 'none'"


@router.get(
    "/v1/screenings/{screening_id}/report",
    response_class=HTMLResponse,
    summary="A screening as a printable HTML report",
    description=(
        "One self-contained HTML document for a lawyer's file: what was submitted, the flag "
        "and score with the thresholds, a chart of each indicator's points, every indicator, "
        "counter-indicator and challenge ground with numbered citations, similar documented "
        "cases, missing information, the sources, the provenance (engine and knowledge-base "
        "versions, and the SHA-256 of the result, defined in the report so anyone can "
        "recompute it) and the disclaimer. It loads nothing from anywhere: inline CSS and "
        "SVG only.\n\n"
        "To get a PDF, use the browser's Print dialog (Save as PDF; print styles lay it out "
        "on A4), or save the page (it needs nothing else) and run "
        "`chromium --headless --print-to-pdf=report.pdf report.html`. There is no "
        "server-side PDF: the maintained Python PDF renderers need system libraries "
        "(Pango, Cairo) that a plain Python installation lacks."
    ),
    responses={
        200: {
            "description": "The report (`text/html; charset=utf-8`).",
            "content": {"text/html": {"schema": {"type": "string"}}},
        },
        410: problem_response("The stored data cannot be decrypted (erased key or tampered row)"),
    },
    operation_id="read_screening_report",
)
async def read_screening_report(
    request: Request, principal: Reader, session: ReadSession, screening_id: ScreeningId
) -> HTMLResponse:
    stored, request_json = screenings.get_with_input(
        session, principal, request.app.state.keys, screening_id
    )
    # Rendering is CPU work: release the connection first, then render in the bounded pool.
    session.close()
    html = await off_loop(_render, stored.to_json(), request_json)
    return HTMLResponse(
        html,
        headers={
            "Content-Security-Policy": REPORT_CSP,
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, no-store",
            "Content-Disposition": f'inline; filename="screening-{stored.id}-report.html"',
        },
    )


def _render(result_json: bytes, request_json: bytes) -> str:
    return report.render(json.loads(result_json), json.loads(request_json))
