// The page's verified mode: the header it shows and the values it shows are
// checked in this browser (verify.js) against the node's /v1/light answers, and
// every check gets a visible mark; what does not verify is said in plain words.
//
// What it proves and what it takes on trust (docs/web.md, "Verified mode"):
// without a pin, that validators holding more than 2/3 of the power of the set
// the node names signed the header, and that each value is what that header's
// roots commit to; the set itself is the node's word. With a pinned set (its
// hash, kept in this browser's localStorage), headers must be of the pinned
// chain and set, or vouched for by more than 1/3 of the pinned set.

import * as V from "./verify.js";

const VERIFY_GAP_MS = 1000; // at most one header check per this interval
const VALUE_AGAIN_MS = 2000; // a value verified this recently is not fetched again
const HEADERS_KEPT = 32;
const TRUST_KEY = "focusflow.trust";
const MODE_KEY = "focusflow.verified";

const $ = (id) => document.getElementById(id);

// The marks a checked thing carries (data-verified) and how they read.
const MARKS = { pending: "…", yes: "✓", no: "✗", stale: "~" };

export function setMark(node, state, title) {
  if (!node) return;
  node.dataset.verified = state;
  node.textContent = MARKS[state];
  node.title = title || "";
}

function loadTrust() {
  try {
    const t = JSON.parse(localStorage.getItem(TRUST_KEY) || "null");
    if (!t || !/^[0-9a-f]{64}$/.test(t.hash)) return null;
    return t;
  } catch {
    return null;
  }
}

function saveTrust(t) {
  try {
    if (t) localStorage.setItem(TRUST_KEY, JSON.stringify(t));
    else localStorage.removeItem(TRUST_KEY);
  } catch {
    // private mode: the pin lasts for this page only
  }
}

// The pin as verifyHeader takes it.
function trustedOf(t) {
  if (!t) return undefined;
  return {
    chain_id: t.chain_id || undefined,
    hash: V.fromHex(t.hash),
    validators: t.validators ? V.parseValidators(t.validators) : undefined,
  };
}

export class Verifier {
  // api(path) -> JSON (throws ApiError); chainId() -> the chain id the page shows
  constructor({ api, chainId }) {
    this.api = api;
    this.chainId = chainId;
    this.on = false;
    this.trust = loadTrust();
    this.headers = new Map(); // height -> Promise of a verified header
    this.values = new Map(); // "focus:cid" / "name:n" -> {shown, result, at, running}
    this.problems = new Map(); // what -> li
    this.lastHead = 0;
    this.headRunning = null;
    this.light = null; // the light client's panel (light/panel.js), loaded in verified mode
  }

  // The light client runs in verified mode only; its module is loaded then, so
  // that the page's first load does not carry it.
  async startLight() {
    if (this.lightLoading) return this.lightLoading;
    this.lightLoading = import("./light/panel.js").then(({ LightPanel }) => {
      this.light = new LightPanel({
        chainId: this.chainId,
        pin: () => this.trust,
        problem: (what, check, message) => this.problem(what, check, message),
      });
      $("light").hidden = false;
      this.light.tick();
    });
    return this.lightLoading;
  }

  start() {
    const params = new URLSearchParams(location.search);
    let on = params.get("verified");
    if (on === null) {
      try {
        on = localStorage.getItem(MODE_KEY);
      } catch {
        on = null;
      }
    }
    $("verified-toggle").checked = on === "1";
    $("verified-toggle").addEventListener("change", () => this.setMode($("verified-toggle").checked));
    $("pin").addEventListener("click", () => this.pin($("pin-hash").value.trim()));
    $("unpin").addEventListener("click", () => this.unpin());
    $("problems-clear").addEventListener("click", () => this.clearProblems());
    this.setMode(on === "1", false);
  }

  setMode(on, remember = true) {
    this.on = on;
    document.body.dataset.verified = on ? "on" : "off";
    $("verified").hidden = !on;
    if (remember) {
      try {
        localStorage.setItem(MODE_KEY, on ? "1" : "0");
      } catch {
        // the choice lasts for this page only
      }
    }
    for (const m of document.querySelectorAll(".vmark")) m.hidden = !on;
    this.showTrust();
    if (on) {
      this.startLight();
      this.head(true);
      this.onRecheck?.();
    }
  }

  // ------------------------------------------------------------ trust

  showTrust() {
    const t = this.trust;
    $("trust").dataset.pinned = t ? "true" : "false";
    $("trust").textContent = t
      ? `Pinned: validator set ${t.hash.slice(0, 16)}…${t.chain_id ? ` of chain ${t.chain_id}` : ""}` +
        (t.validators ? `, ${t.validators.length} members known` : ", members not seen yet") +
        ". Headers must be signed by it, or vouched for by more than 1/3 of it."
      : "Nothing pinned: the validator set is this node's word. Pin it (or a hash you trust) " +
        "to catch a node that later switches to a set of its own.";
  }

  // Pin a set: the hash given, or else the set of the last verified header.
  pin(hash) {
    let t;
    if (hash) {
      if (!/^[0-9a-f]{64}$/.test(hash)) {
        $("trust").textContent = "Not pinned: a validators hash is 64 lowercase hex digits.";
        return;
      }
      t = { hash, chain_id: this.latest?.header.chain_id };
      if (this.latest && V.toHex(this.latest.header.validators_hash) === hash) {
        t.validators = this.latest.validators;
      }
    } else if (this.latest) {
      t = {
        hash: V.toHex(this.latest.header.validators_hash),
        chain_id: this.latest.header.chain_id,
        validators: this.latest.validators,
        height: Number(this.latest.header.height),
      };
    } else {
      $("trust").textContent = "Not pinned: no header has verified yet, so there is no set to pin.";
      return;
    }
    this.trust = t;
    saveTrust(t);
    this.headers.clear();
    this.light?.reset(); // the light client starts again from the pinned set
    this.showTrust();
    this.head(true);
  }

  unpin() {
    this.trust = null;
    saveTrust(null);
    this.headers.clear();
    this.light?.reset();
    this.showTrust();
    this.head(true);
  }

  // A pin by hash learns the members from the first verified header that names it.
  learnMembers(verified) {
    const t = this.trust;
    if (t && !t.validators && V.toHex(verified.header.validators_hash) === t.hash) {
      t.validators = verified.validators;
      t.chain_id = t.chain_id || verified.header.chain_id;
      saveTrust(t);
      this.showTrust();
    }
  }

  // ------------------------------------------------------------ problems

  problem(what, check, message) {
    let li = this.problems.get(what);
    if (!li) {
      li = document.createElement("li");
      this.problems.set(what, li);
      $("verify-problems").append(li);
    }
    li.dataset.what = what;
    li.dataset.check = check;
    li.textContent = `${what} does not verify: ${message} (${check})`;
    $("verify-problems-box").hidden = false;
  }

  clearProblems() {
    this.problems.clear();
    $("verify-problems").replaceChildren();
    $("verify-problems-box").hidden = true;
  }

  // ------------------------------------------------------------ headers

  // The verified header at `height` (cached), or a rejected promise whose
  // reason is a VerifyError (or an ApiError when the node does not answer).
  header(height) {
    height = Number(height);
    let p = this.headers.get(height);
    if (!p) {
      p = this.fetchHeader(`/v1/light/header/${height}`, height);
      this.headers.set(height, p);
      p.catch(() => this.headers.delete(height)); // asked again next time
      while (this.headers.size > HEADERS_KEPT) this.headers.delete(this.headers.keys().next().value);
    }
    return p;
  }

  async fetchHeader(path, height) {
    const a = await this.api(path);
    const validators = a.validators;
    const v = await V.verifyHeader({
      headerBytes: V.fromHex(a.header_cbor, "header"),
      certBytes: a.certificate_cbor === null ? null : V.fromHex(a.certificate_cbor, "certificate"),
      validators: V.parseValidators(validators),
      hash: a.hash,
      height: height ?? a.height,
      chainId: this.chainId() || undefined,
      // the set the light client synced to from its root of trust, once it has;
      // before, the pin (or nothing: the node's word)
      trusted: this.light?.trusted() ?? trustedOf(this.trust),
    });
    const known = this.light?.known(v.header.height);
    if (known && known.hashHex !== V.toHex(v.hash)) {
      throw new V.VerifyError("synced_header",
        `the node's header ${v.header.height} is ${V.toHex(v.hash)}, the light client verified ${known.hashHex}`);
    }
    const out = { ...v, validators };
    this.learnMembers(out);
    return out;
  }

  // Check the newest header (at most once per VERIFY_GAP_MS) and show it.
  async head(now = false) {
    if (!this.on || this.headRunning) return;
    if (!now && Date.now() - this.lastHead < VERIFY_GAP_MS) return;
    this.lastHead = Date.now();
    this.light?.tick();
    const mark = $("header-mark");
    this.headRunning = (async () => {
      let height = "latest";
      try {
        const v = await this.fetchHeader("/v1/light/header/latest");
        height = String(v.header.height);
        this.headers.set(Number(height), Promise.resolve(v));
        this.latest = v;
        const pct = Number((v.signedPower * 10000n) / v.totalPower) / 100;
        const text = `header ${height} verified: signed by ${pct} % of the power of validator set ` +
          `${V.toHex(v.header.validators_hash).slice(0, 12)}…` +
          (v.skipped ? `, vouched for by more than 1/3 of the ${this.light?.trusted() ? "synced" : "pinned"} set` : "") +
          (!this.light?.trusted() ? (this.trust ? "" : " (the set is the node's word: nothing pinned)")
            : this.light.nodesWord() ? ", checked against the set the light client synced to from header 1, " +
              "which is the node's word: nothing pinned"
            : ", checked against the set the light client synced to from its root of trust");
        setMark(mark, "yes", text);
        mark.dataset.height = height;
        $("verified-header").textContent = text;
        $("verified-header").dataset.verified = "yes";
        $("verified-header").dataset.height = height;
      } catch (err) {
        const why = err.message || String(err);
        if (err instanceof V.VerifyError) {
          setMark(mark, "no", why);
          $("verified-header").textContent = `header ${height}: does not verify: ${why}`;
          $("verified-header").dataset.verified = "no";
          this.problem(`header ${height}`, err.check, why);
        } else {
          $("verified-header").textContent = `header ${height}: not checked (${why})`;
        }
      } finally {
        this.headRunning = null;
      }
    })();
    return this.headRunning;
  }

  // ------------------------------------------------------------ values

  // Run `check` for the value `key` shown as `shown`, unless the same shown value
  // was checked less than VALUE_AGAIN_MS ago; calls back `done(result)` with
  // {state: yes|no|stale, title}. One check per key at a time.
  value(key, shown, check, done) {
    if (!this.on) return;
    const entry = this.values.get(key);
    const same = entry !== undefined && entry.shown === shown;
    done(same && entry.result ? entry.result : { state: "pending", title: "being checked" });
    if (same && (entry.running || Date.now() - entry.at < VALUE_AGAIN_MS)) return;
    const mine = { shown, result: same ? entry.result : null, at: Date.now(), running: true };
    this.values.set(key, mine);
    check().then(
      (result) => result,
      (err) => {
        if (err instanceof V.VerifyError) {
          this.problem(key.replace(":", " "), err.check, err.message);
          return { state: "no", title: `${err.message} (${err.check})` };
        }
        return { state: "stale", title: `not checked: ${err.message}` };
      },
    ).then((result) => {
      mine.running = false;
      mine.result = result;
      mine.at = Date.now();
      if (this.values.get(key) === mine) done(result);
    });
  }

  // The verified header at `height`; a header that does not verify makes the
  // value that depends on it fail, saying so.
  async valueHeader(height) {
    try {
      return await this.header(Number(height));
    } catch (err) {
      if (err instanceof V.VerifyError) {
        throw new V.VerifyError(err.check, `its header ${height} does not verify: ${err.message}`);
      }
      throw err;
    }
  }

  // The committed focus of `cid`, shown as `focusQ` at `height`: checked against
  // the particle's proof under a verified header.
  // The shown value, not its height, keys the cache: focus stays the same over
  // blocks without links, and a value proven at any height is that height's.
  focus(cid, focusQ, height, done) {
    this.value(`focus:${cid}`, String(focusQ), async () => {
      const a = await this.api(`/v1/light/proofs/particle/${encodeURIComponent(cid)}`);
      const header = await this.valueHeader(a.height);
      const { q } = await V.verifyParticleFocus(header.header, V.cidToBytes(cid), a);
      if (String(q) === String(focusQ)) {
        return { state: "yes", title: `focus ${q} / 10^15 proven at height ${a.height}` };
      }
      if (Number(a.height) === Number(height)) {
        throw new V.VerifyError("value_mismatch",
          `the node shows focus ${focusQ} at height ${height}, its proof there holds ${q}`);
      }
      return { state: "stale", title: `focus changed: ${q} at height ${a.height}, shown ${focusQ} at ${height}` };
    }, done);
  }

  // A name the page resolved to `cid`: checked against the name's proof.
  name(name, cid, done) {
    this.value(`name:${name}`, cid, async () => {
      const a = await this.api(`/v1/light/proofs/name/${encodeURIComponent(name)}`);
      const header = await this.valueHeader(a.height);
      const named = await V.verifyName(header.header, name, a);
      if (named === null) {
        throw new V.VerifyError("value_mismatch", `the node resolves it to ${cid}, its proof says it is not registered`);
      }
      if (!V.equal(named, V.cidToBytes(cid))) {
        throw new V.VerifyError("value_mismatch", `the node resolves it to ${cid}, its proof names another particle`);
      }
      return { state: "yes", title: `name proven at height ${a.height}` };
    }, done);
  }
}
