// The web UI when anonymous pull is on: node anonymous.test.mjs BASE_URL,
// against the data ui.test.mjs pushed, served with anonymous = "pull".
import { check, expect, finish, open } from "./harness.mjs";

const [base] = process.argv.slice(2);
const { browser, page, errors } = await open();
const at = (path) => page.goto(base + path);

await check("anonymous: the pages open without signing in, offering it", async () => {
  await at("/ui/");
  await page.waitForSelector("table.repositories");
  expect(!page.url().includes("sign-in"), "sent to sign in");
  const names = await page.locator("table.repositories tbody tr td:first-child").allInnerTexts();
  expect(names.includes("models/churn"), `listed ${names}`);
  expect((await page.locator("#who a[href='/ui/sign-in']").count()) === 1, "no sign-in link");
  await at("/ui/sign-in");
  await page.waitForSelector("form.signin");
  expect((await page.locator("main .message.note").count()) === 1, "the sign-in page does not say looking is open");
});

await check("anonymous: a version is shown, without promote or roll back", async () => {
  await at("/ui/r/models/churn/-/v/v2");
  await page.waitForFunction(() => document.querySelector("main h1") && !document.querySelector("main .slot"));
  expect((await page.locator("section[aria-labelledby=s-layers]").count()) === 1, "no layers");
  expect((await page.locator("form.promote").count()) === 0, "promote offered");
  await at("/ui/r/models/churn/-/timeline/production");
  await page.waitForSelector("ol.timeline");
  expect((await page.locator("form.rollback").count()) === 0, "roll back offered");
});

await check("anonymous: no script errors", async () => {
  expect(errors.length === 0, errors.join("; "));
});

await browser.close();
finish();
