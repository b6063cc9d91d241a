// The official-style npm SDK `wechatpay-axios-plugin` against ClinicPay's WeChat Pay sandbox:
// register a fresh merchant, then Native prepay → pay (control API) → query SUCCESS → refund →
// refund query → close another order → trade bill, with the SDK verifying every signed answer.
//
// Usage: node end2end/sdk/wechatpay.mjs http://127.0.0.1:PORT
// Exits non-zero with a message on any failure.

import Wechatpay, { Aes, Formatter, Rsa } from 'wechatpay-axios-plugin';
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';

const base = (process.argv[2] || '').replace(/\/+$/, '');
if (!base) {
  console.error('usage: node wechatpay.mjs BASE_URL');
  process.exit(2);
}
const sandbox = `${base}/sandbox/wechatpay`;
// the sandbox control credential (issue 13 #12), given by the test that runs this script
const sandboxToken = process.env.CLINICPAY_SANDBOX_TOKEN || '';

function check(cond, message) {
  if (!cond) throw new Error(message);
}

function describe(err) {
  if (err && err.response) {
    return `${err.message} (HTTP ${err.response.status} ${JSON.stringify(err.response.data)})`;
  }
  return err && err.stack ? err.stack : String(err);
}

async function control(path) {
  const resp = await fetch(`${sandbox}/control/${path}`, { method: 'POST', headers: { 'x-sandbox-token': sandboxToken } });
  if (!resp.ok) throw new Error(`control ${path}: HTTP ${resp.status} ${await resp.text()}`);
  return resp.json();
}

async function main() {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  const mchid = `19${String(Date.now() % 1e8).padStart(8, '0')}`;
  const appid = `wx${randomBytes(8).toString('hex')}`;
  const serial = randomBytes(20).toString('hex').toUpperCase();
  const apiv3Key = randomBytes(16).toString('hex');

  const reg = await fetch(`${sandbox}/merchants`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-sandbox-token': sandboxToken },
    body: JSON.stringify({
      mchid, appid, merchant_serial_no: serial, merchant_public_key: publicKey, apiv3_key: apiv3Key,
    }),
  });
  if (!reg.ok) throw new Error(`registration: HTTP ${reg.status} ${await reg.text()}`);
  const { platform_public_key: platformPublicKey, public_key_id: publicKeyId } = await reg.json();
  check(publicKeyId.startsWith('PUB_KEY_ID_'), `unexpected public key id ${publicKeyId}`);

  // public-key mode, as new merchants have it; only the base URL differs from production
  const wxpay = new Wechatpay({
    mchid,
    serial,
    privateKey,
    certs: { [publicKeyId]: platformPublicKey },
    baseURL: `${sandbox}/`,
  });

  const outTradeNo = `SDK${Date.now()}${randomBytes(3).toString('hex')}`;
  const prepay = await wxpay.v3.pay.transactions.native.post({
    mchid,
    appid,
    out_trade_no: outTradeNo,
    description: 'ClinicPay SDK 测试 挂号费',
    notify_url: `${base}/notify/wechatpay`,
    amount: { total: 1234, currency: 'CNY' },
  });
  check(prepay.status === 200, `native: HTTP ${prepay.status}`);
  check(prepay.data.code_url.startsWith(`${sandbox}/pay/`), `code_url ${prepay.data.code_url}`);

  const query = () => wxpay.v3.pay.transactions.outTradeNo.$out_trade_no$.get({
    params: { mchid },
    out_trade_no: outTradeNo,
  });
  const q1 = await query();
  check(q1.data.trade_state === 'NOTPAY', `before paying: ${q1.data.trade_state}`);

  await control(`trades/${outTradeNo}/pay`);
  const q2 = await query();
  check(q2.data.trade_state === 'SUCCESS', `after paying: ${q2.data.trade_state}`);
  check(q2.data.amount.total === 1234, `amount ${JSON.stringify(q2.data.amount)}`);
  check(/^\d{28}$/.test(q2.data.transaction_id), `transaction_id ${q2.data.transaction_id}`);

  // the TRANSACTION.SUCCESS notification, checked with the SDK's own helpers
  const nresp = await fetch(`${sandbox}/control/trades/${outTradeNo}/notification`, { headers: { 'x-sandbox-token': sandboxToken } });
  if (!nresp.ok) throw new Error(`notification: HTTP ${nresp.status} ${await nresp.text()}`);
  const notification = await nresp.json();
  const h = Object.fromEntries(Object.entries(notification.headers).map(([k, v]) => [k.toLowerCase(), v]));
  check(h['wechatpay-serial'] === publicKeyId, `notification serial ${h['wechatpay-serial']}`);
  check(Math.abs(Formatter.timestamp() - Number(h['wechatpay-timestamp'])) <= 300, 'notification timestamp');
  check(Rsa.verify(
    Formatter.response(h['wechatpay-timestamp'], h['wechatpay-nonce'], notification.body),
    h['wechatpay-signature'],
    Rsa.from(platformPublicKey, Rsa.KEY_TYPE_PUBLIC),
  ), 'the notification signature verifies');
  const envelope = JSON.parse(notification.body);
  check(envelope.event_type === 'TRANSACTION.SUCCESS', `event ${envelope.event_type}`);
  const { resource } = envelope;
  const plain = JSON.parse(Aes.AesGcm.decrypt(resource.ciphertext, apiv3Key, resource.nonce, resource.associated_data));
  check(plain.out_trade_no === outTradeNo && plain.trade_state === 'SUCCESS', `notification resource ${JSON.stringify(plain)}`);
  check(plain.transaction_id === q2.data.transaction_id && plain.amount.total === 1234, 'notification amounts');

  const byId = await wxpay.v3.pay.transactions.id.$transaction_id$.get({
    params: { mchid },
    transaction_id: q2.data.transaction_id,
  });
  check(byId.data.out_trade_no === outTradeNo, 'query by transaction id');

  const outRefundNo = `R${outTradeNo}`;
  const refund = await wxpay.v3.refund.domestic.refunds.post({
    out_trade_no: outTradeNo,
    out_refund_no: outRefundNo,
    reason: '退费',
    amount: { refund: 234, total: 1234, currency: 'CNY' },
  });
  check(['PROCESSING', 'SUCCESS'].includes(refund.data.status), `refund status ${refund.data.status}`);
  check(refund.data.amount.refund === 234, `refund amount ${JSON.stringify(refund.data.amount)}`);

  let refundStatus = refund.data.status;
  for (let i = 0; i < 100 && refundStatus !== 'SUCCESS'; i += 1) {
    await new Promise((r) => { setTimeout(r, 50); });
    const rq = await wxpay.v3.refund.domestic.refunds.$out_refund_no$.get({ out_refund_no: outRefundNo });
    refundStatus = rq.data.status;
  }
  check(refundStatus === 'SUCCESS', `refund never succeeded: ${refundStatus}`);
  const q3 = await query();
  check(q3.data.trade_state === 'REFUND', `after refund: ${q3.data.trade_state}`);

  // over-refund is a business error (the SDK raises on non-2xx)
  let refused = null;
  try {
    await wxpay.v3.refund.domestic.refunds.post({
      out_trade_no: outTradeNo,
      out_refund_no: `${outRefundNo}X`,
      amount: { refund: 1001, total: 1234, currency: 'CNY' },
    });
  } catch (err) {
    refused = err.response;
  }
  check(refused && refused.status === 400 && refused.data.code === 'INVALID_REQUEST', 'over-refund must be refused');

  // close another order: 204 with a signed empty body
  const other = `${outTradeNo}C`;
  await wxpay.v3.pay.transactions.native.post({
    mchid, appid, out_trade_no: other, description: 'to close', notify_url: `${base}/notify/wechatpay`,
    amount: { total: 1, currency: 'CNY' },
  });
  const closed = await wxpay.v3.pay.transactions.outTradeNo.$out_trade_no$.close.post({ mchid }, { out_trade_no: other });
  check(closed.status === 204, `close: HTTP ${closed.status}`);

  // trade bill: signed link, unsigned file whose SHA-1 matches
  const now = new Date(Date.now() + 8 * 3600 * 1000);
  const billDate = now.toISOString().slice(0, 10);
  const bill = await wxpay.v3.bill.tradebill.get({ params: { bill_date: billDate, bill_type: 'ALL' } });
  check(bill.data.hash_type === 'SHA1', 'hash_type');
  check(bill.data.download_url.startsWith(`${sandbox}/`), `download_url ${bill.data.download_url}`);
  const token = new URL(bill.data.download_url).searchParams.get('token');
  const file = await wxpay.v3.billdownload.file.get({ params: { token }, responseType: 'arraybuffer' });
  const bytes = Buffer.from(file.data);
  const sha1 = createHash('sha1').update(bytes).digest('hex');
  check(sha1 === bill.data.hash_value, `bill hash ${sha1} != ${bill.data.hash_value}`);
  check(bytes.toString('utf8').includes(`\`${outTradeNo},`), 'the bill lists the trade');

  console.log(`wechatpay sdk ok: ${outTradeNo} paid, refunded, bill verified`);
}

main().catch((err) => {
  console.error(`wechatpay sdk FAILED: ${describe(err)}`);
  process.exit(1);
});
