// What the browser tests share: Chromium started headless through
// playwright-core (UI_NODE_MODULES names where it is installed), checks that
// print "ok"/"FAIL", and the closing "N passed, N failed".
import { createRequire } from "node:module";

const require = createRequire(`${process.env.UI_NODE_MODULES ?? "."}/`);
const { chromium } = require("playwright-core");

let passed = 0;
let failed = 0;

export async function check(name, body) {
  try {
    await body();
    console.log(`ok   ${name}`);
    passed += 1;
  } catch (e) {
    console.log(`FAIL ${name}\n     ${String(e.message ?? e).split("\n").slice(0, 4).join("\n     ")}`);
    failed += 1;
  }
}

export function expect(condition, what) {
  if (!condition) throw new Error(what);
}

/** A browser and one page at a laptop's size, with the page's script errors kept. */
export async function open() {
  const browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  return { browser, page, errors };
}

/** Prints the summary and exits with the verdict. */
export function finish() {
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed === 0 ? 0 : 1);
}
