// What the app computes itself, never copying it from the server (what you see is what
// you sign): SHA-256 of the document bytes, the signature parameters' hash, the canonical
// decision statement, and the HPKE envelope of a token PIN (RFC 9180).

const encoder = new TextEncoder();

export function hex(bytes) {
  return Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, "0")).join("");
}

export function b64url(bytes) {
  let text = "";
  for (const byte of new Uint8Array(bytes)) text += String.fromCharCode(byte);
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

export function fromB64url(text) {
  const plain = atob(text.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((text.length + 3) % 4));
  return Uint8Array.from(plain, (c) => c.charCodeAt(0));
}

export function b64(bytes) {
  let text = "";
  for (const byte of new Uint8Array(bytes)) text += String.fromCharCode(byte);
  return btoa(text);
}

export function fromB64(text) {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

export async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}

export async function sha256Hex(bytes) {
  return hex(await sha256(bytes));
}

// The signature parameters as the gateway hashes them: Python's json.dumps with sorted
// keys, "," and ":" separators, non-ASCII kept. Boxes are floats there (330.0), which
// JavaScript writes as 330: every number inside a "box" is written as a float.
export function parametersJson(value, inBox = false) {
  if (value === null) return "null";
  if (Array.isArray(value)) return "[" + value.map((v) => parametersJson(v, inBox)).join(",") + "]";
  if (typeof value === "number") {
    if (inBox && Number.isInteger(value)) return value.toFixed(1);
    return String(value);
  }
  if (typeof value === "object") {
    return (
      "{" +
      Object.keys(value)
        .sort()
        .map((k) => JSON.stringify(k) + ":" + parametersJson(value[k], inBox || k === "box"))
        .join(",") +
      "}"
    );
  }
  return JSON.stringify(value);
}

export async function parametersSha256(parameters) {
  return sha256Hex(encoder.encode(parametersJson(parameters)));
}

// RFC 8785 (JCS) for the decision statement: sorted keys, no spaces; its values are
// strings and integers, which JSON.stringify writes as JCS does.
export function canonical(value) {
  if (Array.isArray(value)) return "[" + value.map(canonical).join(",") + "]";
  if (value !== null && typeof value === "object") {
    return "{" + Object.keys(value).sort().map((k) => JSON.stringify(k) + ":" + canonical(value[k])).join(",") + "}";
  }
  return JSON.stringify(value);
}

export function statementBytes({ signer, device, decision, nonce, expiresAt, requests }) {
  return encoder.encode(
    canonical({
      v: 2,
      type: "signing-decision",
      signer,
      device,
      decision,
      nonce,
      expires_at: expiresAt,
      requests: [...requests].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)),
    })
  );
}

export function revocationBytes({ signer, device, revoke, nonce, expiresAt }) {
  return encoder.encode(
    canonical({ v: 1, type: "device-revocation", signer, device, revoke, nonce, expires_at: expiresAt })
  );
}

// `recipient`: the app's one-time HPKE key (base64url point) the bridge seals the code to.
export function enrolmentCodeBytes({ signer, device, nonce, expiresAt, recipient }) {
  return encoder.encode(
    canonical({ v: 2, type: "enrolment-code", signer, device, nonce, expires_at: expiresAt, recipient })
  );
}

// An enrolment code's proof: base64 of HMAC-SHA256 keyed with the code's secret (the
// part after the dot) over `context` (e.g. "signing-gateway/totp-enrolment/1\0") followed
// by `subject` (bytes): it binds the code to this subject and no other one.
export async function enrolmentProof(codeSecret, context, subject) {
  const key = await crypto.subtle.importKey("raw", encoder.encode(codeSecret || ""), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return b64(await crypto.subtle.sign("HMAC", key, concat(encoder.encode(context), subject)));
}

// RFC 4648 base32 without padding (a TOTP secret as authenticator apps take it).
export function base32(bytes) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = 0;
  let value = 0;
  let out = "";
  for (const byte of new Uint8Array(bytes)) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += alphabet[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += alphabet[(value << (5 - bits)) & 31];
  return out;
}

// ---- HPKE base mode: DHKEM(P-256, HKDF-SHA256), HKDF-SHA256, AES-128-GCM -------------

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

const i2osp = (value, length) => {
  const out = new Uint8Array(length);
  for (let i = length - 1; i >= 0; i--, value >>= 8) out[i] = value & 0xff;
  return out;
};

async function hmac(key, data) {
  const imported = await crypto.subtle.importKey(
    "raw",
    key.length ? key : new Uint8Array(32),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"]
  );
  return new Uint8Array(await crypto.subtle.sign("HMAC", imported, data));
}

async function expand(prk, info, length) {
  let block = new Uint8Array(0);
  let out = new Uint8Array(0);
  for (let counter = 1; out.length < length; counter++) {
    block = await hmac(prk, concat(block, info, new Uint8Array([counter])));
    out = concat(out, block);
  }
  return out.slice(0, length);
}

const HPKE_V1 = encoder.encode("HPKE-v1");
const KEM_SUITE = concat(encoder.encode("KEM"), i2osp(0x0010, 2));
const HPKE_SUITE = concat(encoder.encode("HPKE"), i2osp(0x0010, 2), i2osp(0x0001, 2), i2osp(0x0001, 2));

const labeledExtract = (suite, salt, label, ikm) =>
  hmac(salt, concat(HPKE_V1, suite, encoder.encode(label), ikm));
const labeledExpand = (suite, prk, label, info, length) =>
  expand(prk, concat(i2osp(length, 2), HPKE_V1, suite, encoder.encode(label), info), length);

// The key schedule of base mode (RFC 9180 §5.1): the AES-GCM key and nonce from the
// DH result `dh`, the encapsulated key `enc`, the recipient's point and `info`.
async function keySchedule(dh, enc, recipient, info, usage) {
  const eaePrk = await labeledExtract(KEM_SUITE, new Uint8Array(0), "eae_prk", dh);
  const shared = await labeledExpand(KEM_SUITE, eaePrk, "shared_secret", concat(enc, recipient), 32);
  const pskIdHash = await labeledExtract(HPKE_SUITE, new Uint8Array(0), "psk_id_hash", new Uint8Array(0));
  const infoHash = await labeledExtract(HPKE_SUITE, new Uint8Array(0), "info_hash", info);
  const context = concat(new Uint8Array([0]), pskIdHash, infoHash);
  const secret = await labeledExtract(HPKE_SUITE, shared, "secret", new Uint8Array(0));
  const key = await labeledExpand(HPKE_SUITE, secret, "key", context, 16);
  const nonce = await labeledExpand(HPKE_SUITE, secret, "base_nonce", context, 12);
  return { key: await crypto.subtle.importKey("raw", key, "AES-GCM", false, [usage]), nonce };
}

// Seal `plaintext` (bytes) to the 65-byte uncompressed P-256 point `recipient` with
// `info`: the encapsulated key followed by the ciphertext, as the bridge opens it.
export async function hpkeSeal(recipient, info, plaintext) {
  const pkR = await crypto.subtle.importKey("raw", recipient, { name: "ECDH", namedCurve: "P-256" }, false, []);
  const ephemeral = await crypto.subtle.generateKey({ name: "ECDH", namedCurve: "P-256" }, true, ["deriveBits"]);
  const enc = new Uint8Array(await crypto.subtle.exportKey("raw", ephemeral.publicKey));
  const dh = new Uint8Array(await crypto.subtle.deriveBits({ name: "ECDH", public: pkR }, ephemeral.privateKey, 256));
  const { key, nonce } = await keySchedule(dh, enc, recipient, info, "encrypt");
  return concat(enc, new Uint8Array(await crypto.subtle.encrypt({ name: "AES-GCM", iv: nonce }, key, plaintext)));
}

// A one-time key pair to receive a sealed answer: `{ privateKey, point }` (the private
// key cannot be exported; `point` is the 65-byte uncompressed public key).
export async function hpkeRecipient() {
  const pair = await crypto.subtle.generateKey({ name: "ECDH", namedCurve: "P-256" }, false, ["deriveBits"]);
  return { privateKey: pair.privateKey, point: new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey)) };
}

// Open what the bridge sealed to `recipient` (from hpkeRecipient) with `info`; throws
// when it was sealed to another key, with another info, or altered.
export async function hpkeOpen(recipient, info, envelope) {
  const enc = envelope.slice(0, 65);
  const pkE = await crypto.subtle.importKey("raw", enc, { name: "ECDH", namedCurve: "P-256" }, false, []);
  const dh = new Uint8Array(await crypto.subtle.deriveBits({ name: "ECDH", public: pkE }, recipient.privateKey, 256));
  const { key, nonce } = await keySchedule(dh, enc, recipient.point, info, "decrypt");
  return new Uint8Array(await crypto.subtle.decrypt({ name: "AES-GCM", iv: nonce }, key, envelope.slice(65)));
}

export { concat, encoder };
