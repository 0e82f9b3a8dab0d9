"""The arbiter's ruling citing a bundle, the timeout fallback, and the buyer's proof of a bad code.

    checklist = verify_bundle(data, chain)
    result = rule_on_bundle(escrow, arbiter, data, buyer_bps=10_000, slash_bps=10_000,
                            reason="bad-code", checklist=checklist)

A ruling is sent only for a bundle whose every claim passes (skipped claims are allowed: they
need a party's addition) and whose order is still disputed on-chain as the bundle states; the
transaction cites the bundle's hash (keccak256 of its canonical bytes without ``selfHash``, the
digest inside its ERC-1497 ``selfHash``).

``proveBadCode`` needs no arbiter: `find_bad_code` opens a release with the buyer's key and
returns the contract's proof for the first code that does not match its commitment, and
`prove_bad_code` sends it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from backend.evidence import canonical
from backend.evidence.chainview import reason_code
from backend.evidence.errors import RulingRefused
from backend.evidence.schema import BadCodeProofSection, EvidenceBundle, OrderStruct
from backend.evidence.verify import Checklist, verify_bundle
from contracts.encoding import Order, OrderState, commitment, keystream_xor

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount
    from nacl.public import PrivateKey

    from backend.release import BadCodeProof, Release
    from contracts.client import EscrowClient, TxResult


def order_from_struct(struct: OrderStruct) -> Order:
    """The contract's Order from a bundle's order struct."""
    return Order.from_record(struct)


@dataclass(frozen=True)
class Outcome:
    """A resolved dispute and what each party got.

    Attributes:
        tx: The ruling (or fallback) transaction.
        buyer_amount: Payment credited to the buyer.
        supplier_amount: Payment credited to the supplier (after fee and commission).
        slashed: Bond paid to the buyer.
        buyer_balance: The buyer's withdrawable balance afterwards.
        supplier_balance: The supplier's withdrawable balance afterwards.
        supplier_bond: The supplier's (free, reserved) bond afterwards.
    """

    tx: TxResult
    buyer_amount: int
    supplier_amount: int
    slashed: int
    buyer_balance: int
    supplier_balance: int
    supplier_bond: tuple[int, int]


def outcome(escrow: EscrowClient, order: Order, tx: TxResult) -> Outcome:
    """What a DisputeRuled transaction gave each party, with their balances now."""
    ev = tx.event("DisputeRuled")
    return Outcome(
        tx=tx,
        buyer_amount=int(ev.args["buyerAmount"]),
        supplier_amount=int(ev.args["supplierAmount"]),
        slashed=int(ev.args["slashed"]),
        buyer_balance=escrow.balance_of(order.buyer, order.token),
        supplier_balance=escrow.balance_of(order.supplier, order.token),
        supplier_bond=escrow.bond_of(order.supplier, order.token),
    )


def rule_on_bundle(
    escrow: EscrowClient,
    arbiter: LocalAccount,
    data: bytes,
    *,
    buyer_bps: int,
    slash_bps: int = 0,
    reason: str,
    checklist: Checklist | None = None,
) -> Outcome:
    """Rule on the dispute a bundle documents, citing the bundle's hash.

    Args:
        escrow: The escrow (its chain is where the bundle is verified).
        arbiter: The arbiter's account (ARBITER_ROLE, not a party).
        data: The bundle's bytes.
        buyer_bps: The buyer's share of the payment, in basis points.
        slash_bps: Share of the reserved bond paid to the buyer.
        reason: A short reason code, at most 32 bytes (``code-already-redeemed``).
        checklist: The verifier's checklist if already run on this chain.

    Raises:
        RulingRefused: the bundle fails verification, is for another escrow, or its order is
            not disputed (any more) as the bundle states.
        ContractRevertError: the contract refused (not an arbiter, a party, bad bps).
    """
    if not 0 <= buyer_bps <= 10_000 or not 0 <= slash_bps <= 10_000:
        raise RulingRefused("basis points go from 0 to 10000")
    try:
        code = reason_code(reason)
    except ValueError as exc:
        raise RulingRefused(str(exc)) from exc
    checklist = checklist or verify_bundle(data, escrow.chain)
    if not checklist.ok:
        names = ", ".join(c.name for c in checklist.failed())
        raise RulingRefused(f"the bundle fails verification ({names}); do not rule on it")
    bundle = EvidenceBundle.model_validate(canonical.loads(data))
    if bundle.escrow != escrow.address:
        raise RulingRefused(f"the bundle is for escrow {bundle.escrow}, not {escrow.address}")
    order = order_from_struct(bundle.order.struct)
    oid = int(bundle.order_id)
    if order.state != OrderState.DISPUTED or not escrow.order_matches(oid, order):
        raise RulingRefused(
            f"order {oid} is not disputed as this bundle states (it was ruled, timed out, or "
            "moved on since); pull a fresh bundle"
        )
    bundle_hash = canonical.bundle_hash(canonical.loads(data))
    tx = escrow.rule(
        arbiter,
        oid,
        order,
        buyer_bps=buyer_bps,
        slash_bps=slash_bps,
        bundle_hash=bundle_hash,
        reason=code,
    )
    return outcome(escrow, order, tx)


def apply_fallback(escrow: EscrowClient, caller: LocalAccount, oid: int, order: Order) -> Outcome:
    """Apply the arbitration-timeout fallback (anyone, after the arbitration deadline).

    Raises:
        ContractRevertError: the deadline has not passed, or the order is not disputed.
    """
    tx = escrow.resolve_timed_out(caller, oid, order)
    return outcome(escrow, order, tx)


def find_bad_code(release: Release, key: PrivateKey) -> BadCodeProof | None:
    """The ``proveBadCode`` argument for the first code of a release that does not match the
    commitment the release gives for its index, or None when every code matches.

    Raises:
        ReleaseInvalid: the release does not open with the key.
    """
    from backend.release import bad_code_proof, decode_payload, open_release

    _, _, _, _, release_key, items = decode_payload(open_release(release, key))
    claims = {c.index: c.commitment for c in release.codes}
    for index, salt, ct, _ in items:
        code = keystream_xor(release_key, index, ct)
        if claims.get(index) is not None and commitment(salt, code) != claims[index]:
            return bad_code_proof(release, key, index)
    return None


def proof_tuple(proof: BadCodeProof | BadCodeProofSection) -> tuple[object, ...]:
    """A proof as the ABI takes it, from the backend's proof or a bundle's section."""
    if isinstance(proof, BadCodeProofSection):
        h = bytes.fromhex
        return (
            h(proof.sealed_hash[2:]),
            h(proof.key[2:]),
            proof.index,
            h(proof.salt[2:]),
            h(proof.ciphertext[2:]),
            [h(p[2:]) for p in proof.element_proof],
            proof.batch_index,
            h(proof.committed[2:]),
            [h(p[2:]) for p in proof.leaf_proof],
        )
    return proof.as_tuple()


def prove_bad_code(
    escrow: EscrowClient,
    buyer: LocalAccount,
    oid: int,
    order: Order,
    proof: BadCodeProof | BadCodeProofSection,
) -> Outcome:
    """Send ``proveBadCode``: the buyer takes the payment and the bond reservation, no judge.

    Raises:
        ContractRevertError: the proof is refused (``EscrowBadProof`` names the step,
            ``EscrowCodeMatches`` when the code is in fact the committed one).
    """
    call = escrow.contract.functions.proveBadCode(oid, order.as_tuple(), proof_tuple(proof))
    receipt = escrow.tx.send(buyer, call)
    assert isinstance(receipt, dict)
    return outcome(escrow, order, escrow.result(receipt))
