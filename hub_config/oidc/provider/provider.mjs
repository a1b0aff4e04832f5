// A real OpenID Connect provider (panva/oidc-provider) on one host, for eolab's OIDC login tests
// and for trying OIDC login without an external identity provider. Not for production.
//
//   node provider.mjs serve <provider.json>      serve the provider described by <provider.json>
//   node provider.mjs init <dir> [--hub-url URL] [--port N]
//        write <dir>/provider.json (client, accounts alice/carol/admin with random passwords) and
//        <dir>/hub-oidc.json (the matching hub settings for EOLAB_HUB_OIDC_SETTINGS), both mode 0600
//
// provider.json: {"host": "127.0.0.1", "port": 8790, "issuer": "http://127.0.0.1:8790" (optional),
//   "name": "eolab test IdP",
//   "clients": [{"client_id": "...", "client_secret": "...", "redirect_uris": ["http://.../hub/oauth_callback"]}],
//   "accounts": {"alice": {"password": "...", "claims": {"name": "...", "email": "...",
//                "groups": ["eolab-users"], "eduperson_entitlement": ["urn:..."]}}}}
// Optional: "access_token_ttl" (s, default 3600).
// Scopes: openid, profile (name, preferred_username), email, groups, eduperson_entitlement.
// Login and consent are small HTML forms under /interaction/<uid> (passwords are checked).
import { createServer } from 'node:http';
import { generateKeyPairSync, randomBytes, timingSafeEqual, createHash } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const digest = (s) => createHash('sha256').update(String(s)).digest();
const samePassword = (a, b) => timingSafeEqual(digest(a), digest(b));

function page(title, body, status = 200) {
  return {
    status,
    html: `<!DOCTYPE html><html><head><meta charset="utf-8"><title>${esc(title)}</title></head>`
      + `<body><h1>${esc(title)}</h1>${body}</body></html>`,
  };
}

function loginPage(cfg, uid, client, message = '', status = 200) {
  return page(`Sign in to ${cfg.name}`, `
<p>${esc(client.clientName || client.clientId)} asks you to sign in.</p>
${message ? `<p class="error" role="alert">${esc(message)}</p>` : ''}
<form method="post" action="/interaction/${esc(uid)}/login" autocomplete="off">
  <label>Username <input name="username" required autofocus></label>
  <label>Password <input name="password" type="password" required></label>
  <button type="submit">Sign in</button>
</form>
<p><a href="/interaction/${esc(uid)}/abort">Cancel</a></p>`, status);
}

function consentPage(cfg, uid, client, details, accountId) {
  const scopes = (details.missingOIDCScope || []).filter((s) => s !== 'openid');
  return page(`Authorize ${client.clientName || client.clientId}`, `
<p>Signed in as <strong class="account">${esc(accountId)}</strong>.
${esc(client.clientName || client.clientId)} asks for:</p>
<ul>${scopes.map((s) => `<li class="scope">${esc(s)}</li>`).join('')}</ul>
<form method="post" action="/interaction/${esc(uid)}/confirm">
  <button type="submit" name="decision" value="allow">Allow</button>
</form>
<p><a href="/interaction/${esc(uid)}/abort">Deny</a></p>`);
}

async function readForm(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 64 * 1024) throw Object.assign(new Error('request body too large'), { status: 413 });
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

async function interaction(provider, cfg, req, res, uid, action) {
  const send = ({ status, html }) => {
    res.writeHead(status, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
    res.end(html);
  };
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) return send(page('Unknown interaction', '', 400));
  const { prompt, params, session, grantId } = details;
  const client = await provider.Client.find(params.client_id);
  if (action === 'abort') {
    return provider.interactionFinished(req, res, {
      error: 'access_denied', error_description: 'the user denied the request',
    }, { mergeWithLastSubmission: false });
  }
  if (req.method === 'GET' && !action) {
    if (prompt.name === 'login') return send(loginPage(cfg, uid, client));
    if (prompt.name === 'consent') return send(consentPage(cfg, uid, client, prompt.details, session.accountId));
    return send(page(`Unsupported prompt ${prompt.name}`, '', 501));
  }
  if (req.method === 'POST' && action === 'login' && prompt.name === 'login') {
    const form = await readForm(req);
    const username = form.get('username') || '';
    const account = Object.hasOwn(cfg.accounts, username) ? cfg.accounts[username] : null;
    // Compare even for unknown users so the answer time does not tell which usernames exist.
    const ok = samePassword(form.get('password') || '', account ? account.password : randomBytes(16).toString('hex'));
    if (!account || !ok) {
      console.log(JSON.stringify({ event: 'login_failed', username }));
      return send(loginPage(cfg, uid, client, 'Invalid username or password.', 401));
    }
    console.log(JSON.stringify({ event: 'login', username }));
    return provider.interactionFinished(req, res, { login: { accountId: username } },
      { mergeWithLastSubmission: false });
  }
  if (req.method === 'POST' && action === 'confirm' && prompt.name === 'consent') {
    await readForm(req);
    const grant = grantId ? await provider.Grant.find(grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    const d = prompt.details;
    if (d.missingOIDCScope) grant.addOIDCScope(d.missingOIDCScope.join(' '));
    if (d.missingOIDCClaims) grant.addOIDCClaims(d.missingOIDCClaims);
    if (d.missingResourceScopes) {
      for (const [indicator, scopes] of Object.entries(d.missingResourceScopes)) {
        grant.addResourceScope(indicator, scopes.join(' '));
      }
    }
    return provider.interactionFinished(req, res, { consent: { grantId: await grant.save() } },
      { mergeWithLastSubmission: true });
  }
  return send(page('Bad request', `<p>${esc(req.method)} ${esc(action || '')} during ${esc(prompt.name)}</p>`, 400));
}

async function serve(file) {
  const { default: Provider } = await import('oidc-provider');
  const cfg = JSON.parse(readFileSync(file, 'utf8'));
  cfg.host ||= '127.0.0.1';
  cfg.name ||= 'eolab test IdP';
  cfg.accounts ||= {};
  const issuer = cfg.issuer || `http://${cfg.host}:${cfg.port}`;
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = { ...privateKey.export({ format: 'jwk' }), use: 'sig', alg: 'RS256', kid: randomBytes(8).toString('hex') };
  const provider = new Provider(issuer, {
    clients: cfg.clients.map((c) => ({
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      ...c,
    })),
    async findAccount(ctx, id) {
      if (!Object.hasOwn(cfg.accounts, id)) return undefined;
      const claims = cfg.accounts[id].claims || {};
      return {
        accountId: id,
        async claims() { return { sub: id, preferred_username: id, email_verified: Boolean(claims.email), ...claims }; },
      };
    },
    claims: {
      openid: ['sub'],
      profile: ['name', 'preferred_username'],
      email: ['email', 'email_verified'],
      groups: ['groups'],
      eduperson_entitlement: ['eduperson_entitlement'],
    },
    features: { devInteractions: { enabled: false } },
    // Access tokens of access_token_ttl s (default 1 h); refresh tokens for every client allowed the
    // refresh_token grant, as Keycloak (CDSE's identity service) issues them without offline_access.
    ttl: { AccessToken: cfg.access_token_ttl || 3600 },
    async issueRefreshToken(ctx, client) { return client.grantTypeAllowed('refresh_token'); },
    interactions: { url: (ctx, i) => `/interaction/${i.uid}` },
    pkce: { required: () => true },
    cookies: { keys: [randomBytes(32).toString('hex')] },
    jwks: { keys: [jwk] },
    renderError(ctx, out) {
      ctx.type = 'html';
      ctx.body = page(`${cfg.name}: ${out.error}`, `<p class="error">${esc(out.error_description || '')}</p>`).html;
    },
  });
  const app = provider.callback();
  const server = createServer((req, res) => {
    const m = /^\/interaction\/([A-Za-z0-9_-]+)(?:\/(login|confirm|abort))?$/.exec(new URL(req.url, issuer).pathname);
    if (!m) return app(req, res);
    interaction(provider, cfg, req, res, m[1], m[2]).catch((err) => {
      console.log(JSON.stringify({ event: 'interaction_error', error: String(err && err.message) }));
      if (!res.headersSent) {
        const { status, html } = page(`${cfg.name}: error`, `<p class="error">${esc(err.message)}</p>`, err.status || 400);
        res.writeHead(status, { 'Content-Type': 'text/html; charset=utf-8' });
        res.end(html);
      }
    });
  });
  provider.on('server_error', (ctx, err) => console.log(JSON.stringify({ event: 'server_error', error: err.message })));
  provider.on('grant.error', (ctx, err) => console.log(JSON.stringify({ event: 'grant_error', error: err.message })));
  const stop = () => server.close(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  server.listen(cfg.port, cfg.host, () => {
    console.log(JSON.stringify({ event: 'ready', issuer, pid: process.pid }));
  });
}

function init(dir, args) {
  const opt = (name, dflt) => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 ? args[i + 1] : dflt;
  };
  const hubUrl = opt('hub-url', 'http://127.0.0.1:8700').replace(/\/$/, '');
  const port = Number(opt('port', '8790'));
  const issuer = `http://127.0.0.1:${port}`;
  const pw = () => randomBytes(12).toString('base64url');
  const urn = (group) => `urn:mace:egi.eu:group:vo.eolab.test:role=${group}#127.0.0.1`;
  const secret = randomBytes(24).toString('hex');
  const provider = {
    host: '127.0.0.1', port, issuer, name: 'eolab test IdP',
    clients: [{ client_id: 'eolab-hub', client_secret: secret, client_name: 'eolab JupyterHub',
      redirect_uris: [`${hubUrl}/hub/oauth_callback`] }],
    accounts: {
      alice: { password: pw(), claims: { name: 'Alice', email: 'alice@example.org',
        groups: ['eolab-users'], eduperson_entitlement: [urn('member')] } },
      carol: { password: pw(), claims: { name: 'Carol', email: 'carol@example.org',
        groups: [], eduperson_entitlement: [] } },
      admin: { password: pw(), claims: { name: 'Admin', email: 'admin@example.org',
        groups: ['eolab-admins'], eduperson_entitlement: [urn('manager')] } },
    },
  };
  const hub = {
    provider_name: provider.name, issuer,
    authorize_url: `${issuer}/auth`, token_url: `${issuer}/token`, userdata_url: `${issuer}/me`,
    client_id: 'eolab-hub', client_secret: secret, callback_url: `${hubUrl}/hub/oauth_callback`,
    scope: ['openid', 'profile', 'email', 'groups'], username_claim: 'preferred_username',
    groups_claim: 'groups', allowed_groups: ['eolab-users'], admin_groups: ['eolab-admins'],
  };
  mkdirSync(dir, { recursive: true });
  for (const [name, body] of [['provider.json', provider], ['hub-oidc.json', hub]]) {
    const path = join(dir, name);
    writeFileSync(path, `${JSON.stringify(body, null, 1)}\n`, { mode: 0o600 });
    chmodSync(path, 0o600);
  }
  console.log(`wrote ${resolve(dir, 'provider.json')} and ${resolve(dir, 'hub-oidc.json')}`);
  for (const [name, a] of Object.entries(provider.accounts)) {
    console.log(`  ${name}: password ${a.password}  groups ${JSON.stringify(a.claims.groups)}`);
  }
}

const [command, target, ...rest] = process.argv.slice(2);
if (command === 'serve' && target) {
  serve(target).catch((err) => { console.error(err); process.exit(1); });
} else if (command === 'init' && target) {
  init(target, rest);
} else {
  console.error('usage: node provider.mjs serve <provider.json> | init <dir> [--hub-url URL] [--port N]');
  process.exit(2);
}
