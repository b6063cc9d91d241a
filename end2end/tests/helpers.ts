import { expect, Page } from '@playwright/test';

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
