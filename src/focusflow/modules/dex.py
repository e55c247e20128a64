"""The exchange: constant-product pools of any two tokens, TWAP oracles, circuit breakers,
and primary dealers who mint and redeem H at par.

Messages
    ``dex.create`` ``{"a", "b", "amount_a", "amount_b"}``
        Opens the pool of the pair (one per pair) with its first deposit;
        mints ``isqrt(amount_a amount_b) - 1000`` shares (``lp/<a>/<b>``, the
        pair in byte order) to the sender and locks 1,000 (``modules.amm``).
    ``dex.add`` ``{"a", "b", "max_a", "max_b", "min_shares"}``
        Deposits at the pool's ratio, at most ``max_a`` and ``max_b``.
    ``dex.remove`` ``{"a", "b", "shares", "min_a", "min_b"}``
        Burns shares for their part of both reserves.
    ``dex.swap`` ``{"path": [denom, ...], "amount_in", "min_out"}``
        Exact in, through the pools of consecutive denoms (at most
        ``dex_max_hops``); refused (``slippage``) if less than ``min_out`` comes out.
    ``dex.swap_out`` ``{"path", "amount_out", "max_in"}``
        Exact out: the input each hop needs is computed backwards from
        ``amount_out`` (rounded up), refused if more than ``max_in`` is needed.
    ``dex.mint`` ``{"amount"}`` / ``dex.redeem`` ``{"amount"}``
        Primary dealers only (``dex_dealers``): ``amount`` CYB locked in the
        dealer reserve for ``amount * 10_000 // h_par_bps`` new H, or ``amount``
        H burned for ``amount * h_par_bps // 10_000`` CYB out of the reserve,
        each within the dealer's ``quota`` per ``dealer_period`` blocks.

Fees: ``dex_fee_bps`` of each swap's input stays in the pool (liquidity
providers earn it through their shares); ``dex_protocol_bps`` of that fee is
taken first and paid to the protocol account (:data:`PROTOCOL_ADDRESS`).

Oracle: at a pool's first touch in a block its cumulative prices advance by
the price as the last block left it times the milliseconds since (Uniswap
v2's accumulators, Q64), and an observation is kept every
``dex_twap_window_ms / 8`` at most, eight at most; :func:`twap_q64` reads the
time-weighted average over the window. Swaps in the current block add no time
at their price, so one block cannot move its own average.

Circuit breaker: a swap that would leave a pool's price more than
``dex_breaker_bps`` away from its TWAP (exactly at the bound is allowed; 0
turns breakers off) is refused with ``circuit_breaker``, and the pool takes no
swap for the rest of the block and ``dex_breaker_blocks`` blocks after it
(``pool_halted``). Before its window has any time in it, the TWAP is the price
at the start of the block.

State: the pool at ``/token/pool/<a>|<b>``, the dealer reserve at
``/token/dealer/reserve``, each dealer's use of its quota at
``/token/dealer/used/<address>``.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from focusflow.chain.errors import (
    CircuitBreakerError,
    GenesisError,
    InsufficientLiquidityError,
    MalformedMessageError,
    NotDealerError,
    PoolExistsError,
    PoolHaltedError,
    QuotaExceededError,
    SlippageError,
    UnknownPoolError,
)
from focusflow.chain.genesis import Genesis
from focusflow.chain.module import BlockContext, Deltas, Handler, MessageBody, TxContext
from focusflow.chain.module_params import BASIS_POINTS, ModuleParams, param_section
from focusflow.chain.params import ChainParams
from focusflow.chain.state import PendingState, Readable
from focusflow.core.encoding import decode, encode
from focusflow.core.errors import InvalidAddressError
from focusflow.core.keys import decode_address, encode_address
from focusflow.modules import amm
from focusflow.modules.accounts import amount_field, only_fields
from focusflow.modules.accounts import field as body_field
from focusflow.modules.economy_params import EconomyParams
from focusflow.modules.tokens import add, burn, denom_field, is_denom, mint, sub
from focusflow.state_schema.dex import (
    DEALER_USED_PREFIX,
    RESERVE_KEY,
    Pool,
    dealer_reserve,
    get_pool,
    pair,
    pool_key,
    share_denom,
)
from focusflow.state_schema.tokens import CYB, H

_NAMES = frozenset(
    {
        "dex_fee_bps",
        "dex_protocol_bps",
        "dex_breaker_bps",
        "dex_breaker_blocks",
        "dex_twap_window_ms",
        "dex_max_hops",
        "dealer_period",
        "dex_dealers",
    }
)


@param_section
@dataclass(frozen=True)
class DexParams(ModuleParams):
    """The exchange's parameters: the genesis's ``dex_*`` and ``dealer_period``.
    All were added after chains were started, so each is left out of the
    genesis hash at its default, and the validators may change each by vote."""

    SECTION = "dex"
    OMITTED_AT_DEFAULT = _NAMES
    GOVERNED = _NAMES
    POSITIVE = frozenset({"dex_max_hops", "dealer_period"})
    IN_BASIS_POINTS = frozenset({"dex_fee_bps", "dex_protocol_bps"})

    #: The swap fee, the protocol's share of it (basis points of the fee), the
    #: price move against the TWAP that halts a pool, for how many blocks after
    #: the tripping one, the TWAP's window, and the longest route.
    dex_fee_bps: int = 30
    dex_protocol_bps: int = 0
    dex_breaker_bps: int = 1_000
    dex_breaker_blocks: int = 0
    dex_twap_window_ms: int = 600_000
    dex_max_hops: int = 4
    #: Primary dealers: ``{"address": "focus1...", "quota": n}`` accounts that
    #: may mint H against CYB (and redeem it) at par, ``quota`` each per
    #: ``dealer_period`` blocks.
    dealer_period: int = 1_000
    dex_dealers: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def check_value(cls, name: str, value: Any) -> None:
        if name == "dex_dealers":
            _check_dealers(value)
        else:
            super().check_value(name, value)

    def check(self) -> None:
        if self.dex_fee_bps >= BASIS_POINTS:
            raise GenesisError(
                "params.dex_fee_bps must be below 10_000 (a swap must pay something)"
            )


def _check_dealers(value: Any) -> None:
    """``dex_dealers``: a list of ``{"address": "focus1...", "quota": n}``, each address once."""
    if not isinstance(value, list):
        raise GenesisError("params.dex_dealers must be a list")
    seen: set[str] = set()
    for i, entry in enumerate(value):
        where = f"params.dex_dealers[{i}]"
        if not isinstance(entry, dict) or set(entry) != {"address", "quota"}:
            raise GenesisError(f"{where} must be an object with address and quota")
        address, quota = entry["address"], entry["quota"]
        try:
            decode_address(address)
        except InvalidAddressError as exc:
            raise GenesisError(f"{where}.address: {exc}") from None
        if not isinstance(quota, int) or isinstance(quota, bool) or quota < 0:
            raise GenesisError(f"{where}.quota must be a non-negative integer")
        if address in seen:
            raise GenesisError(f"{where}: duplicate address")
        seen.add(address)


@dataclass
class HaltedPools:
    """The exchange's section of a block: the pools (``"a|b"``) whose circuit
    breaker tripped in it. They take no more swaps in the block, even though
    the tripping transaction failed, and stay halted ``dex_breaker_blocks``
    after it."""

    SECTION: ClassVar[str] = "dex"

    pools: set[str] = field(default_factory=set)

    def copy(self) -> HaltedPools:
        return HaltedPools(set(self.pools))


#: Where the protocol's share of swap fees is paid: an address no key holds.
PROTOCOL_ADDRESS = hashlib.sha256(b"focusflow/module/dex").digest()[:20]
#: Observations a pool keeps for its TWAP.
OBSERVATIONS = 8


def pool_json(pool: Pool, now_ms: int, params: ChainParams) -> dict[str, Any]:
    """A pool as the API shows it: reserves, shares, its price and its TWAP now."""
    twap = twap_of(pool, now_ms, params)
    return {
        "a": pool.a,
        "b": pool.b,
        "reserve_a": pool.reserve_a,
        "reserve_b": pool.reserve_b,
        "shares": pool.shares,
        "share_denom": share_denom(pool.a, pool.b),
        "price_q64": amm.price_q64(pool.reserve_a, pool.reserve_b),
        "price": pool.reserve_b / pool.reserve_a if pool.reserve_a else 0.0,
        "twap_q64": twap,
        "twap": twap / amm.Q64,
        "halted_until": pool.halted_until,
    }


def touch(pool: Pool, now_ms: int, params: ChainParams) -> None:
    """Advance the oracle to ``now_ms`` at the price the last block left
    (a block's first touch of the pool)."""
    if now_ms <= pool.last_ms:
        return
    elapsed = now_ms - pool.last_ms
    pool.cum_a += amm.price_q64(pool.reserve_a, pool.reserve_b) * elapsed
    pool.cum_b += amm.price_q64(pool.reserve_b, pool.reserve_a) * elapsed
    pool.last_ms = now_ms
    pool.open_q64 = amm.price_q64(pool.reserve_a, pool.reserve_b)
    spacing = DexParams.of(params).dex_twap_window_ms // OBSERVATIONS
    if not pool.observations or now_ms - pool.observations[-1][0] >= spacing:
        pool.observations = [*pool.observations, [now_ms, pool.cum_a, pool.cum_b]][-OBSERVATIONS:]


def twap_of(pool: Pool, now_ms: int, params: ChainParams, of_b: bool = False) -> int:
    """The time-weighted average price of ``a`` in ``b`` (``of_b``: of ``b`` in
    ``a``) over the window ending at ``now_ms``, Q64: from the newest
    observation at least the window old (else the oldest) to now."""
    price_a = amm.price_q64(pool.reserve_a, pool.reserve_b)
    price_b = amm.price_q64(pool.reserve_b, pool.reserve_a)
    # The accumulators as of now_ms, had the pool been touched then.
    gap = max(0, now_ms - pool.last_ms)
    cum_a, cum_b = pool.cum_a + price_a * gap, pool.cum_b + price_b * gap
    start = now_ms - DexParams.of(params).dex_twap_window_ms
    chosen = pool.observations[0] if pool.observations else None
    for obs in pool.observations:
        if obs[0] <= start:
            chosen = obs
    if chosen is None or chosen[0] >= now_ms:
        if gap:  # no observation before now, but a price held since the last touch
            return price_b if of_b else price_a
        opening = pool.open_q64
        if of_b:
            return (amm.Q64 * amm.Q64) // opening if opening else 0
        return opening
    span = now_ms - chosen[0]
    return ((cum_b - chosen[2]) if of_b else (cum_a - chosen[1])) // span


def twap_q64(
    state: Readable, base: str, quote: str, now_ms: int, params: ChainParams
) -> int | None:
    """The TWAP of one ``base`` in ``quote`` (Q64), or None without a pool: what
    modules (the economy's premium signal) read."""
    pool = get_pool(state, base, quote)
    if pool is None:
        return None
    return twap_of(pool, now_ms, params, of_b=(base != pool.a))


def twap_reader(
    state: Readable, now_ms: int, params: ChainParams
) -> Callable[[str, str], int | None]:
    """What contracts read as a pair's TWAP (WASM's ``twap_of``, the EVM's TWAP
    precompile): the pool's at ``now_ms`` in ``state`` (a call's own state, so
    the scheduler sees the read), None for a pair without a pool or text that
    names no denom."""

    def read(base: str, quote: str) -> int | None:
        if not (is_denom(base) and is_denom(quote)) or base == quote:
            return None
        return twap_q64(state, base, quote, now_ms, params)

    return read


def path_field(body: dict[str, Any], max_hops: int) -> list[str]:
    raw = body_field(body, "path", list)
    if not 2 <= len(raw) <= max_hops + 1:
        raise MalformedMessageError(f"field 'path' must name 2 to {max_hops + 1} denoms")
    path = [denom_field({"path": d}, "path") for d in raw]
    hops = [pair(x, y) for x, y in itertools.pairwise(path)]
    if any(x == y for x, y in hops):
        raise MalformedMessageError("a hop of 'path' swaps a denom for itself")
    if len(set(hops)) != len(hops):
        raise MalformedMessageError("'path' goes through a pool twice")
    return path


def _min_field(body: dict[str, Any], name: str) -> int:
    value = body_field(body, name, int)
    if not 0 <= value < 2**127:
        raise MalformedMessageError(f"field {name!r} must be a non-negative integer")
    return int(value)


def _dealer_quota(params: ChainParams, address: bytes) -> int | None:
    for entry in DexParams.of(params).dex_dealers:
        if decode_address(entry["address"]) == address:
            return int(entry["quota"])
    return None


class Dex:
    name = "dex"

    def handlers(self) -> Mapping[str, Handler]:
        return {
            "dex.create": self.create,
            "dex.add": self.add,
            "dex.remove": self.remove,
            "dex.swap": self.swap,
            "dex.swap_out": self.swap_out,
            "dex.mint": self.dealer_mint,
            "dex.redeem": self.dealer_redeem,
        }

    def init_genesis(self, state: PendingState, genesis: Genesis, deltas: Deltas) -> None:
        """Nothing: pools are opened by transactions."""

    def end_block(self, ctx: BlockContext) -> None:
        """Pools whose breaker tripped in this block stay halted ``dex_breaker_blocks`` more."""
        for key in sorted(ctx.section(HaltedPools).pools):
            a, b = key.split("|", 1)
            pool = get_pool(ctx.state, a, b)
            if pool is not None:
                pool.halted_until = ctx.height + DexParams.of(ctx.params).dex_breaker_blocks
                ctx.state.put(pool_key(a, b), pool.encode())

    # --- liquidity -------------------------------------------------------------
    def create(self, ctx: TxContext, body: MessageBody) -> None:
        only_fields(body, "a", "b", "amount_a", "amount_b")
        a, b = denom_field(body, "a"), denom_field(body, "b")
        amount_a, amount_b = amount_field(body, "amount_a"), amount_field(body, "amount_b")
        if a == b:
            raise MalformedMessageError("a pool needs two different denoms")
        if a.encode() > b.encode():
            a, b, amount_a, amount_b = b, a, amount_b, amount_a
        if get_pool(ctx.state, a, b) is not None:
            raise PoolExistsError(f"the pool {a}/{b} exists; add liquidity to it")
        shares = amm.initial_shares(amount_a, amount_b)
        if shares <= 0:
            raise InsufficientLiquidityError(
                f"a first deposit needs isqrt(amount_a * amount_b) above {amm.MINIMUM_LIQUIDITY}"
            )
        sub(ctx.state, ctx.sender, a, amount_a, "dex.create")
        sub(ctx.state, ctx.sender, b, amount_b, "dex.create")
        lp = share_denom(a, b)
        mint(ctx.state, ctx.sender, lp, shares)
        mint(ctx.state, None, lp, amm.MINIMUM_LIQUIDITY)  # locked in the pool forever
        pool = Pool(a, b, amount_a, amount_b, shares + amm.MINIMUM_LIQUIDITY)
        pool.last_ms = ctx.block.time_ms
        pool.open_q64 = amm.price_q64(amount_a, amount_b)
        pool.observations = [[ctx.block.time_ms, 0, 0]]
        ctx.state.put(pool_key(a, b), pool.encode())
        ctx.emit("pool.create", sender=ctx.sender, a=a, b=b, amount_a=amount_a,
                 amount_b=amount_b, shares=shares)  # fmt: skip

    def _pool(self, ctx: TxContext, a: str, b: str) -> Pool:
        pool = get_pool(ctx.state, a, b)
        if pool is None:
            raise UnknownPoolError(f"no pool for {a} and {b}")
        touch(pool, ctx.block.time_ms, ctx.params)
        return pool

    def add(self, ctx: TxContext, body: MessageBody) -> None:
        only_fields(body, "a", "b", "max_a", "max_b", "min_shares")
        a, b = denom_field(body, "a"), denom_field(body, "b")
        max_a, max_b = amount_field(body, "max_a"), amount_field(body, "max_b")
        min_shares = _min_field(body, "min_shares")
        if a.encode() > b.encode():
            a, b, max_a, max_b = b, a, max_b, max_a
        pool = self._pool(ctx, a, b)
        paid_a, paid_b, minted = amm.deposit(
            max_a, max_b, pool.reserve_a, pool.reserve_b, pool.shares
        )
        if minted <= 0 or minted < min_shares:
            raise SlippageError(f"the deposit mints {minted} shares, min_shares is {min_shares}")
        sub(ctx.state, ctx.sender, a, paid_a, "dex.add")
        sub(ctx.state, ctx.sender, b, paid_b, "dex.add")
        mint(ctx.state, ctx.sender, share_denom(a, b), minted)
        pool.reserve_a += paid_a
        pool.reserve_b += paid_b
        pool.shares += minted
        ctx.state.put(pool_key(a, b), pool.encode())
        ctx.emit("pool.add", sender=ctx.sender, a=a, b=b, amount_a=paid_a, amount_b=paid_b,
                 shares=minted)  # fmt: skip

    def remove(self, ctx: TxContext, body: MessageBody) -> None:
        only_fields(body, "a", "b", "shares", "min_a", "min_b")
        a, b = denom_field(body, "a"), denom_field(body, "b")
        burned = amount_field(body, "shares")
        min_a, min_b = _min_field(body, "min_a"), _min_field(body, "min_b")
        if a.encode() > b.encode():
            a, b, min_a, min_b = b, a, min_b, min_a
        pool = self._pool(ctx, a, b)
        out_a, out_b = amm.withdrawal(burned, pool.reserve_a, pool.reserve_b, pool.shares)
        if out_a < min_a or out_b < min_b:
            raise SlippageError(
                f"the withdrawal pays {out_a} {a} and {out_b} {b}, under the minimums"
            )
        if out_a >= pool.reserve_a or out_b >= pool.reserve_b:
            raise InsufficientLiquidityError("a withdrawal cannot empty the pool")
        burn(ctx.state, ctx.sender, share_denom(a, b), burned, "dex.remove")
        add(ctx.state, ctx.sender, a, out_a)
        add(ctx.state, ctx.sender, b, out_b)
        pool.reserve_a -= out_a
        pool.reserve_b -= out_b
        pool.shares -= burned
        ctx.state.put(pool_key(a, b), pool.encode())
        ctx.emit("pool.remove", sender=ctx.sender, a=a, b=b, amount_a=out_a, amount_b=out_b,
                 shares=burned)  # fmt: skip

    # --- swaps -----------------------------------------------------------------
    def swap(self, ctx: TxContext, body: MessageBody) -> None:
        only_fields(body, "path", "amount_in", "min_out")
        path = path_field(body, DexParams.of(ctx.params).dex_max_hops)
        amount = amount_field(body, "amount_in")
        min_out = _min_field(body, "min_out")
        sub(ctx.state, ctx.sender, path[0], amount, "dex.swap")
        out = amount
        for x, y in itertools.pairwise(path):
            out = swap_in(ctx.state, ctx.block, x, y, out, None)
        if out < min_out:
            raise SlippageError(f"the swap pays {out} {path[-1]}, min_out is {min_out}")
        add(ctx.state, ctx.sender, path[-1], out)
        ctx.emit("swap", sender=ctx.sender, path=path, amount_in=amount, amount_out=out)

    def swap_out(self, ctx: TxContext, body: MessageBody) -> None:
        only_fields(body, "path", "amount_out", "max_in")
        path = path_field(body, DexParams.of(ctx.params).dex_max_hops)
        want = amount_field(body, "amount_out")
        max_in = _min_field(body, "max_in")
        params = ctx.params
        fee_bps = DexParams.of(params).dex_fee_bps
        needs = [want]
        for x, y in reversed(list(itertools.pairwise(path))):
            pool = get_pool(ctx.state, x, y)
            if pool is None:
                raise UnknownPoolError(f"no pool for {x} and {y}")
            reserve_in, reserve_out = pool.reserves(x)
            if needs[0] >= reserve_out:
                raise InsufficientLiquidityError(
                    f"the {x}/{y} pool holds {reserve_out} {y}, not more than {needs[0]}"
                )
            net = amm.amount_in(needs[0], reserve_in, reserve_out, fee_bps)
            needs.insert(0, gross_up(net, params))
        if needs[0] > max_in:
            raise SlippageError(f"the swap needs {needs[0]} {path[0]}, max_in is {max_in}")
        sub(ctx.state, ctx.sender, path[0], needs[0], "dex.swap_out")
        for i, (x, y) in enumerate(itertools.pairwise(path)):
            swap_in(ctx.state, ctx.block, x, y, needs[i], needs[i + 1])
        add(ctx.state, ctx.sender, path[-1], want)
        ctx.emit("swap", sender=ctx.sender, path=path, amount_in=needs[0], amount_out=want)

    # --- primary dealers -------------------------------------------------------
    def _use_quota(self, ctx: TxContext, amount: int) -> None:
        quota = _dealer_quota(ctx.params, ctx.sender)
        if quota is None:
            raise NotDealerError(f"{encode_address(ctx.sender)} is not a primary dealer")
        period = ctx.height // DexParams.of(ctx.params).dealer_period
        key = DEALER_USED_PREFIX + ctx.sender
        raw = ctx.state.get(key)
        used_period, used = (period, 0) if raw is None else decode(raw, "dealer use")
        if used_period != period:
            used = 0
        if used + amount > quota:
            raise QuotaExceededError(
                f"the dealer used {used} of its quota {quota} this period; {amount} more is over it"
            )
        ctx.state.put(key, encode([period, used + amount]))

    def dealer_mint(self, ctx: TxContext, body: MessageBody) -> None:
        only_fields(body, "amount")
        amount = amount_field(body)
        par = EconomyParams.of(ctx.params).h_par_bps
        minted = amount * amm.BPS // par if par else 0
        if minted <= 0:
            raise MalformedMessageError("the amount buys no H at par")
        self._use_quota(ctx, amount)
        sub(ctx.state, ctx.sender, CYB, amount, "dex.mint")
        ctx.state.put(RESERVE_KEY, encode(dealer_reserve(ctx.state) + amount))
        mint(ctx.state, ctx.sender, H, minted)
        ctx.emit("dealer.mint", dealer=ctx.sender, cyb=amount, h=minted)

    def dealer_redeem(self, ctx: TxContext, body: MessageBody) -> None:
        only_fields(body, "amount")
        amount = amount_field(body)
        paid = amount * EconomyParams.of(ctx.params).h_par_bps // amm.BPS
        reserve = dealer_reserve(ctx.state)
        if paid <= 0 or paid > reserve:
            raise InsufficientLiquidityError(f"the dealer reserve holds {reserve} CYB, not {paid}")
        self._use_quota(ctx, paid)
        burn(ctx.state, ctx.sender, H, amount, "dex.redeem")
        ctx.state.put(RESERVE_KEY, encode(reserve - paid))
        add(ctx.state, ctx.sender, CYB, paid)
        ctx.emit("dealer.redeem", dealer=ctx.sender, h=amount, cyb=paid)


def gross_up(net: int, params: ChainParams) -> int:
    """The least input whose part left after the protocol's cut is at least ``net``.

    The cut of ``x`` is ``x c // D`` (``c = fee_bps * protocol_bps``, ``D =
    10^8``), so what is left, ``x - x c // D = ceil(x (D - c) / D)``, is at
    least ``net`` exactly when ``x (D - c) > (net - 1) D``: the least such
    ``x`` is ``(net - 1) D // (D - c) + 1``. (``ceil(net D / (D - c))``, which
    ignores that the cut rounds down, is one unit above it, at times two, and
    made an exact-out swap charge the trader more than the pool needed.)
    """
    dex = DexParams.of(params)
    cut = dex.dex_fee_bps * dex.dex_protocol_bps
    if not cut:
        return net
    scale = amm.BPS * amm.BPS
    return (net - 1) * scale // (scale - cut) + 1


def swap_in(
    state: PendingState,
    block: BlockContext,
    denom_in: str,
    denom_out: str,
    amount: int,
    exact_out: int | None,
) -> int:
    """One hop: ``amount`` of ``denom_in`` (already taken from its payer) into
    the pool, its output out of it (``exact_out`` if given, else what the
    formula pays); the protocol's cut is paid here. Checks the pool's halt
    and breaker; returns what comes out."""
    params = block.params
    dex = DexParams.of(params)
    pool = get_pool(state, denom_in, denom_out)
    if pool is None:
        raise UnknownPoolError(f"no pool for {denom_in} and {denom_out}")
    key = f"{pool.a}|{pool.b}"
    halted = block.section(HaltedPools).pools
    if key in halted or pool.halted_until >= block.height:
        raise PoolHaltedError(
            f"the {pool.a}/{pool.b} pool takes no swaps until after block "
            f"{max(pool.halted_until, block.height)} (its circuit breaker tripped)"
        )
    touch(pool, block.time_ms, params)
    cut = amm.protocol_cut(amount, dex.dex_fee_bps, dex.dex_protocol_bps)
    net = amount - cut
    reserve_in, reserve_out = pool.reserves(denom_in)
    out = amm.amount_out(net, reserve_in, reserve_out, dex.dex_fee_bps)
    if exact_out is not None:
        if out < exact_out:  # the backward pass rounded up, so this cannot happen
            raise InsufficientLiquidityError(f"the hop pays {out}, not {exact_out}")
        out = exact_out
    if out <= 0 or out >= reserve_out:
        raise InsufficientLiquidityError(
            f"a swap of {amount} {denom_in} pays nothing out of the {pool.a}/{pool.b} pool"
        )
    new_in, new_out = reserve_in + net, reserve_out - out
    if new_in * new_out < reserve_in * reserve_out:  # amm's rounding makes this impossible
        raise InsufficientLiquidityError("the swap would lower the pool's invariant")
    pool.set_reserves(denom_in, new_in, new_out)
    if dex.dex_breaker_bps:
        reference = twap_of(pool, block.time_ms, params)
        if reference and amm.beyond_bound(
            pool.reserve_a, pool.reserve_b, reference, dex.dex_breaker_bps
        ):
            halted.add(key)
            raise CircuitBreakerError(
                f"the swap would move the {pool.a}/{pool.b} price more than "
                f"{dex.dex_breaker_bps} bps from its TWAP; the pool halts for this block"
            )
    state.put(pool_key(pool.a, pool.b), pool.encode())
    if cut:
        add(state, PROTOCOL_ADDRESS, denom_in, cut)
    return out
