"""Attestation documents (issue 14): the rights holder's document behind a licence is published
with no sign-in and kept only when its bytes hash to an attestation a licence cites; it is
served back as a download that cannot run in the store's origin; every refusal says what to fix
and keeps nothing. On SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from eth_utils import keccak

from tests.backend.api_helpers import Served, backend_settings, database, poll, serve


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def served(request: pytest.FixtureRequest) -> Iterator[Served]:
    settings = backend_settings(max_attestation_bytes=4096, rate_limit_scale=100)
    with database(request.param) as url, serve(settings, database_url=url, buyers=0) as s:
        yield s


def _hash(data: bytes) -> str:
    return "0x" + keccak(data).hex()


def _grant(served: Served, product: str, document: bytes) -> tuple[str, str]:
    """A new supplier licensed for `product` with `document`; (supplier, sku hex)."""
    supplier = served.runtime.chain.w3.eth.account.create().address
    sku = keccak(text=product)
    served.escrow.authorize(served.dev.admin, supplier, sku, keccak(document))
    return supplier, "0x" + sku.hex()


def test_a_cited_document_is_kept_once_and_served_as_a_safe_download(served: Served) -> None:
    document = b"%PDF-1.4 the rights holder licenses this supplier for vip-month\n" * 8
    supplier, sku = _grant(served, "vip-month", document)
    digest = _hash(document)
    url = f"{served.url}/attestations/{digest}"

    # Right after the grant the mirror may not have it: naming supplier and sku asks the chain.
    first = httpx.put(
        url,
        params={"name": "授权书 licence.pdf", "supplier": supplier, "sku": sku},
        content=document,
        headers={"Content-Type": "application/pdf"},
    )
    assert first.status_code == 201, first.text
    kept = first.json()
    assert kept["hash"] == digest and kept["size"] == len(document)
    assert kept["name"] == "授权书 licence.pdf"
    assert kept["media_type"] == "application/pdf"
    assert kept["supplier"] == supplier and kept["sku"] == sku

    # Publishing it again, by anyone and without the hints once the mirror has the grant,
    # changes nothing.
    def republished() -> httpx.Response | None:
        answer = httpx.put(url, params={"name": "other.pdf"}, content=document)
        assert answer.status_code in (200, 409), answer.text
        return answer if answer.status_code == 200 else None

    again = poll("the grant in the mirror", republished)
    assert again.json()["name"] == "授权书 licence.pdf"

    info = httpx.get(url + "/info")
    assert info.status_code == 200 and info.json() == kept
    got = httpx.get(url)
    assert got.status_code == 200
    assert got.content == document and _hash(got.content) == digest
    assert got.headers["content-type"] == "application/pdf"
    assert got.headers["content-disposition"].startswith("attachment;")
    assert got.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in got.headers["content-security-policy"]
    # The uppercase spelling of the hash names the same document.
    assert httpx.get(f"{served.url}/attestations/{digest.upper().replace('0X', '0x')}").content == (
        document
    )


def test_html_is_kept_but_served_as_bytes(served: Served) -> None:
    document = b"<html><script>alert(document.cookie)</script></html>"
    supplier, sku = _grant(served, "html-licence", document)
    digest = _hash(document)
    answer = httpx.put(
        f"{served.url}/attestations/{digest}",
        params={"supplier": supplier, "sku": sku},
        content=document,
        headers={"Content-Type": "text/html"},
    )
    assert answer.status_code == 201, answer.text
    assert answer.json()["media_type"] == "application/octet-stream"
    got = httpx.get(f"{served.url}/attestations/{digest}")
    assert got.headers["content-type"] == "application/octet-stream"


def test_bytes_that_do_not_hash_to_the_path_are_refused_and_nothing_is_kept(
    served: Served,
) -> None:
    document = b"the real attestation for gift-card-100"
    supplier, sku = _grant(served, "gift-card-100", document)
    digest = _hash(document)
    answer = httpx.put(
        f"{served.url}/attestations/{digest}",
        params={"supplier": supplier, "sku": sku},
        content=document + b" (edited)",
    )
    assert answer.status_code == 422
    body = answer.json()
    assert body["code"] == "attestation_mismatch"
    assert _hash(document + b" (edited)") in body["detail"] and "unchanged" in body["detail"]
    missing = httpx.get(f"{served.url}/attestations/{digest}/info")
    assert missing.status_code == 404 and missing.json()["code"] == "attestation_not_kept"


def test_a_hash_no_licence_cites_is_refused(served: Served) -> None:
    document = b"a document nobody granted a licence with"
    supplier, sku = _grant(served, "other-product", b"something else")
    for params in ({}, {"supplier": supplier, "sku": sku}):
        answer = httpx.put(
            f"{served.url}/attestations/{_hash(document)}", params=params, content=document
        )
        assert answer.status_code == 409, answer.text
        assert answer.json()["code"] == "attestation_not_cited"
        assert "grant the licence with this document first" in answer.json()["detail"]
    assert httpx.get(f"{served.url}/attestations/{_hash(document)}").status_code == 404


def test_a_file_name_with_folders_or_control_characters_is_refused(served: Served) -> None:
    document = b"name test"
    supplier, sku = _grant(served, "name-test", document)
    for name in ("C:\\papers\\licence.pdf", "../licence.pdf", "licence\x07.pdf", "\u202efdp.exe"):
        answer = httpx.put(
            f"{served.url}/attestations/{_hash(document)}",
            params={"name": name, "supplier": supplier, "sku": sku},
            content=document,
        )
        assert answer.status_code == 422, (name, answer.text)
        assert "name" in answer.json()["detail"]
    assert httpx.get(f"{served.url}/attestations/{_hash(document)}").status_code == 404


def test_bad_hashes_and_oversized_documents_are_refused(served: Served) -> None:
    zero = "0x" + "00" * 32
    # The zero hash is a revocation's (the mirror holds revoked licences with it): no document.
    served.escrow.authorize(served.dev.admin, served.dev.supplier.address, keccak(text="gone"),
                            keccak(text="x"))  # fmt: skip
    served.escrow.authorize(served.dev.admin, served.dev.supplier.address, keccak(text="gone"),
                            bytes(32))  # fmt: skip
    served.wait_indexed()
    answer = httpx.put(f"{served.url}/attestations/{zero}", content=b"x")
    assert answer.status_code == 409 and "revoked" in answer.json()["detail"]
    assert httpx.get(f"{served.url}/attestations/{zero}").status_code == 404
    assert httpx.put(f"{served.url}/attestations/0x1234", content=b"x").status_code == 422
    big = b"%PDF" + b"0" * 5000
    supplier, sku = _grant(served, "big-licence", big)
    answer = httpx.put(
        f"{served.url}/attestations/{_hash(big)}",
        params={"supplier": supplier, "sku": sku},
        content=big,
    )
    assert answer.status_code == 413
    assert answer.json()["code"] == "attestation_too_large"
    assert "4096-byte limit" in answer.json()["detail"]
    assert httpx.get(f"{served.url}/attestations/{_hash(big)}/info").status_code == 404
