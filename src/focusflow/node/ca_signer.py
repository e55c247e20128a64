"""A CA member's duty: commit to and sign the certificate requests the chain holds.

A validator whose home holds ``ca_share`` (its FROST share of the network's CA
key, ``modules.ca``) watches every committed block for pending requests. For
one it has not committed to while the signing set is open, it draws fresh
nonces, writes them to ``ca_nonces.json`` (0600) before anything leaves the
node, and sends ``ca.commit``; once the set is complete and it is in it, it
sends ``ca.share`` computed from those nonces. Its transactions are signed by
the validator's account key (the member address the genesis names).

Nonces are used for one attempt of one request only, whose message and
commitments the chain fixes, so sending the same share again (its transaction
was dropped) is safe and happens after ``RESEND_BLOCKS`` blocks. When the
chain restarts a stalled job (``modules.ca.STALL_BLOCKS``) the attempt number
moves on and fresh nonces are drawn: a nonce pair never signs under two
commitment lists, which would give its share's secret away. Nonces of
requests no longer pending or of abandoned attempts are deleted. A node that
restarts reads the file and carries on.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from focusflow.chain import Msg
from focusflow.core.home import write_private_file
from focusflow.core.keys import KeyPair
from focusflow.modules.ca import Request, pending_serials
from focusflow.services.trust import frost
from focusflow.state_schema.ca import REQUEST_PREFIX, load_group

if TYPE_CHECKING:
    from focusflow.node.extensions import ExtensionHost, NodeExtension
    from focusflow.node.runtime import BlockEvent

log = logging.getLogger("focusflow.ca")

#: Blocks after which an unanswered commitment or share is sent again.
RESEND_BLOCKS = 8


@dataclass(frozen=True)
class ShareFile:
    """``{"identifier", "secret", "group_public_key"}`` (hex): a member's share."""

    share: frost.KeyShare

    @classmethod
    def load(cls, path: Path) -> ShareFile:
        doc = json.loads(path.read_text())
        return cls(
            frost.KeyShare(
                int(doc["identifier"]),
                frost.decode_scalar(bytes.fromhex(doc["secret"])),
                bytes.fromhex(doc["group_public_key"]),
            )
        )

    def save(self, path: Path) -> None:
        doc = {
            "identifier": self.share.identifier,
            "secret": frost.scalar_bytes(self.share.secret).hex(),
            "group_public_key": self.share.group_public_key.hex(),
        }
        write_private_file(path, json.dumps(doc) + "\n")


def _job(serial_hex: str, attempt: int) -> str:
    """A signing job's key in the nonce file: its serial and the chain's attempt."""
    return f"{serial_hex}:{attempt}"


class CaSigner:
    """The node extension that does a CA member's part (see the module docstring)."""

    def __init__(self, share: frost.KeyShare, account: KeyPair, nonces_path: Path) -> None:
        self.share = share
        self.account = account
        self.nonces_path = nonces_path
        self.host: ExtensionHost | None = None
        #: "serial hex:attempt" -> {"hiding", "binding"} (hex scalars)
        self.nonces: dict[str, dict[str, str]] = {}
        #: ("serial hex:attempt", what) -> height it was last sent at
        self.sent: dict[tuple[str, str], int] = {}
        if nonces_path.exists():
            self.nonces = json.loads(nonces_path.read_text())

    @classmethod
    def for_home(cls, path: Path, account: KeyPair) -> CaSigner | None:
        share_path = path / "ca_share"
        if not share_path.exists():
            return None
        return cls(ShareFile.load(share_path).share, account, path / "ca_nonces.json")

    def attach(self, host: ExtensionHost) -> None:
        self.host = host
        host.on_commit(self.on_block)

    async def stop(self) -> None:
        return None

    def on_block(self, event: BlockEvent) -> None:
        host = self.host
        assert host is not None
        height = event.result.block.height
        with host.chain.reader() as r:
            group = load_group(r)
            if group is None:
                return
            pending = {
                serial.hex(): Request.decode(r.get(REQUEST_PREFIX + serial) or b"")
                for serial in pending_serials(r)
            }
            threshold = group.threshold
        # Nonces of requests no longer pending, or of an attempt the chain
        # restarted, are never used again.
        live = {_job(serial_hex, req.attempt) for serial_hex, req in pending.items()}
        stale = set(self.nonces) - live
        if stale:
            for key in stale:
                del self.nonces[key]
            self._save()
        for serial_hex, req in pending.items():
            try:
                self._act(host, bytes.fromhex(serial_hex), req, threshold, height)
            except Exception:  # one request's trouble must not stop the others
                log.exception("ca duty failed", extra={"fields": {"serial": serial_hex}})

    def _act(
        self, host: ExtensionHost, serial: bytes, req: Request, threshold: int, height: int
    ) -> None:
        me = self.share.identifier
        key = _job(serial.hex(), req.attempt)
        committed = any(i == me for i, _, _ in req.commits)
        if me in req.excluded:
            return
        if not committed and len(req.commits) < threshold:
            if key not in self.nonces:
                nonces, _ = frost.commit(self.share)
                self.nonces[key] = {
                    "hiding": frost.scalar_bytes(nonces.hiding).hex(),
                    "binding": frost.scalar_bytes(nonces.binding).hex(),
                }
                self._save()  # before the commitment leaves the node
            if self._due(key, "commit", height):
                n = self._nonces(key)
                body = {
                    "serial": serial,
                    "hiding": frost.base_mul(n.hiding),
                    "binding": frost.base_mul(n.binding),
                }
                self._send(host, Msg("ca.commit", body))
            return
        if not committed or len(req.commits) < threshold or key not in self.nonces:
            return
        if any(i == me for i, _ in req.shares) or not self._due(key, "share", height):
            return
        z = frost.sign(self.share, self._nonces(key), req.tbs, req.commitments())
        self._send(host, Msg("ca.share", {"serial": serial, "share": frost.scalar_bytes(z)}))

    def _due(self, key: str, what: str, height: int) -> bool:
        last = self.sent.get((key, what))
        if last is not None and height - last < RESEND_BLOCKS:
            return False
        self.sent[(key, what)] = height
        return True

    def _nonces(self, key: str) -> frost.Nonces:
        doc = self.nonces[key]
        return frost.Nonces(
            frost.decode_scalar(bytes.fromhex(doc["hiding"])),
            frost.decode_scalar(bytes.fromhex(doc["binding"])),
        )

    def _send(self, host: ExtensionHost, msg: Msg) -> None:
        host.submit_as(self.account, [msg])
        log.info("ca duty sent", extra={"fields": {"type": msg.type}})

    def _save(self) -> None:
        write_private_file(self.nonces_path, json.dumps(self.nonces) + "\n")


def ca_extensions(home_path: Path, account: KeyPair | None) -> list[NodeExtension]:
    """The CA duty of a validator whose home holds a share (none otherwise)."""
    if account is None:
        return []
    signer = CaSigner.for_home(home_path, account)
    return [] if signer is None else [signer]
