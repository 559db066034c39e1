"""The ids and names the engine takes from outside, each pattern defined once.

The domain's models, the API's paths and queries, the key store, the visibility queries
and the plain-words table all import these, so an id one layer accepts is never refused
by another (and the words describing a pattern always describe the one in use).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import StringConstraints

PLATFORM_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"
"""A platform's own id for a loan or borrower: safe inside a workflow id and a URL."""

AGENT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$"
"""An agent's id, an API key's name and a platform's id (migration 0011 made platform keys'
names platform ids): a person's key acts as the actor its name is (an agent key is that
agent)."""

REFERENCE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$"
"""A payment's reference, as the platform's payment system gives it."""

SEARCH_KEYWORD_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@:-]{0,127}$"
"""Any of the ids above as a keyword in a visibility query: nothing that closes quotes."""

JURISDICTION_PATTERN = r"^[A-Z]{2}(-[A-Z0-9]{1,3})?$"
"""An ISO 3166 country code, optionally with a subdivision (CN, US, US-CA, GB)."""

PRODUCT_PATTERN = r"^[a-z][a-z0-9_-]{0,31}$"
"""A loan product's name (such as instalment)."""

POLICY_NAME_PATTERN = r"^[a-z][a-z0-9_-]{0,63}$"
"""A collection policy's name (such as standard)."""

PlatformId = Annotated[str, StringConstraints(strip_whitespace=True,
                                              pattern=PLATFORM_ID_PATTERN)]
AgentId = Annotated[str, StringConstraints(pattern=AGENT_ID_PATTERN)]
Reference = Annotated[str, StringConstraints(strip_whitespace=True, pattern=REFERENCE_PATTERN)]
ProductName = Annotated[str, StringConstraints(pattern=PRODUCT_PATTERN)]
PolicyName = Annotated[str, StringConstraints(pattern=POLICY_NAME_PATTERN)]
