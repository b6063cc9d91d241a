import { test, expect } from '@playwright/test';
import { hydrated, login, shot, USERS } from './helpers';

test('each role logs in and sees what it may use', async ({ page }) => {
  for (const who of ['cashier', 'finance', 'admin'] as const) {
    await page.context().clearCookies();
    await login(page, who);
    await expect(page.getByText(USERS[who].name)).toBeVisible();
    const nav = page.getByRole('navigation', { name: '主导航' });
    await expect(nav.getByRole('link', { name: '账单' })).toBeVisible();
    if (who === 'admin') {
      await expect(nav.getByRole('link', { name: '用户' })).toBeVisible();
    } else {
      await expect(nav.getByRole('link', { name: '用户' })).toHaveCount(0);
    }
    await shot(page, `dashboard-${who}`);
    await page.getByRole('button', { name: '退出' }).click();
    await expect(page.getByRole('button', { name: '登录' })).toBeVisible();
  }
});

test('the cashier sees the dashboard and the bills', async ({ page }) => {
  await login(page, 'cashier');
  await expect(page.getByRole('heading', { name: '今日收入' })).toBeVisible();
  await expect(page.getByTestId('unpaid-count')).not.toHaveText('0');
  await page.getByRole('navigation', { name: '主导航' }).getByRole('link', { name: '账单' }).click();
  await expect(page.getByRole('heading', { name: '账单', exact: true })).toBeVisible();
  const rows = page.getByRole('table', { name: '账单列表' }).locator('tbody tr');
  await expect(rows).toHaveCount(20);
  await expect(page.getByText(/第 1 \/ \d+ 页/)).toBeVisible();
  // open a bill and see its items
  await rows.first().getByRole('link').first().click();
  await expect(page.getByRole('heading', { name: '明细' })).toBeVisible();
  await shot(page, 'bill-detail');
});

test('search finds a patient by name and by record number', async ({ page }) => {
  await login(page, 'cashier');
  await page.goto('/patients');
  const first = page.getByRole('table', { name: '患者列表' }).locator('tbody tr').nth(3);
  const mrn = (await first.locator('td').nth(0).innerText()).trim();
  const name = (await first.locator('td').nth(1).innerText()).trim();

  await page.goto('/bills');
  const search = page.getByLabel('搜索（患者姓名、病历号或账单号）');
  await search.fill(name);
  await search.press('Enter');
  await expect(page).toHaveURL(/q=/);
  const rows = page.getByRole('table', { name: '账单列表' }).locator('tbody tr');
  await expect(rows.first()).toContainText(name);
  for (const row of await rows.all()) await expect(row).toContainText(name);
  await shot(page, 'bills-search-name');

  await search.fill(mrn);
  await search.press('Enter');
  await expect(page).toHaveURL(new RegExp(`q=${mrn}`));
  for (const row of await rows.all()) await expect(row).toContainText(mrn);

  await page.goto('/patients');
  // typed after hydration: text typed before it is reset when the page hydrates (issue 14 #7)
  await hydrated(page);
  await page.getByLabel('搜索（姓名或病历号）').fill(mrn);
  await page.getByRole('button', { name: '查询' }).click();
  await expect(page.getByRole('table', { name: '患者列表' }).locator('tbody tr')).toHaveCount(1);
  await page.getByRole('link', { name }).click();
  await expect(page.getByRole('heading', { name })).toBeVisible();
});

test('the language switch changes texts and survives a reload', async ({ page }) => {
  // finance lands on its own home (财务首页 / Finance)
  await login(page, 'finance');
  await page.getByRole('link', { name: 'English' }).click();
  await expect(page.getByRole('heading', { name: 'Finance', level: 1 })).toBeVisible();
  await expect(page.getByRole('heading', { name: "Today's takings" })).toBeVisible();
  await expect(page.getByRole('heading', { name: 'Today by channel' })).toBeVisible();
  await page.reload();
  await expect(page.getByRole('heading', { name: 'Finance', level: 1 })).toBeVisible();
  await page.getByRole('link', { name: 'Bills' }).click();
  await expect(page.getByRole('button', { name: 'Search' })).toBeVisible();
  await shot(page, 'bills-english');
  await page.getByRole('link', { name: '中文' }).click();
  await expect(page.getByRole('heading', { name: '账单', exact: true })).toBeVisible();
});

test('a wrong password shows an error', async ({ page }) => {
  await page.goto('/login');
  await page.getByLabel('用户名').fill('cashier');
  await page.getByLabel('密码').fill('not-the-password');
  await page.getByRole('button', { name: '登录' }).click();
  await expect(page.getByRole('alert')).toContainText('用户名或密码错误');
  await shot(page, 'login-error');
});

test('a cashier opening an admin page gets a clear "not allowed" page', async ({ page }) => {
  await login(page, 'cashier');
  const resp = await page.goto('/admin/users');
  expect(resp?.status()).toBe(403);
  await expect(page.getByRole('heading', { name: '无权访问' })).toBeVisible();
  await shot(page, 'not-allowed');
});

test('bad input in the address is explained, not a crash', async ({ page }) => {
  await login(page, 'cashier');
  const resp = await page.goto('/bills?page=abc');
  expect(resp?.status()).toBe(400);
  // which parameter, in Chinese: no English sentence inside a Chinese error (issue 14 #8)
  await expect(page.getByRole('alert')).toContainText('有问题的参数：page');
  await expect(page.getByRole('alert')).not.toContainText('must be');
  const resp2 = await page.goto('/bills/not-an-id');
  expect(resp2?.status()).toBe(400);
  await expect(page.getByRole('alert')).toBeVisible();
});

test('an admin creates a user who can then log in', async ({ page }) => {
  await login(page, 'admin');
  await page.goto('/admin/users');
  await hydrated(page);
  const uname = `e2e${Date.now() % 100000}`;
  await page.getByLabel('用户名').fill(uname);
  await page.getByLabel('姓名').fill('测试收费员');
  await page.getByLabel('初始密码（至少 10 位）').fill('e2e-password-1');
  await page.getByRole('button', { name: '创建' }).click();
  await expect(page.getByText('已创建用户')).toBeVisible();
  await expect(page.getByRole('table', { name: '用户列表' })).toContainText(uname);
  await page.context().clearCookies();
  await page.goto('/login');
  await page.getByLabel('用户名').fill(uname);
  await page.getByLabel('密码').fill('e2e-password-1');
  await page.getByRole('button', { name: '登录' }).click();
  await expect(page.getByRole('heading', { name: '首页' })).toBeVisible();
});

test('finance lands on its own home with its own menu; a cashier may not open it', async ({ page }) => {
  // issue 14 #11: the finance officer saw the cashier's menu
  await login(page, 'finance');
  await expect(page).toHaveURL(/\/finance$/);
  await expect(page.getByRole('heading', { name: '财务首页', level: 1 })).toBeVisible();
  const nav = page.getByRole('navigation', { name: '主导航' });
  await expect(nav.getByRole('link').first()).toHaveText('财务首页');
  await expect(nav.getByRole('link', { name: '首页', exact: true })).toHaveCount(0);
  await expect(page.getByRole('heading', { name: '今日各渠道收入' })).toBeVisible();
  await expect(page.getByTestId('open-exceptions')).toHaveText(/^\d+$/);
  await shot(page, 'finance-home');
  await page.getByRole('button', { name: '退出' }).click();
  await login(page, 'cashier');
  await expect(page.getByRole('navigation', { name: '主导航' }).getByRole('link', { name: '财务首页' })).toHaveCount(0);
  const resp = await page.goto('/finance');
  expect(resp?.status()).toBe(403);
  await expect(page.getByRole('heading', { name: '无权访问' })).toBeVisible();
});
