// An EHR for rapport's SMART App Launch test: `oidc-provider` (npm, a certified OpenID
// Connect implementation) is the EHR's authorization server, at an issuer that is not the
// EHR's FHIR base URL. Around it, this script serves what the provider does not:
// - `/fhir/.well-known/smart-configuration` (the FHIR base is `/fhir`), naming the provider
//   as the OpenID issuer;
// - `/interaction/{uid}`: the EHR user is already signed in, so login and consent finish at
//   once (as in an EHR, where the clinician launched the app from the chart);
// - the token answer's launch context: `patient` (and `appContext` when given);
// - `/ehr`: the EHR's chart page, which opens rapport's launch URL in an iframe.
// Rapport authenticates with private_key_jwt (ES384), the provider fetching rapport's key
// from the connection's `jwks_url`; PKCE is required. Prints "ready" when it listens.
//
//   node ehr-peer.mjs '{"port": .., "clientId": .., "jwksUri": .., "redirectUri": ..,
//                       "launchUrl": .., "patient": .., "appContext": ..}'
import dns from 'node:dns';
import http from 'node:http';
import { generateKeyPairSync } from 'node:crypto';
import Provider from 'oidc-provider';

const config = JSON.parse(process.argv[2]);
// rapport listens on 127.0.0.1: `localhost` must not resolve to ::1 first.
dns.setDefaultResultOrder('ipv4first');
const base = `http://localhost:${config.port}`;
const issuer = `${base}/oidc`;
const fhir = `${base}/fhir`;
const user = { accountId: 'dr-hopper', fhirUser: 'Practitioner/dr-hopper', name: 'Dr Grace Hopper' };

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const provider = new Provider(issuer, {
  clients: [{
    client_id: config.clientId,
    token_endpoint_auth_method: 'private_key_jwt',
    token_endpoint_auth_signing_alg: 'ES384',
    jwks_uri: config.jwksUri,
    redirect_uris: [config.redirectUri],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    id_token_signed_response_alg: 'RS256',
  }],
  scopes: ['openid', 'launch', 'fhirUser'],
  claims: { openid: ['sub'], fhirUser: ['fhirUser', 'name'] },
  // The id_token carries fhirUser and name (SMART reads them from the id_token).
  conformIdTokenClaims: false,
  extraParams: ['launch', 'aud'],
  pkce: { required: () => true },
  // SMART asks clients for ES384 or RS384 assertions; the provider's default list has neither.
  enabledJWA: { clientAuthSigningAlgValues: ['ES384', 'RS384', 'ES256', 'RS256'] },
  // The provider refuses to fetch from loopback addresses (its SSRF guard); in this test
  // rapport's jwks_url is on loopback, so the guard's dispatcher is dropped here.
  fetch: (url, options) => {
    delete options.dispatcher;
    return globalThis.fetch(url, options);
  },
  findAccount: async (_ctx, sub) => ({
    accountId: sub,
    claims: async () => ({ sub, fhirUser: user.fhirUser, name: user.name }),
  }),
  interactions: { url: (_ctx, interaction) => `/oidc/interaction/${interaction.uid}` },
  features: { devInteractions: { enabled: false } },
  jwks: { keys: [{ ...privateKey.export({ format: 'jwk' }), kid: 'ehr-rs256', alg: 'RS256', use: 'sig' }] },
});
provider.proxy = false;
for (const event of ['grant.error', 'server_error', 'authorization.error']) {
  provider.on(event, (_ctx, err) => {
    const chain = [];
    for (let e = err; e; e = e.cause) chain.push(`${e.name || ''}: ${e.message || e} ${e.error_description || ''}`);
    console.error(event, chain.join(' <- '));
  });
}

// The launch context in the token answer: the patient the EHR had open.
provider.use(async (ctx, next) => {
  await next();
  if (ctx.path === '/token' && ctx.body && ctx.body.access_token) {
    ctx.body.patient = config.patient;
    if (config.appContext) ctx.body.appContext = config.appContext;
  }
});

async function interaction(req, res) {
  const details = await provider.interactionDetails(req, res);
  const result = {};
  if (details.prompt.name === 'login') {
    result.login = { accountId: user.accountId };
  } else {
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: user.accountId, clientId: details.params.client_id });
    grant.addOIDCScope('openid launch fhirUser');
    result.consent = { grantId: await grant.save() };
  }
  await provider.interactionFinished(req, res, result, { mergeWithLastSubmission: true });
}

const callback = provider.callback();
http.createServer((req, res) => {
  const url = new URL(req.url, base);
  if (url.pathname === '/fhir/.well-known/smart-configuration') {
    res.setHeader('Content-Type', 'application/json');
    res.end(JSON.stringify({
      issuer,
      jwks_uri: `${issuer}/jwks`,
      authorization_endpoint: `${issuer}/auth`,
      token_endpoint: `${issuer}/token`,
      token_endpoint_auth_methods_supported: ['private_key_jwt'],
      token_endpoint_auth_signing_alg_values_supported: ['ES384', 'RS384'],
      code_challenge_methods_supported: ['S256'],
      scopes_supported: ['openid', 'fhirUser', 'launch'],
      capabilities: ['launch-ehr', 'client-confidential-asymmetric', 'context-ehr-patient', 'sso-openid-connect'],
    }));
    return;
  }
  if (url.pathname === '/ehr') {
    const launch = `${config.launchUrl}?iss=${encodeURIComponent(fhir)}&launch=chart-open-1`;
    res.setHeader('Content-Type', 'text/html; charset=utf-8');
    res.end(`<!doctype html><html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>EHR chart</title></head>
<body style="margin:0;font-family:sans-serif"><div style="background:#234;color:#fff;padding:8px 16px">EHR · Chart of ${config.patient} · ${user.name}</div>
<iframe id="app" title="rapport" src="${launch}" style="border:0;width:100%;height:760px"></iframe></body></html>`);
    return;
  }
  if (url.pathname.startsWith('/oidc/interaction/')) {
    interaction(req, res).catch((e) => { res.statusCode = 500; res.end(String(e)); });
    return;
  }
  if (url.pathname.startsWith('/oidc')) {
    req.originalUrl = req.url;
    req.url = req.url.slice('/oidc'.length) || '/';
    callback(req, res);
    return;
  }
  res.statusCode = 404;
  res.end();
}).listen(config.port, '127.0.0.1', () => console.log('ready'));
