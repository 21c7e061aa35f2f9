// Verifies every DKIM signature of a message with the npm mailauth library, independently of
// postern. Usage: node verify.mjs MESSAGE_FILE RECORDS_JSON, where RECORDS_JSON maps
// "<selector>._domainkey.<domain>" to the TXT record's text. Prints one line per signature
// ("pass ed25519-sha256 s=...") and exits 0 only when there is at least one signature and all pass.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { recordsResolver } from './records.mjs';

const require = createRequire(import.meta.url);
const { dkimVerify } = require('mailauth/lib/dkim/verify');

const [message, recordsFile] = process.argv.slice(2);
const resolver = recordsResolver(recordsFile);
const result = await dkimVerify(readFileSync(message), { resolver });
let ok = result.results.length > 0;
for (const r of result.results) {
  console.log(`${r.status.result} ${r.algo || ''} s=${r.selector} d=${r.signingDomain} ${r.status.comment || ''}`);
  if (r.status.result !== 'pass') ok = false;
}
process.exit(ok ? 0 : 1);
