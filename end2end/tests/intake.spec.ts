import { test, expect, Page, Browser } from '@playwright/test';
import http from 'node:http';
import crypto from 'node:crypto';
import { hydrated, login, shot } from './helpers';

// Issue 15: the HIS (this test, over loopback) pushes a patient and bills with an intake-scope
// token the administrator issued in the UI; they appear on the cashier's open charge screen
// without a reload, an unticked bill stays unticked when another arrives, and the cashier
// collects the rest; the HIS's receiver (a server on loopback in this test, registered in the
// admin's Events page) gets the signed bill.paid and bill.voided events.

const BASE = process.env.BASE_URL || 'http://127.0.0.1:3000';
const RUN = Date.now().toString().slice(-6);

async function issueIntakeToken(page: Page): Promise<string> {
  await login(page, 'admin');
  await page.goto('/admin/tokens');
  await hydrated(page);
  await page.getByLabel('用途').fill(`HIS ${RUN}`);
  await page.getByLabel('用于').selectOption('intake');
  await page.getByRole('button', { name: '生成令牌' }).click();
  const token = (await page.getByTestId('new-token').innerText()).trim();
  expect(token).toMatch(/^cpk_/);
  await expect(page.getByRole('cell', { name: '账单接入（HIS）' }).first()).toBeVisible();
  return token;
}

type Got = { headers: http.IncomingHttpHeaders; body: string };

/** The HIS's event receiver: stores every POST, answers 200. */
async function startReceiver(): Promise<{ url: string; got: Got[]; close: () => void }> {
  const got: Got[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      got.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('stored');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as { port: number }).port;
  return { url: `http://127.0.0.1:${port}/his/events`, got, close: () => server.close() };
}

/** What the HIS does with each event: check the signature (HMAC-SHA256 of "t.body") and age. */
function verified(secret: string, g: Got): boolean {
  const header = String(g.headers['clinicpay-signature'] || '');
  const parts = Object.fromEntries(header.split(',').map((p) => p.split('=', 2)));
  const t = Number(parts.t);
  if (!t || Math.abs(Date.now() / 1000 - t) > 300) return false;
  const want = crypto.createHmac('sha256', secret).update(`${t}.${g.body}`).digest('hex');
  return parts.v1 === want;
}

async function eventFor(got: Got[], type: string, billId: string): Promise<Got> {
  await expect
    .poll(() => got.filter((g) => g.headers['clinicpay-event-type'] === type && JSON.parse(g.body).data.bill.bill_id === billId).length, {
      timeout: 20_000,
    })
    .toBeGreaterThan(0);
  return got.find((g) => g.headers['clinicpay-event-type'] === type && JSON.parse(g.body).data.bill.bill_id === billId)!;
}

async function registerEndpoint(page: Page, url: string): Promise<string> {
  await page.goto('/admin/webhooks');
  await hydrated(page);
  await page.getByRole('button', { name: '新增推送地址' }).click();
  await page.getByLabel('名称').fill(`HIS ${RUN}`);
  // a wrong address is refused in words
  await page.getByLabel('接收地址（http/https）').fill('his.local/events');
  await page.getByRole('button', { name: '保存' }).click();
  await expect(page.getByRole('alert')).toContainText('http://');
  await page.getByLabel('接收地址（http/https）').fill(url);
  await expect(page.getByLabel('账单已缴费')).toBeChecked();
  await expect(page.getByLabel('账单已作废')).toBeChecked();
  await page.getByRole('button', { name: '保存' }).click();
  const secret = (await page.getByTestId('endpoint-secret').innerText()).trim();
  expect(secret).toMatch(/^whsec_/);
  const row = page.getByTestId('endpoints').locator('tr', { hasText: `HIS ${RUN}` });
  await expect(row).toContainText(`whsec_…${secret.slice(-4)}`);
  await expect(row).not.toContainText(secret);
  await shot(page, 'webhook-endpoints');
  return secret;
}

async function his(page: Page, token: string, path: string, data: object) {
  const r = await page.request.post(`${BASE}/api/v1/intake/${path}`, {
    data,
    headers: { authorization: `Bearer ${token}` },
  });
  return { status: r.status(), body: await r.json() };
}

function bill(id: string, patient: string, qty: number) {
  return {
    bill_id: id,
    patient_id: patient,
    department: 'E2E-LAB',
    doctor: '陈医生',
    items: [{ code: `E2E-CBC-${RUN}`, quantity: qty }],
  };
}

async function payOnPhone(browser: Browser, page: Page) {
  const qr = page.locator('img.qr');
  await expect(qr).toBeVisible({ timeout: 20_000 });
  const content = await qr.getAttribute('data-qr-content');
  const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, locale: 'zh-CN' });
  const p = await phone.newPage();
  await p.goto(content!);
  await p.getByRole('button', { name: /确认支付|立即付款|Pay/ }).first().click();
  await expect(p.getByRole('status')).toContainText(/Paid|成功/);
  await phone.close();
}

test('bills pushed by the HIS appear on the open charge screen and are collected', async ({ page, browser }) => {
  test.setTimeout(120_000);
  const receiver = await startReceiver();
  const token = await issueIntakeToken(page);
  const secret = await registerEndpoint(page, receiver.url);
  const patientId = `E2E-P-${RUN}`;
  const mrn = `77${RUN}`;

  let r = await his(page, token, 'departments', { departments: [{ code: 'E2E-LAB', name_zh: '检验科', name_en: 'Laboratory' }] });
  expect(r.status).toBe(200);
  r = await his(page, token, 'charge-items', {
    items: [{ code: `E2E-CBC-${RUN}`, name: '血常规', category: 'lab', unit: '次', unit_price: '25.00' }],
  });
  expect(r.body.refused).toBe(0);
  r = await his(page, token, 'patients', { patient_id: patientId, mrn, name: '测试患者', gender: 'female', phone: '13800001234' });
  expect(r.status).toBe(201);
  // a bad bill is refused with its code and names the field
  r = await his(page, token, 'bills', { ...bill(`E2E-B0-${RUN}`, patientId, 1), total: '99.00' });
  expect([r.status, r.body.error.code, r.body.error.field]).toEqual([400, 'total_mismatch', 'total']);

  // the cashier opens the patient: nothing owed yet
  await page.context().clearCookies();
  await login(page, 'cashier');
  await page.goto('/charge');
  await hydrated(page);
  const search = page.getByLabel('患者（姓名、病历号或扫码）');
  await search.fill(mrn);
  await search.press('Enter');
  await expect(page.getByText('该患者没有待缴费用。')).toBeVisible();
  await page.evaluate(() => ((window as any).__sameDocument = true));

  // the HIS issues a bill: it shows without a reload
  r = await his(page, token, 'bills', bill(`E2E-B1-${RUN}`, patientId, 1));
  expect(r.status).toBe(201);
  const b1 = r.body.bill.id as string;
  await expect(page.getByTestId('unpaid-summary')).toHaveText(/共 1 笔未结清账单/, { timeout: 10_000 });

  // the cashier opens the details and unticks it; a second bill arrives and is ticked, the
  // unticked one stays unticked
  await page.getByRole('button', { name: '查看明细与部分支付' }).click();
  const details = page.getByRole('region', { name: '账单明细' });
  await details.getByRole('checkbox').first().uncheck();
  r = await his(page, token, 'bills', bill(`E2E-B2-${RUN}`, patientId, 2));
  expect(r.status).toBe(201);
  await expect(page.getByTestId('unpaid-summary')).toHaveText(/共 2 笔未结清账单/, { timeout: 10_000 });
  const boxes = page.getByRole('region', { name: '账单明细' }).getByRole('checkbox');
  await expect(boxes).toHaveCount(2);
  await expect(boxes.nth(0)).not.toBeChecked();
  await expect(boxes.nth(1)).toBeChecked();
  await expect(page.getByTestId('selected-total')).toContainText('50.00');
  expect(await page.evaluate(() => (window as any).__sameDocument)).toBe(true);
  await shot(page, 'intake-live-bills');

  // collect the ticked one
  await page.getByLabel('支付宝').check();
  await page.getByRole('button', { name: '生成支付' }).click();
  await payOnPhone(browser, page);
  await expect(page.getByRole('heading', { name: '支付成功' })).toBeVisible({ timeout: 20_000 });
  await expect(page.getByTestId('receipt').locator('tbody tr')).toHaveCount(1);

  // the HIS reads it back paid; the unticked one is still owed
  const paid = await page.request.get(`${BASE}/api/v1/intake/bills/E2E-B2-${RUN}`, { headers: { authorization: `Bearer ${token}` } });
  expect((await paid.json()).status).toBe('paid');
  const open = await page.request.get(`${BASE}/api/v1/intake/bills/E2E-B1-${RUN}`, { headers: { authorization: `Bearer ${token}` } });
  expect((await open.json()).status).toBe('unpaid');

  // the cashier voids the unpaid one on its page, with a reason; the HIS reads it back void
  await page.goto(`/bills/${b1}`);
  await hydrated(page);
  await page.getByLabel('作废原因').fill('医生撤销检验');
  await page.getByRole('button', { name: '作废', exact: true }).click();
  await expect(page.locator('.badge').filter({ hasText: '已作废' })).toBeVisible();
  await expect(page.getByRole('heading', { name: '作废账单' })).toHaveCount(0);
  const voided = await page.request.get(`${BASE}/api/v1/intake/bills/E2E-B1-${RUN}`, { headers: { authorization: `Bearer ${token}` } });
  expect((await voided.json()).status).toBe('void');

  // the HIS's receiver got both events, signed with its secret, with the payment and receipt
  const paidEvent = await eventFor(receiver.got, 'bill.paid', `E2E-B2-${RUN}`);
  expect(verified(secret, paidEvent)).toBe(true);
  expect(verified('whsec_wrong', paidEvent)).toBe(false);
  const pe = JSON.parse(paidEvent.body);
  expect(pe.id).toBe(paidEvent.headers['clinicpay-event-id']);
  expect([pe.data.paid_amount, pe.data.payment.provider, pe.data.bill.his_patient_id]).toEqual(['50.00', 'alipay', patientId]);
  expect(pe.data.receipt_no).toMatch(/\S+/);
  const voidEvent = await eventFor(receiver.got, 'bill.voided', `E2E-B1-${RUN}`);
  expect(verified(secret, voidEvent)).toBe(true);
  expect(JSON.parse(voidEvent.body).data.void.reason).toBe('医生撤销检验');

  // finance sees both delivered in the log, opens one, and re-sends it: the same event again
  await page.context().clearCookies();
  await login(page, 'finance');
  await page.getByRole('link', { name: '推送日志' }).click();
  await hydrated(page);
  await page.getByLabel('事件或账单编号').fill(pe.id);
  await page.getByRole('button', { name: '查询' }).click();
  await page.waitForURL(/q=evt_/);
  await hydrated(page);
  const line = page.getByTestId('deliveries').locator('tbody tr');
  await expect(line).toHaveCount(1);
  await expect(line).toContainText('已送达');
  await line.getByRole('button', { name: '详情' }).click();
  await expect(page.getByTestId('delivery-detail')).toContainText('HTTP 200');
  await shot(page, 'webhook-deliveries');
  const before = receiver.got.length;
  await line.getByRole('button', { name: '重新发送' }).click();
  await expect(page.getByRole('status').filter({ hasText: '已排队重新发送' })).toBeVisible();
  await expect.poll(() => receiver.got.length, { timeout: 20_000 }).toBeGreaterThan(before);
  const resent = receiver.got.slice(before).find((g) => g.headers['clinicpay-event-id'] === pe.id)!;
  expect(resent.body).toBe(paidEvent.body);
  expect(resent.headers['clinicpay-delivery-attempt']).toBe('2');

  // the administrator turns the endpoint off (the receiver goes away with this test)
  await page.context().clearCookies();
  await login(page, 'admin');
  await page.goto('/admin/webhooks');
  await hydrated(page);
  const row = page.getByTestId('endpoints').locator('tr', { hasText: `HIS ${RUN}` });
  await row.getByRole('button', { name: '编辑' }).click();
  await page.getByLabel('启用').uncheck();
  await page.getByRole('button', { name: '保存' }).click();
  await expect(row).toContainText('停用');
  receiver.close();
});

test('a clinic cashier registers a patient, enters a bill of three items and collects it', async ({ page, browser }) => {
  test.setTimeout(120_000);
  await login(page, 'cashier');
  await page.getByRole('link', { name: '开单' }).click();
  await expect(page.getByRole('heading', { name: '登记新患者' })).toBeVisible();
  await hydrated(page);
  const mrn = `66${RUN}`;
  await page.getByLabel('病历号').fill(mrn);
  await page.getByLabel('姓名').fill('门诊新患者');
  await page.getByLabel('性别').selectOption('female');
  await page.getByLabel('身份证号（加密保存）').fill('110105194912310021');
  await page.getByRole('button', { name: '登记并开单' }).click();
  // a wrong identity card is refused in words, nothing registered
  await expect(page.getByRole('alert')).toContainText('身份证号不正确');
  await page.getByLabel('身份证号（加密保存）').fill('11010519491231002X');
  await page.getByRole('button', { name: '登记并开单' }).click();
  await expect(page).toHaveURL(/\/bills\/new\?patient=pat_/);
  await expect(page.getByRole('heading', { name: '门诊新患者' })).toBeVisible();
  await hydrated(page);

  // three items by code and by name, from the keyboard
  const item = page.getByLabel('收费项目（编码或名称，回车添加）');
  await item.fill('CON-001');
  await item.press('Enter');
  await item.fill('lab-001');
  await item.press('Enter');
  await item.fill('阿莫西林');
  await item.press('Enter');
  const lines = page.getByRole('table', { name: '账单明细' }).locator('tbody tr');
  await expect(lines).toHaveCount(3);
  await expect(lines.nth(0)).toContainText('普通门诊诊查费');
  await expect(lines.nth(2)).toContainText('阿莫西林');
  await page.getByLabel('数量 阿莫西林胶囊 0.25g×24粒').fill('2');
  // 10.00 + 25.00 + 2 × 18.50
  await expect(page.getByTestId('entry-total')).toContainText('72.00');
  await shot(page, 'bill-entry');
  await page.keyboard.press('F2');

  // straight to the charge screen with the new bill
  await expect(page).toHaveURL(/\/charge\?patient=pat_/);
  await expect(page.getByTestId('unpaid-summary')).toHaveText(/共 1 笔未结清账单/);
  await hydrated(page);
  await page.getByLabel('支付宝').check();
  await page.getByRole('button', { name: /扫码支付/ }).click();
  await payOnPhone(browser, page);
  await expect(page.getByRole('heading', { name: '支付成功' })).toBeVisible({ timeout: 20_000 });
  await expect(page.getByTestId('receipt')).toContainText('72.00');
});

test('an administrator imports the catalogue from a file, row errors first', async ({ page }) => {
  await login(page, 'admin');
  await page.getByRole('link', { name: '收费项目' }).click();
  await expect(page.getByRole('heading', { name: '科室与收费项目' })).toBeVisible();
  await hydrated(page);
  const code = `IMP-${RUN}`;
  const bad = `项目编码,项目名称,类别,单位,单价\n${code}-1,血糖,化验,次,8.00\n${code}-2,糖化血红蛋白,化验,次,-5\n`;
  await page.getByLabel('文件（CSV 或 XLSX，第一行为列名）').setInputFiles({ name: 'catalogue.csv', mimeType: 'text/csv', buffer: Buffer.from(bad) });
  await page.getByRole('button', { name: '导入', exact: true }).click();
  const result = page.getByTestId('import-result');
  await expect(result).toContainText('未导入任何内容');
  await expect(result.locator('tbody tr')).toHaveCount(1);
  await expect(result.locator('tbody tr')).toContainText('3');
  await expect(result.locator('tbody tr')).toContainText('bad_amount');
  await shot(page, 'catalogue-import-errors');

  const good = bad.replace(',-5', ',45.50');
  await page.getByLabel('文件（CSV 或 XLSX，第一行为列名）').setInputFiles({ name: 'catalogue.csv', mimeType: 'text/csv', buffer: Buffer.from(good) });
  await page.getByRole('button', { name: '导入', exact: true }).click();
  await expect(result).toContainText('已导入 2 行：新增 2');

  await page.getByLabel('编码或名称').fill(code);
  await page.getByRole('button', { name: '查询' }).click();
  await page.waitForURL(/q=IMP-/);
  await hydrated(page);
  const rows = page.getByTestId('catalogue').locator('tbody tr');
  await expect(rows).toHaveCount(2);
  await expect(rows.filter({ hasText: '糖化血红蛋白' })).toContainText('45.50');

  // one item edited in the form: disabled, and the list says so
  await rows.filter({ hasText: '血糖' }).getByRole('button', { name: '编辑' }).click();
  await page.getByRole('checkbox', { name: /启用（/ }).uncheck();
  await page.getByRole('button', { name: '保存' }).click();
  await expect(rows.filter({ hasText: '血糖' })).toContainText('停用');
});
