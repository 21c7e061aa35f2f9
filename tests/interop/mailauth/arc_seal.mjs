// Adds the next ARC Set to a message with the npm mailauth library, independently of postern.
// Usage: node arc_seal.mjs KEY_PEM DOMAIN SELECTOR AUTHSERV_ID RESULTS TIMESTAMP MESSAGE_FILE
// OUT_FILE. The instance is one above the message's ARC-Seal fields; cv= is none for the first
// set and pass after it (the caller seals only chains it knows to pass). RESULTS is the
// Authentication-Results list after the authserv-id ("spf=pass smtp.mailfrom=a@b.test; ...").
// mailauth 4.8 seals with rsa-sha256 only. Writes the three ARC fields followed by the message.
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { sealMessage } = require('mailauth/lib/arc');

const [keyFile, signingDomain, selector, authservId, results, timestamp, messageFile, outFile] =
  process.argv.slice(2);
const message = readFileSync(messageFile);
const seals = message.toString('binary').match(/^arc-seal:/gim) || [];
const i = seals.length + 1;
const headers = await sealMessage(message, {
  signingDomain,
  selector,
  privateKey: readFileSync(keyFile, 'utf8'),
  algorithm: 'rsa-sha256',
  i,
  cv: i === 1 ? 'none' : 'pass',
  authResults: `${authservId}; ${results}`,
  signTime: new Date(Number(timestamp) * 1000),
});
if (!headers.length) {
  console.error('mailauth produced no ARC Set');
  process.exit(1);
}
writeFileSync(outFile, Buffer.concat([headers, message]));
