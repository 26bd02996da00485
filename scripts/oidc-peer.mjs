// A real OpenID provider for the identity peer check: `oidc-provider` (npm, a certified
// OpenID Connect implementation) with one client-credentials client and JWT access tokens
// for the resource (and audience) `urn:rapport:api`. Prints "ready" when it listens.
//
//   node scripts/oidc-peer.mjs <port>
import { generateKeyPairSync } from 'node:crypto';
import Provider from 'oidc-provider';

const port = Number(process.argv[2] || 18190);
const issuer = `http://127.0.0.1:${port}`;
const provider = new Provider(issuer, {
  clients: [{
    client_id: 'dashboard',
    client_secret: 'peer-secret-not-used-elsewhere',
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
  }],
  scopes: ['responses:read', 'platform:admin'],
  ttl: { ClientCredentials: 600 },
  features: {
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => 'urn:rapport:api',
      getResourceServerInfo: () => ({
        scope: 'responses:read platform:admin',
        audience: 'urn:rapport:api',
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: 'ES384' } },
      }),
      useGrantedResource: () => true,
    },
  },
  // An RSA key for ID tokens (the default RS256), an ES384 key for the access tokens.
  jwks: { keys: [key('rsa', { modulusLength: 2048 }, 'peer-rs256', 'RS256'), key('ec', { namedCurve: 'P-384' }, 'peer-es384', 'ES384')] },
});
provider.listen(port, '127.0.0.1', () => console.log('ready'));

function key(type, options, kid, alg) {
  const { privateKey } = generateKeyPairSync(type, options);
  return { ...privateKey.export({ format: 'jwk' }), kid, alg, use: 'sig' };
}
