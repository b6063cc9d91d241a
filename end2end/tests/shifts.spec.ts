import { test, expect } from '@playwright/test';
import { hydrated, login, payPatientWithAlipay, shot } from './helpers';

// Issue 9 #6 (L3, 交班): the cashier opens a shift with the float, takes a payment, counts the
// drawer short — refused without a note, closed with one — and finance confirms the sheet.

const BASE = process.env.BASE_URL || 'http://127.0.0.1:3000';

test('a shift closed with a cash difference, confirmed by finance, prints its sheet', async ({ page, browser }) => {
  test.setTimeout(120_000);
  await login(page, 'cashier');
  await page.goto('/shifts');
  await hydrated(page);
  await expect(page.getByRole('heading', { name: '交班', exact: true })).toBeVisible();
  // a float that is not money is refused in words
  const float = page.getByLabel('备用金（元）');
  await float.fill('五百');
  await page.getByRole('button', { name: '开班' }).click();
  await expect(page.getByTestId('shift-error')).toContainText('bad_float');
  await float.fill('500.00');
  await page.getByRole('button', { name: '开班' }).click();
  await expect(page.getByTestId('my-shift')).toBeVisible();
  await expect(page.getByTestId('shift-expected')).toHaveText('¥500.00');

  // a payment at the counter during the shift
  await payPatientWithAlipay(browser, page, [10, 7, 6]);

  // the sheet shows it on the Alipay line
  await page.goto('/shifts');
  await hydrated(page);
  const alipay = page.getByTestId('shift-line').and(page.locator('[data-provider="alipay"]'));
  await expect(alipay.locator('td').first()).toHaveText('1');
  // ¥20 short: refused without a note, closed with one
  await page.getByLabel('实点现金（元）').fill('480.00');
  await page.getByRole('button', { name: '交班', exact: true }).click();
  await expect(page.getByTestId('shift-error')).toContainText('实点现金与应有现金不符');
  await page.getByLabel('说明（金额不符时必填）').fill('找零多找了 20 元');
  await page.getByRole('button', { name: '交班', exact: true }).click();
  await expect(page.getByTestId('shift-closed')).toBeVisible();
  await shot(page, 'shift-closed');

  // finance confirms the handover; the sheet prints on its own
  const ctx = await browser.newContext({ baseURL: BASE, locale: 'zh-CN', viewport: { width: 1366, height: 768 } });
  const fin = await ctx.newPage();
  await login(fin, 'finance');
  await fin.goto('/shifts');
  await hydrated(fin);
  const row = fin.getByTestId('shift-row').filter({ hasText: '找零多找了 20 元' }).first();
  await expect(row).toHaveAttribute('data-status', 'closed');
  await expect(row).toContainText('-¥20.00');
  await row.getByTestId('confirm-shift').click();
  const confirmed = fin.getByTestId('shift-row').filter({ hasText: '找零多找了 20 元' }).and(fin.locator('[data-status="confirmed"]'));
  await expect(confirmed.first()).toBeVisible();
  await confirmed.first().getByRole('link', { name: '交班单' }).click();
  await expect(fin.getByTestId('shift-sheet')).toBeVisible();
  await expect(fin.getByTestId('shift-difference')).toHaveText('-¥20.00');
  await expect(fin.getByTestId('shift-confirmed')).toContainText('确认人');
  await fin.emulateMedia({ media: 'print' });
  await expect(fin.getByTestId('shift-sheet')).toBeVisible();
  await expect(fin.locator('.topbar')).toBeHidden();
  await shot(fin, 'shift-sheet-print');
  await fin.emulateMedia({ media: 'screen' });
  await shot(fin, 'shift-sheet');
  await ctx.close();
});
