import { test, expect } from '@playwright/test';
import { hydrated, login, shot } from './helpers';

// The books (issue 9 #4, #7): finance reads the trial balance and an account's postings, then
// closes days — a quiet day agrees with every provider's statement and is confirmed; a day of
// the demo history (whose trades the sandboxes never saw) differs, is refused without a note,
// and is closed with an exception. Both are then locked.

test('finance reads the trial balance and an account', async ({ page }) => {
  await login(page, 'finance');
  await page.getByRole('link', { name: '账簿' }).click();
  await expect(page.getByRole('heading', { name: '账簿 · 试算平衡表' })).toBeVisible();
  await expect(page.getByTestId('trial-balanced')).toContainText('借贷平衡');
  const receivable = page.locator('tr[data-account="1221"]');
  await expect(receivable).toContainText('应收医疗款');
  await expect(page.getByTestId('income-by-department')).toBeVisible();
  await shot(page, 'books-trial-balance');
  await hydrated(page);
  await receivable.getByRole('link', { name: '1221' }).click();
  await expect(page.getByRole('heading', { name: '1221 应收医疗款' })).toBeVisible();
  await expect(page.getByTestId('postings')).toContainText('开单');
  await shot(page, 'books-account-1221');
  // a bad account code is a clear error, not a crash
  await page.goto('/finance/ledger/9999');
  await expect(page.getByText('没有这个科目')).toBeVisible();
});

test('a quiet day is confirmed, a differing day needs an exception, both are locked', async ({ page }) => {
  await login(page, 'finance');
  // a day long before the demo history: nothing on either side
  await page.goto('/finance/day-close?day=2024-03-01');
  await hydrated(page);
  await expect(page.getByTestId('day-open')).toContainText('各渠道一致');
  const channels = page.getByTestId('day-channels');
  await expect(channels.locator('tr[data-provider="alipay"]')).toContainText('一致');
  await page.getByTestId('close-day').click();
  await expect(page.getByTestId('day-locked')).toContainText('已日结并锁定');
  await expect(page.getByTestId('close-form')).toHaveCount(0);
  await shot(page, 'day-close-confirmed');

  // yesterday: the demo history's payments are in our books but not in the sandboxes' statements
  await page.goto('/finance/day-close');
  await hydrated(page);
  await expect(page.getByTestId('day-open')).toContainText('不一致');
  await expect(channels.locator('td[data-testid="channel-check"]').filter({ hasText: '不一致' }).first()).toBeVisible();
  await page.getByTestId('close-day').click();
  await expect(page.getByTestId('close-error')).toContainText('请填写异常说明');
  await expect(page.getByTestId('day-open')).toBeVisible();
  await page.getByTestId('close-note').fill('演示数据的历史交易不在沙箱对账单中，已核实');
  await page.getByTestId('close-day').click();
  await expect(page.getByTestId('day-locked')).toContainText('有异常说明');
  await expect(page.getByTestId('day-note')).toContainText('演示数据');
  await shot(page, 'day-close-exception');
  // both days are listed as closed
  await expect(page.getByTestId('closes')).toContainText('2024-03-01');
  await expect(page.getByTestId('closes').locator('tbody tr')).toHaveCount(2);

  // today cannot be closed yet
  const today = new Date(Date.now() + 8 * 3600_000).toISOString().slice(0, 10);
  await page.goto(`/finance/day-close?day=${today}`);
  await expect(page.getByText('该日尚未结束')).toBeVisible();
  await expect(page.getByTestId('close-form')).toHaveCount(0);
});
