import { test, expect, Page, Browser, APIRequestContext } from '@playwright/test';
import { hydrated, login, openPatient, payOnPhone, shot } from './helpers';
import { existsSync, readFileSync } from 'node:fs';

// The charge screen (C6) end to end: the cashier's browser, and a second browser context that
// plays the patient's phone on the sandbox payer page (the QR code's content).

const BASE = process.env.BASE_URL || 'http://127.0.0.1:3000';
// The sandbox control credential (issue 13 #12): given by .ci/test, or the quick start's file.
const SANDBOX = {
  'x-sandbox-token':
    process.env.SANDBOX_TOKEN ||
    (existsSync('../data/sandbox-control-token') ? readFileSync('../data/sandbox-control-token', 'utf8').trim() : ''),
};

async function outTradeNo(page: Page): Promise<string> {
  const no = await page.getByTestId('session-panel').getAttribute('data-out-trade-no');
  expect(no).toBeTruthy();
  return no!;
}

async function sandboxDefaults(request: APIRequestContext, provider: string, faults: object) {
  const r = await request.post(`${BASE}/sandbox/${provider}/control/defaults`, { data: faults, headers: SANDBOX });
  expect(r.ok()).toBeTruthy();
}

/** A patient with at least `n` unpaid bills, by record number (the demo data has 2–4 each). */
async function patientWith(page: Page, n: number, skip: number): Promise<string> {
  await page.goto('/patients?page=' + (2 + skip));
  const rows = page.getByRole('table', { name: '患者列表' }).locator('tbody tr');
  const count = await rows.count();
  for (let i = 0; i < count; i++) {
    const cells = rows.nth(i).locator('td');
    const unpaid = Number((await cells.nth(4).innerText()).trim());
    if (unpaid >= n) return (await cells.nth(0).innerText()).trim();
  }
  throw new Error('no patient with enough unpaid bills');
}

test.describe.configure({ mode: 'serial' });

test('pay everything with Alipay: one QR, every bill paid', async ({ page, browser }) => {
  await login(page, 'cashier');
  const mrn = await patientWith(page, 2, 0);
  await openPatient(page, mrn);
  await shot(page, 'charge-card');
  await expect(page.getByRole('button', { name: /扫码支付/ })).toBeEnabled();
  await page.getByLabel('支付宝').check();
  await page.getByRole('button', { name: /扫码支付/ }).click();
  await expect(page.getByRole('timer')).toContainText('二维码有效期');
  await shot(page, 'charge-qr');
  await payOnPhone(browser, page, 'phone-alipay');
  await expect(page.getByRole('heading', { name: '支付成功' })).toBeVisible({ timeout: 20_000 });
  const rows = page.getByTestId('receipt').locator('tbody tr');
  expect(await rows.count()).toBeGreaterThanOrEqual(2);
  for (const r of await rows.all()) await expect(r.locator('code')).toContainText('R20');
  await shot(page, 'charge-paid');
  // the list refreshed: nothing left to pay
  await expect(page.getByText('该患者没有待缴费用。')).toBeVisible();
});

test('untick one bill and pay the rest with WeChat: the unticked bill stays unpaid', async ({ page, browser }) => {
  await login(page, 'cashier');
  const mrn = await patientWith(page, 3, 1);
  await openPatient(page, mrn);
  const before = await page.getByTestId('unpaid-summary').innerText();
  await page.getByRole('button', { name: '查看明细与部分支付' }).click();
  const details = page.getByRole('region', { name: '账单明细' });
  const boxes = details.getByRole('checkbox');
  const n = await boxes.count();
  for (let i = 0; i < n; i++) await expect(boxes.nth(i)).toBeChecked();
  const total = await page.getByTestId('selected-total').innerText();
  await boxes.first().uncheck();
  await expect(page.getByTestId('selected-total')).not.toHaveText(total);
  await shot(page, 'charge-details');
  await page.getByLabel('微信支付').check();
  await page.getByRole('button', { name: '生成支付' }).click();
  await payOnPhone(browser, page, 'phone-wechat');
  await expect(page.getByRole('heading', { name: '支付成功' })).toBeVisible({ timeout: 20_000 });
  await expect(page.getByTestId('receipt').locator('tbody tr')).toHaveCount(n - 1);
  await expect(page.getByTestId('unpaid-summary')).toHaveText(/共 1 笔未结清账单/);
  expect(before).not.toEqual(await page.getByTestId('unpaid-summary').innerText());
  // the remembered channel: WeChat is still chosen after a reload
  await page.reload();
  await hydrated(page);
  await expect(page.getByLabel('微信支付')).toBeChecked();
});

test('a short QR expires; refreshing gives a new one', async ({ page, browser }) => {
  test.setTimeout(150_000);
  await login(page, 'cashier');
  const mrn = await patientWith(page, 2, 2);
  await openPatient(page, mrn);
  // refresh a live QR: a new code replaces the old
  await page.getByLabel('支付宝').check();
  await page.getByRole('button', { name: /扫码支付/ }).click();
  const first = await page.locator('img.qr').getAttribute('data-qr-content');
  await page.getByRole('button', { name: '刷新二维码' }).click();
  await expect(page.locator('img.qr')).not.toHaveAttribute('data-qr-content', first!);
  await page.getByRole('button', { name: '取消' }).click();
  await expect(page.getByRole('heading', { name: '已取消' })).toBeVisible();
  await page.getByRole('button', { name: '重新开始' }).click();
  // a QR that lives one minute (through the API, as another hospital system would open it)
  const patientId = (await page.locator('.charge-card').getAttribute('data-patient-id'))!;
  const overview = await page.request.get(`${BASE}/api/v1/finance/merged-payment/patient/${patientId}/unpaid-bills`);
  const bills = (await overview.json()).bills.map((b: any) => b.bill_id);
  const created = await page.request.post(`${BASE}/api/v1/finance/merged-payment/create-session`, {
    headers: { origin: BASE },
    data: { patient_id: patientId, bill_ids: bills, payment_method: 'alipay', timeout_minutes: 1 },
  });
  expect(created.status()).toBe(201);
  await page.reload();
  await hydrated(page);
  await expect(page.locator('img.qr')).toBeVisible();
  await expect(page.getByRole('timer')).toContainText(/00:[0-5]\d/);
  await expect(page.getByRole('heading', { name: '二维码已过期' })).toBeVisible({ timeout: 90_000 });
  // the bills are unpaid again, and the card says so (issue 14 #4: it said "nothing owed")
  await expect(page.getByTestId('unpaid-summary')).toHaveText(`共 ${bills.length} 笔未结清账单`);
  await expect(page.getByText('该患者没有待缴费用。')).toHaveCount(0);
  await expect(page.getByTestId('end-reason')).toHaveText('二维码已过期，未收到付款。');
  await shot(page, 'charge-expired');
  await page.getByRole('button', { name: '重新开始' }).click();
  await page.getByRole('button', { name: /扫码支付/ }).click();
  await payOnPhone(browser, page);
  await expect(page.getByRole('heading', { name: '支付成功' })).toBeVisible({ timeout: 20_000 });
});

test('the sandbox sends every notification five extra times: one payment per bill', async ({ page, browser }) => {
  await login(page, 'cashier');
  await sandboxDefaults(page.request, 'alipay', { duplicate: 5 });
  try {
    const mrn = await patientWith(page, 2, 3);
    await openPatient(page, mrn);
    await page.getByLabel('支付宝').check();
    await page.getByRole('button', { name: /扫码支付/ }).click();
    const no = await outTradeNo(page);
    await payOnPhone(browser, page);
    await expect(page.getByRole('heading', { name: '支付成功' })).toBeVisible({ timeout: 20_000 });
    // six deliveries reached us …
    await expect.poll(async () => {
      const t = await (await page.request.get(`${BASE}/sandbox/alipay/control/trades/${no}`, { headers: SANDBOX })).json();
      return (t.deliveries ?? []).filter((d: any) => d.acknowledged).length;
    }, { timeout: 20_000 }).toBe(6);
    // … and every bill has exactly one payment
    const billNos = (await page.getByTestId('receipt').locator('tbody tr td:first-child').allInnerTexts()).map((t) => t.trim());
    expect(billNos.length).toBeGreaterThan(0);
    for (const billNo of billNos) {
      await page.goto('/bills?q=' + encodeURIComponent(billNo));
      await page.getByRole('table', { name: '账单列表' }).getByRole('link', { name: billNo }).click();
      await expect(page.getByRole('heading', { name: '支付记录' })).toBeVisible();
      await expect(page.locator('section:has(h2:text("支付记录")) tbody tr')).toHaveCount(1);
    }
  } finally {
    await sandboxDefaults(page.request, 'alipay', {});
  }
});

test('the notification is lost: status sync marks the bills paid', async ({ page, browser }) => {
  test.setTimeout(90_000);
  await login(page, 'cashier');
  await sandboxDefaults(page.request, 'wechatpay', { drop: true });
  try {
    const mrn = await patientWith(page, 2, 4);
    await openPatient(page, mrn);
    await page.getByLabel('微信支付').check();
    await page.getByRole('button', { name: /扫码支付/ }).click();
    await payOnPhone(browser, page);
    // no notification comes; the status-sync worker queries WeChat Pay and finds the payment
    await expect(page.getByRole('heading', { name: '支付成功' })).toBeVisible({ timeout: 60_000 });
    await shot(page, 'charge-paid-by-sync');
  } finally {
    await sandboxDefaults(page.request, 'wechatpay', {});
  }
});

test('paying after cancel: the money is refunded automatically and shown as an exception', async ({ page, browser }) => {
  test.setTimeout(90_000);
  await login(page, 'cashier');
  const mrn = await patientWith(page, 2, 5);
  await openPatient(page, mrn);
  await page.getByLabel('支付宝').check();
  await page.getByRole('button', { name: /扫码支付/ }).click();
  await expect(page.locator('img.qr')).toBeVisible();
  const no = await outTradeNo(page);
  // Alipay's notification will be late (a slow network) …
  const f = await page.request.post(`${BASE}/sandbox/alipay/control/trades/${no}/faults`, { data: { delay_ms: 120000 }, headers: SANDBOX });
  expect(f.ok()).toBeTruthy();
  // … the patient pays, and before we hear of it the cashier cancels
  await payOnPhone(browser, page, 'phone-late');
  await expect(page.getByRole('status').filter({ hasText: '等待支付' })).toBeVisible();
  await page.getByRole('button', { name: '取消' }).click();
  await expect(page.getByRole('heading', { name: '已取消' })).toBeVisible();
  // the bills were not paid by the late money
  await page.getByRole('button', { name: '重新开始' }).click();
  await expect(page.getByTestId('unpaid-summary')).toBeVisible();
  // the exception page shows it, refunded through Alipay by the worker
  await page.goto('/exceptions?all=1');
  await expect(page.getByTestId('exception-row').filter({ hasText: '过期/取消后到账' }).first()).toBeVisible({ timeout: 20_000 });
  await expect.poll(async () => {
    await page.reload();
    return await page.getByTestId('exception-row').filter({ hasText: '过期/取消后到账' }).first().getAttribute('data-status');
  }, { timeout: 45_000 }).toBe('refunded');
  const row = page.getByTestId('exception-row').filter({ hasText: '过期/取消后到账' }).first();
  await expect(row).toContainText('会话过期或取消后才到账');
  await expect(row).toContainText('已原路退回 ¥');
  await shot(page, 'exceptions-refunded');
  const trade = await (await page.request.get(`${BASE}/sandbox/alipay/control/trades/${no}`, { headers: SANDBOX })).json();
  expect(trade.state).toBe('TRADE_CLOSED');
});
