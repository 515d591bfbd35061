// Passkeys (WebAuthn): registering one on "Mitt konto" and signing in with one in the
// second sign-in step. Each is a real form: this script asks the server for the
// challenge, lets the browser talk to the authenticator, puts the answer in the form's
// hidden `credential` field and submits it. Without the script (or WebAuthn) the form
// still posts, and the server says what went wrong.
"use strict";

(function () {
  function fromB64u(s) {
    const b64 = s.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((s.length + 3) % 4);
    return Uint8Array.from(atob(b64), function (c) { return c.charCodeAt(0); }).buffer;
  }

  function toB64u(buf) {
    let s = "";
    new Uint8Array(buf).forEach(function (b) { s += String.fromCharCode(b); });
    return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function say(form, text) {
    const status = form.querySelector("[role=status]");
    if (status) { status.textContent = text; }
  }

  async function options(form) {
    const body = new URLSearchParams(new FormData(form));
    const r = await fetch(form.dataset.options, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: body,
    });
    if (!r.ok) { throw new Error("options " + r.status); }
    return r.json();
  }

  async function register(form) {
    const o = await options(form);
    const pk = o.options.publicKey;
    pk.challenge = fromB64u(pk.challenge);
    pk.user.id = fromB64u(pk.user.id);
    (pk.excludeCredentials || []).forEach(function (c) { c.id = fromB64u(c.id); });
    const cred = await navigator.credentials.create({ publicKey: pk });
    return {
      ceremony: o.ceremony,
      credential: {
        id: cred.id,
        rawId: toB64u(cred.rawId),
        type: cred.type,
        response: {
          attestationObject: toB64u(cred.response.attestationObject),
          clientDataJSON: toB64u(cred.response.clientDataJSON),
        },
      },
    };
  }

  async function signIn(form) {
    const o = await options(form);
    const pk = o.options.publicKey;
    pk.challenge = fromB64u(pk.challenge);
    (pk.allowCredentials || []).forEach(function (c) { c.id = fromB64u(c.id); });
    const cred = await navigator.credentials.get({ publicKey: pk });
    const r = cred.response;
    return {
      ceremony: o.ceremony,
      credential: {
        id: cred.id,
        rawId: toB64u(cred.rawId),
        type: cred.type,
        response: {
          authenticatorData: toB64u(r.authenticatorData),
          clientDataJSON: toB64u(r.clientDataJSON),
          signature: toB64u(r.signature),
          userHandle: r.userHandle ? toB64u(r.userHandle) : null,
        },
      },
    };
  }

  function wire(id, ceremony, waiting) {
    const form = document.getElementById(id);
    if (!form) { return; }
    if (!window.PublicKeyCredential) {
      say(form, "Din webbläsare kan inte använda nycklar (passkeys).");
      return;
    }
    form.addEventListener("submit", async function (e) {
      e.preventDefault();
      say(form, waiting);
      try {
        const done = await ceremony(form);
        form.elements.ceremony.value = done.ceremony;
        form.elements.credential.value = JSON.stringify(done.credential);
        form.submit();
      } catch (err) {
        say(form, "Det gick inte att använda nyckeln. Försök igen, eller använd en kod.");
      }
    });
  }

  wire("passkey-register", register, "Följ anvisningarna från webbläsaren för att skapa nyckeln …");
  wire("passkey-signin", signIn, "Följ anvisningarna från webbläsaren för att använda nyckeln …");
})();
