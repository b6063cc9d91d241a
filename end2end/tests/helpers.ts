import { expect, Browser, Page } from '@playwright/test';

export const USERS = {
  cashier: { user: 'cashier', password: 'demo-cashier', name: '张丽' },
  finance: { user: 'finance', password: 'demo-finance', name: '李敏' },
  admin: { user: 'admin', password: 'demo-admin-1', name: '王强' },
};

/** Logs in through the real form, in Chinese (the browser's locale is zh-CN). */
export async function login(page: Page, who: keyof typeof USERS) {
  await page.goto('/login');
  await page.getByLabel('用户名').fill(USERS[who].user);
  await page.getByLabel('密码').fill(USERS[who].password);
  await page.getByRole('button', { name: '登录' }).click();
  await expect(page.getByRole('heading', { name: '首页' })).toBeVisible();
  await hydrated(page);
}

/** Waits until the WASM has hydrated the page (the app marks <body data-hydrated>). */
export async function hydrated(page: Page) {
  await page.locator('body[data-hydrated="true"]').waitFor({ state: 'attached' });
}

export async function shot(page: Page, name: string) {
  await page.screenshot({ path: `screenshots/${name}.png`, fullPage: true });
}

/** The charge screen with one patient found by record number. */
export async function openPatient(page: Page, mrn: string) {
  await page.goto('/charge');
  await hydrated(page);
  const search = page.getByLabel('患者（姓名、病历号或扫码）');
  await search.fill(mrn);
  await search.press('Enter');
  await expect(page.getByTestId('unpaid-summary')).toBeVisible();
  await hydrated(page);
}

/** The patient's phone: opens the QR content and presses Pay. */
export async function payOnPhone(browser: Browser, page: Page, shotName?: string) {
  const qr = page.locator('img.qr');
  await expect(qr).toBeVisible({ timeout: 20_000 });
  const content = await qr.getAttribute('data-qr-content');
  expect(content).toContain('/sandbox/');
  const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, locale: 'zh-CN' });
  const p = await phone.newPage();
  await p.goto(content!);
  if (shotName) await shot(p, shotName);
  await p.getByRole('button', { name: /确认支付|立即付款|Pay/ }).first().click();
  await expect(p.getByRole('status')).toContainText(/Paid|成功/);
  await phone.close();
}

/** A demo patient with unpaid bills, from the first of these patient-list pages that has one;
 *  pays them all with Alipay at the counter. Returns the record number. */
export async function payPatientWithAlipay(browser: Browser, page: Page, pages: number[]): Promise<string> {
  let mrn = '';
  for (const n of pages) {
    await page.goto('/patients?page=' + n);
    const rows = page.getByRole('table', { name: '患者列表' }).locator('tbody tr');
    await expect(rows.first()).toBeVisible();
    for (let i = 0; i < (await rows.count()) && !mrn; i++) {
      const cells = rows.nth(i).locator('td');
      if (Number((await cells.nth(4).innerText()).trim()) >= 1) mrn = (await cells.nth(0).innerText()).trim();
    }
    if (mrn) break;
  }
  expect(mrn).not.toBe('');
  await openPatient(page, mrn);
  await page.getByLabel('支付宝').check();
  await page.getByRole('button', { name: /扫码支付/ }).click();
  await payOnPhone(browser, page);
  await expect(page.getByRole('heading', { name: '支付成功' })).toBeVisible({ timeout: 20_000 });
  return mrn;
}
