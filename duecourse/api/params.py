"""Path parameters the routers share, typed from the domain's id patterns."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

from duecourse.domain.ids import PLATFORM_ID_PATTERN

LoanId = Annotated[str, Path(pattern=PLATFORM_ID_PATTERN, description="the platform's loan id")]
