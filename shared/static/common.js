/* What both pages share (intake's report form at /, the alerts inbox at /inbox): the language and its toggle,
   translation with the shared label catalogue, DOM helpers, the JSON API call, time formatting and the sign-in
   panel. Served by shared/webpages.py. Load after /static/labels.js (which defines LABELS) and before the page's
   own script. */
"use strict";

const LANG_STORAGE = "lang";

/* The language shown and the texts of each language: the page's own merged with the label catalogue. */
const i18n = {
  lang: localStorage.getItem(LANG_STORAGE) === "en" ? "en" : "zh",
  messages: { zh: {}, en: {} },
};

/* Texts of the parts every page has (the sign-in panel). */
const COMMON_MESSAGES = {
  zh: { "auth.signIn": "登录", "auth.signedIn": "已登录。", "auth.signOut": "退出登录" },
  en: { "auth.signIn": "Sign in", "auth.signedIn": "Signed in.", "auth.signOut": "Sign out" },
};

/* The page's texts, {zh: {...}, en: {...}}; risk levels, kinds, states, outcomes... come from LABELS. */
function defineMessages(pageMessages) {
  for (const lang of ["zh", "en"]) {
    i18n.messages[lang] = { ...COMMON_MESSAGES[lang], ...(pageMessages[lang] || {}), ...LABELS[lang] };
  }
}

function t(key, params) {
  let text = i18n.messages[i18n.lang][key] || i18n.messages.zh[key] || key;
  for (const [name, value] of Object.entries(params || {})) text = text.replace(`{${name}}`, String(value));
  return text;
}

const $ = (selector, root = document) => root.querySelector(selector);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "text") node.textContent = value;
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children) node.append(child);
  return node;
}

/* The static markup in the current language: [data-i18n] texts, the document's language and title, and the
   accessible name of the language button (which names the language it switches to). */
function translateDocument() {
  document.documentElement.lang = i18n.lang === "zh" ? "zh-CN" : "en";
  document.title = t("title");
  document.querySelectorAll("[data-i18n]").forEach((node) => { node.textContent = t(node.dataset.i18n); });
  $("#lang-toggle").setAttribute("aria-label", i18n.lang === "zh" ? "Switch to English" : "切换到中文");
}

/* Wires the header's language button: switch, remember the choice, then let the page re-render (`apply`). */
function onLanguageToggle(apply) {
  $("#lang-toggle").addEventListener("click", () => {
    i18n.lang = i18n.lang === "zh" ? "en" : "zh";
    localStorage.setItem(LANG_STORAGE, i18n.lang);
    apply();
  });
}

/* A JSON API call: {status, data}. HTTP errors are answers, not exceptions; a network failure throws. With
   `bearer` null the call relies on the page's session cookie (same origin). `X-Requested-With` is always sent: the
   services refuse a cookie-authenticated state change without it (a cross-site form cannot set it). */
async function apiCall(path, bearer, options = {}) {
  const headers = { Accept: "application/json", "X-Requested-With": "fetch", ...(options.headers || {}) };
  if (bearer !== null && bearer !== undefined) headers.Authorization = `Bearer ${bearer}`;
  const response = await fetch(path, { credentials: "same-origin", ...options, headers });
  let data = null;
  try { data = await response.json(); } catch (_) { data = null; }
  return { status: response.status, data };
}

function formatTime(value) {
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return String(value || "");
  return date.toLocaleString(i18n.lang === "zh" ? "zh-CN" : "en-GB", { dateStyle: "short", timeStyle: "short" });
}

/* Fills <section id="sign-in-panel" data-token-field="token" data-token-label="auth.token"> with the heading,
   the token field (its id from data-token-field, its label's text key from data-token-label, hint "auth.hint"),
   the sign-in button and the signed-in row with its sign-out button. The other ids (#sign-in-form, #sign-in,
   #signed-in, #sign-out) are the same on every page. Call it first, before the texts are applied. */
function buildSignInPanel(onSignIn, onSignOut) {
  const panel = $("#sign-in-panel");
  const field = panel.dataset.tokenField;
  const form = el("form", { id: "sign-in-form", class: "row" },
    el("div", { class: "field" },
      el("label", { for: field, "data-i18n": panel.dataset.tokenLabel }),
      el("input", { id: field, type: "password", autocomplete: "off", spellcheck: "false",
                    "aria-describedby": `${field}-hint` }),
      el("p", { id: `${field}-hint`, class: "hint", "data-i18n": "auth.hint" })),
    el("button", { type: "submit", id: "sign-in", class: "primary", "data-i18n": "auth.signIn" }));
  const signedIn = el("div", { id: "signed-in", class: "row", hidden: true },
    el("p", { "data-i18n": "auth.signedIn" }),
    el("button", { type: "button", id: "sign-out", "data-i18n": "auth.signOut" }));
  panel.prepend(el("h2", { id: "auth-heading", "data-i18n": "auth.heading" }), form, signedIn);
  form.addEventListener("submit", onSignIn);
  $("#sign-out").addEventListener("click", onSignOut);
}

/* The sign-in panel shows the form (#sign-in-form) or the signed-in row (#signed-in). */
function showSignedIn(signedIn) {
  $("#sign-in-form").hidden = signedIn;
  $("#signed-in").hidden = !signedIn;
}

/* ---------- sign-in with a bearer token kept in the tab (the alerts pages: situation, later the inbox) ---------- */

/* The token stored under `storageKey` in this tab's sessionStorage (gone when the tab closes), or null. Pages that
   use the same key share one sign-in. */
function storedToken(storageKey) { return sessionStorage.getItem(storageKey); }

/* The sign-in panel of a page signed in with a body's or the admin's bearer token: builds the panel
   (`buildSignInPanel`, so call it before the texts are applied), refuses an empty field ("auth.enterToken"),
   keeps the token under `storageKey` and shows the panel's right half. The page's hooks: `status(textFn, error)`
   shows a message, `onSignIn()` runs once a token is stored, `onSignOut()` once it is removed (clear what was
   shown). Returns {token(), api(path, options), signOut(messageKey = "auth.signedOutMsg", error = false)}; `api` is
   `apiCall` with the stored token. */
function tokenSignIn({ storageKey, status, onSignIn, onSignOut }) {
  const panel = $("#sign-in-panel");
  const field = () => $(`#${panel.dataset.tokenField}`);
  const session = {
    token: () => storedToken(storageKey),
    api: (path, options = {}) => apiCall(path, session.token(), options),
    signOut(messageKey = "auth.signedOutMsg", error = false) {
      sessionStorage.removeItem(storageKey);
      if (onSignOut) onSignOut();
      showSignedIn(false);
      status(() => t(messageKey), error);
      field().focus();
    },
  };
  buildSignInPanel((event) => {
    event.preventDefault();
    const value = field().value.trim();
    if (!value) { status(() => t("auth.enterToken"), true); field().focus(); return; }
    sessionStorage.setItem(storageKey, value);
    field().value = "";
    showSignedIn(true);
    if (onSignIn) onSignIn();
  }, () => session.signOut());
  showSignedIn(Boolean(session.token()));
  return session;
}
