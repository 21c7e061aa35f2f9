// Validates the ARC chain of a message with the npm mailauth library, independently of postern.
// Usage: node arc_verify.mjs MESSAGE_FILE RECORDS_JSON, where RECORDS_JSON maps
// "<selector>._domainkey.<domain>" to the TXT record's text. Prints "<result> i=<N> <comment>"
// and exits 0 only when the chain passes.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { recordsResolver } from './records.mjs';

const require = createRequire(import.meta.url);
const { dkimVerify } = require('mailauth/lib/dkim/verify');
const { arc } = require('mailauth/lib/arc');

const [message, recordsFile] = process.argv.slice(2);
const resolver = recordsResolver(recordsFile);
const dkim = await dkimVerify(readFileSync(message), { resolver });
const result = await arc(dkim.arc, { resolver });
console.log(`${result.status.result} i=${result.i} ${result.status.comment || ''}`);
process.exit(result.status.result === 'pass' ? 0 : 1);
