// The official Alipay Node SDK (npm `alipay-sdk`) against ClinicPay's Alipay sandbox.
// Usage: node end2end/sdk/alipay.mjs http://127.0.0.1:PORT
// Registers a fresh app key, then precreate → (payer pays via the control API) → query →
// refund → refund query, every answer checked with validateSign; plus the notification
// signature (checkNotifySignV2) and a page-pay URL (pageExecute GET).
import { AlipaySdk } from 'alipay-sdk';
import { generateKeyPairSync, randomInt } from 'node:crypto';

const base = (process.argv[2] || '').replace(/\/+$/, '');
if (!base) {
  console.error('usage: node end2end/sdk/alipay.mjs <base-url>');
  process.exit(2);
}

function fail(message, detail) {
  console.error(`alipay-sdk: FAILED: ${message}`);
  if (detail !== undefined) console.error(typeof detail === 'string' ? detail : JSON.stringify(detail, null, 2));
  process.exit(1);
}

function check(cond, message, detail) {
  if (!cond) fail(message, detail);
}

// the sandbox control credential (issue 13 #12), given by the test that runs this script
const sandboxToken = process.env.CLINICPAY_SANDBOX_TOKEN || '';

async function postJson(path, body) {
  const resp = await fetch(`${base}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-sandbox-token': sandboxToken },
    body: JSON.stringify(body ?? {}),
  });
  const text = await resp.text();
  check(resp.ok, `POST ${path} answered ${resp.status}`, text);
  return JSON.parse(text);
}

try {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  const appId = `2021${String(randomInt(1e11, 1e12))}0`;
  const reg = await postJson('/sandbox/alipay/apps', { app_id: appId, app_public_key: publicKey });
  check(typeof reg.alipay_public_key === 'string', 'registration returned no alipay_public_key', reg);

  const sdk = new AlipaySdk({
    appId,
    // the SDK strips PEM armour line by line: hand it trimmed PEM
    privateKey: privateKey.trim(),
    keyType: 'PKCS8',
    alipayPublicKey: reg.alipay_public_key.trim(),
    gateway: `${base}/sandbox/alipay/gateway.do`,
  });
  const opts = { validateSign: true };
  const outTradeNo = `SDK${Date.now()}${randomInt(1000, 9999)}`;

  // precreate, amount as a number the way the SDK's own tests send it
  const pre = await sdk.exec('alipay.trade.precreate', {
    bizContent: { out_trade_no: outTradeNo, total_amount: 0.01, subject: '挂号费 SDK test' },
  }, opts);
  check(pre.code === '10000', 'precreate failed', pre);
  check(typeof pre.qrCode === 'string' && pre.qrCode.startsWith(`${base}/sandbox/alipay/pay/`), 'bad qr_code', pre);

  // before the buyer scans, Alipay has no trade (a signed business error)
  const before = await sdk.exec('alipay.trade.query', { bizContent: { out_trade_no: outTradeNo } }, opts);
  check(before.code === '40004' && before.subCode === 'ACQ.TRADE_NOT_EXIST', 'query before scan', before);

  // the payer pays
  const paid = await postJson(`/sandbox/alipay/control/trades/${outTradeNo}/pay`);
  check(paid.state === 'TRADE_SUCCESS', 'control pay', paid);

  const q = await sdk.exec('alipay.trade.query', { bizContent: { out_trade_no: outTradeNo } }, opts);
  check(q.code === '10000' && q.tradeStatus === 'TRADE_SUCCESS', 'query after pay', q);
  check(q.totalAmount === '0.01' && typeof q.tradeNo === 'string', 'query fields', q);

  const refundNo = `${outTradeNo}R1`;
  const r = await sdk.exec('alipay.trade.refund', {
    bizContent: { out_trade_no: outTradeNo, refund_amount: '0.01', out_request_no: refundNo, refund_reason: '退费' },
  }, opts);
  check(r.code === '10000' && r.fundChange === 'Y' && r.refundFee === '0.01', 'refund', r);

  const rq = await sdk.exec('alipay.trade.fastpay.refund.query', {
    bizContent: { out_trade_no: outTradeNo, out_request_no: refundNo },
  }, opts);
  check(rq.code === '10000' && rq.refundStatus === 'REFUND_SUCCESS' && rq.refundAmount === '0.01', 'refund query', rq);

  const closed = await sdk.exec('alipay.trade.query', { bizContent: { out_trade_no: outTradeNo } }, opts);
  check(closed.tradeStatus === 'TRADE_CLOSED', 'fully refunded trade is closed', closed);

  // the success notification the sandbox sent verifies with checkNotifySignV2
  const n = await fetch(`${base}/sandbox/alipay/control/trades/${outTradeNo}/notification`, { headers: { 'x-sandbox-token': sandboxToken } }).then((x) => x.json());
  const postData = Object.fromEntries(new URLSearchParams(n.body));
  check(postData.trade_status === 'TRADE_SUCCESS' && postData.app_id === appId, 'notification fields', postData);
  check(sdk.checkNotifySignV2(postData) === true, 'checkNotifySignV2 rejected the notification', postData);
  check(sdk.checkNotifySignV2({ ...postData, total_amount: '100.00' }) === false, 'tampered notification verified');

  // page pay: the signed GET URL opens the sandbox cashier
  const pageNo = `${outTradeNo}P`;
  const url = sdk.pageExecute('alipay.trade.page.pay', 'GET', {
    bizContent: { out_trade_no: pageNo, total_amount: '1.00', subject: '缴费', product_code: 'FAST_INSTANT_TRADE_PAY' },
    returnUrl: `${base}/`,
  });
  const page = await fetch(url);
  const html = await page.text();
  check(page.status === 200 && html.includes('¥1.00') && !html.includes('错误代码'), 'page pay cashier', html.slice(0, 800));

  // a request signed with a key the sandbox does not know is refused (and the refusal is signed)
  const other = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  });
  const stranger = new AlipaySdk({
    appId,
    privateKey: other.privateKey.trim(),
    keyType: 'PKCS8',
    alipayPublicKey: reg.alipay_public_key.trim(),
    gateway: `${base}/sandbox/alipay/gateway.do`,
  });
  const bad = await stranger.exec('alipay.trade.query', { bizContent: { out_trade_no: outTradeNo } }, opts);
  check(bad.code === '40002' && bad.subCode === 'isv.invalid-signature', 'bad signature not refused', bad);

  console.log(`alipay-sdk: ok (${outTradeNo})`);
} catch (err) {
  fail(err && err.stack ? err.stack : String(err));
}
