"""``focusflow tx swap``, ``tx pool``, ``tx dealer``, ``tx rewards``: the exchange, the economy.

Each command sends one message of ``modules.dex`` or ``modules.economy`` with
the options every ``tx`` command takes (``tx_options``). What the node's state
shows would fail is refused before anything is signed, with the code the
chain would give it: a pair without a pool (``unknown_pool``), a pool that
exists (``pool_exists``), a swap whose quote misses ``--min-out`` or passes
``--max-in`` (``slippage``), an amount the pool cannot serve
(``insufficient_liquidity``), a sender who is no primary dealer
(``not_dealer``), a claim on a chain without the economy
(``nothing_to_claim``); balances of every denom are checked by
``txbuild.preflight``. A quote is of the state the node answered with: the
chain decides on the state of the block that carries the transaction
(other swaps first, the circuit breaker against the TWAP), which is what
``--min-out`` and ``--max-in`` are for. docs/cli.md.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Annotated, Any

import typer

from focusflow.cli.tx_cmd import _amount, _msg, _submit, check_denom
from focusflow.cli.tx_options import TxOptions, tx_options
from focusflow.core.errors import InvalidParameterError

if TYPE_CHECKING:
    from focusflow.cli.txbuild import Pinned
    from focusflow.client import NodeClient

pool_app = typer.Typer(
    help="Pools of the exchange: open one, add liquidity, take it out.", no_args_is_help=True
)
dealer_app = typer.Typer(
    help="Primary dealers: mint H against CYB at par, or redeem it.", no_args_is_help=True
)
rewards_app = typer.Typer(help="Rewards of bonded stake, paid in H.", no_args_is_help=True)


def _minimum(value: int, what: str) -> int:
    if not 0 <= value < 2**63:
        raise InvalidParameterError(f"{what} {value} must be an integer from 0 to 2^63 - 1")
    return value


def _pair(a: str, b: str) -> tuple[str, str]:
    a, b = check_denom(a, "denom"), check_denom(b, "denom")
    if a == b:
        raise InvalidParameterError(f"a pool needs two different denoms, not {a} twice")
    return a, b


def fetch_pool(api: NodeClient, a: str, b: str) -> dict[str, Any] | None:
    """The pool of ``a`` and ``b`` as the node shows it, or None when there is none.

    Base denoms are asked by their path (``GET /v1/pools/{a}/{b}``); a pair with a
    share denom, whose slashes no path segment carries, is found in the list."""
    from focusflow.modules.tokens import BASE_DENOM
    from focusflow.state_schema.dex import pair

    if BASE_DENOM.fullmatch(a) and BASE_DENOM.fullmatch(b):
        return api.pool(a, b)
    x, y = pair(a, b)
    listed = api.pools().get("pools", [])
    return next((p for p in listed if (p.get("a"), p.get("b")) == (x, y)), None)


def _existing_pool(api: NodeClient, a: str, b: str) -> dict[str, Any]:
    from focusflow.chain.errors import UnknownPoolError

    found = fetch_pool(api, a, b)
    if found is None:
        raise UnknownPoolError(f"no pool for {a} and {b}; nothing was sent")
    return found


def _reserves(pool: dict[str, Any], denom_in: str) -> tuple[int, int]:
    """``(reserve of denom_in, reserve of the other)``."""
    if denom_in == pool["a"]:
        return int(pool["reserve_a"]), int(pool["reserve_b"])
    return int(pool["reserve_b"]), int(pool["reserve_a"])


def _afford(api: NodeClient, address: str, denom: str, amount: int, what: str) -> None:
    from focusflow.chain.errors import InsufficientFundsError

    held = api.balances(address)
    have = None if held is None else held.get(denom, 0)
    if have is not None and have < amount:
        raise InsufficientFundsError(
            f"{address} has {have} {denom}, needs {amount} {denom} for {what}; nothing was sent"
        )


# --------------------------------------------------------------------- swaps


def quote_in(path: list[str], amount: int, pools: list[dict[str, Any]], params: Any) -> int:
    """What a swap of ``amount`` along ``path`` pays out of ``pools`` (one per hop)
    under ``params``: the chain's own arithmetic (``modules.dex.swap_in``)."""
    from focusflow.chain.errors import InsufficientLiquidityError
    from focusflow.modules import amm
    from focusflow.modules.dex import DexParams

    dex = DexParams.of(params)
    out = amount
    for (x, y), pool in zip(itertools.pairwise(path), pools, strict=True):
        reserve_in, reserve_out = _reserves(pool, x)
        net = out - amm.protocol_cut(out, dex.dex_fee_bps, dex.dex_protocol_bps)
        paid = amm.amount_out(net, reserve_in, reserve_out, dex.dex_fee_bps)
        if paid <= 0 or paid >= reserve_out:
            raise InsufficientLiquidityError(
                f"{out} {x} buys nothing out of the {x}/{y} pool ({reserve_out} {y}); "
                "nothing was sent"
            )
        out = paid
    return out


def quote_out(path: list[str], amount: int, pools: list[dict[str, Any]], params: Any) -> int:
    """What a swap must put in to take exactly ``amount`` of the last denom out of
    ``pools``: the chain's own backward pass (``modules.dex.Dex.swap_out``)."""
    from focusflow.chain.errors import InsufficientLiquidityError
    from focusflow.modules import amm
    from focusflow.modules.dex import DexParams, gross_up

    fee_bps = DexParams.of(params).dex_fee_bps
    need = amount
    hops = list(zip(itertools.pairwise(path), pools, strict=True))
    for (x, y), pool in reversed(hops):
        reserve_in, reserve_out = _reserves(pool, x)
        if need >= reserve_out:
            raise InsufficientLiquidityError(
                f"the {x}/{y} pool holds {reserve_out} {y}, not more than {need}; nothing was sent"
            )
        need = gross_up(amm.amount_in(need, reserve_in, reserve_out, fee_bps), params)
    return need


def _check_path(path: list[str]) -> list[str]:
    if len(path) < 2:
        raise InvalidParameterError("a swap's path names at least two denoms: FROM TO")
    path = [check_denom(d, "path denom") for d in path]
    hops = [tuple(sorted((x, y))) for x, y in itertools.pairwise(path)]
    if any(x == y for x, y in hops):
        raise InvalidParameterError("a hop of the path swaps a denom for itself")
    if len(set(hops)) != len(hops):
        raise InvalidParameterError("the path goes through a pool twice")
    return path


@tx_options()
def swap_cmd(
    path: Annotated[
        list[str],
        typer.Argument(metavar="FROM [VIA ...] TO", help="Denoms: each hop swaps in one pool."),
    ],
    amount_in: Annotated[
        int | None, typer.Option("--amount-in", help="Swap exactly this much of FROM.")
    ] = None,
    min_out: Annotated[
        int | None, typer.Option("--min-out", help="With --amount-in: refused below this of TO.")
    ] = None,
    amount_out: Annotated[
        int | None, typer.Option("--amount-out", help="Take exactly this much of TO.")
    ] = None,
    max_in: Annotated[
        int | None, typer.Option("--max-in", help="With --amount-out: refused above this of FROM.")
    ] = None,
    *,
    opts: TxOptions,
) -> None:
    """Swap FROM for TO through the pools of consecutive denoms: exactly --amount-in
    for at least --min-out, or exactly --amount-out for at most --max-in."""
    exact_in = amount_in is not None and min_out is not None
    exact_out = amount_out is not None and max_in is not None
    options = {"--amount-in": amount_in, "--min-out": min_out, "--amount-out": amount_out,
               "--max-in": max_in}  # fmt: skip
    given = [name for name, value in options.items() if value is not None]
    if exact_in == exact_out or len(given) != 2:
        raise InvalidParameterError(
            "give --amount-in N with --min-out M (0: any output), or --amount-out N with "
            f"--max-in M; got {' '.join(given) or 'neither'}"
        )
    path = _check_path(path)
    shown = " -> ".join(path)
    extra: dict[str, Any] = {"path": path}
    describe: list[str] = []
    if exact_in:
        assert amount_in is not None and min_out is not None
        body: dict[str, Any] = {"path": path, "amount_in": _amount(amount_in),
                                "min_out": _minimum(min_out, "--min-out")}  # fmt: skip
        extra.update(amount_in=amount_in, min_out=min_out)
        msg = _msg("dex.swap", body)
    else:
        assert amount_out is not None and max_in is not None
        body = {"path": path, "amount_out": _amount(amount_out),
                "max_in": _minimum(max_in, "--max-in")}  # fmt: skip
        extra.update(amount_out=amount_out, max_in=max_in)
        msg = _msg("dex.swap_out", body)

    def check(api: NodeClient, pin: Pinned, sender: str) -> dict[str, int] | None:
        from focusflow.chain.errors import SlippageError
        from focusflow.modules.dex import DexParams

        params = pin.params
        hops = DexParams.of(params).dex_max_hops
        if len(path) - 1 > hops:
            raise InvalidParameterError(
                f"the path takes {len(path) - 1} hops; the chain allows dex_max_hops={hops}"
            )
        pools = [_existing_pool(api, x, y) for x, y in itertools.pairwise(path)]
        if exact_in:
            assert amount_in is not None and min_out is not None
            out = quote_in(path, amount_in, pools, params)
            if out < min_out:
                raise SlippageError(
                    f"the swap would pay {out} {path[-1]} now, under --min-out {min_out}; "
                    "nothing was sent"
                )
            extra["quote_out"] = out
            describe.append(f"swap {amount_in} {shown}: {out} {path[-1]} now, at least {min_out}")
            return None  # amount_in is spent in full: txbuild.spends counts it
        assert amount_out is not None and max_in is not None
        need = quote_out(path, amount_out, pools, params)
        if need > max_in:
            raise SlippageError(
                f"the swap would need {need} {path[0]} now, over --max-in {max_in}; "
                "nothing was sent"
            )
        extra["quote_in"] = need
        describe.append(f"swap {shown} for {amount_out}: {need} {path[0]} now, at most {max_in}")
        return {path[0]: need}

    _submit(opts, [msg], extra, describe, check=check)


# --------------------------------------------------------------------- pools


@pool_app.command("create")
@tx_options()
def pool_create_cmd(
    a: Annotated[str, typer.Argument(help="One denom of the pair.")],
    b: Annotated[str, typer.Argument(help="The other denom.")],
    amount_a: Annotated[int, typer.Argument(help="First deposit of A.")],
    amount_b: Annotated[int, typer.Argument(help="First deposit of B: sets the price.")],
    *,
    opts: TxOptions,
) -> None:
    """Open the pool of A and B (one per pair) with its first deposit; its shares
    (lp/A/B, the pair in byte order) go to the sender, 1,000 of them locked."""
    from focusflow.chain.errors import InsufficientLiquidityError, PoolExistsError
    from focusflow.modules import amm

    a, b = _pair(a, b)
    body = {"a": a, "b": b, "amount_a": _amount(amount_a), "amount_b": _amount(amount_b)}
    if amm.initial_shares(amount_a, amount_b) <= 0:
        raise InsufficientLiquidityError(
            f"a first deposit needs isqrt(amount_a * amount_b) above {amm.MINIMUM_LIQUIDITY}; "
            "nothing was sent"
        )

    def check(api: NodeClient, pin: Pinned, sender: str) -> None:
        if fetch_pool(api, a, b) is not None:
            raise PoolExistsError(
                f"the pool {a}/{b} exists; add liquidity to it (tx pool add); nothing was sent"
            )

    extra = {"a": a, "b": b, "amount_a": amount_a, "amount_b": amount_b}
    _submit(opts, [_msg("dex.create", body)], extra, check=check)


@pool_app.command("add")
@tx_options()
def pool_add_cmd(
    a: Annotated[str, typer.Argument(help="One denom of the pair.")],
    b: Annotated[str, typer.Argument(help="The other denom.")],
    max_a: Annotated[int, typer.Argument(help="At most this much of A.")],
    max_b: Annotated[int, typer.Argument(help="At most this much of B.")],
    min_shares: Annotated[
        int, typer.Option("--min-shares", help="Refused if fewer shares are minted.")
    ] = 0,
    *,
    opts: TxOptions,
) -> None:
    """Deposit into the pool of A and B at its ratio, at most MAX_A and MAX_B."""
    from focusflow.chain.errors import SlippageError
    from focusflow.modules import amm

    a, b = _pair(a, b)
    body = {"a": a, "b": b, "max_a": _amount(max_a), "max_b": _amount(max_b),
            "min_shares": _minimum(min_shares, "--min-shares")}  # fmt: skip
    extra: dict[str, Any] = {"a": a, "b": b, "max_a": max_a, "max_b": max_b}

    def check(api: NodeClient, pin: Pinned, sender: str) -> dict[str, int]:
        pool = _existing_pool(api, a, b)
        reserve_a, reserve_b = _reserves(pool, a)
        paid_a, paid_b, minted = amm.deposit(max_a, max_b, reserve_a, reserve_b, pool["shares"])
        if minted <= 0 or minted < min_shares:
            raise SlippageError(
                f"the deposit would mint {minted} shares now, --min-shares is {min_shares}; "
                "nothing was sent"
            )
        extra.update(quote_a=paid_a, quote_b=paid_b, quote_shares=minted)
        return {a: paid_a, b: paid_b}

    _submit(opts, [_msg("dex.add", body)], extra, check=check)


@pool_app.command("remove")
@tx_options()
def pool_remove_cmd(
    a: Annotated[str, typer.Argument(help="One denom of the pair.")],
    b: Annotated[str, typer.Argument(help="The other denom.")],
    shares: Annotated[int, typer.Argument(help="Shares (lp/A/B) to burn.")],
    min_a: Annotated[int, typer.Option("--min-a", help="Refused if less of A comes out.")] = 0,
    min_b: Annotated[int, typer.Option("--min-b", help="Refused if less of B comes out.")] = 0,
    *,
    opts: TxOptions,
) -> None:
    """Burn SHARES of the pool of A and B for their part of both reserves."""
    from focusflow.chain.errors import InsufficientLiquidityError, SlippageError
    from focusflow.modules import amm

    a, b = _pair(a, b)
    body = {"a": a, "b": b, "shares": _amount(shares), "min_a": _minimum(min_a, "--min-a"),
            "min_b": _minimum(min_b, "--min-b")}  # fmt: skip
    extra: dict[str, Any] = {"a": a, "b": b, "shares": shares}

    def check(api: NodeClient, pin: Pinned, sender: str) -> None:
        pool = _existing_pool(api, a, b)
        # the shares before the amounts: a withdrawal of more shares than held
        # is a lack of shares, whatever it would take out of the pool
        _afford(api, sender, pool["share_denom"], shares, "the withdrawal")
        reserve_a, reserve_b = _reserves(pool, a)
        out_a, out_b = amm.withdrawal(shares, reserve_a, reserve_b, pool["shares"])
        if out_a < min_a or out_b < min_b:
            raise SlippageError(
                f"the withdrawal would pay {out_a} {a} and {out_b} {b} now, under --min-a "
                f"{min_a} or --min-b {min_b}; nothing was sent"
            )
        if out_a >= reserve_a or out_b >= reserve_b:
            raise InsufficientLiquidityError("a withdrawal cannot empty the pool; nothing was sent")
        extra.update(quote_a=out_a, quote_b=out_b)

    _submit(opts, [_msg("dex.remove", body)], extra, check=check)


# --------------------------------------------------------------------- dealers and rewards


def _dealer_check(api: NodeClient, pin: Pinned, sender: str) -> None:
    from focusflow.chain.errors import NotDealerError
    from focusflow.modules.dex import DexParams

    if not any(entry.get("address") == sender for entry in DexParams.of(pin.params).dex_dealers):
        raise NotDealerError(
            f"{sender} is not a primary dealer (params.dex_dealers); nothing was sent"
        )


@dealer_app.command("mint")
@tx_options()
def dealer_mint_cmd(
    amount: Annotated[int, typer.Argument(help="CYB to lock in the dealer reserve.")],
    *,
    opts: TxOptions,
) -> None:
    """Lock AMOUNT CYB in the dealer reserve for new H at par (primary dealers only)."""

    def check(api: NodeClient, pin: Pinned, sender: str) -> None:
        from focusflow.modules.economy_params import EconomyParams

        _dealer_check(api, pin, sender)
        par = EconomyParams.of(pin.params).h_par_bps
        if not par or amount * 10_000 // par <= 0:
            raise InvalidParameterError(
                f"{amount} CYB buys no H at par (h_par_bps={par}); nothing was sent"
            )

    _submit(opts, [_msg("dex.mint", {"amount": _amount(amount)})], {"amount": amount}, check=check)


@dealer_app.command("redeem")
@tx_options()
def dealer_redeem_cmd(
    amount: Annotated[int, typer.Argument(help="H to burn for CYB out of the reserve.")],
    *,
    opts: TxOptions,
) -> None:
    """Burn AMOUNT H for CYB at par out of the dealer reserve (primary dealers only)."""
    from focusflow.chain.errors import InsufficientLiquidityError

    def check(api: NodeClient, pin: Pinned, sender: str) -> None:
        from focusflow.modules.economy_params import EconomyParams

        _dealer_check(api, pin, sender)
        paid = amount * EconomyParams.of(pin.params).h_par_bps // 10_000
        economy = api.economy()
        reserve = economy.get("dealer_reserve") if isinstance(economy, dict) else None
        if paid <= 0 or (isinstance(reserve, int) and paid > reserve):
            raise InsufficientLiquidityError(
                f"the dealer reserve holds {reserve} CYB, not {paid}; nothing was sent"
            )

    body = {"amount": _amount(amount)}
    _submit(opts, [_msg("dex.redeem", body)], {"amount": amount}, check=check)


@rewards_app.command("claim")
@tx_options()
def rewards_claim_cmd(
    *,
    opts: TxOptions,
) -> None:
    """Claim the H your bonded stake, its tenure and your karma earned since the last claim;
    with --wait the rewards.claim event says how much."""
    from focusflow.chain.errors import NothingToClaimError

    def check(api: NodeClient, pin: Pinned, sender: str) -> None:
        if not pin.params.economics:
            raise NothingToClaimError(
                "this chain pays no rewards (params.economics is 0); nothing was sent"
            )

    _submit(opts, [_msg("rewards.claim", {})], check=check)
