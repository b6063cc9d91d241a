// An independent client of ClinicPay's bank-card gateway, written from docs/providers/bank.md
// alone (Node 20, node:crypto and node:http only, no packages). It proves the document is
// sufficient: create → pay (sandbox control API) → query → refund → refund_query → statement,
// with every response and notification signature verified.
//
// Usage: node end2end/sdk/bank.mjs http://127.0.0.1:PORT
// Exits non-zero with a message on any failure.

import crypto from 'node:crypto';
import http from 'node:http';
import { readFileSync } from 'node:fs';

// the sandbox control credential (issue 13 #12), given by the test that runs this script
const sandboxToken = process.env.CLINICPAY_SANDBOX_TOKEN || '';

const base = (process.argv[2] || '').replace(/\/+$/, '');
if (!/^https?:\/\//.test(base)) {
  console.error('usage: node bank.mjs <base URL of the ClinicPay app>');
  process.exit(2);
}
const apiBase = `${base}/sandbox/bank`;

function fail(msg) {
  throw new Error(msg);
}

// --- section 1.1: Beijing time, yyyyMMddHHmmss
function beijing(ms = Date.now()) {
  const d = new Date(ms + 8 * 3600 * 1000);
  const p = (n, w = 2) => String(n).padStart(w, '0');
  return `${p(d.getUTCFullYear(), 4)}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}` +
    `${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}`;
}

// --- section 2: signing string and RSA2
function signingString(obj) {
  return Object.keys(obj)
    .filter((k) => k !== 'sign' && obj[k] !== '')
    .sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)))
    .map((k) => `${k}=${obj[k]}`)
    .join('&');
}

function sign(obj, privateKey) {
  const out = { ...obj, sign_type: 'RSA2' };
  delete out.sign;
  out.sign = crypto.sign('sha256', Buffer.from(signingString(out), 'utf8'), privateKey).toString('base64');
  return out;
}

function verify(obj, publicKey) {
  if (obj.sign_type !== 'RSA2' || typeof obj.sign !== 'string' || obj.sign === '') return false;
  return crypto.verify('sha256', Buffer.from(signingString(obj), 'utf8'), publicKey, Buffer.from(obj.sign, 'base64'));
}

function flatStrings(text) {
  const obj = JSON.parse(text);
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) fail(`not a JSON object: ${text}`);
  for (const [k, v] of Object.entries(obj)) if (typeof v !== 'string') fail(`value of ${k} is not a string`);
  return obj;
}

// The document's own example (section 2) with the appendix MERCHANT test key.
function checkDocVector() {
  const key = readFileSync(new URL('../../server/tests/fixtures/merchant_private.pem', import.meta.url), 'utf8');
  const example = {
    amount_fen: '8888', currency: '156', expire_time: '20240101123000', merchant_id: 'M100001',
    nonce: 'N0NCE0123456789ab', notify_url: 'https://his.example.com/notify/bank', out_trade_no: 'T202401010001',
    sign_type: 'RSA2', subject: '测试 & co', timestamp: '20240101120000', return_url: '',
  };
  const expected = 'amount_fen=8888&currency=156&expire_time=20240101123000&merchant_id=M100001&nonce=N0NCE0123456789ab&notify_url=https://his.example.com/notify/bank&out_trade_no=T202401010001&sign_type=RSA2&subject=测试 & co&timestamp=20240101120000';
  if (signingString(example) !== expected) fail('signing string of the document example differs');
  const doc = readFileSync(new URL('../../docs/providers/bank.md', import.meta.url), 'utf8');
  const sig = sign(example, key).sign;
  if (!doc.includes(sig)) fail('the document example signature differs from ours');
}

async function main() {
  checkDocVector();

  // --- section 8: keys and registration
  const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const merchantId = `SDK${Date.now().toString(36).toUpperCase()}`;
  const reg = await fetch(`${apiBase}/merchants`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-sandbox-token': sandboxToken },
    body: JSON.stringify({ merchant_id: merchantId, merchant_public_key: publicKey.export({ type: 'spki', format: 'pem' }) }),
  });
  if (reg.status !== 200) fail(`registration: HTTP ${reg.status} ${await reg.text()}`);
  const bankKey = crypto.createPublicKey((await reg.json()).bank_public_key);

  // --- section 5: a notification endpoint
  const events = [];
  const rejected = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      try {
        if (!(req.headers['content-type'] || '').startsWith('application/json')) fail('content type');
        const n = flatStrings(body);
        if (!verify(n, bankKey)) fail('notification signature');
        if (n.merchant_id !== merchantId) fail('notification merchant_id');
        events.push(n);
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{"code":"SUCCESS"}');
      } catch (e) {
        rejected.push(String(e));
        res.writeHead(500, { 'content-type': 'application/json' });
        res.end('{"code":"FAIL"}');
      }
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const notifyUrl = `http://127.0.0.1:${server.address().port}/notify`;

  // --- sections 1, 3: one signed call
  let lastBody = null;
  async function call(op, fields) {
    const nonce = crypto.randomBytes(16).toString('hex');
    const req = sign({ ...fields, merchant_id: merchantId, timestamp: beijing(), nonce }, privateKey);
    lastBody = { op, body: JSON.stringify(req) };
    const res = await fetch(`${apiBase}/api/${op}`, {
      method: 'POST', headers: { 'content-type': 'application/json; charset=utf-8' }, body: lastBody.body,
    });
    const text = await res.text();
    if (res.status !== 200) fail(`${op}: HTTP ${res.status}`);
    const ans = flatStrings(text);
    if (!verify(ans, bankKey)) fail(`${op}: response signature does not verify`);
    if (ans.nonce !== nonce) fail(`${op}: response does not echo our nonce`);
    if (ans.merchant_id !== merchantId) fail(`${op}: response merchant_id`);
    return ans;
  }
  function expect(ans, code, what) {
    if (ans.code !== code) fail(`${what}: expected ${code}, got ${ans.code} ${ans.message}`);
    return ans;
  }
  async function waitFor(what, pred) {
    const deadline = Date.now() + 15000;
    while (Date.now() < deadline) {
      if (rejected.length) fail(`notifications rejected: ${rejected.join('; ')}`);
      const v = await pred();
      if (v) return v;
      await new Promise((r) => setTimeout(r, 20));
    }
    fail(`timed out waiting for ${what}`);
  }

  try {
    const otn = `SDK${Date.now()}`;
    // 4.1 create
    const created = expect(await call('create', {
      out_trade_no: otn, amount_fen: '2000', currency: '156', subject: 'SDK 测试 a=b&c',
      notify_url: notifyUrl, expire_time: beijing(Date.now() + 15 * 60 * 1000),
    }), 'SUCCESS', 'create');
    if (!created.pay_url.startsWith(`${apiBase}/pay/`)) fail(`pay_url ${created.pay_url}`);
    if (!created.bank_order_id) fail('bank_order_id');

    // 4.2 query: waiting
    expect(await call('query', { out_trade_no: otn }), 'SUCCESS', 'query');
    const q0 = await call('query', { out_trade_no: otn });
    if (q0.trade_status !== 'WAITING') fail(`trade_status ${q0.trade_status}`);

    // replay: the exact same body again (section 3)
    const replay = await fetch(`${apiBase}/api/${lastBody.op}`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: lastBody.body,
    });
    const replayed = flatStrings(await replay.text());
    if (!verify(replayed, bankKey) || replayed.code !== 'REPLAY') fail(`replay answered ${replayed.code}`);

    // section 7: the payer pays (control API, success card)
    const paid = await fetch(`${apiBase}/control/trades/${otn}/pay`, { method: 'POST', headers: { 'x-sandbox-token': sandboxToken } });
    if (paid.status !== 200) fail(`control pay: HTTP ${paid.status}`);

    const payEvent = await waitFor('PAYMENT_SUCCESS', () => events.find((e) => e.event === 'PAYMENT_SUCCESS'));
    if (payEvent.out_trade_no !== otn || payEvent.amount_fen !== '2000' || payEvent.currency !== '156') fail('payment notification fields');
    const q1 = expect(await call('query', { out_trade_no: otn }), 'SUCCESS', 'query');
    if (q1.trade_status !== 'SUCCESS' || q1.card_last4 !== '1111' || q1.bank_txn_id !== payEvent.bank_txn_id) {
      fail(`paid query: ${JSON.stringify(q1)}`);
    }

    // 4.4 refund, 4.5 refund_query
    const rf = expect(await call('refund', { out_trade_no: otn, out_refund_no: `${otn}R1`, refund_fen: '500' }), 'SUCCESS', 'refund');
    if (!['REFUND_PROCESSING', 'REFUND_SUCCESS'].includes(rf.refund_status)) fail(`refund_status ${rf.refund_status}`);
    expect(await call('refund', { out_trade_no: otn, out_refund_no: `${otn}R2`, refund_fen: '1501' }), 'REFUND_EXCEEDS', 'over-refund');
    await waitFor('REFUND_SUCCESS', async () => {
      const r = expect(await call('refund_query', { out_trade_no: otn, out_refund_no: `${otn}R1` }), 'SUCCESS', 'refund_query');
      return r.refund_status === 'REFUND_SUCCESS' ? r : null;
    });
    await waitFor('REFUND_SUCCESS notification', () => events.find((e) => e.event === 'REFUND_SUCCESS' && e.refund_fen === '500'));

    // 4.6 statement
    const st = expect(await call('statement', { bill_date: beijing().slice(0, 8) }), 'SUCCESS', 'statement');
    const lines = st.csv.split('\n').filter((l) => l !== '');
    const rows = lines.slice(1, -1).map((l) => l.split(','));
    const [tag, count, sum] = lines[lines.length - 1].split(',');
    if (tag !== 'TOTAL' || Number(count) !== rows.length) fail('statement footer count');
    if (rows.reduce((a, r) => a + Number(r[6]), 0) !== Number(sum) || Number(sum) !== 1500) fail(`statement sum ${sum}`);

    console.log(`bank protocol OK (${merchantId}, ${otn}: paid 20.00, refunded 5.00, ${rows.length} statement rows)`);
  } finally {
    server.close();
  }
}

main().catch((e) => {
  console.error(`bank.mjs: ${e.message}`);
  process.exit(1);
});
