// The light client's rules for headers, as the command-line light client applies
// them (docs/light.md, "Header verification"), with nothing but WebCrypto.
//
// A light block is a header, the certificate that committed it and the set that
// signs its height. It is consistent when its bytes hash to the stated hash, its
// set hashes to its validators_hash and its certificate carries precommits of
// more than 2/3 of that set's power for exactly this header (verify.js checks
// that, as the page's verified mode does). A consistent block is verified from a
// trusted one adjacently (h + 1: the parent is the trusted hash, and the set is
// the trusted one or the one the trusted state records for h + 1) or by skipping
// (h + n: more than 1/3 of the trusted set's power signed), within the trusting
// period. Each function names the Python function it mirrors, so that a change
// of rule is made in both places.

import * as V from "../verify.js";

// focusflow.light.trust.DEFAULT_TRUSTING_PERIOD_S: two weeks.
export const TRUSTING_PERIOD_MS = 14 * 24 * 3600 * 1000;
// focusflow.chain.header_verify.MAX_CLOCK_DRIFT_MS
export const MAX_CLOCK_DRIFT_MS = 10_000;
// focusflow.chain.header_verify.MAX_VALIDATORS: a bound before anything is hashed.
export const MAX_VALIDATORS = 1024;

const VALSET_PREFIX = new TextEncoder().encode("/token/valset/");

// The light client's own refusals; the check names are the command-line
// client's error codes (docs/light.md, "Errors and exit status").
export class InsufficientTrust extends V.VerifyError {
  constructor(message) {
    super("insufficient_trust", message);
  }
}

const fail = (check, message) => {
  throw new V.VerifyError(check, message);
};

// A node's header answer (GET /v1/light/header/{h}) as a light block, checked
// for consistency, not yet trusted. `signatures` false re-checks only the hash
// and the set hash: for blocks read back from this browser's own store, which
// verified them before writing.
// Mirrors focusflow.light.verify.parse_light_block and
// focusflow.chain.header_verify.check_consistent.
export async function parseLightBlock(doc, chainId, height, { signatures = true } = {}) {
  if (!doc || typeof doc !== "object") fail("malformed", "a header answer is a JSON object");
  if (!Array.isArray(doc.validators) || doc.validators.length > MAX_VALIDATORS) {
    fail("malformed", `a header answer lists 1..${MAX_VALIDATORS} validators`);
  }
  const headerCbor = V.fromHex(doc.header_cbor, "header_cbor");
  const validators = V.parseValidators(doc.validators);
  const certCbor = doc.certificate_cbor == null ? null : V.fromHex(doc.certificate_cbor, "certificate_cbor");
  let header;
  let hash;
  if (signatures) {
    const v = await V.verifyHeader({
      headerBytes: headerCbor,
      certBytes: certCbor,
      validators,
      hash: doc.hash,
      height,
      chainId,
    });
    header = v.header;
    hash = v.hash;
  } else {
    header = V.decodeHeader(headerCbor);
    hash = await V.sha256(headerCbor);
    if (V.toHex(hash) !== doc.hash) fail("header_hash", "a stored header does not hash to its hash");
    if (header.chain_id !== chainId) fail("chain_id", `a stored header is of chain ${header.chain_id}`);
    if (!V.equal(await V.validatorSetHash(validators), header.validators_hash)) {
      fail("validators_hash", "a stored header's set does not hash to its validators_hash");
    }
  }
  const cert = certCbor === null ? null : V.decodeCertificate(certCbor);
  return {
    height: Number(header.height),
    hash,
    hashHex: V.toHex(hash),
    header,
    cert,
    validators,
    totalPower: validators.reduce((n, v) => n + v.power, 0n),
    doc: {
      height: Number(header.height),
      hash: V.toHex(hash),
      chain_id: header.chain_id,
      header_cbor: doc.header_cbor,
      certificate_cbor: doc.certificate_cbor ?? null,
      validators: doc.validators.map((v) => ({ public_key: v.public_key, power: String(v.power) })),
    },
  };
}

// The trusted header is within the trusting period of `nowMs`; the target is
// later than it and at most MAX_CLOCK_DRIFT_MS ahead of this browser's clock.
// Mirrors focusflow.chain.header_verify.check_times.
export function checkTime(trusted, target, nowMs, periodMs = TRUSTING_PERIOD_MS) {
  const trustedMs = Number(trusted.header.time_ms);
  const targetMs = Number(target.header.time_ms);
  if (nowMs - trustedMs >= periodMs) {
    fail("trust_expired",
      `trusted header ${trusted.height} is ${Math.round((nowMs - trustedMs) / 1000)} s old, past the ` +
      `trusting period of ${Math.round(periodMs / 1000)} s; start again from a recent root of trust`);
  }
  if (targetMs <= trustedMs) {
    fail("header_mismatch", `header ${target.height}'s time is not after trusted header ${trusted.height}'s`);
  }
  if (targetMs > nowMs + MAX_CLOCK_DRIFT_MS) fail("header_mismatch", `header ${target.height}'s time is in the future`);
}

// Power of `trusted` among the certificate's signers (their signatures were
// checked when the target was parsed).
// Mirrors focusflow.chain.header_verify.trusted_power.
export function trustedPower(cert, trusted) {
  const power = new Map(trusted.map((v) => [V.toHex(v.public_key), v.power]));
  let total = 0n;
  for (const s of cert.signatures) total += power.get(V.toHex(s.public_key)) ?? 0n;
  return total;
}

// Accept `target` at trusted.height + 1, or throw why not. `nextSet(trusted)`
// resolves to the set the trusted state records for the next height (null:
// unchanged), already proven against the trusted state root.
// Mirrors focusflow.chain.header_verify.verify_adjacent.
export async function verifyAdjacent(trusted, target, nextSet, nowMs, periodMs = TRUSTING_PERIOD_MS) {
  if (target.height !== trusted.height + 1) fail("malformed", "adjacent verification needs consecutive heights");
  checkTime(trusted, target, nowMs, periodMs);
  if (!V.equal(target.header.parent, trusted.hash)) {
    fail("header_mismatch", `header ${target.height}'s parent is not the verified header ${trusted.height}`);
  }
  if (!V.equal(target.header.validators_hash, trusted.header.validators_hash)) {
    const recorded = await nextSet(trusted);
    if (recorded === null || !V.equal(await V.validatorSetHash(recorded), target.header.validators_hash)) {
      fail("validator_set_mismatch",
        `header ${target.height} names a validator set that the state of verified header ` +
        `${trusted.height} does not record for it`);
    }
  }
}

// Accept `target` above trusted.height + 1: more than 1/3 of the trusted set's
// power signed it (InsufficientTrust otherwise: the caller bisects).
// Mirrors focusflow.chain.header_verify.verify_skipping and check_trust.
export function verifySkipping(trusted, target, nowMs, periodMs = TRUSTING_PERIOD_MS) {
  if (target.height <= trusted.height + 1) fail("malformed", "skipping verification needs a gap of two heights or more");
  checkTime(trusted, target, nowMs, periodMs);
  const power = trustedPower(target.cert, trusted.validators);
  if (3n * power <= trusted.totalPower) {
    throw new InsufficientTrust(
      `signers of header ${target.height} hold ${power} of the trusted set's ${trusted.totalPower}`);
  }
}

export function valsetKey(height) {
  const k = new Uint8Array(8);
  new DataView(k.buffer).setBigUint64(0, BigInt(height));
  return V.concat(VALSET_PREFIX, k);
}

// The answer names the verified block `trusted`: its height, hash and state
// root. Mirrors focusflow.light.answers.check_anchor.
export function checkAnchor(doc, trusted) {
  if (!doc || typeof doc !== "object" || Array.isArray(doc)) fail("malformed", "a proof answer is a JSON object");
  if (doc.height !== trusted.height || doc.block_hash !== trusted.hashHex ||
      doc.state_root !== V.toHex(trusted.header.state_root)) {
    fail("wrong_value", `the answer names block ${doc.height} ${doc.block_hash} with state root ${doc.state_root}, ` +
      `not the verified block ${trusted.height} ${trusted.hashHex}`);
  }
}

// The value of `key` (null: proven absent) that `part` ({key, value, proof})
// proves against the state root of `trusted`. Mirrors
// focusflow.light.answers.proven_value.
export async function provenValue(part, key, trusted, what) {
  if (!part || typeof part !== "object") fail("malformed", "a key proof is a JSON object");
  if (part.key !== V.toHex(key)) fail("wrong_value", `the node proved key ${part.key}, not ${V.toHex(key)}`);
  const value = part.value == null ? null : V.fromHex(part.value, `${what} value`);
  const ok = await V.verifySmtProof(trusted.header.state_root, key, value, V.fromHex(part.proof, `${what} proof`));
  if (!ok) fail("bad_proof", `${what} does not verify against the state root of verified block ${trusted.height}`);
  return value;
}

// The set that the state of `trusted` records for trusted.height + 1, from the
// node's answer to GET /v1/light/proofs/validators/{h+1}?height={h}: null when
// the proof shows none (the set did not change).
// Mirrors focusflow.light.answers.verify_next_set.
export async function verifyNextSet(doc, trusted) {
  checkAnchor(doc, trusted);
  const value = await provenValue(doc, valsetKey(trusted.height + 1), trusted, `the validator set record of ${trusted.height + 1}`);
  if (value === null) return null;
  const rows = V.cborDecode(value, "validator set record");
  if (!Array.isArray(rows) || !rows.length || rows.length > MAX_VALIDATORS) fail("wrong_value", "a malformed set record");
  return rows.map((r) => {
    const good = Array.isArray(r) && r.length === 3 && r[0] instanceof Uint8Array && r[0].length === 32 &&
      typeof r[1] === "bigint" && r[1] > 0n;
    if (!good) fail("wrong_value", "a malformed set record");
    return { public_key: r[0], power: r[1] };
  });
}
