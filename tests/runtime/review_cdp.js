// review_cdp.js - drives headless Chromium through the DevTools protocol over
// --remote-debugging-pipe (no packages, no WebSocket): logs in to `vigil review`, opens the
// queue, opens the hostile case, writes a note and labels it fraud with the keyboard, and
// checks that hostile values are text in the DOM. Prints one JSON line of findings; exits
// non-zero with a message on the first failed expectation.
//
// usage: node review_cdp.js CHROMIUM BASE_URL USER PASSWORD CASE_ID NOTE SHOT_DIR
'use strict';
const { spawn } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const [chromium, base, user, password, caseId, note, shotDir] = process.argv.slice(2);
const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'vigil-chromium-'));
const proc = spawn(chromium, [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--disable-dev-shm-usage', '--remote-debugging-pipe', `--user-data-dir=${profile}`,
  '--window-size=1400,1000', 'about:blank',
], { stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'] });
let stderr = '';
proc.stderr.on('data', (d) => { stderr += d; });

const out = proc.stdio[3], inp = proc.stdio[4];
let nextId = 1, buf = Buffer.alloc(0);
const waiting = new Map(), events = [];
inp.on('data', (chunk) => {
  buf = Buffer.concat([buf, chunk]);
  let z;
  while ((z = buf.indexOf(0)) >= 0) {
    const msg = JSON.parse(buf.slice(0, z).toString('utf8'));
    buf = buf.slice(z + 1);
    if (msg.id && waiting.has(msg.id)) {
      const { resolve, reject, method } = waiting.get(msg.id);
      waiting.delete(msg.id);
      if (msg.error) reject(new Error(`${method}: ${msg.error.message}`));
      else resolve(msg.result);
    } else if (msg.method) {
      events.push(msg);
    }
  }
});

function send(method, params, sessionId) {
  const id = nextId++;
  const msg = { id, method, params: params || {} };
  if (sessionId) msg.sessionId = sessionId;
  return new Promise((resolve, reject) => {
    waiting.set(id, { resolve, reject, method });
    out.write(JSON.stringify(msg) + '\0');
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let session;
const page = (method, params) => send(method, params, session);

async function evaluate(expr) {
  const r = await page('Runtime.evaluate', { expression: expr, returnByValue: true, awaitPromise: true });
  if (r.exceptionDetails) throw new Error(`evaluate ${expr}: ${r.exceptionDetails.text}`);
  return r.result.value;
}

async function waitFor(expr, what, ms = 10000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    try { if (await evaluate(expr)) return; } catch (e) { /* page navigating */ }
    await sleep(50);
  }
  let seen = '';
  try { seen = await evaluate(`location.hash + ' | ' + document.body.innerText.slice(0, 300)`); } catch (e) { /* */ }
  throw new Error(`timed out waiting for ${what}; the page shows: ${seen}`);
}

async function key(k, code, vk, text) {
  await page('Input.dispatchKeyEvent', { type: 'keyDown', key: k, code, windowsVirtualKeyCode: vk,
                                          text: text === undefined ? k : text });
  await page('Input.dispatchKeyEvent', { type: 'keyUp', key: k, code, windowsVirtualKeyCode: vk });
}

async function shot(name) {
  const r = await page('Page.captureScreenshot', { format: 'png' });
  const file = path.join(shotDir, name);
  fs.writeFileSync(file, Buffer.from(r.data, 'base64'));
  return file;
}

async function main() {
  const found = {};
  const { targetInfos } = await send('Target.getTargets');
  const target = targetInfos.find((t) => t.type === 'page');
  ({ sessionId: session } = await send('Target.attachToTarget', { targetId: target.targetId, flatten: true }));
  await page('Page.enable');
  await page('Runtime.enable');
  await page('Emulation.setDeviceMetricsOverride', { width: 1400, height: 1000, deviceScaleFactor: 1, mobile: false });

  // log in with the keyboard
  await page('Page.navigate', { url: base + '/' });
  await waitFor(`!!document.getElementById('login-form')`, 'the login form');
  await evaluate(`document.getElementById('user').focus()`);
  await page('Input.insertText', { text: user });
  await evaluate(`document.getElementById('password').focus()`);
  await page('Input.insertText', { text: password });
  await key('Enter', 'Enter', 13, '\r');

  // the queue
  await waitFor(`document.querySelectorAll('#queue tr.row').length > 0`, 'the queue');
  found.user = await evaluate(`document.getElementById('whoami').textContent`);
  found.rows = await evaluate(`document.querySelectorAll('#queue tr.row').length`);
  found.range = await evaluate(`document.getElementById('range').textContent`);
  found.first = await evaluate(`document.querySelector('#queue tr.row').dataset.id`);
  found.queueMerchant = await evaluate(
    `document.querySelector('#queue tr[data-id="${caseId}"] td:nth-child(6)').textContent`);
  found.queueShot = await shot('review-queue.png');

  // open the hostile case from the queue
  await evaluate(`document.querySelector('#queue tr[data-id="${caseId}"]').click()`);
  await waitFor(`(document.getElementById('case-status')||{}).textContent === 'claimed'`, 'the claimed case');
  found.caseId = await evaluate(`document.getElementById('case-id').textContent`);
  found.caseMerchant = await evaluate(
    `[...document.querySelectorAll('#txn td')].find((td) => td.previousSibling && td.previousSibling.textContent === 'merchant_id').textContent`);
  found.reasonBars = await evaluate(`document.querySelectorAll('#reasons .bar-row').length`);
  found.features = await evaluate(`document.querySelectorAll('#features tbody tr').length`);
  found.history = await evaluate(`document.querySelectorAll('#history tbody tr').length`);
  found.scripts = await evaluate(`document.querySelectorAll('script').length`);
  found.caseShot = await shot('review-case.png');

  // n = note, Escape leaves the note, f = fraud
  await key('n', 'KeyN', 78);
  await waitFor(`document.activeElement && document.activeElement.id === 'note'`, 'the note to take focus');
  await page('Input.insertText', { text: note });
  await key('Escape', 'Escape', 27, '');
  await key('f', 'KeyF', 70);
  await waitFor(`location.hash !== '#/case/${encodeURIComponent(caseId)}'`, 'the next case after labelling');
  found.after = await evaluate(`location.hash`);

  // the closed case shows the note as text, and nothing hostile ran
  await evaluate(`location.hash = '#/case/${encodeURIComponent(caseId)}'`);
  await waitFor(`(document.getElementById('case-status')||{}).textContent === 'closed'`, 'the closed case');
  await waitFor(`!!document.getElementById('case-note')`, 'the note');
  found.verdict = await evaluate(`document.getElementById('case-verdict').textContent.trim()`);
  found.note = await evaluate(`document.getElementById('case-note').textContent`);
  found.imgs = await evaluate(`document.querySelectorAll('img').length`);
  found.auditNote = await evaluate(
    `[...document.querySelectorAll('#audit td')].some((td) => td.textContent === ${JSON.stringify(note)})`);
  found.closedShot = await shot('review-case-closed.png');
  found.dialogs = events.filter((e) => e.method === 'Page.javascriptDialogOpening').length;
  found.exceptions = events.filter((e) => e.method === 'Runtime.exceptionThrown')
    .map((e) => e.params.exceptionDetails.text);
  console.log(JSON.stringify(found));
}

const timer = setTimeout(() => { console.error('review_cdp: overall timeout'); finish(1); }, 45000);
function finish(code) {
  clearTimeout(timer);
  const done = () => {
    try { fs.rmSync(profile, { recursive: true, force: true }); } catch (e) { /* best effort */ }
    process.exit(code);
  };
  if (proc.exitCode !== null || proc.signalCode !== null) return done();
  proc.once('exit', done);
  try { proc.kill('SIGKILL'); } catch (e) { done(); }
}
main().then(() => finish(0), (e) => {
  console.error('review_cdp: ' + e.message);
  if (stderr) console.error(stderr.split('\n').slice(-5).join('\n'));
  finish(1);
});
