// The node's REST API as the page calls it (docs/api.md): every request bounded
// in time, every failure an ApiError with the API's error code.

const REQUEST_TIMEOUT_MS = 10000;

export class ApiError extends Error {
  constructor(code, message, status = 0) {
    super(message);
    this.code = code;
    this.status = status;
  }
}

export const enc = encodeURIComponent;

// GET path (or POST body as JSON); the answer's JSON.
export async function api(path, body = undefined) {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), REQUEST_TIMEOUT_MS);
  const init = { signal: ctl.signal, headers: { Accept: "application/json" } };
  if (body !== undefined) {
    init.method = "POST";
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  try {
    let res;
    try {
      res = await fetch(path, init);
    } catch (e) {
      const why = e.name === "AbortError" ? "no answer in time" : "unreachable";
      throw new ApiError("unreachable", `the node is ${why}`);
    }
    let doc = null;
    try {
      doc = await res.json();
    } catch {
      // not JSON: said below
    }
    if (!res.ok) {
      const err = doc && doc.error;
      if (err && err.code) throw new ApiError(err.code, err.message || err.code, res.status);
      throw new ApiError(`http_${res.status}`, `${res.status} ${res.statusText}`, res.status);
    }
    if (doc === null) throw new ApiError("malformed", `${path}: the answer is not JSON`);
    return doc;
  } finally {
    clearTimeout(timer);
  }
}

// Expected misses asked so that a miss is an answer, not an HTTP error: the
// browser logs every 4xx answer as an error in its console, and a word that
// names nothing or a text nobody linked yet is no error.

// Whether a particle is in the committed graph: a one-fact query (docs/query.md),
// which answers an empty relation for a particle that is not.
export async function particleExists(cid) {
  const fact = JSON.stringify(cid);
  const answer = await api("/v1/query", {
    program: `hit(${fact}) :- particle(${fact}).`,
    output: "hit",
    limit: 1,
  });
  return answer.total > 0;
}

// Whether a name is registered: the name's state proof, whose value is null
// when it is not (docs/api.md, light-client routes).
export async function nameRegistered(name) {
  const answer = await api(`/v1/light/proofs/name/${enc(name)}`);
  return answer.value !== null && answer.value !== undefined;
}
