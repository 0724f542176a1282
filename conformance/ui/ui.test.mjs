// The web UI in headless Chromium: node ui.test.mjs BASE_URL SCREENSHOT_DIR,
// against a Berth with anonymous = "none". Prints "ok"/"FAIL" per check, the
// render times measured, and "N passed, N failed".
import { Client, seed } from "./seed.mjs";
import { check, expect, finish, open } from "./harness.mjs";

const [base, shots] = process.argv.slice(2);
const alice = new Client(base, "alice", "ecila");

/** 5,000 tags in one repository (distinct manifests, 8 pushes at a time). */
async function manyTags(c, repo, count) {
  const config = await c.blob(repo, "{}");
  const layer = await c.blob(repo, "weights");
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      await c.manifest(repo, `t${String(i).padStart(4, "0")}`, {
        schemaVersion: 2,
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        artifactType: "application/vnd.example.model.v1",
        config: { mediaType: "application/vnd.oci.empty.v1+json", ...config },
        layers: [{ mediaType: "application/octet-stream", ...layer }],
        annotations: { build: String(i) },
      });
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
}

/** A chain of 20 model versions, each trained on 9 datasets: 200 nodes. */
async function bigLineage(c) {
  let parent = null;
  for (let m = 0; m < 20; m++) {
    const datasets = [];
    for (let d = 0; d < 9; d++) {
      await c.artifact("big/data", `m${m}-d${d}`, "application/vnd.example.dataset.v1",
        [[`rows of ${m}-${d}`, "text/csv", `part-${d}.csv`]]);
      datasets.push(`big/data:m${m}-d${d}`);
    }
    const annotations = { "io.berth.lineage.datasets": datasets.join(",") };
    if (parent) annotations["io.berth.lineage.parents"] = parent;
    await c.artifact("big/model", `v${m}`, "application/vnd.example.model.v1",
      [[`weights ${m}`, "application/octet-stream", "model.safetensors"]], annotations);
    parent = `big/model:v${m}`;
  }
}

const seeded = await seed(alice);
await manyTags(alice, "big/tags", 5000);
await bigLineage(alice);

const { browser, page, errors } = await open();
const at = (path) => page.goto(base + path);
const text = (selector) => page.locator(selector).first().innerText();
const shot = (name) => page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });
const h1 = async (want) => {
  await page.waitForFunction((w) => document.querySelector("main h1")?.textContent.includes(w), want);
};
async function signIn(user, password) {
  await at("/ui/sign-in");
  await page.fill("input[name=username]", user);
  await page.fill("input[name=password]", password);
  await page.click("form.signin button[type=submit]");
}

await check("/ redirects to /ui/, and an anonymous visitor is asked to sign in", async () => {
  await at("/");
  await page.waitForURL(/\/ui\/sign-in\?next=/);
  await h1("Sign in");
  const unlabelled = await page.evaluate(() => [...document.querySelectorAll("main input")]
    .filter((i) => i.labels.length === 0).length);
  expect(unlabelled === 0, `${unlabelled} inputs without a label`);
});

await check("a wrong password is refused on the page (no browser dialog)", async () => {
  await signIn("alice", "wrong");
  await page.waitForSelector(".message.error");
  expect((await text(".message.error")).includes("Wrong"), "no error shown");
});

await check("alice signs in and finds the model by name and kind", async () => {
  await signIn("alice", "ecila");
  await page.waitForSelector("table.repositories");
  expect((await text("#who")).includes("alice"), "not shown as signed in");
  await page.fill("input[name=q]", "churn");
  await page.selectOption("select[name=kind]", "model");
  await page.click("form.filters button[type=submit]");
  await page.waitForURL(/q=churn/);
  await page.waitForSelector("table.repositories");
  const names = await page.locator("table.repositories tbody tr td:first-child").allInnerTexts();
  expect(names.join() === "models/churn", `listed ${names.join(", ")}`);
  await at("/ui/");
  await page.waitForSelector("table.repositories");
  await shot("repositories");
});

await check("a repository lists its tags with the environment marked", async () => {
  await at("/ui/r/models/churn");
  await page.waitForSelector("table.tags");
  const tags = await page.locator("table.tags tbody tr").evaluateAll((rows) => rows.map((r) => r.dataset.tag));
  expect(["production", "v1", "v2", "v3"].every((t) => tags.includes(t)), `tags ${tags}`);
  const marked = await page.locator("table.tags tr[data-tag=production] .badge.env").count();
  expect(marked === 1, "production is not marked as an environment");
  expect(await page.locator("table.tags tr[data-tag=v2] .badge.env").count() === 0, "v2 marked");
  await shot("repository");
});

await check("a version shows layers, pull commands by digest, referrers, the scan and charted evaluations", async () => {
  await at("/ui/r/models/churn/-/v/v2");
  await h1("models/churn:v2");
  await page.waitForSelector("svg.chart");
  const layers = await text("#s-layers + .scroll, section[aria-labelledby=s-layers]");
  expect(layers.includes("model.pkl") && layers.includes("tokenizer.json"), "layers missing");
  const pull = await page.locator(".command code").allInnerTexts();
  expect(pull.some((c) => c === `docker pull ${new URL(base).host}/models/churn@${seeded.v2.digest}`), `pull ${pull}`);
  expect(pull.some((c) => c.startsWith("oras pull")) && pull.some((c) => c.startsWith("kit pull")), "oras/kit");
  const referrers = await text("section[aria-labelledby=s-referrers]");
  expect(referrers.includes("Evaluation") && referrers.includes("0.95"), "evaluation content missing");
  await page.waitForFunction(() => document.querySelector("section[aria-labelledby=s-pickle-scan]"));
  expect((await text("section[aria-labelledby=s-pickle-scan]")).includes("clean"), "scan verdict");
  const charted = await page.locator("figure.metric figcaption").allInnerTexts();
  expect(charted.includes("auc") && charted.includes("loss"), `charts ${charted}`);
  const points = await page.locator("figure.metric:first-child circle").count();
  expect(points === 3, `${points} versions charted`);
  await shot("version");
});

await check("an index shows its platforms, linked", async () => {
  await at("/ui/r/library/app/-/v/1.0");
  await page.waitForSelector("section[aria-labelledby=s-platforms]");
  const platforms = await page.locator("section[aria-labelledby=s-platforms] tbody a").allInnerTexts();
  expect(platforms.join() === "linux/amd64,linux/arm64/v8", `platforms ${platforms}`);
});

await check("the lineage graph draws the dataset, code and parent nodes, and they link", async () => {
  await at("/ui/r/models/churn/-/lineage/v2?direction=both&depth=3");
  await page.waitForSelector("svg.lineage");
  const dataset = page.locator(`svg.lineage a[data-node="${seeded.dataNov.digest}"]`);
  expect(await dataset.count() === 1, "dataset node not drawn");
  const parent = page.locator(`svg.lineage a[data-node="${seeded.v1.digest}"]`);
  expect(await parent.getAttribute("href") === `/ui/r/models/churn/-/v/${seeded.v1.digest}`, "parent link");
  const code = page.locator('svg.lineage a[data-node="commit:9c8d7e6f5a4b"]');
  expect(await code.getAttribute("href") === "https://git.example/churn/commit/9c8d7e6f5a4b", "commit link");
  expect(await page.locator(`svg.lineage [data-node="${seeded.v3.digest}"]`).count() === 1, "downstream v3");
  await shot("lineage");
  await dataset.click();
  await page.waitForURL(`**/ui/r/data/churn/-/v/${seeded.dataNov.digest}`);
  await h1("data/churn");
  await page.goBack();
  await page.waitForSelector("svg.lineage");
  await page.locator(`svg.lineage a[data-node="${seeded.v1.digest}"]`).focus();
  await page.keyboard.press("Enter");
  await page.waitForURL(`**/ui/r/models/churn/-/v/${seeded.v1.digest}`);
});

await check("the timeline shows the promotions and the rollback, and what production was at a time", async () => {
  await at("/ui/r/models/churn/-/timeline/production");
  await page.waitForSelector("ol.timeline");
  const ops = await page.locator("ol.timeline li").evaluateAll((l) => l.map((e) => e.dataset.operation));
  expect(ops.join() === "rollback,promote,promote", `operations ${ops}`);
  expect((await text("ol.timeline li.op-rollback")).includes("latency regression"), "rollback reason");
  const history = await (await alice.call("GET", "/api/v1/repositories/models/churn/tags/production/history?n=10")).json();
  const second = history.history.find((e) => e.reason === "better auc");
  await at(`/ui/r/models/churn/-/timeline/production?at=${encodeURIComponent(second.at)}`);
  await page.waitForSelector("section[aria-labelledby=s-point-in-time] .message");
  const then = await page.locator("section[aria-labelledby=s-point-in-time] .message a").getAttribute("href");
  expect(then.endsWith(seeded.v2.digest), `at ${second.at}: ${then}`);
});

await check("promoting from the UI is refused by the gate, with its unmet requirement", async () => {
  await at("/ui/r/models/churn/-/v/v3");
  await page.waitForSelector("form.promote");
  await page.fill("form.promote input[name=to]", "production");
  await page.fill("form.promote input[name=reason]", "try v3");
  await page.click("form.promote button[type=submit]");
  await page.waitForSelector("form.promote .message.error");
  const refusal = await text("form.promote .message.error");
  expect(refusal.includes("Refused by the release gates") && refusal.includes("auc >= 0.9 (measured 0.8)"), refusal);
  await shot("promote-refused");
  await at("/ui/r/models/churn/-/timeline/production");
  await page.waitForSelector("ol.timeline li.refused");
  expect((await text("ol.timeline li.refused")).includes("measured 0.8"), "refusal not in the timeline");
});

await check("promoting from the UI moves the tag; a live metric past its threshold rolls it back, marked automatic", async () => {
  await at("/ui/r/models/churn/-/v/v2");
  await page.waitForSelector("form.promote output");
  await page.fill("form.promote input[name=to]", "production");
  await page.dispatchEvent("form.promote input[name=to]", "change");
  await page.waitForFunction(() => document.querySelector("form.promote output").textContent.includes("now at"));
  await page.click("form.promote button[type=submit]");
  await page.waitForSelector("form.promote .message.ok");
  const r = await alice.call("HEAD", "/v2/models/churn/manifests/production", undefined,
    { accept: "application/vnd.oci.image.manifest.v1+json" });
  expect(r.headers.get("docker-content-digest") === seeded.v2.digest, "production did not move");
  await alice.evaluation("models/churn", seeded.v2, { auc: 0.5 });
  await at("/ui/r/models/churn/-/timeline/production");
  for (let i = 0; i < 50 && (await page.locator("ol.timeline li.automatic").count()) === 0; i++) {
    await page.waitForTimeout(200);
    await at("/ui/r/models/churn/-/timeline/production");
    await page.waitForSelector("ol.timeline");
  }
  expect(await page.locator("ol.timeline li.automatic .badge.automatic").count() === 1, "no automatic rollback shown");
  await shot("timeline");
});

await check("the diff page shows the release notes between two versions", async () => {
  await at("/ui/r/models/churn/-/diff?from=v1&to=v3");
  await page.waitForSelector("section[aria-labelledby=s-metrics] table");
  const metrics = await text("section[aria-labelledby=s-metrics] table");
  expect(metrics.includes("auc") && metrics.includes("-0.11"), metrics);
  const lineage = await text("section[aria-labelledby=s-lineage]");
  expect(lineage.includes("dataset") && lineage.includes("parent") && lineage.includes("3f2c1e0b9a8d → 1a2b3c4d5e6f"), lineage);
  await shot("diff");
});

const timings = {};
await check("a repository of 5,000 tags is drawn a page at a time and filtered whole; a 200-node graph drawn whole", async () => {
  let t0 = Date.now();
  await at("/ui/r/big/tags");
  await page.waitForFunction(() => document.querySelectorAll("table.tags tbody tr").length === 250);
  timings.tags = Date.now() - t0;
  expect((await text("main")).includes("Showing 250 of 5000 tags."), "no count of all tags");
  t0 = Date.now();
  await page.fill("main input[type=search]", "t4999");
  await page.waitForFunction(() => document.querySelectorAll("table.tags tbody tr").length === 1);
  timings.filter = Date.now() - t0;
  expect(await page.locator("table.tags tr[data-tag=t4999]").count() === 1, "the last tag is not found");
  await page.fill("main input[type=search]", "");
  await page.click("button.more");
  await page.waitForFunction(() => document.querySelectorAll("table.tags tbody tr").length === 500);
  t0 = Date.now();
  await at("/ui/r/big/model/-/lineage/v19?direction=upstream&depth=32");
  await page.waitForFunction(() => document.querySelectorAll("svg.lineage .node-link").length === 200);
  timings.lineage = Date.now() - t0;
});

await check("on a phone's width nothing but tables and the graph scroll sideways", async () => {
  await page.setViewportSize({ width: 390, height: 844 });
  try {
    for (const path of ["/ui/r/models/churn", "/ui/r/models/churn/-/v/v2",
      "/ui/r/models/churn/-/lineage/v2", "/ui/r/models/churn/-/timeline/production"]) {
      await at(path);
      await page.waitForLoadState("networkidle");
      await page.waitForFunction(() => document.querySelector("main h1") && !document.querySelector("main .slot"));
      expect(!page.url().includes("sign-in"), `${path}: sent to sign in`);
      const wide = await page.evaluate(() => document.documentElement.scrollWidth);
      expect(wide <= 390, `${path} is ${wide}px wide`);
    }
    await shot("phone-timeline");
  } finally {
    await page.setViewportSize({ width: 1280, height: 900 });
  }
});

await check("bob, who may not pull secret/weights, sees nothing of it", async () => {
  await page.click("#who button");
  await signIn("bob", "bob-secret");
  await page.waitForSelector("table.repositories");
  const names = await page.locator("table.repositories tbody tr td:first-child").allInnerTexts();
  expect(names.includes("models/churn") && !names.includes("secret/weights"), `bob sees ${names}`);
  for (const path of ["/ui/r/secret/weights", "/ui/r/secret/weights/-/v/v1", "/ui/r/secret/weights/-/timeline/v1"]) {
    await at(path);
    await h1("Not found");
    const shown = await text("main");
    expect(!shown.includes("weights.bin") && !shown.includes("sha256:"), `${path} shows ${shown}`);
  }
  await at("/ui/r/models/churn/-/v/v1");
  await h1("models/churn:v1");
  await page.waitForFunction(() => !document.querySelector("main .slot"));
  expect(await page.locator("form.promote").count() === 0, "bob is offered promote");
});

await check("no script errors on any page", async () => {
  expect(errors.length === 0, errors.join("; "));
});

await browser.close();
console.log(`# measured: 5,000-tag repository page ${timings.tags} ms (all 5,000 fetched, the first 250 drawn),`
  + ` filtering them ${timings.filter} ms, 200-node lineage page ${timings.lineage} ms`
  + " (from navigation to drawn, API calls included)");
console.log(`# screenshots in ${shots}`);
finish();
