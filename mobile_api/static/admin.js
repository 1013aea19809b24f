// The administrator's screens (role "admin"), in the same app as the tablet's: users,
// the document systems let in (integration clients), signing credentials, organisations
// and the audit log. Every call goes to /admin/v1 with the app's session; a secret the
// server answers once (a one-time password, an API key, a callback secret) lives in the
// screen that shows it and nowhere else: leaving the screen forgets it.

let ui; // the app's helpers: h, api, show, message, field, t, moved, state
const w = () => ui.t().admin;
const h = (...args) => ui.h(...args);

/** Give the module the app's helpers (app.js calls this once). */
export function useAppHelpers(helpers) {
  ui = helpers;
}

/** The administrator's destinations, for the menu. */
export function adminLinks(link) {
  return [
    link("#/admin/users", w().users),
    link("#/admin/clients", w().clients),
    link("#/admin/tokens", w().tokens),
    link("#/admin/credentials", w().credentials),
    link("#/admin/organisations", w().organisations),
    link("#/admin/audit", w().audit),
  ];
}

/** Render the admin screen ``#/admin/<screen>/<arg>``. */
export async function renderAdmin() {
  const [, , screen, arg, more] = location.hash.split("/");
  const name = arg ? decodeURIComponent(arg) : null;
  switch (screen) {
    case "users": return name === "new" ? renderNewUser() : name ? renderUser(name) : renderUsers();
    case "clients": return name === "new" ? renderNewClient() : renderClients();
    case "tokens": return renderTokens();
    case "register": return renderRegister(name, more ? decodeURIComponent(more) : "");
    case "credentials": return renderCredentials();
    case "organisations": return name ? renderOrganisation(name) : renderOrganisations();
    case "audit": return renderAudit();
    default: location.hash = "#/admin/users";
  }
}

// ---- small pieces ----------------------------------------------------------------------

function words(error) {
  return w().failures[error.code] || error.message || ui.t().error;
}

function when(iso, withTime = true) {
  if (!iso) return "—";
  const locale = ui.state.lang === "vi" ? "vi-VN" : "en-GB";
  const date = new Date(iso);
  const day = { day: "2-digit", month: "2-digit", year: "numeric" };
  return withTime ? date.toLocaleString(locale, { ...day, hour: "2-digit", minute: "2-digit" }) : date.toLocaleDateString(locale, day);
}

// A table that reads as cards on a phone (a wide one on a tablet held upright, too):
// each cell carries its column's name.
function table(caption, columns, rows, empty, wide = false) {
  if (!rows.length) return h("p", { class: "empty" }, empty);
  return h("div", { class: "table-wrap" },
    h("table", { class: `admin-table${wide ? " wide" : ""}` },
      h("caption", { class: "visually-hidden" }, caption),
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, rows.map((row) =>
        h("tr", row.attrs || {}, row.cells.map((cell, i) => h("td", { "data-label": columns[i] }, cell)))))));
}

// A question answered in a modal dialog: true when the user confirms.
function confirmDialog(question, explanation, action, danger = true) {
  return new Promise((resolve) => {
    const dialog = h("dialog", { class: "confirm", "aria-labelledby": "confirm-title" });
    const close = (answer) => {
      dialog.close();
      dialog.remove();
      resolve(answer);
    };
    dialog.append(
      h("h2", { id: "confirm-title" }, question),
      explanation ? h("p", {}, explanation) : null,
      h("div", { class: "actions" },
        h("button", { type: "button", class: danger ? "danger" : "primary", id: "confirm-yes", onclick: () => close(true) }, action),
        h("button", { type: "button", id: "confirm-no", onclick: () => close(false) }, w().cancel)));
    dialog.addEventListener("cancel", () => close(false));
    document.body.append(dialog);
    dialog.showModal();
    dialog.querySelector("#confirm-no").focus();
  });
}

// A secret shown once: copy it now, it will not be shown again.
function secretCard(title, items, after) {
  const rows = items.filter((item) => item.value).map((item, i) => {
    const id = `secret-${i}`;
    const status = h("span", { class: "hint", role: "status" });
    const copy = async () => {
      try {
        await navigator.clipboard.writeText(item.value);
        status.textContent = w().copied;
      } catch {
        window.getSelection().selectAllChildren(document.getElementById(id));
        status.textContent = w().copyByHand;
      }
    };
    return h("div", { class: "secret-item" },
      h("p", { class: "secret-label" }, item.label),
      h("p", { class: "code", id }, item.value),
      h("div", { class: "actions" }, h("button", { type: "button", onclick: copy }, w().copy), status));
  });
  return h("section", { class: "card issued once", "aria-labelledby": "once-title" },
    h("h1", { id: "once-title" }, title),
    h("p", { class: "message warning", role: "alert" }, w().shownOnce),
    rows,
    after ? h("p", { class: "hint" }, after) : null,
    h("div", { class: "actions" }, h("button", { type: "button", class: "primary", id: "secret-done", onclick: () => renderAdmin() }, w().copiedDone)));
}

function select(id, label, options, chosen) {
  return h("div", { class: "field" },
    h("label", { for: id }, label),
    h("select", { id, name: id }, options.map(([value, text]) => h("option", { value, selected: value === (chosen ?? "") }, text))));
}

function roleName(role) {
  return w().roles[role] || role;
}

function organisationOptions(organisations) {
  return [["", w().noOrganisation], ...organisations.map((o) => [o.name, `${o.display_name} (${o.name})`])];
}

async function guarded(here, work) {
  try {
    await work();
  } catch (error) {
    if (!ui.moved(here)) ui.main().prepend(ui.message(words(error)));
    window.scrollTo(0, 0);
  }
}

// ---- users -------------------------------------------------------------------------------

function userState(user) {
  if (user.disabled) return h("span", { class: "badge failed" }, w().disabled);
  if (user.password_must_change) return h("span", { class: "badge" }, w().mustChange);
  return h("span", { class: "badge signed" }, w().active);
}

async function renderUsers(notice) {
  const here = location.hash;
  const [users, organisations] = await Promise.all([ui.api("/admin/v1/users"), ui.api("/admin/v1/organisations")]);
  if (ui.moved(here)) return;
  const named = Object.fromEntries(organisations.map((o) => [o.name, o.display_name]));
  const rows = users.map((u) => ({
    attrs: { id: `user-${u.username}` },
    cells: [
      h("a", { href: `#/admin/users/${encodeURIComponent(u.username)}` }, u.username),
      u.display_name,
      roleName(u.role),
      u.organisation ? named[u.organisation] || u.organisation : "—",
      userState(u),
    ],
  }));
  ui.show(h("section", {},
    h("div", { class: "toolbar" }, h("h1", {}, w().users), h("a", { href: "#/admin/users/new", class: "button primary", id: "add-user" }, w().addUser)),
    notice || null,
    h("p", { class: "hint" }, w().usersHint),
    table(w().users, [w().username, w().displayName, w().role, w().organisation, w().state], rows, w().noUsers)));
}

async function renderNewUser(error) {
  const here = location.hash;
  const organisations = await ui.api("/admin/v1/organisations");
  if (ui.moved(here)) return;
  const form = h("form", { class: "card narrow", onsubmit: addUser },
    h("h1", {}, w().addUser),
    error ? ui.message(error) : null,
    ui.field("username", w().username, { required: true, autocomplete: "off", autocapitalize: "none", maxlength: 64, pattern: "[A-Za-z0-9._\\-]+", "aria-describedby": "username-hint" }),
    h("p", { class: "hint", id: "username-hint" }, w().usernameHint),
    ui.field("display_name", w().displayName, { required: true, maxlength: 200, autocomplete: "off" }),
    select("role", w().role, Object.entries(w().roles), "leader"),
    h("p", { class: "hint" }, w().rolesHint),
    select("organisation", w().organisation, organisationOptions(organisations), ""),
    h("div", { class: "actions" },
      h("button", { type: "submit", class: "primary" }, w().addUser),
      h("a", { href: "#/admin/users", class: "button" }, ui.t().back)));
  ui.show(form);
}

async function addUser(event) {
  event.preventDefault();
  const form = event.target;
  const body = { username: form.username.value.trim(), display_name: form.display_name.value.trim(), role: form.role.value };
  if (form.organisation.value) body.organisation = form.organisation.value;
  try {
    const made = await ui.api("/admin/v1/users", { method: "POST", body });
    history.replaceState(null, "", "#/admin/users"); // no hashchange: the secret stays on screen
    ui.show(secretCard(w().passwordOf(made.user.username), [{ label: w().oneTimePassword, value: made.initial_password }], w().passwordAfter));
  } catch (error) {
    await renderNewUser(words(error));
    const again = document.querySelector("form");
    if (again) {
      again.username.value = body.username;
      again.display_name.value = body.display_name;
      again.role.value = body.role;
      again.organisation.value = body.organisation || "";
    }
  }
}

async function renderUser(username, notice) {
  const here = location.hash;
  const [users, organisations, devices] = await Promise.all([
    ui.api("/admin/v1/users"),
    ui.api("/admin/v1/organisations"),
    ui.api(`/admin/v1/users/${encodeURIComponent(username)}/devices`),
  ]);
  if (ui.moved(here)) return;
  const user = users.find((u) => u.username === username);
  if (!user) return ui.show(ui.message(w().failures.user_not_found), h("a", { href: "#/admin/users", class: "button" }, ui.t().back));
  const base = `/admin/v1/users/${encodeURIComponent(username)}`;
  const act = (path, question, explanation, action, done) => async () => {
    if (!(await confirmDialog(question, explanation, action))) return;
    await guarded(here, async () => {
      const answer = await ui.api(`${base}/${path}`, { method: "POST" });
      await done(answer);
    });
  };
  const reset = act("password-reset", w().resetQuestion(user.display_name), w().resetExplain, w().resetPassword, (answer) =>
    ui.show(secretCard(w().passwordOf(username), [{ label: w().oneTimePassword, value: answer.initial_password }], w().passwordAfter)));
  const toggle = user.disabled
    ? act("enable", w().enableQuestion(user.display_name), w().enableExplain, w().enable, () => renderUser(username, ui.message(w().enabledNow, "ok")))
    : act("disable", w().disableQuestion(user.display_name), w().disableExplain, w().disable, () => renderUser(username, ui.message(w().disabledNow, "ok")));
  const edit = h("form", { class: "card", onsubmit: (e) => saveUser(e, user) },
    h("h2", {}, w().details),
    ui.field("display_name", w().displayName, { required: true, maxlength: 200, value: user.display_name, autocomplete: "off" }),
    select("role", w().role, Object.entries(w().roles), user.role),
    select("organisation", w().organisation, organisationOptions(organisations), user.organisation || ""),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, w().saveChanges)));
  const access = h("div", { class: "card" },
    h("h2", {}, w().access),
    h("dl", { class: "summary" },
      h("dt", {}, w().state), h("dd", {}, userState(user)),
      h("dt", {}, w().createdAt), h("dd", {}, when(user.created_at)),
      h("dt", {}, w().credentialsCount), h("dd", {}, String(user.credentials))),
    h("div", { class: "actions" },
      h("button", { type: "button", id: "reset-password", onclick: reset }, w().resetPassword),
      h("button", { type: "button", class: user.disabled ? "primary" : "danger", id: "toggle-user", onclick: toggle }, user.disabled ? w().enable : w().disable)));
  ui.show(h("section", { class: "user" },
    h("div", { class: "toolbar" },
      h("a", { href: "#/admin/users", class: "button" }, "← ", h("span", { class: "back-label" }, ui.t().back)),
      h("h1", {}, `${user.display_name} (${user.username})`)),
    notice || null,
    h("div", { class: "columns" }, edit, access),
    deviceList(devices)));
}

async function saveUser(event, user) {
  event.preventDefault();
  const form = event.target;
  const body = {};
  if (form.display_name.value.trim() !== user.display_name) body.display_name = form.display_name.value.trim();
  if (form.role.value !== user.role) body.role = form.role.value;
  if (form.organisation.value !== (user.organisation || "")) body.organisation = form.organisation.value || null;
  const here = location.hash;
  await guarded(here, async () => {
    await ui.api(`/admin/v1/users/${encodeURIComponent(user.username)}`, { method: "PATCH", body });
    await renderUser(user.username, ui.message(w().saved, "ok"));
  });
}

function deviceList(devices) {
  const rows = devices.map((d) => ({
    cells: [
      d.name || d.id.slice(0, 8),
      d.kind === "passkey" ? ui.t().passkey : ui.t().deviceKey,
      d.platform || "—",
      when(d.created_at),
      d.revoked_at ? h("span", { class: "badge failed" }, `${ui.t().revoked} ${when(d.revoked_at)}`) : h("span", { class: "badge signed" }, w().inUse),
    ],
  }));
  return h("section", { class: "card devices" },
    h("h2", {}, w().devicesOf),
    table(w().devicesOf, [w().deviceName, w().kind, w().platform, w().createdAt, w().state], rows, w().noDevices),
    h("p", { class: "hint" }, w().revokeWhere, " ", h("code", {}, "signing-gateway devices revoke"), "."));
}

// ---- integration clients (document systems) ----------------------------------------------

const SCOPES = ["requests:submit", "requests:read", "validations"];

async function renderClients(notice) {
  const here = location.hash;
  const clients = await ui.api("/admin/v1/integration-clients");
  if (ui.moved(here)) return;
  const base = (c) => `/admin/v1/integration-clients/${encodeURIComponent(c.id)}`;
  const act = (c, path, question, explanation, action, done) => async () => {
    if (!(await confirmDialog(question, explanation, action))) return;
    await guarded(here, async () => done(await ui.api(`${base(c)}/${path}`, { method: "POST" })));
  };
  const rows = clients.map((c) => ({
    attrs: { id: `client-${c.id}`, class: c.revoked_at ? "revoked" : null },
    cells: [
      h("strong", {}, c.name),
      h("ul", { class: "scopes" }, c.scopes.map((s) => h("li", {}, w().scopes[s] || s))),
      h("span", {}, when(c.created_at, false), c.key_rotated_at ? h("span", { class: "meta" }, ` · ${w().keyRotated} ${when(c.key_rotated_at, false)}`) : null),
      c.revoked_at ? h("span", { class: "badge failed" }, `${ui.t().revoked} ${when(c.revoked_at, false)}`) : h("span", { class: "badge signed" }, w().active),
      c.revoked_at ? "" : h("div", { class: "item-actions" },
        h("button", { type: "button", class: "rotate-key", onclick: act(c, "key-rotation", w().rotateKeyQuestion(c.name), w().rotateKeyExplain, w().rotateKey,
          (a) => ui.show(secretCard(w().keyOf(c.name), [{ label: w().apiKey, value: a.api_key }], w().keyAfter))) }, w().rotateKey),
        h("button", { type: "button", class: "rotate-secret", onclick: act(c, "callback-secret-rotation", w().rotateSecretQuestion(c.name), w().rotateSecretExplain, w().rotateSecret,
          (a) => ui.show(secretCard(w().secretOf(c.name), [{ label: w().callbackSecret, value: a.callback_secret }], w().secretAfter))) }, c.has_callback_secret ? w().rotateSecret : w().makeSecret),
        h("button", { type: "button", class: "danger revoke", onclick: act(c, "revocation", w().revokeClientQuestion(c.name), w().revokeClientExplain, ui.t().revoke,
          () => renderClients(ui.message(w().clientRevoked(c.name), "ok"))) }, ui.t().revoke)),
    ],
  }));
  ui.show(h("section", {},
    h("div", { class: "toolbar" }, h("h1", {}, w().clientsTitle), h("a", { href: "#/admin/clients/new", class: "button primary", id: "add-client" }, w().addClient)),
    notice || null,
    h("p", { class: "hint" }, w().clientsHint),
    table(w().clientsTitle, [w().clientName, w().mayDo, w().createdAt, w().state, w().manage], rows, w().noClients, true)));
}

function renderNewClient(error) {
  const form = h("form", { class: "card narrow", onsubmit: addClient },
    h("h1", {}, w().addClient),
    error ? ui.message(error) : null,
    ui.field("name", w().clientName, { required: true, maxlength: 100, autocomplete: "off", "aria-describedby": "name-hint" }),
    h("p", { class: "hint", id: "name-hint" }, w().clientNameHint),
    h("fieldset", { class: "choices" },
      h("legend", {}, w().mayDo),
      SCOPES.map((s) => h("label", { class: "choice" }, h("input", { type: "checkbox", name: "scope", value: s, checked: true }), h("span", {}, w().scopes[s])))),
    h("fieldset", { class: "choices" },
      h("legend", {}, w().callbackSecret),
      h("label", { class: "choice" }, h("input", { type: "checkbox", name: "callback_secret", checked: true }), h("span", {}, w().wantSecret))),
    h("div", { class: "actions" },
      h("button", { type: "submit", class: "primary" }, w().addClient),
      h("a", { href: "#/admin/clients", class: "button" }, ui.t().back)));
  ui.show(form);
}

async function addClient(event) {
  event.preventDefault();
  const form = event.target;
  const scopes = [...form.querySelectorAll("input[name=scope]:checked")].map((i) => i.value);
  if (!scopes.length) return renderNewClient(w().pickScope);
  try {
    const made = await ui.api("/admin/v1/integration-clients", {
      method: "POST",
      body: { name: form.name.value.trim(), scopes, callback_secret: form.callback_secret.checked },
    });
    history.replaceState(null, "", "#/admin/clients");
    ui.show(secretCard(w().keyOf(made.client.name), [
      { label: w().apiKey, value: made.api_key },
      { label: w().callbackSecret, value: made.callback_secret },
    ], w().keyAfter));
  } catch (error) {
    renderNewClient(words(error));
  }
}

// ---- credentials ----------------------------------------------------------------------------

const DAY = 24 * 60 * 60 * 1000;

function expiry(credential) {
  const left = Math.floor((new Date(credential.not_after).getTime() - Date.now()) / DAY);
  const date = when(credential.not_after, false);
  if (left < 0) return h("span", { class: "badge expired" }, `${w().expiredOn} ${date}`);
  if (left <= 30) return h("span", { class: "badge soon" }, `${date} · ${w().daysLeft(left)}`);
  return h("span", {}, date);
}

async function renderCredentials(notice) {
  const here = location.hash;
  const credentials = await ui.api("/admin/v1/credentials");
  if (ui.moved(here)) return;
  const revoke = (c) => async () => {
    if (!(await confirmDialog(w().revokeCredentialQuestion(c.display_name || c.username || c.key_id), w().revokeCredentialExplain, ui.t().revoke))) return;
    await guarded(here, async () => {
      await ui.api(`/admin/v1/credentials/${encodeURIComponent(c.id)}/revocation`, { method: "POST" });
      await renderCredentials(ui.message(w().credentialRevoked, "ok"));
    });
  };
  const switchPin = (c) => () => guarded(here, async () => {
    const pin_policy = c.pin_policy === "stored" ? "signer" : "stored";
    await ui.api(`/admin/v1/credentials/${encodeURIComponent(c.id)}/pin-policy`, { method: "PUT", body: { pin_policy } });
    await renderCredentials(ui.message(w().pinChanged, "ok"));
  });
  const rows = credentials.map((c) => ({
    attrs: { id: `credential-${c.id}` },
    cells: [
      c.username ? h("span", {}, h("strong", {}, c.display_name || c.username), h("span", { class: "meta" }, ` (${c.username})`)) : h("span", { class: "meta" }, w().nobody),
      c.organisation || "—",
      h("span", { class: "mono" }, c.token_serial),
      h("span", { class: "mono" }, c.key_id),
      h("span", { class: "subject" }, c.subject || "—"),
      c.not_after ? expiry(c) : "—",
      c.revoked_at
        ? h("span", { class: "badge failed" }, `${ui.t().revoked} ${when(c.revoked_at, false)}`)
        : h("div", { class: "state-actions" },
            h("span", { class: "badge signed" }, w().inUse),
            h("span", { class: "meta pin-now" }, w().pinPolicies[c.pin_policy] || c.pin_policy),
            h("button", { type: "button", class: "pin-policy", onclick: switchPin(c) }, w().changePin(c.pin_policy)),
            h("button", { type: "button", class: "danger", onclick: revoke(c) }, ui.t().revoke)),
    ],
  }));
  ui.show(h("section", {},
    h("h1", {}, w().credentialsTitle),
    notice || null,
    h("p", { class: "hint" }, w().credentialsHint),
    h("p", { class: "hint" }, w().renewalHint),
    table(w().credentialsTitle, [w().owner, w().organisation, w().token, w().keyId, w().subject, w().validUntil, w().state], rows, w().noCredentials, true)));
}

// ---- organisations ----------------------------------------------------------------------------

async function renderOrganisations(notice) {
  const here = location.hash;
  const organisations = await ui.api("/admin/v1/organisations");
  if (ui.moved(here)) return;
  const rows = organisations.map((o) => ({
    cells: [
      h("a", { href: `#/admin/organisations/${encodeURIComponent(o.name)}`, id: `organisation-${o.name}` }, h("strong", {}, o.display_name), h("span", { class: "meta" }, ` (${o.name})`)),
      o.has_seal_image ? h("span", { class: "badge signed" }, w().yes) : h("span", { class: "badge failed" }, w().noSeal),
      o.keeper || h("span", { class: "meta" }, w().noKeeper),
    ],
  }));
  ui.show(h("section", {},
    h("h1", {}, w().organisations),
    notice || null,
    h("p", { class: "hint" }, w().organisationsHint),
    table(w().organisations, [w().organisation, w().sealImage, w().keeper], rows, w().noOrganisations)));
}

// ---- tokens and the keys on them -------------------------------------------------------------

function holderNames(key) {
  return key.holders.map((x) => `${x.display_name} (${x.username}${x.organisation ? ` · ${x.organisation}` : ""})`).join(", ");
}

function keyRow(token, key) {
  const free = key.status === "ok" && !key.holders.length;
  const status = h("span", { class: `badge ${key.status === "ok" ? "signed" : "failed"}` }, w().keyStatus[key.status] || key.status);
  return {
    attrs: { id: `key-${token.serial}-${key.key_id}` },
    cells: [
      h("span", { class: "mono" }, key.key_id),
      `${key.key_type.toUpperCase()} ${key.key_bits}`,
      h("span", { class: "subject" }, key.subject || "—"),
      key.not_after ? expiry(key) : "—",
      status,
      free
        ? h("a", { href: `#/admin/register/${encodeURIComponent(token.serial)}/${key.key_id}`, class: "button primary register-key" }, w().registerFor)
        : key.holders.length ? holderNames(key) : h("span", { class: "meta" }, w().nobody),
    ],
  };
}

async function renderTokens() {
  const here = location.hash;
  const tokens = await ui.api("/admin/v1/tokens");
  if (ui.moved(here)) return;
  const columns = [w().keyId, w().keyType, w().subject, w().validUntil, w().state, w().belongsTo];
  const cards = tokens.map((token) =>
    h("section", { class: "card token", id: `token-${token.serial}` },
      h("h2", {}, `${token.label} `, h("span", { class: "meta" }, `· ${token.serial}`)),
      h("p", {}, h("span", { class: `badge ${token.state === "ok" ? "signed" : "failed"}` }, w().tokenState[token.state] || token.state),
        h("span", { class: "meta" }, ` ${token.manufacturer} ${token.model}`)),
      token.error ? ui.message(w().tokenError(token.error), "warning") : null,
      table(`${token.label} ${token.serial}`, columns, token.keys.map((k) => keyRow(token, k)), w().noKeys, true)));
  ui.show(h("section", {},
    h("h1", {}, w().tokens),
    h("p", { class: "hint" }, w().tokensHint),
    h("p", { class: "hint" }, w().renewalHint),
    cards.length ? cards : h("p", { class: "empty" }, w().noTokens)));
}

async function renderRegister(serial, keyId, error) {
  const here = location.hash;
  const [tokens, users, organisations] = await Promise.all([ui.api("/admin/v1/tokens"), ui.api("/admin/v1/users"), ui.api("/admin/v1/organisations")]);
  if (ui.moved(here)) return;
  const key = tokens.find((t) => t.serial === serial)?.keys.find((k) => k.key_id === keyId);
  if (!key) return ui.show(ui.message(w().noKeys), h("a", { href: "#/admin/tokens", class: "button" }, ui.t().back));
  const people = users.filter((u) => !u.disabled && u.role !== "admin").map((u) => [u.username, `${u.display_name} (${u.username})`]);
  const form = h("form", { class: "card narrow", id: "register-form", onsubmit: (e) => registerKey(e, serial, key, users) },
    h("h1", {}, w().registerTitle),
    error ? ui.message(error) : null,
    h("dl", { class: "summary" },
      h("dt", {}, w().certificateOf), h("dd", { class: "subject", title: key.subject || "" }, commonName(key.subject)),
      h("dt", {}, w().token), h("dd", { class: "mono" }, serial),
      h("dt", {}, w().keyId), h("dd", { class: "mono" }, key.key_id),
      h("dt", {}, w().validUntil), h("dd", {}, key.not_after ? expiry(key) : "—")),
    h("p", { class: "hint" }, w().registerHint),
    select("username", w().chooseUser, people, people[0]?.[0]),
    select("organisation", w().asSeal, [["", w().notSeal], ...organisations.map((o) => [o.name, `${o.display_name} (${o.name})`])], ""),
    select("pin_policy", w().pinPolicy, Object.entries(w().pinPolicies), "stored"),
    h("div", { id: "holder-check" }),
    h("div", { class: "actions" },
      h("button", { type: "submit", class: "primary", id: "register" }, w().register),
      h("a", { href: "#/admin/tokens", class: "button" }, ui.t().back)));
  ui.show(form);
}

// The certificate's holder: the common name of its subject (RFC 4514), else all of it.
function commonName(subject) {
  const found = /(?:^|,)CN=((?:\\.|[^,\\])+)/.exec(subject || "");
  return found ? found[1].replace(/\\(.)/g, "$1") : subject || "?";
}

async function registerKey(event, serial, key, users) {
  event.preventDefault();
  const form = event.target;
  const user = users.find((u) => u.username === form.username.value);
  const who = user ? `${user.display_name} (${user.username})` : form.username.value;
  const confirmHolder = form.confirm_holder?.value.trim();
  if (!confirmHolder && !(await confirmDialog(w().registerQuestion(who), w().registerExplain, w().register, false))) return;
  const body = { username: form.username.value, token_serial: serial, key_id: key.key_id, pin_policy: form.pin_policy.value };
  if (form.organisation.value) body.organisation = form.organisation.value;
  if (confirmHolder) body.confirm_holder = confirmHolder;
  const here = location.hash;
  try {
    await ui.api("/admin/v1/credentials", { method: "POST", body });
    history.replaceState(null, "", "#/admin/credentials");
    await renderCredentials(ui.message(w().registered(who), "ok"));
  } catch (error) {
    if (ui.moved(here)) return;
    const place = form.querySelector("#holder-check");
    if (error.code === "certificate_holder_mismatch") {
      const unit = body.organisation && (await ui.api("/admin/v1/organisations")).find((o) => o.name === body.organisation);
      place.replaceChildren(
        h("p", { class: "message warning", role: "alert" }, w().holderMismatch(commonName(key.subject), unit ? unit.display_name : user?.display_name || body.username)),
        ui.field("confirm_holder", w().confirmHolder, { required: true, autocomplete: "off", maxlength: 200 }));
      form.querySelector("#register").textContent = w().confirmAndRegister;
      form.confirm_holder.focus();
    } else {
      place.replaceChildren(ui.message(words(error)));
    }
  }
}

// ---- one organisation: its seal image and its handover -----------------------------------------

async function renderOrganisation(name, notice) {
  const here = location.hash;
  const [organisations, users] = await Promise.all([ui.api("/admin/v1/organisations"), ui.api("/admin/v1/users")]);
  if (ui.moved(here)) return;
  const unit = organisations.find((o) => o.name === name);
  if (!unit) return ui.show(ui.message(w().organisationUnknown), h("a", { href: "#/admin/organisations", class: "button" }, ui.t().back));
  const preview = h("img", { id: "seal-preview", alt: w().preview, hidden: true });
  const file = h("input", { type: "file", id: "seal_file", name: "seal_file", accept: "image/png", required: true,
    onchange: () => {
      const chosen = file.files[0];
      if (preview.src) URL.revokeObjectURL(preview.src);
      preview.hidden = !chosen;
      if (chosen) preview.src = URL.createObjectURL(chosen);
    } });
  const seal = h("form", { class: "card", id: "seal-form", onsubmit: (e) => saveSeal(e, unit) },
    h("h2", {}, w().sealTitle),
    h("p", {}, unit.has_seal_image ? h("span", { class: "badge signed" }, w().sealKept) : h("span", { class: "badge failed" }, w().noSeal)),
    h("p", { class: "hint", id: "seal-hint" }, w().sealHint),
    h("div", { class: "field" }, h("label", { for: "seal_file" }, w().sealFile), file),
    h("div", { class: "seal-preview" }, preview),
    ui.field("diameter_mm", w().diameter, { type: "number", min: 20, max: 60, step: 0.5, value: 40, required: true, inputmode: "decimal" }),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary", id: "save-seal" }, w().saveSeal)));
  const clerks = users.filter((u) => u.role === "clerk" && u.organisation === name && !u.disabled && u.username !== unit.keeper);
  const handover = h("form", { class: "card", id: "handover-form", onsubmit: (e) => handOver(e, unit, clerks) },
    h("h2", {}, w().handoverTitle),
    h("p", { class: "hint" }, w().handoverHint),
    h("dl", { class: "summary" }, h("dt", {}, w().keptBy), h("dd", {}, unit.keeper || w().noKeeper)),
    clerks.length
      ? [select("to", w().newKeeper, clerks.map((u) => [u.username, `${u.display_name} (${u.username})`]), clerks[0].username),
        h("div", { class: "field" }, h("label", { for: "permission" }, w().permission),
          h("textarea", { id: "permission", name: "permission", required: true, maxlength: 500, rows: 3 })),
        h("div", { class: "actions" }, h("button", { type: "submit", class: "danger", id: "hand-over" }, w().handover))]
      : h("p", { class: "empty" }, w().noClerks));
  ui.show(h("section", { class: "organisation" },
    h("div", { class: "toolbar" },
      h("a", { href: "#/admin/organisations", class: "button" }, "← ", h("span", { class: "back-label" }, ui.t().back)),
      h("h1", {}, `${unit.display_name} (${unit.name})`)),
    notice || null,
    h("div", { class: "columns" }, seal, handover)));
}

async function saveSeal(event, unit) {
  event.preventDefault();
  const form = event.target;
  const body = new FormData();
  body.append("image", form.seal_file.files[0]);
  body.append("diameter_mm", form.diameter_mm.value);
  await guarded(location.hash, async () => {
    await ui.api(`/admin/v1/organisations/${encodeURIComponent(unit.name)}/seal`, { method: "PUT", body });
    await renderOrganisation(unit.name, ui.message(w().sealSaved, "ok"));
  });
}

async function handOver(event, unit, clerks) {
  event.preventDefault();
  const form = event.target;
  const to = clerks.find((u) => u.username === form.to.value);
  const permission = form.permission.value.trim();
  if (!permission) return form.permission.focus();
  if (!(await confirmDialog(w().handoverQuestion(unit.display_name, to.display_name), w().handoverExplain, w().handover))) return;
  await guarded(location.hash, async () => {
    const done = await ui.api(`/admin/v1/organisations/${encodeURIComponent(unit.name)}/handover`, { method: "POST", body: { to: to.username, permission } });
    await renderOrganisation(unit.name, ui.message(w().handedOver(to.display_name, done.readdressed.length), "ok"));
  });
}

// ---- the audit log ------------------------------------------------------------------------------

function isoDay(value, plusDays = 0) {
  if (!value) return null;
  const day = new Date(`${value}T00:00:00`);
  return new Date(day.getTime() + plusDays * DAY).toISOString();
}

function auditRow(entry) {
  const detail = Object.entries(entry.detail || {}).map(([k, v]) => `${k}: ${Array.isArray(v) ? v.join(", ") : v && typeof v === "object" ? JSON.stringify(v) : v}`).join(" · ");
  return {
    attrs: { class: "audit-entry" },
    cells: [
      when(entry.at),
      entry.actor,
      h("span", {}, w().actions[entry.action] || entry.action, w().actions[entry.action] ? h("span", { class: "meta code-name" }, ` (${entry.action})`) : null),
      entry.request_id ? h("span", { class: "mono" }, entry.request_id) : "—",
      h("span", { class: "detail" }, detail || "—"),
    ],
  };
}

async function renderAudit() {
  const here = location.hash;
  const filters = h("form", { class: "card filters", onsubmit: (e) => { e.preventDefault(); load(null); } },
    h("h2", {}, w().filters),
    h("div", { class: "filter-grid" },
      ui.field("actor", w().actor, { autocomplete: "off", autocapitalize: "none", placeholder: "nguyen.van.a" }),
      ui.field("action", w().action, { autocomplete: "off", autocapitalize: "none", placeholder: "user.added", list: "known-actions" }),
      ui.field("request_id", w().requestId, { autocomplete: "off", autocapitalize: "none" }),
      ui.field("since", w().since, { type: "date" }),
      ui.field("until", w().until, { type: "date" })),
    h("datalist", { id: "known-actions" }, Object.keys(w().actions).map((a) => h("option", { value: a }, w().actions[a]))),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary", id: "search-audit" }, w().search)));
  const results = h("div", { id: "audit-results", "aria-live": "polite" });
  const more = h("div", { class: "actions" });
  ui.show(h("section", {}, h("h1", {}, w().audit), h("p", { class: "hint" }, w().auditHint), filters, results, more));
  let entries = [];

  async function load(cursor) {
    const query = new URLSearchParams();
    for (const key of ["actor", "action", "request_id"]) if (filters[key].value.trim()) query.set(key, filters[key].value.trim());
    // a bare username means that user (the log names actors user:NAME, client:NAME, system)
    const actor = query.get("actor");
    if (actor && !actor.includes(":") && actor !== "system") query.set("actor", `user:${actor}`);
    const since = isoDay(filters.since.value);
    const until = isoDay(filters.until.value, 1);
    if (since) query.set("since", since);
    if (until) query.set("until", until);
    if (cursor) query.set("cursor", cursor);
    query.set("limit", "50");
    try {
      const page = await ui.api(`/admin/v1/audit?${query}`);
      if (ui.moved(here)) return;
      entries = cursor ? entries.concat(page.items) : page.items;
      const columns = [w().at, w().actor, w().action, w().requestId, w().detail];
      results.replaceChildren(table(w().audit, columns, entries.map(auditRow), w().noEntries));
      more.replaceChildren(page.next_cursor
        ? h("button", { type: "button", id: "load-more", onclick: () => load(page.next_cursor) }, w().loadMore)
        : entries.length ? h("p", { class: "hint" }, w().allShown(entries.length)) : "");
    } catch (error) {
      results.replaceChildren(ui.message(words(error)));
    }
  }
  await load(null);
}
