"""Issue 15: every error the API answers carries a stable machine code beside its message, so
that a client (the web, in Chinese or English) words it itself."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from backend.api.errors import error_code
from backend.client import ApiError
from backend.errors import NotListingOwner, UnknownListing, UploadInProgress
from tests.backend.api_helpers import Served, serve


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    with serve(buyers=1, agent=False) as s:
        yield s


def test_codes_are_the_exceptions_names_in_snake_case() -> None:
    assert error_code(UnknownListing("x")) == "unknown_listing"
    assert error_code(NotListingOwner("x")) == "not_listing_owner"
    assert error_code(UploadInProgress("x")) == "upload_in_progress"


def test_each_kind_of_answer_names_its_code(served: Served) -> None:
    url = served.url
    cases = [
        (httpx.get(f"{url}/catalog/listings/999"), 404, "not_found"),
        (httpx.get(f"{url}/catalog/listings/abc"), 422, "invalid_request"),
        (httpx.get(f"{url}/supplier/dashboard"), 401, "unauthorized"),
        (httpx.get(f"{url}/no/such/route"), 404, "http_404"),
        (httpx.delete(f"{url}/catalog/listings"), 405, "http_405"),
    ]
    for response, status, code in cases:
        body = response.json()
        assert (response.status_code, body.get("code")) == (status, code), body
        assert body["detail"]  # the message stays, for people and logs
    stranger = served.client(served.dev.buyers[0])
    with pytest.raises(ApiError) as refused:
        stranger.upload_codes(served.dev.listing_id, b"A-CODE\n")
    assert refused.value.status == 403
    assert refused.value.code == "not_listing_owner"
