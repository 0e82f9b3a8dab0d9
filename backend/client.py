"""The Python client of kameng's HTTP API, used by the CLI, the demo and the benchmarks.

    client = KamengClient("http://127.0.0.1:8000")
    client.sign_in(account)                    # SIWE: nonce, sign, verify
    for listing in client.listings(): ...
    release = client.wait_release(order_id, account)

Answers are parsed into the API's own pydantic models (`backend.schemas`). A refusal raises
`ApiError` carrying the status, the server's message, the offending CSV lines when there are
any, and the ``Retry-After`` hint of a 503.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, TypeAdapter

from backend.errors import JsonTooDeep
from backend.limits import loads
from backend.schemas import (
    AttestationPublic,
    ChainInfoPublic,
    DisputePublic,
    HealthPublic,
    ListingPublic,
    NoncePublic,
    OrderDetailPublic,
    OrderPublic,
    ReleasePublic,
    SessionPublic,
    SupplierDashboardPublic,
    SupplierRecord,
    UploadPublic,
    WalletPublic,
)
from backend.signing import SignedRequest, build_message, request_text, sign_message
from contracts.errors import KamengError

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

M = TypeVar("M", bound=BaseModel)

#: Called as progress(done, total) while the server processes an upload.
UploadProgress = Callable[[int, int], None]


class ApiError(KamengError):
    """The API refused a request, or could not be reached.

    Attributes:
        status: The HTTP status (0 when the server could not be reached).
        detail: The server's message: what went wrong and what to do.
        errors: Offending lines of a rejected CSV upload: (line, reason) pairs.
        retry_after: Seconds to wait before retrying, from a 503's ``Retry-After``.
        code: The server's stable machine code for the error (``unknown_listing``,
            ``contract.EscrowWrongState``, ...), or None.
    """

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        errors: list[tuple[int, str]] | None = None,
        retry_after: float | None = None,
        code: str | None = None,
    ) -> None:
        self.status = status
        self.detail = detail
        self.errors = errors or []
        self.retry_after = retry_after
        self.code = code
        where = f"HTTP {status}" if status else "unreachable"
        super().__init__(f"{where}: {detail}")


def answer_json(response: httpx.Response, text: str | bytes | None = None) -> Any:
    """The JSON of an answer (or of one of its NDJSON lines), at most
    `backend.limits.MAX_JSON_DEPTH` levels deep.

    Raises:
        ApiError: the answer nests deeper than that.
        ValueError: it is not JSON.
    """
    try:
        return loads(response.content if text is None else text, "the API's answer")
    except JsonTooDeep as exc:
        raise ApiError(response.status_code, str(exc)) from exc


def _raise_for(response: httpx.Response) -> None:
    if response.is_success:
        return
    try:
        body = answer_json(response)
    except (ValueError, ApiError):
        body = {"detail": response.text[:500] or response.reason_phrase}
    raise _error_from(response.status_code, body, response.headers.get("retry-after"))


def _error_from(status: int, body: Any, retry_after: str | None = None) -> ApiError:
    detail = body.get("detail", "") if isinstance(body, dict) else str(body)
    errors = []
    if isinstance(body, dict):
        errors = [(int(e["line"]), str(e["reason"])) for e in body.get("errors", []) or []]
    retry = None
    if retry_after is not None:
        try:
            retry = float(retry_after)
        except ValueError:
            retry = None
    code = body.get("code") if isinstance(body, dict) else None
    return ApiError(
        status,
        str(detail),
        errors=errors,
        retry_after=retry,
        code=code if isinstance(code, str) else None,
    )


class KamengClient:
    """A session with one kameng API.

    Args:
        base_url: The API's root URL, such as ``http://127.0.0.1:8000``.
        timeout: Seconds per request.
        token: A session token from an earlier sign-in.
        transport: An httpx transport (tests pass an ASGI transport).
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 30.0,
        token: str | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """Open the connection pool."""
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.http = httpx.Client(base_url=self.base_url, timeout=timeout, transport=transport)
        self._chain: ChainInfoPublic | None = None

    def close(self) -> None:
        """Close the connection pool."""
        self.http.close()

    def __enter__(self) -> KamengClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ plumbing

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = dict(extra or {})
        if self.token:
            headers.setdefault("Authorization", f"Bearer {self.token}")
        return headers

    def request(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        signer: LocalAccount | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """Send a request; raise `ApiError` unless it succeeded.

        With `signer`, the request carries no session token: it is signed by that wallet
        (`sign_request`), binding its method, path, query and body.

        Raises:
            ApiError: a 4xx/5xx answer, or the server could not be reached (status 0).
        """
        extra = dict(headers or {})
        if signer is None:
            extra = self._headers(extra)
        try:
            built = self.http.build_request(method, path, headers=extra, **kwargs)
            if signer is not None:
                built.headers.update(self.sign_request(signer, built))
            response = self.http.send(built)
        except httpx.TransportError as exc:
            raise ApiError(
                0, f"cannot reach {self.base_url}: {exc}; is `kameng serve` running there?"
            ) from exc
        _raise_for(response)
        return response

    def _get(self, model: type[M], path: str, **kwargs: Any) -> M:
        return model.model_validate(answer_json(self.request("GET", path, **kwargs)))

    def _get_list(self, model: type[M], path: str, **kwargs: Any) -> list[M]:
        adapter = TypeAdapter(list[model])  # type: ignore[valid-type]
        result: list[M] = adapter.validate_python(answer_json(self.request("GET", path, **kwargs)))
        return result

    def sign_request(self, account: LocalAccount, request: httpx.Request) -> dict[str, str]:
        """Headers that authenticate `request`, exactly as it will be sent, by a signature of
        `account`: its method, path, query and body, this server's domain, chain and escrow, a
        fresh nonce and the time (`backend.auth.request_text`)."""
        info = self.chain_info()
        now = int(time.time())
        nonce = secrets.token_hex(16)
        text = request_text(
            domain=info.domain or urlsplit(self.base_url).netloc,
            chain_id=info.chain_id,
            escrow=info.escrow,
            request=SignedRequest(
                method=request.method,
                path=request.url.path,
                query=request.url.query.decode("ascii"),
                body=request.read(),
            ),
            nonce=nonce,
            timestamp=now,
        )
        return {
            "X-Kameng-Address": account.address,
            "X-Kameng-Timestamp": str(now),
            "X-Kameng-Nonce": nonce,
            "X-Kameng-Signature": sign_message(account, text),
        }

    # ------------------------------------------------------------ health and chain

    def chain_info(self) -> ChainInfoPublic:
        """The chain id, the escrow and (for an embedded chain) the JSON-RPC URL. Cached."""
        if self._chain is None:
            self._chain = self._get(ChainInfoPublic, "/chain")
        return self._chain

    def rpc_url(self) -> str | None:
        """An absolute JSON-RPC URL for the chain, when the server exposes one."""
        url = self.chain_info().rpc_url
        if url is None:
            return None
        return url if "://" in url else self.base_url + url

    def health(self) -> HealthPublic:
        """Liveness of the node and the database (503 raises `ApiError` with `retry_after`)."""
        return self._get(HealthPublic, "/health")

    # ------------------------------------------------------------ auth

    def nonce(self) -> NoncePublic:
        """A fresh SIWE nonce with the domain and chain the message must name."""
        return NoncePublic.model_validate(answer_json(self.request("POST", "/auth/nonce")))

    def siwe_message(self, account: LocalAccount, nonce: NoncePublic) -> str:
        """The EIP-4361 message for `account` with `nonce`."""
        return build_message(
            domain=nonce.domain,
            address=account.address,
            uri=self.base_url,
            chain_id=nonce.chain_id,
            nonce=nonce.nonce,
            issued_at=int(time.time()),
            statement=nonce.statement,
        )

    def verify(self, message: str, signature: str) -> SessionPublic:
        """Send a signed EIP-4361 message; the answer holds the session token."""
        return SessionPublic.model_validate(
            answer_json(
                self.request(
                    "POST", "/auth/verify", json={"message": message, "signature": signature}
                )
            )
        )

    def sign_in(self, account: LocalAccount) -> SessionPublic:
        """Sign in with `account` (nonce, EIP-4361 message, signature); keep the token."""
        message = self.siwe_message(account, self.nonce())
        session = self.verify(message, sign_message(account, message))
        self.token = session.token
        return session

    def me(self) -> WalletPublic:
        """The signed-in wallet."""
        return self._get(WalletPublic, "/auth/me")

    # ------------------------------------------------------------ catalog

    def listings(
        self,
        *,
        supplier: str | None = None,
        sku: str | None = None,
        active: bool | None = True,
        in_stock: bool = False,
        licence: str = "in-force",
        limit: int = 100,
    ) -> list[ListingPublic]:
        """Listings with live stock, price and the supplier's record (`licence`: ``in-force``,
        ``revoked`` or ``any``)."""
        params: dict[str, Any] = {"limit": limit, "in_stock": in_stock, "licence": licence}
        if supplier:
            params["supplier"] = supplier
        if sku:
            params["sku"] = sku
        if active is not None:
            params["active"] = active
        return self._get_list(ListingPublic, "/catalog/listings", params=params)

    def listing(self, listing_id: int) -> ListingPublic:
        """One listing."""
        return self._get(ListingPublic, f"/catalog/listings/{listing_id}")

    def supplier_record(self, supplier: str) -> SupplierRecord:
        """A supplier's on-chain record."""
        return self._get(SupplierRecord, f"/catalog/suppliers/{supplier}")

    # ------------------------------------------------------------ buyer

    def my_orders(
        self, *, states: list[int] | None = None, account: LocalAccount | None = None
    ) -> list[OrderPublic]:
        """The signed-in wallet's orders (or `account`'s, by a signed request)."""
        params = {"state": states} if states else None
        return self._get_list(OrderPublic, "/buyer/orders", params=params, signer=account)

    def order(self, order_id: int, account: LocalAccount | None = None) -> OrderDetailPublic:
        """One order with its history (its buyer or supplier only)."""
        return self._get(OrderDetailPublic, f"/buyer/orders/{order_id}", signer=account)

    def release(self, order_id: int, account: LocalAccount | None = None) -> ReleasePublic:
        """The sealed release of an order. Needs no sign-in: it opens only with the buyer's
        per-order key, so `account` is not needed (a signed request is still accepted).

        Raises:
            ApiError: 409 while it is being sealed or its delivery is not on-chain yet, 404
                unknown.
        """
        return self._get(ReleasePublic, f"/buyer/orders/{order_id}/release", signer=account)

    def wait_release(
        self,
        order_id: int,
        account: LocalAccount | None = None,
        *,
        timeout: float = 60.0,
        poll: float = 0.05,
    ) -> ReleasePublic:
        """Fetch a release, polling while it is not sealed or not delivered on-chain yet (409),
        or the order is not in the mirror yet (404). Once it returns, the order's delivery with
        this release's digest is on-chain and in the mirror.

        Raises:
            ApiError: it did not come within `timeout`, or the server refused for good.
        """
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.release(order_id, account)
            except ApiError as exc:
                if exc.status not in (404, 409) or time.monotonic() > deadline:
                    raise
            time.sleep(poll)  # polling the server for a condition, with a deadline

    # ------------------------------------------------------------ supplier

    def dashboard(self) -> SupplierDashboardPublic:
        """The signed-in supplier's dashboard data."""
        return self._get(SupplierDashboardPublic, "/supplier/dashboard")

    def supplier_orders(self, *, states: list[int] | None = None) -> list[OrderPublic]:
        """The signed-in supplier's orders."""
        params = {"state": states} if states else None
        return self._get_list(OrderPublic, "/supplier/orders", params=params)

    def due_orders(self, *, limit: int = 500) -> list[OrderPublic]:
        """The signed-in supplier's delivered orders past their dispute window, earliest
        deadline first, with the Order fields ``settle`` takes."""
        return self._get_list(OrderPublic, "/supplier/orders/due", params={"limit": limit})

    def uploads(self, *, listing_id: int | None = None) -> list[UploadPublic]:
        """The signed-in supplier's uploads, newest first."""
        params = {"listing_id": listing_id} if listing_id is not None else None
        return self._get_list(UploadPublic, "/supplier/uploads", params=params)

    def submit_upload(self, upload_id: int, tx_hash: str | None) -> UploadPublic:
        """Report the commitBatch the supplier's own wallet sent for an ``awaiting`` upload."""
        return UploadPublic.model_validate(
            answer_json(
                self.request(
                    "POST",
                    f"/supplier/uploads/{upload_id}/submitted",
                    json={"tx_hash": tx_hash},
                )
            )
        )

    def upload_codes(
        self,
        listing_id: int,
        csv_bytes: bytes,
        *,
        progress: UploadProgress | None = None,
        sent: UploadProgress | None = None,
        chunk: int = 64 * 1024,
    ) -> UploadPublic:
        """Upload a CSV of codes to a listing (signed in as its supplier).

        Args:
            listing_id: The listing.
            csv_bytes: The CSV file's bytes.
            progress: Called with (done, total) codes while the server processes them.
            sent: Called with (bytes sent, total bytes) while the file is sent.
            chunk: Bytes per chunk sent.

        Raises:
            ApiError: refused; ``errors`` lists the offending lines of a rejected file.
        """
        total = len(csv_bytes)

        def body() -> Iterator[bytes]:
            for start in range(0, total, chunk):
                piece = csv_bytes[start : start + chunk]
                yield piece
                if sent is not None:
                    sent(min(total, start + len(piece)), total)

        headers = self._headers(
            {
                "Content-Type": "text/csv",
                "Content-Length": str(total),
                "Accept": "application/x-ndjson",
            }
        )
        path = f"/supplier/listings/{listing_id}/codes"
        try:
            with self.http.stream("POST", path, content=body(), headers=headers) as response:
                if not response.is_success:
                    response.read()
                    _raise_for(response)
                if not response.headers.get("content-type", "").startswith("application/x-ndjson"):
                    response.read()
                    return UploadPublic.model_validate(answer_json(response))
                for line in response.iter_lines():
                    if not line.strip():
                        continue
                    item = answer_json(response, line)
                    if "progress" in item and progress is not None:
                        progress(int(item["progress"]["done"]), int(item["progress"]["total"]))
                    elif "result" in item:
                        return UploadPublic.model_validate(item["result"])
                    elif "error" in item:
                        err = dict(item["error"])
                        raise _error_from(int(err.pop("status", 500)), err)
        except httpx.TransportError as exc:
            raise ApiError(
                0,
                f"upload to {self.base_url} broke off: {exc}; check the "
                "dashboard before retrying (the vault recovers pending uploads)",
            ) from exc
        raise ApiError(502, "the upload's answer ended without a result; check the dashboard")

    # ------------------------------------------------------------ arbiter

    def publish_attestation(
        self,
        document: bytes,
        *,
        name: str,
        media_type: str = "application/octet-stream",
        supplier: str | None = None,
        sku: str | None = None,
    ) -> AttestationPublic:
        """Publish a licence's attestation document so that buyers can read and check it.

        Needs no sign-in: the server keeps it only if a licence cites its keccak256. Give the
        licence's `supplier` and `sku` (0x hex) right after a grant, before the mirror has it.

        Raises:
            ApiError: refused (409: no licence cites it; 413: too large).
        """
        from eth_utils import keccak

        params = {"name": name}
        if supplier is not None and sku is not None:
            params |= {"supplier": supplier, "sku": sku}
        answer = self.request(
            "PUT",
            f"/attestations/0x{keccak(document).hex()}",
            params=params,
            content=document,
            headers={"Content-Type": media_type},
        )
        return AttestationPublic.model_validate(answer_json(answer))

    def disputes(self, *, include_ruled: bool = False) -> list[DisputePublic]:
        """The dispute queue, oldest first (signed in as an arbiter)."""
        return self._get_list(
            DisputePublic, "/arbiter/disputes", params={"include_ruled": include_ruled}
        )


__all__ = ["ApiError", "KamengClient", "UploadProgress"]
