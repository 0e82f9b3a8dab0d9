"""The chain gateway on anvil with mining by hand, on SQLite and PostgreSQL (issue 12).

- A transaction held in the pool (blocks too small for it) is replaced after `bump_blocks`
  blocks: same nonce, both fees up by at least 25%, both hashes remembered; it mines once.
- A base fee that jumps past its fee makes anvil evict it; the replacement is priced from the
  new base fee and mines once.
- A mined transaction that a reorganisation drops is sent again and mines once, also under
  a higher head; while new heads only extend the chain, no mined row is looked up again.
"""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session, sessionmaker

from backend.gateway.gateway import Gateway, enqueue, outcome
from backend.gateway.models import ChainTx, TxState
from contracts.chain import Chain

pytestmark = pytest.mark.anvil

BUMP_BLOCKS = 2
BLOCK_GAS_LIMIT = 30_000_000
VALUE = 12_345


def _mine(chain: Chain, blocks: int = 1) -> None:
    for _ in range(blocks):
        chain.make_request("evm_mine", [])


def _pool(chain: Chain) -> int:
    status = chain.make_request("txpool_status", [])
    return int(status["pending"], 16) + int(status["queued"], 16)


def _row(sessions: sessionmaker[Session], key: str) -> ChainTx:
    with sessions() as session:
        row = outcome(session, key)
        assert row is not None
        return row


def _sent(anvil: Chain, sessions: sessionmaker[Session], key: str) -> tuple[Gateway, str]:
    """A plain transfer queued, signed and sent to a node that mines by hand."""
    sender, recipient = anvil.new_account(ether=10), anvil.new_account(ether=0)
    gateway = Gateway(sessions, anvil, [sender], bump_blocks=BUMP_BLOCKS)
    with sessions() as session:
        enqueue(
            session,
            intent="transfer",
            key=key,
            sender=sender.address,
            to=recipient.address,
            data=b"",
            value=VALUE,
        )
        session.commit()
    anvil.make_request("evm_setAutomine", [False])
    gateway.run_once()
    row = _row(sessions, key)
    assert row.state == TxState.SENT and row.nonce == 0 and _pool(anvil) == 1
    return gateway, recipient.address


def _hold(anvil: Chain, blocks: int) -> None:
    """Mine `blocks` blocks too small for the transaction, which stays in the pool (the limit
    is put back after: anvil refuses a transaction over the current block's limit)."""
    anvil.make_request("evm_setBlockGasLimit", [hex(30_000)])
    _mine(anvil, blocks)
    assert _pool(anvil) == 1
    anvil.make_request("evm_setBlockGasLimit", [hex(BLOCK_GAS_LIMIT)])


def _balance(anvil: Chain, address: str) -> int:
    return int(anvil.w3.eth.get_balance(address))  # type: ignore[arg-type]


def test_a_transaction_held_in_the_pool_is_replaced_with_higher_fees_and_mines_once(
    anvil: Chain, sessions: sessionmaker[Session]
) -> None:
    gateway, recipient = _sent(anvil, sessions, "held")
    first = _row(sessions, "held")
    _hold(anvil, BUMP_BLOCKS - 1)
    gateway.run_once()
    assert _row(sessions, "held").hashes == first.hashes  # not waited long enough yet
    _hold(anvil, 1)
    gateway.run_once()
    replaced = _row(sessions, "held")
    assert replaced.state == TxState.SENT and replaced.nonce == first.nonce
    assert len(replaced.hashes.split(",")) == 2 and replaced.tx_hash != first.tx_hash
    assert first.max_fee is not None and replaced.max_fee is not None
    assert replaced.max_fee >= first.max_fee * 125 // 100
    assert _pool(anvil) == 1  # the replacement took the original's place
    _mine(anvil)
    gateway.run_once()
    mined = _row(sessions, "held")
    assert mined.state == TxState.MINED and mined.tx_hash == replaced.tx_hash
    assert _balance(anvil, recipient) == VALUE


def test_an_evicted_transaction_is_replaced_at_the_new_base_fee(
    anvil: Chain, sessions: sessionmaker[Session]
) -> None:
    gateway, recipient = _sent(anvil, sessions, "evicted")
    first = _row(sessions, "evicted")
    assert first.max_fee is not None
    anvil.make_request("anvil_setNextBlockBaseFeePerGas", [hex(first.max_fee * 10)])
    _mine(anvil)
    assert _pool(anvil) == 0  # priced out and evicted
    for _ in range(BUMP_BLOCKS):
        _mine(anvil)
        gateway.run_once()
    again = _row(sessions, "evicted")
    assert again.max_fee is not None and again.max_fee > first.max_fee * 10
    assert again.nonce == first.nonce
    _mine(anvil)
    gateway.run_once()
    assert _row(sessions, "evicted").state == TxState.MINED
    assert _balance(anvil, recipient) == VALUE


def test_a_transaction_a_reorg_drops_is_sent_again_and_mines_once(
    anvil: Chain, sessions: sessionmaker[Session]
) -> None:
    gateway, recipient = _sent(anvil, sessions, "reorged")
    snapshot = anvil.make_request("evm_snapshot", [])
    _mine(anvil)
    gateway.run_once()
    assert _row(sessions, "reorged").state == TxState.MINED
    anvil.make_request("evm_revert", [snapshot])  # the block that held it is gone
    gateway.run_once()  # no receipt any more: sent again
    assert _row(sessions, "reorged").state == TxState.SENT
    _mine(anvil)
    gateway.run_once()
    assert _row(sessions, "reorged").state == TxState.MINED
    assert _balance(anvil, recipient) == VALUE


def test_heads_that_extend_the_chain_recheck_nothing_and_a_deeper_reorg_is_still_found(
    anvil: Chain, sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reorganisation check costs no receipt per mined row while each new head descends
    from the last checked one (it runs when a delivery has just mined, on the path to the
    next), and a reorganisation under a higher head is still found by the row's receipt."""
    import backend.gateway.gateway as gateway_module

    looked_up: list[str] = []
    real = gateway_module.receipt_or_none

    def counting(w3: object, tx_hash: str) -> object:
        looked_up.append(tx_hash)
        return real(w3, tx_hash)  # type: ignore[arg-type]

    monkeypatch.setattr(gateway_module, "receipt_or_none", counting)
    gateway, recipient = _sent(anvil, sessions, "deep")
    snapshot = anvil.make_request("evm_snapshot", [])
    _mine(anvil)
    gateway.run_once()
    mined = _row(sessions, "deep")
    assert mined.state == TxState.MINED
    looked_up.clear()
    for _ in range(3):  # new heads, each the child of the last (and one two blocks on)
        _mine(anvil)
        gateway.run_once()
    _mine(anvil, 2)
    gateway.run_once()
    assert mined.tx_hash not in looked_up
    anvil.make_request("evm_revert", [snapshot])  # the block that held it is gone...
    _mine(anvil, 8)  # ...under a head higher than any checked
    gateway.run_once()
    assert mined.tx_hash in looked_up  # the last checked head left the chain: checked again
    _mine(anvil)
    gateway.run_once()
    again = _row(sessions, "deep")
    assert again.state == TxState.MINED and again.nonce == mined.nonce
    assert _balance(anvil, recipient) == VALUE
