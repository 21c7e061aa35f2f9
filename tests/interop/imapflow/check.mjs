// imapflow (https://github.com/postalsys/imapflow) driving postern's IMAP server, run by
// tests/interop/test_imap_clients.py. It only *does* things and reports what it saw; the Python
// test holds the expectations.
//
// Input (environment): IMAP_HOST, IMAPS_PORT (implicit TLS), IMAP_PORT (STARTTLS), IMAP_USER,
// IMAP_PASS. The test delivers three messages to INBOX first (see sample_messages() there).
//
// Output: one JSON object per line on stdout.
//   {"event":"idle"}            IDLE is running on INBOX: the test now delivers one message
//   {"event":"result", ...}     everything observed (last line, exit status 0)
//   {"event":"error", ...}      a client call failed (exit status 1)
// The IDLE hand-shake is a line protocol because the message must arrive while imapflow is
// idling: only the test (which owns the SMTP side) can deliver it.

import { ImapFlow } from 'imapflow';
import { createHash } from 'node:crypto';

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};

const emit = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');

// A hung server must fail the test, not the test's timeout: the whole run gets 90 s.
const watchdog = setTimeout(() => {
  emit({ event: 'error', message: 'imapflow check timed out after 90 s', step, trace });
  process.exit(2);
}, 90_000);
watchdog.unref();

let step = 'start';

// imapflow's log, kept for the failure report: the protocol lines (src 'c'/'s') show what the
// server said. It also tells when IDLE was acknowledged with "+", which imapflow has no event for.
const trace = [];
let onIdleAcknowledged = () => {};
const record = (level) => (entry) => {
  const e = typeof entry === 'object' && entry ? entry : { msg: String(entry) };
  trace.push(`${level} ${e.src ? e.src + ': ' : ''}${String(e.msg ?? '').slice(0, 300)}${e.err ? ' err=' + e.err.message : ''}`);
  if (trace.length > 80) trace.shift();
  if (e.msg === 'Initiated IDLE, waiting for server input') onIdleAcknowledged();
};
const logger = { trace: () => {}, debug: record('debug'), info: record('info'), warn: record('warn'), error: record('error') };

// JSON for what imapflow returns: Sets and Maps become arrays, Buffers base64, Dates ISO.
const plain = (v) => JSON.parse(JSON.stringify(v, (_k, x) => {
  if (x instanceof Set) return [...x];
  if (x instanceof Map) return [...x.entries()];
  if (x && x.type === 'Buffer' && Array.isArray(x.data)) return Buffer.from(x.data).toString('base64');
  if (typeof x === 'bigint') return x.toString();
  return x;
}));

const options = (secure) => ({
  host: env('IMAP_HOST'),
  port: Number(env(secure ? 'IMAPS_PORT' : 'IMAP_PORT')),
  secure,
  // Only for the STARTTLS client: refuse to log in over a connection that did not upgrade.
  ...(secure ? {} : { doSTARTTLS: true }),
  auth: { user: env('IMAP_USER'), pass: env('IMAP_PASS') },
  // The test server's certificate is self-signed.
  tls: { rejectUnauthorized: false },
  logger,
  // No wait between the last command and IDLE: the test wants IDLE now, not in 15 s.
  disableAutoIdle: true,
});

async function main() {
  const out = { event: 'result' };

  step = 'connect (implicit TLS)';
  const client = new ImapFlow(options(true));
  await client.connect();
  out.capabilities = [...client.capabilities.keys()];
  out.enabled = [...client.enabled];
  out.serverInfo = client.serverInfo || null;

  step = 'list';
  out.mailboxes = (await client.list()).map((m) => ({
    path: m.path, name: m.name, delimiter: m.delimiter, specialUse: m.specialUse || null,
    flags: [...m.flags],
  }));

  step = 'lock INBOX';
  const lock = await client.getMailboxLock('INBOX');
  try {
    out.inbox = plain({
      exists: client.mailbox.exists, uidValidity: client.mailbox.uidValidity,
      uidNext: client.mailbox.uidNext, highestModseq: client.mailbox.highestModseq,
      permanentFlags: client.mailbox.permanentFlags,
    });

    step = 'fetch 1:*';
    out.messages = [];
    for await (const m of client.fetch('1:*', {
      uid: true, flags: true, envelope: true, bodyStructure: true, source: true, size: true,
      internalDate: true,
    })) {
      out.messages.push(plain({
        seq: m.seq, uid: m.uid, flags: m.flags, size: m.size, modseq: m.modseq,
        internalDate: m.internalDate, envelope: m.envelope, bodyStructure: m.bodyStructure,
        source: m.source.toString('base64'),
        sourceSha256: createHash('sha256').update(m.source).digest('hex'),
      }));
    }

    step = 'search';
    out.searchSubject = await client.search({ subject: 'report' }, { uid: true });
    out.searchBody = await client.search({ body: 'lighthouse' }, { uid: true });

    // The attachment (part 2 of the multipart message), decoded by imapflow (BINARY when the
    // server has it, else BODY with the client decoding base64).
    step = 'download part 2';
    const multipart = out.messages.find((m) => m.bodyStructure && m.bodyStructure.childNodes);
    if (multipart) {
      const { content, meta } = await client.download(String(multipart.uid), '2', { uid: true });
      const chunks = [];
      for await (const c of content) chunks.push(c);
      out.attachment = { uid: multipart.uid, meta: plain(meta), data: Buffer.concat(chunks).toString('base64') };
    }

    step = 'flag first message';
    const first = out.messages[0].uid;
    out.flagged = { uid: first, ok: await client.messageFlagsAdd(String(first), ['\\Flagged'], { uid: true }) };
    const again = await client.fetchOne(String(first), { uid: true, flags: true }, { uid: true });
    out.flagged.flags = [...again.flags];

    step = 'move second message to Archive';
    const second = out.messages[1].uid;
    out.moved = plain({ uid: second, result: await client.messageMove(String(second), 'Archive', { uid: true }) });
    out.existsAfterMove = client.mailbox.exists;

    // IDLE: imapflow must see the new message as an 'exists' event while idling.
    step = 'idle';
    const existsEvent = new Promise((resolve) => client.once('exists', resolve));
    const acknowledged = new Promise((resolve) => { onIdleAcknowledged = () => resolve(true); });
    const idling = client.idle();
    out.idleAcknowledged = await Promise.race([
      acknowledged, new Promise((resolve) => setTimeout(() => resolve(false), 10_000)),
    ]);
    emit({ event: 'idle' });
    const ev = await Promise.race([
      existsEvent,
      new Promise((resolve) => setTimeout(() => resolve(null), 20_000)),
    ]);
    out.idleExists = ev ? plain(ev) : null;
    // Any command ends IDLE; NOOP also flushes what the server still had to say.
    await client.noop();
    await idling;
  } finally {
    lock.release();
  }

  step = 'status Archive';
  out.archiveStatus = plain(await client.status('Archive', { messages: true, uidNext: true, uidValidity: true }));

  step = 'fetch from Archive';
  const archive = await client.getMailboxLock('Archive');
  try {
    const m = await client.fetchOne('*', { uid: true, envelope: true, source: true });
    out.archiveLast = { uid: m.uid, messageId: m.envelope.messageId, subject: m.envelope.subject,
      sourceSha256: createHash('sha256').update(m.source).digest('hex') };
  } finally {
    archive.release();
  }

  step = 'logout';
  await client.logout();

  // The same account over the plain port: imapflow must upgrade with STARTTLS before login.
  step = 'connect (STARTTLS)';
  const st = new ImapFlow(options(false));
  await st.connect();
  out.starttls = { paths: (await st.list()).map((m) => m.path), capabilities: [...st.capabilities.keys()] };
  await st.logout();

  out.trace = trace; // for the test's failure messages
  emit(out);
}

main().then(
  () => process.exit(0),
  (err) => {
    emit({
      event: 'error', step, message: String(err && err.message), code: err && err.code,
      responseText: err && err.responseText, responseStatus: err && err.responseStatus,
      stack: String(err && err.stack), trace,
    });
    process.exit(1);
  },
);
