// hatchway web UI: progressive enhancement only; every page works without it.
"use strict";

function copyText(text, button) {
  const done = () => {
    const label = button.textContent;
    button.textContent = "Copied";
    setTimeout(() => { button.textContent = label; }, 1500);
  };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(done, () => fallbackCopy(text, done));
  } else {
    fallbackCopy(text, done);
  }
}

function fallbackCopy(text, done) {
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.style.position = "fixed";
  area.style.opacity = "0";
  document.body.appendChild(area);
  area.select();
  try { document.execCommand("copy"); done(); } finally { area.remove(); }
}

document.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-copy], button[data-copy-from]");
  if (!button) return;
  const source = button.dataset.copyFrom ? document.getElementById(button.dataset.copyFrom) : null;
  copyText(source ? source.value : button.dataset.copy, button);
});

// Sortable tables: header buttons sort the body rows by each cell's data-sort (or text).
function sortTable(th) {
  const table = th.closest("table");
  const index = Array.from(th.parentNode.children).indexOf(th);
  const ascending = th.getAttribute("aria-sort") !== "ascending";
  const numeric = th.dataset.type === "number";
  const key = (row) => {
    const cell = row.children[index];
    const value = cell.dataset.sort !== undefined ? cell.dataset.sort : cell.textContent.trim();
    return numeric ? Number(value) : value.toLowerCase();
  };
  const body = table.tBodies[0];
  const rows = Array.from(body.rows);
  rows.sort((a, b) => {
    const x = key(a), y = key(b);
    const order = x < y ? -1 : x > y ? 1 : 0;
    return ascending ? order : -order;
  });
  rows.forEach((row) => body.appendChild(row));
  for (const other of th.parentNode.children) other.removeAttribute("aria-sort");
  th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
}

function enhanceSorting() {
  for (const th of document.querySelectorAll("th[data-sortable]")) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "sort";
    button.textContent = th.textContent.trim();
    th.textContent = "";
    th.appendChild(button);
    button.addEventListener("click", () => sortTable(th));
  }
}

if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", enhanceSorting);
} else {
  enhanceSorting();
}

// Passkeys (WebAuthn): adding one on My account, using one at the sign-in's second step.
// The server makes the options (challenge kept server-side) and checks the answer; this
// only converts between base64url and the ArrayBuffers the browser API wants.
function fromB64url(text) {
  const b64 = text.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((text.length + 3) % 4);
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)).buffer;
}

function toB64url(buffer) {
  let text = "";
  for (const byte of new Uint8Array(buffer)) text += String.fromCharCode(byte);
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function withIds(list) {
  return (list || []).map((c) => Object.assign({}, c, { id: fromB64url(c.id) }));
}

async function postForm(url, fields) {
  const token = document.querySelector('meta[name="csrf-token"]').content;
  const body = new URLSearchParams(Object.assign({ csrf: token }, fields));
  const response = await fetch(url, {
    method: "POST",
    body,
    credentials: "same-origin",
    headers: { Accept: "application/json" },
  });
  let data;
  try {
    data = await response.json();
  } catch (e) {
    data = { error: "The server refused (" + response.status + "): reload the page and try again." };
  }
  if (!response.ok) {
    const failure = new Error(data.error || "Refused.");
    failure.location = data.location;
    throw failure;
  }
  return data;
}

function credentialJSON(credential) {
  const r = credential.response;
  const out = {
    id: credential.id,
    rawId: toB64url(credential.rawId),
    type: credential.type,
    response: { clientDataJSON: toB64url(r.clientDataJSON) },
    clientExtensionResults: credential.getClientExtensionResults(),
  };
  if (credential.authenticatorAttachment) out.authenticatorAttachment = credential.authenticatorAttachment;
  if (r.attestationObject) {
    out.response.attestationObject = toB64url(r.attestationObject);
    if (r.getTransports) out.response.transports = r.getTransports();
  }
  if (r.authenticatorData) {
    out.response.authenticatorData = toB64url(r.authenticatorData);
    out.response.signature = toB64url(r.signature);
    if (r.userHandle) out.response.userHandle = toB64url(r.userHandle);
  }
  return JSON.stringify(out);
}

function passkeyFailed(statusId, error) {
  if (error.location) {
    window.location.assign(error.location);
    return;
  }
  const status = document.getElementById(statusId);
  const message = error.name === "NotAllowedError"
    ? "The passkey request was cancelled or timed out."
    : error.message;
  status.textContent = message;
  status.className = "error";
}

async function addPasskey(form) {
  const options = await postForm(form.dataset.options, {});
  const publicKey = Object.assign({}, options, {
    challenge: fromB64url(options.challenge),
    user: Object.assign({}, options.user, { id: fromB64url(options.user.id) }),
    excludeCredentials: withIds(options.excludeCredentials),
  });
  const credential = await navigator.credentials.create({ publicKey });
  const done = await postForm(form.action, {
    name: form.elements.name.value,
    credential: credentialJSON(credential),
  });
  window.location.assign(done.location);
}

async function usePasskey(button) {
  const options = await postForm(button.dataset.options, {});
  const publicKey = Object.assign({}, options, {
    challenge: fromB64url(options.challenge),
    allowCredentials: withIds(options.allowCredentials),
  });
  const credential = await navigator.credentials.get({ publicKey });
  const done = await postForm(button.dataset.verify, { credential: credentialJSON(credential) });
  window.location.assign(done.location);
}

function enhancePasskeys() {
  if (!window.PublicKeyCredential || !navigator.credentials) return;
  for (const element of document.querySelectorAll(".needs-webauthn")) element.hidden = false;
  for (const element of document.querySelectorAll(".no-webauthn")) element.hidden = true;
  for (const form of document.querySelectorAll("form[data-passkey-register]")) {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      addPasskey(form).catch((error) => passkeyFailed(form.dataset.status, error));
    });
  }
  for (const button of document.querySelectorAll("button[data-passkey-signin]")) {
    button.addEventListener("click", () => {
      usePasskey(button).catch((error) => passkeyFailed(button.dataset.status, error));
    });
  }
}

if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", enhancePasskeys);
} else {
  enhancePasskeys();
}
