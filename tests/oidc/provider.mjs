// A real OpenID Connect provider (npm's oidc-provider) on a loopback port, for the
// integration tests of avvik's OIDC sign-in (tests/api/oidc_provider.rs starts it).
//
// Usage:  AVVIK_OIDC_PROVIDER_DIR=/var/tmp/avvik-npm-oidc node tests/oidc/provider.mjs CONFIG.json
//
// AVVIK_OIDC_PROVIDER_DIR is where `npm ci` installed tests/oidc/package.json (scripts/test
// does it); oidc-provider and jose are imported from its node_modules by absolute file URL,
// since this script's own directory has none.
//
// CONFIG.json (the single argument):
//   {
//     "port": 0,                              // 0: a free port
//     "users_file": "/tmp/x/users.json",      // see below; re-read on every lookup
//     "client_id": "avvik",
//     "client_secret": "…",
//     "redirect_uris": ["http://127.0.0.1:1234/auth/oidc/callback"],
//     "post_logout_redirect_uris": ["http://127.0.0.1:1234/"],
//     "exit_with_stdin": true                 // optional: exit when stdin closes (the test died)
//   }
// users_file: {"<login>": {"password": "…", "sub": "…", "email": "…", "name": "…", "groups": ["…"]}}
//
// Listens on 127.0.0.1 only with issuer http://127.0.0.1:<port>, prints exactly one line
// `LISTENING http://127.0.0.1:<port>` to stdout when ready, and logs to stderr only.
//
// One client (authorization code + PKCE S256, required; client_secret_basic or _post).
// Scopes `openid email profile groups` put sub, email, email_verified (true), name and
// groups (an array) into the id_token as well as userinfo.
//
// Pages (no JavaScript needed, except the logout page's auto-submit):
//   GET  /interaction/<uid>   login form: input#login[name=login], input#password[name=password],
//                             button#sign-in; p#error after a wrong password (status 401).
//   POST /interaction/<uid>   (the form's action) checks the password against users_file, then
//                             finishes login and grants every requested scope (no consent page).
//   Every authorization request shows the login form, with or without prompt=login.
//   /session/end              RP-initiated logout (client_id, post_logout_redirect_uri, state,
//                             id_token_hint): a page whose form#op.logoutForm submits itself;
//                             button#logout-confirm is the fallback. Ends at post_logout_redirect_uri.
//
// Test control (no auth; loopback only):
//   POST /__test/mode  {"mode": M}  alters the id_token of every token response from then on:
//     normal          untouched
//     wrong-nonce     nonce replaced, re-signed with the real key
//     expired         iat two hours and exp one hour in the past, re-signed with the real key
//     wrong-audience  aud "someone-else", re-signed with the real key
//     unknown-key     signed with a fresh RSA key whose kid is not in the JWKS
//     rotated-key     signed with key kid "rotated-1", which the JWKS at jwks_uri then lists too

import { readFileSync } from 'node:fs';
import http from 'node:http';
import { randomBytes, randomUUID } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import path from 'node:path';

// oidc-provider prints notices with console.info; stdout carries only the LISTENING line.
console.log = console.error;
console.info = console.error;

const log = (...args) => console.error(new Date().toISOString(), ...args);

function fail(message) {
  console.error(`provider.mjs: ${message}`);
  process.exit(2);
}

const installDir = process.env.AVVIK_OIDC_PROVIDER_DIR;
if (!installDir) {
  fail('AVVIK_OIDC_PROVIDER_DIR is not set (the directory where scripts/test ran npm ci for tests/oidc)');
}
async function importInstalled(name) {
  const pkgDir = path.join(installDir, 'node_modules', name);
  let pkg;
  try {
    pkg = JSON.parse(readFileSync(path.join(pkgDir, 'package.json'), 'utf8'));
  } catch (e) {
    fail(`${name} is not installed in ${installDir} (run scripts/test, or npm ci there): ${e.message}`);
  }
  // The ESM entry point: exports["."].import (jose), else "main" (oidc-provider).
  let entry = pkg.main ?? 'index.js';
  const dot = pkg.exports?.['.'] ?? pkg.exports;
  if (dot && typeof dot === 'object') {
    const imp = dot.import ?? dot.default;
    entry = typeof imp === 'string' ? imp : (imp?.default ?? entry);
  } else if (typeof dot === 'string') {
    entry = dot;
  }
  return import(pathToFileURL(path.join(pkgDir, entry)).href);
}

const { default: Provider, interactionPolicy } = await importInstalled('oidc-provider');
const jose = await importInstalled('jose');

if (process.argv.length !== 3) {
  fail('usage: node provider.mjs CONFIG.json');
}
const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
for (const key of ['users_file', 'client_id', 'client_secret']) {
  if (typeof config[key] !== 'string' || !config[key]) fail(`config: ${key} missing`);
}
for (const key of ['redirect_uris', 'post_logout_redirect_uris']) {
  if (!Array.isArray(config[key])) fail(`config: ${key} must be an array`);
}
if (config.exit_with_stdin) {
  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('error', () => process.exit(0));
  process.stdin.resume();
}

// ---- users, re-read on every lookup ----

function readUsers() {
  return JSON.parse(readFileSync(config.users_file, 'utf8'));
}
function userBySub(sub) {
  return Object.values(readUsers()).find((u) => u.sub === sub);
}

// ---- keys ----

async function privateJwk(kid) {
  const { privateKey } = await jose.generateKeyPair('RS256', { extractable: true });
  return { ...(await jose.exportJWK(privateKey)), kid, alg: 'RS256', use: 'sig' };
}
function publicJwk({ kty, n, e, kid, alg, use }) {
  return { kty, n, e, kid, alg, use };
}
const signingJwk = await privateJwk(`harness-${randomUUID()}`);
const signingKey = await jose.importJWK(signingJwk, 'RS256');
const rotatedJwk = await privateJwk('rotated-1');
const rotatedKey = await jose.importJWK(rotatedJwk, 'RS256');

// ---- modes ----

const MODES = new Set(['normal', 'wrong-nonce', 'expired', 'wrong-audience', 'unknown-key', 'rotated-key']);
let mode = 'normal';

async function alterIdToken(idToken) {
  if (mode === 'normal') return idToken;
  const header = jose.decodeProtectedHeader(idToken);
  const claims = jose.decodeJwt(idToken);
  const now = Math.floor(Date.now() / 1000);
  let key = signingKey;
  switch (mode) {
    case 'wrong-nonce':
      claims.nonce = `not-${claims.nonce ?? 'a-nonce'}-${randomUUID()}`;
      break;
    case 'expired':
      claims.iat = now - 7200;
      claims.exp = now - 3600;
      if (claims.auth_time) claims.auth_time = now - 7200;
      break;
    case 'wrong-audience':
      claims.aud = 'someone-else';
      if (claims.azp) claims.azp = 'someone-else';
      break;
    case 'unknown-key': {
      const jwk = await privateJwk(`unknown-${randomUUID()}`);
      key = await jose.importJWK(jwk, 'RS256');
      header.kid = jwk.kid;
      break;
    }
    case 'rotated-key':
      key = rotatedKey;
      header.kid = rotatedJwk.kid;
      break;
    default:
      break;
  }
  return new jose.CompactSign(new TextEncoder().encode(JSON.stringify(claims)))
    .setProtectedHeader(header)
    .sign(key);
}

// ---- the provider ----

const server = http.createServer();
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(Number(config.port ?? 0), '127.0.0.1', resolve);
});
const { port } = server.address();
const issuer = `http://127.0.0.1:${port}`;

// Every authorization request asks for the password, whether or not the relying party
// sent prompt=login: the login prompt is due unless this very interaction just logged in.
const policy = interactionPolicy.base();
policy.get('login').checks.unshift(new interactionPolicy.Check(
  'harness_always_login',
  'the test provider asks for the password on every authorization request',
  (ctx) => (ctx.oidc.result?.login ? interactionPolicy.Check.NO_NEED_TO_PROMPT : interactionPolicy.Check.REQUEST_PROMPT),
));

const provider = new Provider(issuer, {
  clients: [{
    client_id: config.client_id,
    client_secret: config.client_secret,
    redirect_uris: config.redirect_uris,
    post_logout_redirect_uris: config.post_logout_redirect_uris,
    grant_types: ['authorization_code'],
    response_types: ['code'],
    // client_secret_post is accepted as well: oidc-provider takes either of the two
    // secret methods for a client registered with one of them.
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  jwks: { keys: [signingJwk] },
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name'],
    groups: ['groups'],
  },
  conformIdTokenClaims: false,
  pkce: { required: () => true },
  features: {
    devInteractions: { enabled: false },
    rpInitiatedLogout: { enabled: true, logoutSource, postLogoutSuccessSource },
  },
  interactions: {
    policy,
    url: (_ctx, interaction) => `/interaction/${interaction.uid}`,
  },
  async findAccount(_ctx, sub) {
    const user = userBySub(sub);
    if (!user) return undefined;
    return {
      accountId: sub,
      async claims() {
        const u = userBySub(sub) ?? user;
        return {
          sub,
          email: u.email,
          email_verified: true,
          name: u.name,
          groups: Array.isArray(u.groups) ? u.groups : [],
        };
      },
    };
  },
  renderError(ctx, out, error) {
    log('render error:', error?.message ?? error);
    ctx.type = 'html';
    ctx.body = page('Error', `<h1>Error</h1><pre id="error">${esc(JSON.stringify(out, null, 2))}</pre>`);
  },
  ttl: {
    AccessToken: 3600,
    AuthorizationCode: 120,
    IdToken: 3600,
    Interaction: 3600,
    Session: 86400,
    Grant: 86400,
  },
});

provider.on('server_error', (_ctx, err) => log('server_error:', err));
provider.on('grant.error', (_ctx, err) => log('grant.error:', err.message, err.error_description ?? ''));
provider.on('authorization.error', (_ctx, err) => log('authorization.error:', err.message, err.error_description ?? ''));
provider.on('end_session.error', (_ctx, err) => log('end_session.error:', err.message, err.error_description ?? ''));

// The token response's id_token and the JWKS, altered per mode.
provider.use(async (ctx, next) => {
  await next();
  if (ctx.method === 'POST' && ctx.path === '/token' && ctx.status === 200
      && ctx.body && typeof ctx.body === 'object' && typeof ctx.body.id_token === 'string') {
    if (mode !== 'normal') {
      ctx.body = { ...ctx.body, id_token: await alterIdToken(ctx.body.id_token) };
      log(`token: id_token altered (${mode})`);
    }
  } else if (ctx.path === '/jwks' && mode === 'rotated-key'
      && ctx.body && Array.isArray(ctx.body.keys)) {
    ctx.body = { keys: [...ctx.body.keys, publicJwk(rotatedJwk)] };
  }
});

// ---- pages ----

function esc(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({
    '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;',
  })[c]);
}

function page(title, body) {
  return `<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>${esc(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><main>
${body}
</main></body>
</html>`;
}

function loginPage(uid, error) {
  return page('Sign in — test provider', `<h1>Sign in</h1>
${error ? `<p id="error" role="alert">${esc(error)}</p>` : ''}
<form method="post" action="/interaction/${esc(uid)}">
  <p><label for="login">Username</label> <input id="login" name="login" autocomplete="username" required autofocus></p>
  <p><label for="password">Password</label> <input id="password" name="password" type="password" autocomplete="current-password" required></p>
  <p><button id="sign-in" type="submit">Sign in</button></p>
</form>`);
}

async function logoutSource(ctx, form) {
  // `form` is <form id="op.logoutForm" ...><input name="xsrf" ...></form>; logout=yes ends
  // the whole provider session, not just this client's part of it.
  const withYes = form.replace('</form>', '<input type="hidden" name="logout" value="yes"/></form>');
  ctx.type = 'html';
  ctx.body = page('Signing out — test provider', `<h1>Signing out</h1>
${withYes}
<button id="logout-confirm" type="submit" form="op.logoutForm" name="logout" value="yes">Sign out</button>
<script>document.getElementById('op.logoutForm').submit();</script>`);
}

async function postLogoutSuccessSource(ctx) {
  ctx.type = 'html';
  ctx.body = page('Signed out — test provider', '<h1 id="signed-out">Signed out</h1>');
}

async function readForm(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 65536) throw new Error('form too large');
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

function send(res, status, type, body) {
  res.statusCode = status;
  res.setHeader('Content-Type', type);
  res.setHeader('Cache-Control', 'no-store');
  res.end(body);
}

async function interaction(req, res, uid) {
  let details;
  try {
    details = await provider.interactionDetails(req, res);
  } catch (e) {
    log(`interaction ${uid}: ${e.message}`);
    send(res, 400, 'text/html; charset=utf-8', page('Error', `<h1>Error</h1><p id="error">${esc(e.message)}</p>`));
    return;
  }
  if (details.uid !== uid) {
    send(res, 400, 'text/html; charset=utf-8', page('Error', '<h1>Error</h1><p id="error">interaction mismatch</p>'));
    return;
  }
  const { prompt, params } = details;

  if (req.method === 'GET') {
    if (prompt.name === 'login') {
      send(res, 200, 'text/html; charset=utf-8', loginPage(uid));
    } else {
      // Only consent can be left (login is always asked for and grants everything).
      const grantId = await grantAll(details, details.session?.accountId);
      await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
    }
    return;
  }

  const form = await readForm(req);
  const login = form.get('login') ?? '';
  const password = form.get('password') ?? '';
  let user;
  try {
    user = readUsers()[login];
  } catch (e) {
    log(`users file: ${e.message}`);
  }
  if (!user || typeof user.password !== 'string' || user.password !== password) {
    log(`interaction ${uid}: wrong login or password for ${JSON.stringify(login)}`);
    send(res, 401, 'text/html; charset=utf-8', loginPage(uid, 'Wrong username or password.'));
    return;
  }
  const grantId = await grantAll(details, user.sub);
  log(`interaction ${uid}: ${login} signed in (sub ${user.sub}, scope ${params.scope})`);
  await provider.interactionFinished(req, res, {
    login: { accountId: user.sub },
    consent: { grantId },
  }, { mergeWithLastSubmission: false });
}

// A Grant with every requested scope and claim, so that no consent page appears.
async function grantAll(details, accountId) {
  const { params, prompt } = details;
  const grant = new provider.Grant({ accountId, clientId: params.client_id });
  grant.addOIDCScope(String(params.scope ?? 'openid'));
  const missingClaims = prompt?.details?.missingOIDCClaims;
  if (Array.isArray(missingClaims)) grant.addOIDCClaims(missingClaims);
  if (params.claims) {
    try {
      const claims = JSON.parse(params.claims);
      grant.addOIDCClaims([
        ...Object.keys(claims.id_token ?? {}),
        ...Object.keys(claims.userinfo ?? {}),
      ]);
    } catch { /* oidc-provider has validated it already */ }
  }
  const rs = prompt?.details?.missingResourceScopes;
  if (rs && typeof rs === 'object') {
    for (const [indicator, scopes] of Object.entries(rs)) grant.addResourceScope(indicator, scopes.join(' '));
  }
  return grant.save();
}

async function testMode(req, res) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  let wanted;
  try {
    wanted = JSON.parse(Buffer.concat(chunks).toString('utf8')).mode;
  } catch {
    wanted = undefined;
  }
  if (!MODES.has(wanted)) {
    send(res, 400, 'application/json', JSON.stringify({ error: `mode must be one of ${[...MODES].join(', ')}` }));
    return;
  }
  mode = wanted;
  log(`mode: ${mode}`);
  send(res, 200, 'application/json', JSON.stringify({ mode }));
}

const callback = provider.callback();
server.on('request', (req, res) => {
  const url = new URL(req.url, issuer);
  res.on('finish', () => log(req.method, req.url.split('?')[0], res.statusCode));
  const m = /^\/interaction\/([^/]+)(?:\/login)?$/.exec(url.pathname);
  let handled;
  if (m && (req.method === 'GET' || req.method === 'POST')) {
    handled = interaction(req, res, m[1]);
  } else if (url.pathname === '/__test/mode' && req.method === 'POST') {
    handled = testMode(req, res);
  } else {
    callback(req, res);
    return;
  }
  handled.catch((e) => {
    log('handler error:', e);
    if (!res.headersSent) send(res, 500, 'text/plain', String(e?.message ?? e));
  });
});

process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));

process.stdout.write(`LISTENING ${issuer}\n`);
