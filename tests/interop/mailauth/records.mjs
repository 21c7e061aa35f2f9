// A DNS resolver for mailauth that answers TXT queries from a JSON file mapping
// "<selector>._domainkey.<domain>" to the record's text, so the tests need no DNS server.
import { readFileSync } from 'node:fs';

export function recordsResolver(recordsFile) {
  const records = JSON.parse(readFileSync(recordsFile, 'utf8'));
  return async (name, type) => {
    const value = records[name.replace(/\.$/, '').toLowerCase()];
    if (type !== 'TXT' || value === undefined) {
      const e = new Error('not found: ' + name);
      e.code = 'ENOTFOUND';
      throw e;
    }
    return [[value]];
  };
}
