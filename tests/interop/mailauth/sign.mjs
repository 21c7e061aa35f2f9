// Signs a message with the npm mailauth library, independently of postern. Usage:
// node sign.mjs KEY_PEM DOMAIN SELECTOR CANON MESSAGE_FILE OUT_FILE; the key's type (RSA or
// Ed25519) chooses the algorithm. Writes the signature fields followed by the message.
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { dkimSign } = require('mailauth/lib/dkim/sign');

const [keyFile, signingDomain, selector, canonicalization, messageFile, outFile] =
  process.argv.slice(2);
const message = readFileSync(messageFile);
const result = await dkimSign(message, {
  canonicalization,
  signatureData: [{ signingDomain, selector, privateKey: readFileSync(keyFile, 'utf8') }],
});
if (result.errors && result.errors.length) {
  console.error(JSON.stringify(result.errors));
  process.exit(1);
}
writeFileSync(outFile, Buffer.concat([Buffer.from(result.signatures), message]));
