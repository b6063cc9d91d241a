import { test, expect, Page } from '@playwright/test';
import { hydrated, login, openPatient, shot } from './helpers';

// Issue 9 #5 (C9): cash and a POS slip taken at the counter. The cashier unticks a bill, takes
// cash for the rest (too little is refused, the change is shown as it is typed), then swipes a
// card for the bill left and types the slip's reference; both receipts say what was recorded,
// and the shift sheet expects the cash in the drawer.

const yuan = (text: string) => Number(text.replace(/[¥,\s]/g, ''));

/** A demo patient with at least `min` unpaid bills, from the first of these list pages. */
async function patientWithBills(page: Page, pages: number[], min: number): Promise<string> {
  for (const n of pages) {
    await page.goto('/patients?page=' + n);
    const table = page.getByRole('table', { name: '患者列表' });
    await expect(table).toBeVisible();
    const rows = table.locator('tbody tr');
    for (let i = 0; i < (await rows.count()); i++) {
      const cells = rows.nth(i).locator('td');
      if (Number((await cells.nth(4).innerText()).trim()) >= min) return (await cells.nth(0).innerText()).trim();
    }
  }
  throw new Error(`no patient with ${min} unpaid bills on pages ${pages}`);
}

test('cash with change and a POS slip pay the ticked bills; the drawer expects the cash', async ({ page }) => {
  test.setTimeout(120_000);
  await login(page, 'cashier');
  await page.goto('/shifts');
  await hydrated(page);
  await page.getByLabel('备用金（元）').fill('300.00');
  await page.getByRole('button', { name: '开班' }).click();
  await expect(page.getByTestId('shift-expected')).toHaveText('¥300.00');

  const mrn = await patientWithBills(page, [5, 4], 2);
  await openPatient(page, mrn);
  const unpaid = Number((await page.getByTestId('unpaid-summary').innerText()).match(/\d+/)![0]);
  await page.getByLabel('现金').check();
  await expect(page.getByRole('button', { name: new RegExp(`现金收款 · 全部 ${unpaid} 笔`) })).toBeVisible();

  // details open, the first bill unticked: F2 takes cash for the ticked ones only
  await page.keyboard.press('F3');
  const boxes = page.locator('.charge-details tbody input[type=checkbox]');
  await boxes.first().uncheck();
  const selected = yuan(await page.getByTestId('selected-total').innerText());
  await page.keyboard.press('F2');
  const form = page.getByTestId('counter-panel');
  await expect(form).toBeVisible();
  expect(yuan(await page.getByTestId('counter-due').innerText())).toBe(selected);
  const tendered = page.getByLabel('实收金额（元）');
  await expect(tendered).toBeFocused();

  // too little: the change line says so, and the server refuses it in words
  await tendered.fill('1');
  await expect(page.getByTestId('change')).toContainText('还差');
  await tendered.press('Enter');
  await expect(form.getByRole('alert')).toContainText('实收金额少于应收金额');
  await expect(page.getByTestId('unpaid-summary')).toContainText(String(unpaid));

  // Esc puts the form away without recording anything; F2 brings it back
  await page.keyboard.press('Escape');
  await expect(form).toBeHidden();
  await page.keyboard.press('F2');
  await expect(form).toBeVisible();

  // enough, with ¥50 back
  const given = (selected + 50).toFixed(2);
  await tendered.fill(given);
  await expect(page.getByTestId('change')).toHaveText('找零：¥50.00');
  await shot(page, 'counter-cash-form');
  await tendered.press('Enter');
  await expect(page.getByRole('heading', { name: '支付成功' })).toBeVisible();
  await expect(page.getByTestId('receipt-counter')).toContainText('找零 ¥50.00');
  await expect(page.getByTestId('receipt')).toContainText('现金');
  await shot(page, 'counter-cash-receipt');
  // the unticked bill is still owed
  await expect(page.getByTestId('unpaid-summary')).toContainText('共 1 笔未结清账单');

  // the bill left, by card on the counter's POS: a bad reference is refused, a good one pays
  await page.getByLabel('POS 刷卡').check();
  await page.getByRole('button', { name: /POS 刷卡 · 全部 1 笔/ }).click();
  const ref = page.getByLabel('签购单参考号');
  await expect(ref).toBeFocused();
  await ref.fill('12345');
  await ref.press('Enter');
  await expect(form.getByRole('alert')).toContainText('参考号');
  const slip = String(Date.now()).slice(-12);
  await ref.fill(slip);
  await page.getByLabel('卡号后四位（可选）').fill('6217');
  await page.getByRole('button', { name: /确认收款/ }).click();
  await expect(page.getByRole('heading', { name: '支付成功' })).toBeVisible();
  await expect(page.getByTestId('receipt-counter')).toContainText(`POS 参考号 ${slip}`);
  await expect(page.getByTestId('receipt-counter')).toContainText('**** 6217');
  await expect(page.locator('.nothing-owed')).toBeVisible();
  await page.emulateMedia({ media: 'print' });
  await expect(page.getByTestId('receipt')).toBeVisible();
  await page.emulateMedia({ media: 'screen' });

  // the sheet: one cash payment, one POS; the drawer should hold the float and the cash
  await page.goto('/shifts');
  await hydrated(page);
  const cash = page.getByTestId('shift-line').and(page.locator('[data-provider="cash"]'));
  await expect(cash.locator('td').first()).toHaveText('1');
  const pos = page.getByTestId('shift-line').and(page.locator('[data-provider="pos"]'));
  await expect(pos.locator('td').first()).toHaveText('1');
  const expected = (300 + selected).toFixed(2);
  expect(yuan(await page.getByTestId('shift-expected').innerText()).toFixed(2)).toBe(expected);
  await shot(page, 'counter-shift');
  await page.getByLabel('实点现金（元）').fill(expected);
  await page.getByRole('button', { name: '交班', exact: true }).click();
  await expect(page.getByTestId('shift-closed')).toBeVisible();
});
