// The rollout page: plain DOM, the /v1 API with the token the person gave,
// and the rollout's event stream read with fetch (EventSource cannot send
// an Authorization header). Text goes in with textContent, never as HTML.
'use strict';

const ended = ['completed', 'failed', 'compensated', 'compensation-failed', 'aborted', 'drift', 'refused', 'dry-run', 'approval-timed-out'];
const $ = (selector) => document.querySelector(selector);
const page = { token: sessionStorage.getItem('pgconvoy.token') || '', scopes: [], follow: null, status: null };

async function api(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: { authorization: `Bearer ${page.token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(`${response.status} ${data.error || ''}: ${data.message || response.statusText}`);
  return data;
}

function showError(error) {
  const p = $('#error');
  p.hidden = !error;
  p.textContent = error ? String(error.message || error) : '';
}

function row(cells, className) {
  const tr = document.createElement('tr');
  if (className) tr.className = className;
  for (const cell of cells) {
    const td = document.createElement('td');
    if (cell instanceof Node) td.append(cell);
    else td.textContent = cell === null || cell === undefined ? '' : String(cell);
    if (typeof cell === 'number') td.className = 'num';
    tr.append(td);
  }
  return tr;
}

const time = (ms) => (ms ? new Date(ms).toLocaleString() : '');
const seconds = (ms) => (ms === null || ms === undefined ? '' : `${(ms / 1000).toFixed(1)} s`);

async function whoami() {
  if (!page.token) {
    $('#who').textContent = 'no token';
    page.scopes = [];
    return;
  }
  const me = await api('GET', '/v1/whoami');
  page.scopes = me.scopes;
  $('#who').textContent = `${me.name} (${me.scopes.join(', ')})`;
}

async function showList() {
  $('#list-view').hidden = false;
  $('#rollout-view').hidden = true;
  const { rollouts } = await api('GET', '/v1/rollouts');
  const body = $('#rollouts tbody');
  body.replaceChildren(
    ...rollouts.map((r) => {
      const link = document.createElement('a');
      link.href = `#/rollouts/${encodeURIComponent(r.deployId)}`;
      link.textContent = r.deployId;
      return row([link, r.workflow, time(r.startedAt), time(r.closedAt)]);
    }),
  );
}

function render(status) {
  page.status = status;
  $('#deploy-id').textContent = status.deployId;
  const badge = $('#status');
  badge.textContent = status.status;
  badge.className = `status ${status.status}`;
  const counts = Object.entries(status.counts).filter(([, n]) => n > 0).map(([state, n]) => `${n} ${state}`).join(', ');
  $('#summary').textContent = `wave ${status.wave} of ${status.waves} after the canaries · ${counts || 'no databases'}${status.paused ? ' · paused' : ''}`;
  $('#waiting').textContent = status.waitingFor ? `waiting for ${status.waitingFor}` : '';
  const open = !ended.includes(status.status);
  for (const button of document.querySelectorAll('#actions button')) {
    const allowed = page.scopes.includes('admin') || page.scopes.includes(button.dataset.scope);
    button.hidden = !allowed || !open;
  }
  $('#databases tbody').replaceChildren(
    ...status.databases.map((d) =>
      row([d.db, d.wave === null ? '' : d.wave === 0 ? 'canary' : d.wave, d.state, d.phase, d.version ?? d.versionBefore, seconds(d.durationMs), d.risk, d.outcome], d.state),
    ),
  );
  $('#failures').replaceChildren(
    ...status.databases.filter((d) => d.failure).map((d) => {
      const li = document.createElement('li');
      li.textContent = `${d.db}: ${d.failure}`;
      return li;
    }),
  );
}

/** Reads the server-sent events of one rollout until it ends or the page leaves it (`signal`). */
async function follow(deployId, signal) {
  const response = await fetch(`/v1/rollouts/${encodeURIComponent(deployId)}/events`, { headers: { authorization: `Bearer ${page.token}` }, signal });
  if (!response.ok) {
    const data = await response.json().catch(() => ({}));
    throw new Error(`${response.status} ${data.error || ''}: ${data.message || response.statusText}`);
  }
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = block.split('\n').filter((line) => line.startsWith('data: ')).map((line) => line.slice(6)).join('\n');
      if (data && !signal.aborted) render(JSON.parse(data));
    }
  }
}

async function showRollout(deployId, signal) {
  $('#list-view').hidden = true;
  $('#rollout-view').hidden = false;
  $('#acted').textContent = '';
  $('#deploy-id').textContent = deployId;
  await follow(deployId, signal);
}

/** Shows what the address says; a newer navigation ends the stream of the one before, even while it is still starting. */
async function route() {
  if (page.follow) page.follow.abort();
  const control = new AbortController();
  page.follow = control;
  showError(null);
  try {
    await whoami();
    if (control.signal.aborted) return;
    const match = /^#\/rollouts\/(.+)$/.exec(location.hash);
    if (match) await showRollout(decodeURIComponent(match[1]), control.signal);
    else await showList();
  } catch (error) {
    if (error.name !== 'AbortError' && !control.signal.aborted) showError(error);
  }
}

$('#token').value = page.token;
$('#token-form').addEventListener('submit', (event) => {
  event.preventDefault();
  page.token = $('#token').value.trim();
  sessionStorage.setItem('pgconvoy.token', page.token);
  void route();
});
$('#actions').addEventListener('click', async (event) => {
  const button = event.target.closest('button[data-action]');
  if (!button || !page.status) return;
  const action = button.dataset.action;
  if (action === 'abort' && !confirm(`Abort rollout ${page.status.deployId}?`)) return;
  showError(null);
  try {
    await api('POST', `/v1/rollouts/${encodeURIComponent(page.status.deployId)}/${action}`, {});
    $('#acted').textContent = `${action}: accepted`;
  } catch (error) {
    showError(error);
  }
});
window.addEventListener('hashchange', () => void route());
void route();
