// The signer's tablet app: sign in, enrol a passkey, see what waits, read the document
// page by page with the signature's place drawn, approve (one or many) or reject.
// Every hash the app signs it computes itself from what it displays. An administrator
// (role "admin") gets the administration screens of admin.js instead.
import { WORDS } from "./i18n.js";
import * as c from "./crypto.js";
import { adminLinks, renderAdmin, useAppHelpers } from "./admin.js";

const state = {
  lang: localStorage.getItem("lang") || "vi",
  token: sessionStorage.getItem("token"),
  me: null,
  selected: new Set(),
  timer: null,
  totp: null, // a new authenticator's secret and QR code, while its screen is shown
};
const t = () => WORDS[state.lang];
const main = document.getElementById("main");
const nav = document.getElementById("nav");

// ---- a small DOM helper ----------------------------------------------------------------

function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "style") Object.assign(node.style, value); // CSSOM: allowed by the CSP
    else if (value === true) node.setAttribute(key, "");
    else if (value !== false && value != null) node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child != null) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function field(id, label, attrs = {}) {
  return h("div", { class: "field" }, h("label", { for: id }, label), h("input", { id, name: id, ...attrs }));
}

function show(...nodes) {
  clearInterval(state.timer);
  main.replaceChildren(...nodes);
  const heading = main.querySelector("h1");
  if (heading) {
    heading.setAttribute("tabindex", "-1");
    heading.focus();
  }
}

// A screen whose data arrives after the user went elsewhere is not shown: the screen
// they went to is.
function moved(hash) {
  return location.hash !== hash;
}

function message(text, kind = "error") {
  return h("p", { class: `message ${kind}`, role: kind === "error" ? "alert" : "status" }, text);
}

// ---- the API ---------------------------------------------------------------------------

class Problem extends Error {
  constructor(status, body) {
    super(body?.detail || `HTTP ${status}`);
    this.status = status;
    this.code = body?.code;
    this.body = body;
  }
}

async function api(path, { method = "GET", body, as = "json" } = {}) {
  const headers = {};
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  const form = body instanceof FormData; // a file upload: the browser sets its type
  if (body !== undefined && !form) headers["Content-Type"] = "application/json";
  const answer = await fetch(path, { method, headers, body: body === undefined || form ? body : JSON.stringify(body) });
  if (answer.status === 401 && path !== "/mobile/v1/sessions") {
    signOut();
    throw new Problem(401, await answer.json().catch(() => null));
  }
  if (!answer.ok) throw new Problem(answer.status, await answer.json().catch(() => null));
  if (answer.status === 204) return null;
  if (as === "bytes") return new Uint8Array(await answer.arrayBuffer());
  if (as === "blob") return answer.blob();
  return answer.json();
}

function explain(error) {
  const words = t().failures[error.code];
  return words || error.message || t().error;
}

function signOut() {
  state.token = null;
  state.me = null;
  sessionStorage.removeItem("token");
  location.hash = "#/login";
}

// ---- the frame -------------------------------------------------------------------------

function renderNav() {
  document.documentElement.lang = state.lang;
  document.title = t().app;
  document.getElementById("app-title").textContent = t().app;
  const langButton = document.getElementById("lang");
  langButton.textContent = t().language;
  if (!state.token) {
    nav.replaceChildren();
    return;
  }
  const link = (hash, label) =>
    h("a", { href: hash, "aria-current": location.hash.startsWith(hash) ? "page" : null }, label);
  const admin = state.me?.role === "admin";
  document.querySelector(".bar").classList.toggle("admin", admin);
  nav.replaceChildren(
    ...(admin ? adminLinks(link) : [link("#/list", t().waiting), link("#/history", t().history), link("#/devices", t().devices)]),
    h("button", { type: "button", class: "link", onclick: () => api("/mobile/v1/sessions/current", { method: "DELETE" }).finally(signOut) }, t().signOut)
  );
}

document.getElementById("lang").addEventListener("click", () => {
  state.lang = state.lang === "vi" ? "en" : "vi";
  localStorage.setItem("lang", state.lang);
  route();
});

// ---- sign in, password, enrolment -------------------------------------------------------

function renderLogin(error) {
  const notice = sessionStorage.getItem("notice");
  sessionStorage.removeItem("notice");
  const form = h(
    "form",
    { class: "card narrow", onsubmit: login },
    h("h1", {}, t().signIn),
    notice ? message(notice, "info") : null,
    error ? message(error) : null,
    field("username", t().username, { autocomplete: "username", required: true, autocapitalize: "none" }),
    field("password", t().password, { type: "password", autocomplete: "current-password", required: true }),
    h("button", { type: "submit", class: "primary" }, t().signIn)
  );
  show(form);
}

async function login(event) {
  event.preventDefault();
  const form = event.target;
  try {
    const session = await api("/mobile/v1/sessions", {
      method: "POST",
      body: { username: form.username.value.trim(), password: form.password.value },
    });
    state.token = session.access_token;
    sessionStorage.setItem("token", state.token);
    location.hash = session.password_change_required ? "#/password" : "#/start";
  } catch (error) {
    const why = { login_rate_limited: () => t().waitLogin(error.body.retry_after), user_disabled: () => t().failures.user_disabled }[error.code];
    renderLogin(why ? why() : t().wrongLogin);
  }
}

function renderPassword(error) {
  show(
    h(
      "form",
      { class: "card narrow", onsubmit: changePassword },
      h("h1", {}, t().changePassword),
      h("p", {}, t().changePasswordWhy),
      error ? message(error) : null,
      field("current", t().currentPassword, { type: "password", autocomplete: "current-password", required: true }),
      field("new", t().newPassword, { type: "password", autocomplete: "new-password", required: true, minlength: 10 }),
      field("repeat", t().repeatPassword, { type: "password", autocomplete: "new-password", required: true }),
      h("p", { class: "hint", id: "rules" }, t().passwordRules),
      h("button", { type: "submit", class: "primary" }, t().save)
    )
  );
}

async function changePassword(event) {
  event.preventDefault();
  const form = event.target;
  if (form.new.value !== form.repeat.value) return renderPassword(t().passwordsDiffer);
  try {
    await api("/mobile/v1/password", {
      method: "POST",
      body: { current_password: form.current.value, new_password: form.new.value },
    });
    location.hash = "#/start";
  } catch (error) {
    renderPassword(error.message);
  }
}

async function start() {
  state.me = await api("/mobile/v1/me");
  if (state.me.role === "admin") {
    location.hash = "#/admin/users";
    return;
  }
  const passkey = localPasskey();
  location.hash = !passkey && state.me.devices === 0 && !state.me.totp_enrolled ? "#/enrol" : "#/list";
}

function localPasskey() {
  const stored = JSON.parse(localStorage.getItem("passkey") || "null");
  return stored && state.me && stored.username === state.me.username ? stored : null;
}

function renderEnrol(error, done) {
  // a first authenticator app: for a signer who has none yet (replacing one is not here)
  const other = state.me?.totp_enrolled
    ? null
    : h("section", { class: "card narrow other-way" },
        h("h2", {}, t().otherWay),
        h("p", {}, t().otherWayWhy),
        h("a", { href: "#/totp", class: "button", id: "use-totp" }, t().useTotpApp));
  show(
    h(
      "form",
      { class: "card narrow", onsubmit: enrolPasskey },
      h("h1", {}, t().enrol),
      h("p", {}, t().enrolWhy),
      error ? message(error) : null,
      done ? message(t().enrolled, "ok") : null,
      field("code", t().enrolmentCode, { autocomplete: "off", autocapitalize: "none" }),
      // a code from an authenticator app already set up (the app below sets up a first one)
      state.me?.totp_enrolled ? field("otp", t().orTotp, { inputmode: "numeric", autocomplete: "one-time-code", maxlength: 6 }) : null,
      field("name", t().deviceName, { value: navigator.platform || "Tablet" }),
      h("div", { class: "actions" },
        h("button", { type: "submit", class: "primary" }, t().enrolPasskey),
        h("a", { href: "#/list", class: "button" }, t().skip))
    ),
    other
  );
}

async function enrolPasskey(event) {
  event.preventDefault();
  const form = event.target;
  try {
    const opened = await api("/mobile/v1/passkeys/options", { method: "POST" });
    const credential = await navigator.credentials.create({ publicKey: creationOptions(opened.options) });
    const json = registrationJSON(credential);
    const spki = new Uint8Array(credential.response.getPublicKey());
    const body = { challenge_id: opened.challenge_id, credential: json, name: form.name.value.slice(0, 100) };
    const code = form.code.value.trim();
    if (code) {
      const [codeId, secret] = code.split(".");
      // the code enrols this credential's key and no other one
      const rawId = c.fromB64url(json.rawId);
      const subject = c.concat(new Uint8Array([rawId.length >> 8, rawId.length & 0xff]), rawId, spki);
      body.enrolment_code_id = codeId;
      body.enrolment_proof = await c.enrolmentProof(secret, "signing-gateway/passkey-enrolment/2\0", subject);
    } else {
      body.otp = form.otp?.value.trim() || "";
    }
    const device = await api("/mobile/v1/passkeys", { method: "POST", body });
    localStorage.setItem("passkey", JSON.stringify({ username: state.me.username, device_id: device.id, credential_id: json.rawId }));
    subscribePush(device.id);
    renderEnrol(null, true);
    setTimeout(() => (location.hash = "#/list"), 800);
  } catch (error) {
    renderEnrol(explain(error));
  }
}

// ---- a first authenticator app (TOTP) with the administrator's enrolment code ----------
// The app chooses the secret (160 bits) and proves the code over it; the secret stays in
// this page's memory while its screen is shown (never in storage), for the QR code and
// the text to type in, and is dropped once confirmed or when the signer leaves.

function renderTotp(error) {
  if (state.totp) return renderTotpScan(error);
  show(
    h("form", { class: "card narrow", onsubmit: startTotp },
      h("h1", {}, t().totpTitle),
      h("p", {}, t().totpWhy),
      error ? message(error) : null,
      h("ol", { class: "steps" }, h("li", {}, t().totpInstall), h("li", {}, t().totpCodeStep)),
      field("code", t().enrolmentCode, { autocomplete: "off", autocapitalize: "none", spellcheck: "false", required: true }),
      h("div", { class: "actions" },
        h("button", { type: "submit", class: "primary", id: "totp-start" }, t().next),
        h("a", { href: "#/enrol", class: "button" }, t().back)))
  );
}

async function startTotp(event) {
  event.preventDefault();
  const code = event.target.code.value.trim();
  const [codeId, codeSecret, extra] = code.split(".");
  if (!codeId || !codeSecret || extra !== undefined) return renderTotp(t().failures.enrolment_code_invalid);
  const secret = c.base32(crypto.getRandomValues(new Uint8Array(20)));
  try {
    const proof = await c.enrolmentProof(codeSecret, "signing-gateway/totp-enrolment/1\0", c.encoder.encode(secret));
    const started = await api("/mobile/v1/totp", { method: "POST", body: { secret, enrolment_code_id: codeId, enrolment_proof: proof } });
    state.totp = { secret, qr: started.qr_png_base64, uri: started.otpauth_uri };
    renderTotpScan();
  } catch (error) {
    renderTotp(explain(error));
  }
}

function grouped(secret) {
  return secret.match(/.{1,4}/g).join(" ");
}

function renderTotpScan(error) {
  const { secret, qr, uri } = state.totp;
  show(
    h("form", { class: "card totp", onsubmit: confirmTotp },
      h("h1", {}, t().totpScanTitle),
      error ? message(error) : null,
      h("div", { class: "totp-grid" },
        h("div", { class: "totp-qr" },
          h("p", {}, t().totpScan),
          h("img", { src: `data:image/png;base64,${qr}`, alt: t().totpQr, class: "qr" }),
          // on a phone, the authenticator app may be on this very phone: no camera needed
          h("p", { class: "on-phone" }, t().totpSamePhone, " ", h("a", { href: uri, class: "button", id: "totp-open" }, t().totpOpenApp))),
        h("div", { class: "totp-key" },
          h("p", {}, t().totpType),
          h("p", { class: "code", id: "totp-secret" }, grouped(secret)),
          h("dl", { class: "summary" },
            h("dt", {}, t().totpAccount), h("dd", {}, state.me?.username || ""),
            h("dt", {}, t().totpKind), h("dd", {}, t().totpTimeBased)))),
      h("div", { class: "totp-confirm" },
        field("first-otp", t().totpFirstCode, { inputmode: "numeric", autocomplete: "one-time-code", maxlength: 7, required: true, "aria-describedby": "totp-keep" }),
        h("p", { class: "hint", id: "totp-keep" }, t().totpKeep),
        h("div", { class: "actions" },
          h("button", { type: "submit", class: "primary", id: "totp-confirm" }, t().totpConfirm))))
  );
}

async function confirmTotp(event) {
  event.preventDefault();
  const otp = event.target["first-otp"].value.replace(/\D/g, "");
  try {
    await api("/mobile/v1/totp/confirmation", { method: "POST", body: { otp } });
    state.totp = null;
    state.me = await api("/mobile/v1/me");
    show(
      h("section", { class: "card narrow" },
        h("h1", {}, t().totpDoneTitle),
        message(t().totpDone, "ok"),
        h("p", {}, t().totpHowToApprove),
        h("div", { class: "actions" }, h("a", { href: "#/list", class: "button primary", id: "totp-finished" }, t().toWaiting)))
    );
  } catch (error) {
    renderTotpScan(explain(error));
  }
}

function creationOptions(options) {
  return {
    ...options,
    challenge: c.fromB64url(options.challenge),
    user: { ...options.user, id: c.fromB64url(options.user.id) },
    excludeCredentials: (options.excludeCredentials || []).map((d) => ({ ...d, id: c.fromB64url(d.id) })),
  };
}

function registrationJSON(credential) {
  return {
    id: credential.id,
    rawId: c.b64url(credential.rawId),
    type: credential.type,
    response: {
      clientDataJSON: c.b64url(credential.response.clientDataJSON),
      attestationObject: c.b64url(credential.response.attestationObject),
      transports: credential.response.getTransports ? credential.response.getTransports() : [],
    },
    authenticatorAttachment: credential.authenticatorAttachment || undefined,
    clientExtensionResults: credential.getClientExtensionResults(),
  };
}

async function subscribePush(deviceId) {
  try {
    if (!("serviceWorker" in navigator) || !("PushManager" in window)) return;
    const registration = await navigator.serviceWorker.ready;
    const { public_key } = await api("/mobile/v1/push/vapid-key");
    const subscription = await registration.pushManager.subscribe({
      userVisibleOnly: true,
      applicationServerKey: c.fromB64url(public_key),
    });
    await api(`/mobile/v1/devices/${deviceId}/push-subscription`, { method: "PUT", body: { subscription: subscription.toJSON() } });
  } catch (error) {
    console.info("no web push here:", error.message);
  }
}

// ---- the second factor ------------------------------------------------------------------

// A decision's factor: the passkey over the statement this app built, or a TOTP code.
async function factorFor(decision, requests, otp, nonce) {
  const passkey = localPasskey();
  if (!passkey) return { otp, nonce };
  const expiresAt = Math.floor(Date.now() / 1000) + 120;
  const statement = c.statementBytes({ signer: state.me.username, device: passkey.device_id, decision, nonce, expiresAt, requests });
  const assertion = await navigator.credentials.get({
    publicKey: {
      challenge: await c.sha256(statement),
      rpId: location.hostname,
      allowCredentials: [{ type: "public-key", id: c.fromB64url(passkey.credential_id) }],
      userVerification: "required",
      timeout: 120000,
    },
  });
  return {
    device_approval: {
      device_id: passkey.device_id,
      nonce,
      expires_at: expiresAt,
      webauthn: {
        id: assertion.id,
        rawId: c.b64url(assertion.rawId),
        type: assertion.type,
        response: {
          clientDataJSON: c.b64url(assertion.response.clientDataJSON),
          authenticatorData: c.b64url(assertion.response.authenticatorData),
          signature: c.b64url(assertion.response.signature),
          userHandle: assertion.response.userHandle ? c.b64url(assertion.response.userHandle) : undefined,
        },
      },
    },
  };
}

function factorFields(view) {
  const fields = [];
  if (!localPasskey()) {
    fields.push(message(state.me?.totp_enrolled ? t().otpFromApp : t().noFactor, "info"), field("otp", t().otp, { inputmode: "numeric", autocomplete: "one-time-code", maxlength: 6, required: true }));
  }
  if (view && view.pin_policy === "signer") {
    fields.push(field("pin", t().tokenPin, { type: "password", autocomplete: "off", required: true }));
  }
  return fields;
}

// What the app shows, checked: the bytes' SHA-256 and the parameters' hash computed here.
async function shown(view) {
  const bytes = await api(`/mobile/v1/signing-requests/${view.id}/document`, { as: "bytes" });
  const documentSha256 = await c.sha256Hex(bytes);
  const parametersSha256 = await c.parametersSha256(view.parameters);
  if (documentSha256 !== view.document_sha256 || parametersSha256 !== view.parameters_sha256) {
    throw new Problem(409, { code: "shown_differs", detail: t().documentChanged });
  }
  return {
    id: view.id,
    document_sha256: documentSha256,
    parameters_sha256: parametersSha256,
    certificate_sha256: view.certificate_sha256,
    mechanism: view.mechanism,
  };
}

async function sealedPin(view, pin, nonce) {
  const key = await api(`/mobile/v1/signing-requests/${view.id}/pin-key`);
  const info = c.concat(c.fromB64(key.info_prefix), c.encoder.encode(nonce));
  const sealed = await c.hpkeSeal(c.fromB64(key.public_key), info, c.encoder.encode(pin));
  return { sealed: c.b64(sealed) };
}

// ---- the list ---------------------------------------------------------------------------

function stepLabel(view) {
  return { sign: t().stepSign, leader: t().stepLeader, seal: t().stepSeal }[view.step_kind] || t().stepSign;
}

function minutesAgo(iso) {
  return Math.max(0, Math.floor((Date.now() - new Date(iso).getTime()) / 60000));
}

async function renderList() {
  const here = location.hash;
  const pending = await api("/mobile/v1/signing-requests?status=pending_approval");
  if (moved(here)) return;
  for (const id of [...state.selected]) if (!pending.some((v) => v.id === id)) state.selected.delete(id);
  const button = h("button", { type: "button", class: "primary", id: "sign-selected", disabled: state.selected.size === 0, onclick: () => (location.hash = `#/batch/${[...state.selected].join(",")}`) }, t().signSelected(state.selected.size));
  const items = pending.map((view) =>
    h(
      "li",
      { class: "item" },
      h("input", {
        type: "checkbox",
        id: `pick-${view.id}`,
        "aria-label": `${t().select}: ${view.title || view.id}`,
        checked: state.selected.has(view.id),
        onchange: (e) => {
          if (e.target.checked) state.selected.add(view.id);
          else state.selected.delete(view.id);
          button.disabled = state.selected.size === 0;
          button.textContent = t().signSelected(state.selected.size);
        },
      }),
      h(
        "a",
        { href: `#/doc/${view.id}`, class: "item-body" },
        h("span", { class: "title" }, view.title || `${view.page_count} tr. · ${view.id.slice(0, 8)}`),
        h("span", { class: "meta" }, `${t().from}: ${view.sender} · `, h("span", { class: `badge ${view.step_kind}` }, stepLabel(view)), ` · ${t().ago(minutesAgo(view.created_at))}`)
      )
    )
  );
  show(
    h("section", {},
      h("h1", {}, t().waiting),
      pending.length ? h("ul", { class: "list" }, items) : h("p", { class: "empty" }, t().nothingWaiting),
      pending.length ? h("div", { class: "actions sticky" }, button) : null)
  );
  state.timer = setInterval(() => location.hash === "#/list" && renderListQuietly(), 15000);
}

async function renderListQuietly() {
  const focused = document.activeElement?.id;
  await renderList();
  if (focused) document.getElementById(focused)?.focus();
}

// ---- one document -----------------------------------------------------------------------

function overlay(box, size, kind, label) {
  const [w, hgt] = size;
  const [x1, y1, x2, y2] = box;
  return h("div", {
    class: `box ${kind}`,
    style: {
      left: `${(x1 / w) * 100}%`,
      bottom: `${(y1 / hgt) * 100}%`,
      width: `${((x2 - x1) / w) * 100}%`,
      height: `${((y2 - y1) / hgt) * 100}%`,
    },
    "aria-label": label,
  });
}

function pageView(view, number, zoom) {
  const size = view.page_sizes[number - 1] || [595, 842];
  const frame = h("div", { class: "page", style: { aspectRatio: `${size[0]} / ${size[1]}`, width: `${zoom * 100}%` } });
  const img = h("img", { alt: t().page(number, view.page_count), loading: "lazy" });
  frame.append(img);
  const params = view.parameters;
  const place = view.signature_place;
  if (place && place.page === number) {
    const seal = view.step_kind === "seal";
    frame.append(overlay(place.box, size, seal ? "seal" : "signature", seal ? t().stepSeal : t().whatIsSigned));
  }
  for (const empty of params.empty_fields || []) {
    if (empty.page === number) frame.append(overlay(empty.box, size, "seal", t().stepSeal));
  }
  const load = async () => {
    const width = Math.min(2000, Math.round(frame.clientWidth * (window.devicePixelRatio || 1)) || 800);
    const blob = await api(`/mobile/v1/signing-requests/${view.id}/pages/${number}.png?signature=true&width=${width}`, { as: "blob" });
    img.src = URL.createObjectURL(blob);
  };
  new IntersectionObserver((entries, observer) => {
    if (entries.some((e) => e.isIntersecting)) {
      observer.disconnect();
      load().catch(() => img.replaceWith(message(t().error)));
    }
  }, { rootMargin: "400px" }).observe(frame);
  return h("figure", {}, frame, h("figcaption", {}, t().page(number, view.page_count)));
}

function summary(view) {
  const p = view.parameters;
  const cert = view.certificate;
  const row = (label, value) => (value ? [h("dt", {}, label), h("dd", {}, value)] : []);
  return h("dl", { class: "summary" },
    row(t().holder, cert.holder), row(t().position, cert.title), row(t().organisation, cert.organisation),
    row(t().reason, p.reason), row(t().location, p.location), row(t().level, `PAdES ${p.pades_level}`),
    row(t().onPage, p.page ? t().onPageValue(p.page) : p.field_name ? p.field_name : t().invisible),
    row(t().issuer, cert.issuer), row(t().certificateUntil, new Date(cert.not_after).toLocaleDateString(state.lang)));
}

async function renderDocument(id, zoom = 1, notice) {
  const here = location.hash;
  const view = await api(`/mobile/v1/signing-requests/${id}`);
  if (moved(here)) return;
  const pages = h("div", { class: "pages" }, Array.from({ length: view.page_count }, (_, i) => pageView(view, i + 1, zoom)));
  const pending = view.status === "pending_approval";
  const decide = h("form", { class: "card decide", onsubmit: (e) => approveOne(e, view) },
    h("h2", {}, t().whatIsSigned),
    summary(view),
    view.step_kind === "seal" ? h("p", { class: "hint" }, t().sealShowsLeader) : null,
    notice || null,
    pending
      ? h("div", { class: "decision-bar" },
          factorFields(view),
          h("div", { class: "actions" },
            h("button", { type: "submit", class: "primary", id: "approve" }, t().approve),
            h("button", { type: "button", class: "danger", id: "reject", onclick: () => renderReject(view) }, t().reject)))
      : h("p", { class: "badge" }, t()[view.status] || view.status));
  show(
    h("section", { class: "document" },
      h("div", { class: "toolbar" },
        h("a", { href: "#/list", class: "button" }, "← ", h("span", { class: "back-label" }, t().back)),
        h("h1", {}, view.title || view.id.slice(0, 8)),
        h("button", { type: "button", "aria-label": t().zoomOut, onclick: () => renderDocument(id, Math.max(1, zoom - 0.5)) }, "−"),
        h("button", { type: "button", "aria-label": t().zoomIn, onclick: () => renderDocument(id, Math.min(3, zoom + 0.5)) }, "+")),
      h("div", { class: `split${pending ? " pending" : ""}` }, decide, pages))
  );
}

async function approveOne(event, view) {
  event.preventDefault();
  const form = event.target;
  const button = form.querySelector("#approve");
  button.disabled = true;
  button.textContent = t().signing;
  try {
    const own = await shown(view);
    const { nonce } = await api("/mobile/v1/approval-nonces", { method: "POST" });
    const factor = await factorFor("approve", [own], form.otp?.value.trim(), nonce);
    const body = { document_sha256: own.document_sha256, ...factor };
    if (form.pin) body.pin_envelope = await sealedPin(view, form.pin.value, nonce);
    const result = await api(`/mobile/v1/signing-requests/${view.id}/approval`, { method: "POST", body });
    const words = result.status === "signed" ? message(t().signed, "ok") : message(`${t().failed}: ${t().failures[result.failure_code] || result.failure_code}`);
    await renderDocument(view.id, 1, words);
  } catch (error) {
    await renderDocument(view.id, 1, message(explain(error)));
  }
}

function renderReject(view, error) {
  show(
    h("form", { class: "card narrow", onsubmit: (e) => reject(e, view) },
      h("h1", {}, t().reject),
      h("p", {}, view.title || view.id),
      error ? message(error) : null,
      h("div", { class: "field" }, h("label", { for: "reason" }, t().rejectReason), h("textarea", { id: "reason", name: "reason", rows: 3, maxlength: 1000, required: true })),
      factorFields(null),
      h("div", { class: "actions" },
        h("button", { type: "submit", class: "danger" }, t().confirmReject),
        h("a", { href: `#/doc/${view.id}`, class: "button" }, t().back)))
  );
}

async function reject(event, view) {
  event.preventDefault();
  const form = event.target;
  try {
    const own = await shown(view);
    const { nonce } = await api("/mobile/v1/approval-nonces", { method: "POST" });
    const factor = await factorFor("reject", [own], form.otp?.value.trim(), nonce);
    await api(`/mobile/v1/signing-requests/${view.id}/rejection`, { method: "POST", body: { reason: form.reason.value, ...factor } });
    location.hash = "#/list";
  } catch (error) {
    renderReject(view, explain(error));
  }
}

// ---- a batch ----------------------------------------------------------------------------

async function renderBatch(ids, error) {
  const here = location.hash;
  const views = await Promise.all(ids.map((id) => api(`/mobile/v1/signing-requests/${id}`)));
  if (moved(here)) return;
  const rows = views.map((v) => h("li", { class: "item", id: `row-${v.id}` }, h("span", { class: "title" }, v.title || v.id.slice(0, 8)), h("span", { class: "state" }, t().pending)));
  const needsPin = views.some((v) => v.pin_policy === "signer");
  show(
    h("form", { class: "card", onsubmit: (e) => approveBatch(e, views) },
      h("h1", {}, t().batchProgress),
      error ? message(error) : null,
      h("ol", { class: "list progress" }, rows),
      factorFields(needsPin ? views.find((v) => v.pin_policy === "signer") : null),
      h("div", { class: "actions" },
        h("button", { type: "submit", class: "primary", id: "approve-batch" }, t().signSelected(views.length)),
        h("a", { href: "#/list", class: "button" }, t().back)))
  );
}

function mark(id, words, kind) {
  const row = document.getElementById(`row-${id}`);
  if (!row) return;
  row.querySelector(".state").textContent = words;
  row.dataset.state = kind;
}

async function approveBatch(event, views) {
  event.preventDefault();
  const form = event.target;
  const button = form.querySelector("#approve-batch");
  button.disabled = true;
  let polling;
  try {
    const own = [];
    for (const view of views) {
      own.push(await shown(view));
      mark(view.id, t().signing, "signing");
    }
    const { nonce } = await api("/mobile/v1/approval-nonces", { method: "POST" });
    const factor = await factorFor("approve", own, form.otp?.value.trim(), nonce);
    const body = { requests: own.map((o) => ({ id: o.id, document_sha256: o.document_sha256 })), ...factor };
    const pinView = views.find((v) => v.pin_policy === "signer");
    if (pinView && form.pin) body.pin_envelope = await sealedPin(pinView, form.pin.value, nonce);
    polling = setInterval(async () => {
      for (const view of views) {
        const now = await api(`/mobile/v1/signing-requests/${view.id}`).catch(() => null);
        if (now && now.status === "signed") mark(view.id, t().signed, "signed");
      }
    }, 1000);
    const { outcomes } = await api("/mobile/v1/approvals", { method: "POST", body });
    for (const outcome of outcomes) {
      if (outcome.status === "signed") mark(outcome.id, t().signed, "signed");
      else mark(outcome.id, `${t().failed}: ${t().failures[outcome.failure_code || outcome.code] || outcome.failure_code || outcome.code}`, "failed");
    }
    state.selected.clear();
    button.replaceWith(h("a", { href: "#/list", class: "button primary", id: "batch-done" }, t().done));
  } catch (error) {
    button.disabled = false;
    form.prepend(message(explain(error)));
  } finally {
    clearInterval(polling);
  }
}

// ---- history and devices ------------------------------------------------------------------

async function renderHistory() {
  const here = location.hash;
  const all = await api("/mobile/v1/signing-requests");
  if (moved(here)) return;
  const done = all.filter((v) => v.status !== "pending_approval");
  const items = done.map((view) =>
    h("li", { class: "item" },
      h("span", { class: "item-body" },
        h("span", { class: "title" }, view.title || view.id.slice(0, 8)),
        h("span", { class: "meta" }, `${t().from}: ${view.sender} · `, h("span", { class: `badge ${view.status}` }, t()[view.status] || view.status),
          view.failure_code ? ` · ${t().failures[view.failure_code] || view.failure_code}` : "")),
      view.status === "signed"
        ? h("span", { class: "item-actions" },
            h("button", { type: "button", class: "button", onclick: () => download(view) }, t().download),
            h("a", { href: `#/check/${view.id}`, class: "button" }, t().check))
        : null)
  );
  show(h("section", {}, h("h1", {}, t().history), h("ul", { class: "list" }, items)));
}

// The signed document's signatures, as the gateway validates them (offline).
async function renderCheck(id) {
  const here = location.hash;
  const [view, report] = await Promise.all([
    api(`/mobile/v1/signing-requests/${id}`),
    api(`/mobile/v1/signing-requests/${id}/validation`),
  ]);
  if (moved(here)) return;
  const when = (iso) => new Date(iso).toLocaleString(state.lang === "vi" ? "vi-VN" : "en-GB");
  const cards = report.signatures.map((s) => {
    const ok = s.status_now === "valid";
    return h("article", { class: "card check" },
      h("h2", {}, `${s.kind === "timestamp" ? t().timestampOf : t().signatureOf}: ${s.signer || s.field_name}`),
      h("p", {}, h("span", { class: `badge ${ok ? "signed" : "failed"}` }, ok ? t().validNow : t().notValidNow)),
      h("dl", {},
        s.pades_level ? [h("dt", {}, t().levelReached), h("dd", {}, s.pades_level)] : null,
        s.timestamp_time ? [h("dt", {}, t().stampedAt), h("dd", {}, when(s.timestamp_time))] : null,
        h("dt", {}, t().coverage),
        h("dd", {}, s.covers_whole_file ? t().coversAll : t().coversUntil(s.revision) + (t().added[s.modifications_after] || s.modifications_after || ""))));
  });
  show(h("section", {},
    h("h1", {}, t().checkTitle),
    h("p", { class: "meta" }, view.title || view.id),
    ...cards,
    h("p", { class: "hint" }, t().checkNote),
    h("div", { class: "actions" }, h("a", { href: "#/history", class: "button" }, t().back))));
}

async function download(view) {
  const blob = await api(`/mobile/v1/signing-requests/${view.id}/signed-document`, { as: "blob" });
  const link = h("a", { href: URL.createObjectURL(blob), download: `${view.title || view.id} (signed).pdf` });
  document.body.append(link);
  link.click();
  link.remove();
}

async function renderDevices(error, issued) {
  const here = location.hash;
  const devices = await api("/mobile/v1/devices");
  if (moved(here)) return;
  const mine = localPasskey();
  const items = devices.map((d) =>
    h("li", { class: "item" },
      h("span", { class: "item-body" },
        h("span", { class: "title" }, d.name || d.id.slice(0, 8), mine && mine.device_id === d.id ? ` (${t().thisDevice})` : ""),
        h("span", { class: "meta" }, d.kind === "passkey" ? t().passkey : t().deviceKey,
          d.kind === "passkey" ? ` · ${d.synced ? t().synced : t().deviceBound}` : "",
          d.revoked_at ? ` · ${t().revoked}` : "")),
      d.revoked_at ? null : h("button", { type: "button", class: "danger", onclick: () => revokeDevice(d) }, t().revoke))
  );
  show(
    h("section", {},
      h("h1", {}, t().devices),
      error ? message(error) : null,
      h("ul", { class: "list" }, items),
      issued ? issuedCode(issued) : null,
      !localPasskey() ? factorFields(null) : null,
      h("div", { class: "actions" },
        h("button", { type: "button", class: "button", id: "issue-code", onclick: issueCode }, t().codeForNewDevice),
        h("a", { href: "#/enrol", class: "button" }, t().enrol)))
  );
}

// A code for the signer's next tablet, asked for with this one's passkey (or a TOTP code).
async function issueCode() {
  try {
    const { nonce } = await api("/mobile/v1/approval-nonces", { method: "POST" });
    const passkey = localPasskey();
    let body;
    let recipient;
    if (passkey) {
      // the bridge seals the code to a key of this page: the server relays it unread
      recipient = await c.hpkeRecipient();
      const expiresAt = Math.floor(Date.now() / 1000) + 120;
      const statement = c.enrolmentCodeBytes({ signer: state.me.username, device: passkey.device_id, nonce, expiresAt, recipient: c.b64url(recipient.point) });
      const factor = await factorForStatement(passkey, statement);
      body = { device_approval: { device_id: passkey.device_id, nonce, expires_at: expiresAt, webauthn: factor }, recipient: c.b64url(recipient.point) };
    } else {
      body = { otp: document.getElementById("otp")?.value.trim() };
    }
    const issued = await api("/mobile/v1/enrolment-codes", { method: "POST", body });
    if (issued.sealed_code) {
      const info = c.concat(c.encoder.encode("signing-gateway/enrolment-code/1\0"), c.encoder.encode(nonce));
      issued.code = new TextDecoder().decode(await c.hpkeOpen(recipient, info, c.fromB64url(issued.sealed_code)));
    }
    await renderDevices(null, issued);
  } catch (error) {
    await renderDevices(explain(error));
  }
}

function issuedCode(issued) {
  const until = new Date(issued.expires_at).toLocaleTimeString(state.lang === "vi" ? "vi-VN" : "en-GB", { hour: "2-digit", minute: "2-digit" });
  return h("div", { class: "card issued", role: "status" },
    h("p", {}, t().codeIssued(until)),
    h("p", { class: "code", id: "issued-code" }, issued.code),
    issued.qr_png_base64 ? h("img", { src: `data:image/png;base64,${issued.qr_png_base64}`, alt: t().codeQr, class: "qr" }) : null);
}

async function revokeDevice(device) {
  try {
    const { nonce } = await api("/mobile/v1/approval-nonces", { method: "POST" });
    const passkey = localPasskey();
    let body;
    if (passkey) {
      const expiresAt = Math.floor(Date.now() / 1000) + 120;
      const statement = c.revocationBytes({ signer: state.me.username, device: passkey.device_id, revoke: device.id, nonce, expiresAt });
      const factor = await factorForStatement(passkey, statement);
      body = { device_approval: { device_id: passkey.device_id, nonce, expires_at: expiresAt, webauthn: factor } };
    } else {
      body = { otp: document.getElementById("otp")?.value.trim() };
    }
    await api(`/mobile/v1/devices/${device.id}/revocation`, { method: "POST", body });
    if (passkey && passkey.device_id === device.id) localStorage.removeItem("passkey");
    // a revocation ends every session of the signer: sign in again
    sessionStorage.setItem("notice", t().revokedSignIn);
    signOut();
  } catch (error) {
    await renderDevices(explain(error));
  }
}

async function factorForStatement(passkey, statement) {
  const assertion = await navigator.credentials.get({
    publicKey: {
      challenge: await c.sha256(statement),
      rpId: location.hostname,
      allowCredentials: [{ type: "public-key", id: c.fromB64url(passkey.credential_id) }],
      userVerification: "required",
    },
  });
  return {
    id: assertion.id,
    rawId: c.b64url(assertion.rawId),
    type: assertion.type,
    response: {
      clientDataJSON: c.b64url(assertion.response.clientDataJSON),
      authenticatorData: c.b64url(assertion.response.authenticatorData),
      signature: c.b64url(assertion.response.signature),
    },
  };
}

// ---- routing ----------------------------------------------------------------------------

async function route() {
  renderNav();
  const [, page, arg] = location.hash.split("/");
  if (page !== "totp") state.totp = null; // the new secret stays on its screen only
  if (!state.token) return renderLogin();
  try {
    if (!state.me && page !== "password") {
      state.me = await api("/mobile/v1/me");
      renderNav();
    }
    // the administrator's screens (the server refuses them to anyone else, too)
    if (state.me?.role === "admin" && !["password", "start", "admin"].includes(page)) {
      location.hash = "#/admin/users";
      return;
    }
    switch (page) {
      case "password": return renderPassword();
      case "start": return await start();
      case "enrol": return renderEnrol();
      case "totp": return renderTotp();
      case "doc": return await renderDocument(arg);
      case "batch": return await renderBatch(arg.split(","));
      case "history": return await renderHistory();
      case "check": return await renderCheck(arg);
      case "devices": return await renderDevices();
      case "admin": return state.me.role === "admin" ? await renderAdmin() : await renderList();
      default: return await renderList();
    }
  } catch (error) {
    if (error.code === "password_change_required") {
      location.hash = "#/password";
      return;
    }
    if (error.status !== 401) show(message(explain(error)), h("button", { type: "button", onclick: route }, t().retry));
  }
}

useAppHelpers({ h, api, show, message, field, t, moved, state, main: () => main });
window.addEventListener("hashchange", route);
if ("serviceWorker" in navigator) {
  navigator.serviceWorker.register("/app/sw.js", { scope: "/app/" }).catch(() => {});
  navigator.serviceWorker.addEventListener("message", (event) => {
    if (event.data?.type === "signing_request" && location.hash === "#/list") renderListQuietly();
  });
}
route();
