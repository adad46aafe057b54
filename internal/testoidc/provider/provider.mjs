// The OpenID provider of Tollgate's tests: node-oidc-provider (a certified
// OP) with the clients and accounts of one test, and a login form that
// checks passwords. internal/testoidc starts it as
//
//   node provider.mjs CONFIG.json
//
// and reads the first line it prints, {"issuer": "http://HOST:PORT"}. It
// listens on a free port of 127.0.0.1; HOST is the config's "host", a name
// of that address ("localhost" by default), so that the browser keeps the
// provider's cookies apart from those of a server on 127.0.0.1.
//
// CONFIG.json:
//   {"host": "localhost",
//    "clients": [{"client_id", "client_secret" (none: a public client),
//                 "token_endpoint_auth_method" (optional), "redirect_uris",
//                 "post_logout_redirect_uris"}],
//    "accounts": [{"subject", "login", "password", "email", "name", "roles"}]}
//
// Authorization code flow only, PKCE (S256) required of every client.
// RP-initiated logout: its end_session_endpoint asks with a "Sign out"
// button (#logout), then sends the browser to the post_logout_redirect_uri.
// Scopes: openid, profile (name, preferred_username = login), email (email,
// email_verified) and roles (roles, an array); the claims of the granted
// scopes are in the ID token as well as at the userinfo endpoint.
// Consent is given at once: the test is about the relying party.
//
// oidc-provider 9 prints "Unsupported runtime" on Node.js 20 (it wants 22);
// it runs on 20.18 and later, which have the URL.parse it needs.

import { createServer } from 'node:http';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';

import Provider from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));

const server = createServer();
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(0, '127.0.0.1', resolve);
});
const issuer = `http://${config.host || 'localhost'}:${server.address().port}`;

const bySubject = new Map(config.accounts.map((a) => [a.subject, a]));
const byLogin = new Map(config.accounts.map((a) => [a.login, a]));

// A signing key of this run only: nothing outside the test trusts it.
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'testoidc', use: 'sig', alg: 'RS256' };

const provider = new Provider(issuer, {
  clients: config.clients.map((c) => ({
    client_id: c.client_id,
    ...(c.client_secret ? { client_secret: c.client_secret } : {}),
    token_endpoint_auth_method: c.token_endpoint_auth_method
      || (c.client_secret ? 'client_secret_basic' : 'none'),
    redirect_uris: c.redirect_uris,
    post_logout_redirect_uris: c.post_logout_redirect_uris || [],
    grant_types: ['authorization_code'],
    response_types: ['code'],
  })),
  responseTypes: ['code'],
  pkce: { required: () => true },
  scopes: ['openid', 'profile', 'email', 'roles'],
  claims: {
    openid: ['sub'],
    profile: ['name', 'preferred_username'],
    email: ['email', 'email_verified'],
    roles: ['roles'],
  },
  // The claims of the granted scopes go in the ID token too, not only to
  // the userinfo endpoint: a relying party that reads the ID token sees them.
  conformIdTokenClaims: false,
  async findAccount(ctx, sub) {
    const account = bySubject.get(sub);
    if (!account) return undefined;
    return {
      accountId: sub,
      async claims() {
        return {
          sub,
          name: account.name,
          preferred_username: account.login,
          email: account.email,
          email_verified: true,
          roles: account.roles || [],
        };
      },
    };
  },
  // Lifetimes a test cannot outlast; stated, so that the provider does not
  // log a notice for each default.
  ttl: {
    AccessToken: 600, AuthorizationCode: 60, IdToken: 600, Interaction: 600, Session: 3600, Grant: 3600,
  },
  jwks: { keys: [signingKey] },
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  features: {
    devInteractions: { enabled: false },
    rpInitiatedLogout: {
      enabled: true,
      async logoutSource(ctx, form) {
        ctx.body = page('Sign out', `<h1>Sign out</h1>${form}
<button id="logout" type="submit" form="op.logoutForm" name="logout" value="yes">Sign out</button>`);
      },
      async postLogoutSuccessSource(ctx) {
        ctx.body = page('Signed out', '<h1 id="signed-out">Signed out</h1>');
      },
    },
  },
  // The provider's own pages load a web font; the test machines are
  // offline, and a failed load would be a console error in the browser
  // tests. These are plain.
  async renderError(ctx, out) {
    ctx.type = 'html';
    ctx.body = page('Sign-in error',
      `<h1>Sign-in error</h1><p id="error" role="alert">${escape(out.error)}: ${escape(out.error_description)}</p>`);
  },
});

// The interaction routes: a login form, and consent without asking.
provider.use(async (ctx, next) => {
  const route = /^\/interaction\/([^/]+)(\/login)?$/.exec(ctx.path);
  if (!route) return next();
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  const isLogin = route[2] === '/login';

  if (isLogin && ctx.method === 'POST') {
    const form = await readForm(ctx.req);
    const account = byLogin.get(form.get('login'));
    if (!account || account.password !== form.get('password')) {
      loginPage(ctx, details, form.get('login'), 'Invalid login or password.');
      return undefined;
    }
    const to = await provider.interactionResult(ctx.req, ctx.res,
      { login: { accountId: account.subject } }, { mergeWithLastSubmission: false });
    return seeOther(ctx, to);
  }
  if (isLogin || ctx.method !== 'GET') {
    ctx.status = 405;
    return undefined;
  }

  if (details.prompt.name === 'login') {
    loginPage(ctx, details, '', '');
    return undefined;
  }
  // consent: grant what is asked.
  const { accountId } = details.session;
  const grant = details.grantId
    ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId, clientId: details.params.client_id });
  const missing = details.prompt.details;
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes || {})) {
    grant.addResourceScope(indicator, scopes.join(' '));
  }
  const grantId = await grant.save();
  const to = await provider.interactionResult(ctx.req, ctx.res,
    { consent: details.grantId ? {} : { grantId } }, { mergeWithLastSubmission: true });
  return seeOther(ctx, to);
});

function seeOther(ctx, to) {
  ctx.redirect(to);
  ctx.status = 303;
}

function loginPage(ctx, details, login, error) {
  ctx.type = 'html';
  ctx.set('Cache-Control', 'no-store');
  ctx.set('Content-Security-Policy', "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'");
  ctx.body = page('Sign in', `
<h1>Sign in</h1>
<p>to <span id="client">${escape(details.params.client_id)}</span></p>
${error ? `<p id="error" role="alert">${escape(error)}</p>` : ''}
<form method="post" action="/interaction/${escape(details.uid)}/login" autocomplete="off">
  <label for="login">Login</label>
  <input id="login" name="login" value="${escape(login)}" required autofocus>
  <label for="password">Password</label>
  <input id="password" name="password" type="password" required>
  <button type="submit">Sign in</button>
</form>`);
}

function page(title, body) {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escape(title)} · test OpenID provider</title>
<style>
body { font-family: sans-serif; max-width: 22rem; margin: 3rem auto; }
label, input, button { display: block; width: 100%; box-sizing: border-box; margin-top: .5rem; }
input, button { padding: .4rem; }
#error { color: #a00; }
</style></head>
<body>${body}</body></html>`;
}

function escape(s) {
  return String(s ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

async function readForm(req) {
  let body = '';
  for await (const chunk of req) {
    body += chunk;
    if (body.length > 64 << 10) throw new Error('form too large');
  }
  return new URLSearchParams(body);
}

server.on('request', provider.callback());
process.stdout.write(`${JSON.stringify({ issuer })}\n`);

// The Go side holds standard input open: when it closes (the test ended, or
// its process died), the provider ends too.
process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();
