import { defineConfig } from '@playwright/test';

// Debian's Chromium, never a downloaded browser. BASE_URL is set by .ci/test.
export default defineConfig({
  testDir: './tests',
  reporter: 'list',
  timeout: 60_000,
  retries: 0,
  workers: 1,
  outputDir: './test-results',
  use: {
    baseURL: process.env.BASE_URL || 'http://127.0.0.1:3000',
    locale: 'zh-CN',
    viewport: { width: 1366, height: 768 },
    screenshot: 'only-on-failure',
    trace: 'off',
    launchOptions: {
      executablePath: '/usr/bin/chromium',
      args: [
        '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync',
      ],
    },
  },
  projects: [{ name: 'chromium' }],
});
