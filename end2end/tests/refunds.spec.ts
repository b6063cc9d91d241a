import { test, expect } from '@playwright/test';
import { hydrated, login, payPatientWithAlipay, shot } from './helpers';

// Issue 9: a refund of a paid bill, the way the hospital works — the cashier asks on the bill
// page (an amount above what is left is refused in words), a finance officer approves it in the
// queue, the refund goes back through the original channel and the bill shows 部分退款.

const BASE = process.env.BASE_URL || 'http://127.0.0.1:3000';

test('cashier asks, finance approves, the provider refunds, the bill shows partially refunded', async ({ page, browser }) => {
  test.setTimeout(120_000);
  await login(page, 'cashier');
  // a patient of the demo data with unpaid bills pays them with Alipay at the counter
  const mrn = await payPatientWithAlipay(browser, page, [9]);

  // the bill page of one of the bills just paid
  await page.goto(`/bills?status=paid&q=${mrn}`);
  await hydrated(page);
  const link = page.locator('table a[href^="/bills/bill_"]').first();
  await expect(link).toBeVisible();
  const billUrl = (await link.getAttribute('href'))!;
  await page.goto(billUrl);
  await hydrated(page);
  await expect(page.getByRole('heading', { name: '申请退款' })).toBeVisible();

  // ticking a line fills the amount with the line's amount; unticking gives the field back
  const amount = page.getByLabel('退款金额（元）');
  const first = page.getByTestId('refund-line').first();
  await first.check();
  await expect(amount).toBeDisabled();
  await expect(amount).toHaveValue(/^\d+\.\d{2}$/);
  await first.uncheck();
  await expect(amount).toBeEnabled();

  // more than was paid: refused, in words, nothing asked
  await amount.fill('999999.00');
  await page.getByLabel('退款原因').selectOption('drug_returned');
  await page.getByRole('button', { name: '提交退款申请' }).click();
  await expect(page.getByTestId('refund-error')).toContainText('退款金额超过可退金额');
  await expect(page.getByText('暂无退款')).toBeVisible();
  await shot(page, 'refund-refused');

  // ¥1.00 back for a returned drug: waits for finance
  await amount.fill('1.00');
  await page.getByLabel('说明').fill('患者退回未开封药品');
  await page.getByRole('button', { name: '提交退款申请' }).click();
  await expect(page.getByTestId('refund-asked')).toContainText('等待财务审批');
  await expect(page.getByTestId('refund-row').first()).toHaveAttribute('data-status', 'requested');
  await shot(page, 'refund-requested');

  // a second request for the same bill while one waits is refused
  await amount.fill('0.50');
  await page.getByRole('button', { name: '提交退款申请' }).click();
  await expect(page.getByTestId('refund-error')).toContainText('待审批的退款');

  // finance, in its own browser: the queue shows the payment's story; approve
  const ctx = await browser.newContext({ baseURL: BASE, locale: 'zh-CN', viewport: { width: 1366, height: 768 } });
  const fin = await ctx.newPage();
  await login(fin, 'finance');
  await expect(fin.getByTestId('refunds-waiting')).not.toHaveText('0');
  await fin.goto('/finance/refunds');
  await hydrated(fin);
  const row = fin.getByTestId('refund-row').filter({ hasText: '患者退回未开封药品' });
  await expect(row).toHaveAttribute('data-status', 'requested');
  await expect(row).toContainText('已退');
  await shot(fin, 'refund-queue');
  await row.getByRole('button', { name: '批准' }).click();
  await expect(fin.getByRole('status')).toContainText('退款中');
  await expect(fin.getByTestId('refund-row').filter({ hasText: '患者退回未开封药品' })).toHaveCount(0);
  await ctx.close();

  // the refund worker sends it; the provider confirms; the bill shows it
  await expect
    .poll(
      async () => {
        await page.goto(billUrl);
        await hydrated(page);
        return page.getByTestId('refund-row').first().getAttribute('data-status');
      },
      { timeout: 60_000, intervals: [1000, 2000] },
    )
    .toBe('succeeded');
  await expect(page.locator('.facts').getByText('部分退款')).toBeVisible();
  await expect(page.locator('.facts')).toContainText('¥1.00');
  await shot(page, 'refund-done');

  // F4: the money went back, so the refund has its red receipt, naming the receipt it reverses
  const red = page.getByTestId('refund-row').first().getByTestId('red-receipt-link');
  await expect(red).toContainText(/H\d{4}-\d{8}/);
  await red.click();
  await expect(page.getByRole('heading', { name: '红字收据（退款冲红）' })).toBeVisible();
  await expect(page.getByTestId('red-receipt-no')).toHaveText(/^H\d{4}-\d{8}$/);
  await expect(page.getByTestId('red-receipt-original')).toHaveText(/^R\d{4}-\d{8}$/);
  await expect(page.getByTestId('red-receipt-amount')).toHaveText('-¥1.00');
  await page.emulateMedia({ media: 'print' });
  await expect(page.getByTestId('red-receipt')).toBeVisible();
  await expect(page.locator('.topbar')).toBeHidden();
  await page.emulateMedia({ media: 'screen' });
  await shot(page, 'refund-red-receipt');
});
