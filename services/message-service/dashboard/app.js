// The RMS dashboard: plain browser JavaScript, no framework, no build step, nothing loaded
// from outside this RMS. It calls the same admin API as rms-admin. The admin token lives in
// this tab's sessionStorage only and travels in the Authorization header, never in a URL.
// Every value from the API reaches the page through textContent, never as HTML.

const TOKEN_KEY = 'rms-admin-token';
const REFRESH_MS = 10_000;
/** A message still on its way is shown again this often, so a resend is seen to complete. */
const MESSAGE_REFRESH_MS = 1500;
const STATUSES = ['PENDING', 'SENDING', 'COMPLETED', 'CANCELLED', 'DEAD'];

const $ = (selector) => document.querySelector(selector);

/** A failed API call: the API's error code and message. */
class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

/** Calls the RMS API with the admin token; a 401 signs out. */
async function api(method, path, body) {
  const headers = { authorization: `Bearer ${token()}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(15_000),
    cache: 'no-store',
    referrerPolicy: 'no-referrer',
  });
  const json = await response.json().catch(() => null);
  if (!response.ok) {
    const error = new ApiError(response.status, json?.error?.code ?? 'HTTP_ERROR', json?.error?.message ?? `RMS answered ${response.status}`);
    if (response.status === 401) signOut(error.message);
    throw error;
  }
  return json;
}

// ---- small DOM helpers -------------------------------------------------------------------

/** An element with text (never HTML) and attributes. */
function el(tag, text, attributes = {}) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === 'class') node.className = value;
    else node.setAttribute(name, value);
  }
  return node;
}

function fillTable(table, columns, rows, rowAttributes = () => ({})) {
  const head = table.tHead;
  head.replaceChildren(el('tr'));
  for (const column of columns) head.rows[0].append(el('th', column.title));
  const body = table.tBodies[0];
  body.replaceChildren();
  if (rows.length === 0) {
    const empty = el('td', 'nothing here', { colspan: String(columns.length), class: 'muted' });
    body.append(el('tr'));
    body.rows[0].append(empty);
    return;
  }
  for (const row of rows) {
    const tr = el('tr', null, rowAttributes(row));
    for (const column of columns) {
      const value = column.value(row);
      const td = el('td');
      if (value instanceof Node) td.append(value);
      else td.textContent = value ?? '–';
      if (column.class) td.className = typeof column.class === 'function' ? column.class(row) : column.class;
      tr.append(td);
    }
    body.append(tr);
  }
}

function facts(list, pairs) {
  list.replaceChildren();
  for (const [name, value] of pairs) list.append(el('dt', name), el('dd', value ?? '–'));
}

const time = (iso) => (iso ? new Date(iso).toLocaleString(undefined, { hour12: false }) : '–');
/** A history time to the millisecond: the events of one message often share a second. */
const preciseTime = (iso) => {
  const date = new Date(iso);
  return `${date.toLocaleDateString()} ${date.toLocaleTimeString(undefined, { hour12: false })}.${String(date.getMilliseconds()).padStart(3, '0')}`;
};
/** Who did it: a check-back is RMS asking the producer app. */
const actorText = (event) => {
  const who = event.type === 'check-back' ? `rms asked ${event.app}` : event.app ? `${event.actor} ${event.app}` : event.actor;
  return event.group ? `${who} (group ${event.group})` : who;
};
const ago = (seconds) => (seconds < 120 ? `${seconds} s` : seconds < 7200 ? `${Math.round(seconds / 60)} min` : `${Math.round(seconds / 3600)} h`);
const statusBadge = (status, deadReason) => el('span', deadReason ? `${status} (${deadReason})` : status, { class: `badge ${status.toLowerCase()}` });
const messageLink = (message) => el('a', message.id, { href: `#/message/${message.id}`, class: 'mono' });

function notify(text, kind = 'info') {
  const notice = $('#notice');
  notice.textContent = text;
  notice.className = `notice ${kind}`;
  notice.hidden = false;
}

function clearNotice() {
  $('#notice').hidden = true;
}

// ---- views -------------------------------------------------------------------------------

const VIEWS = ['login', 'overview', 'messages', 'message'];

function show(view) {
  for (const name of VIEWS) $(`#${name}-view`).hidden = name !== view;
  if (view !== 'overview') $('#updated').textContent = '';
  $('#nav').hidden = view === 'login';
  $('#logout').hidden = view === 'login';
  for (const link of document.querySelectorAll('#nav a')) link.classList.toggle('active', link.dataset.view === view || (view === 'message' && link.dataset.view === 'messages'));
}

async function renderOverview() {
  const stats = await api('GET', '/v1/stats');
  $('#updated').textContent = `counts as of ${time(stats.at)}`;
  const totals = $('#totals');
  totals.replaceChildren();
  for (const status of STATUSES) {
    const card = el('a', null, { class: `card ${status.toLowerCase()}`, href: `#/messages?status=${status}` });
    card.append(el('span', stats.totals[status] ?? 0, { class: 'count' }), el('span', status, { class: 'label' }));
    totals.append(card);
  }
  const topics = new Map();
  for (const { topic, status, count } of stats.counts) {
    if (!topics.has(topic)) topics.set(topic, { topic });
    topics.get(topic)[status] = count;
  }
  fillTable(
    $('#by-topic'),
    [
      { title: 'Topic', value: (row) => el('a', row.topic, { href: `#/messages?topic=${encodeURIComponent(row.topic)}` }) },
      ...STATUSES.map((status) => ({ title: status, value: (row) => row[status] ?? 0, class: (row) => (status === 'DEAD' && row.DEAD ? 'num dead-count' : 'num') })),
    ],
    [...topics.values()],
  );
  fillTable(
    $('#oldest'),
    [
      { title: 'Waiting', value: (m) => ago(m.waitingSeconds) },
      { title: 'Message', value: messageLink },
      { title: 'Topic', value: (m) => m.topic },
      { title: 'Status', value: (m) => statusBadge(m.status, m.deadReason) },
      { title: 'Attempts', value: (m) => (m.status === 'PENDING' ? `${m.checkAttempts} checks` : `${m.deliveryAttempts} deliveries`), class: 'num' },
      { title: 'Last error', value: (m) => m.lastError, class: 'error-text' },
    ],
    stats.oldestWaiting,
  );
  const failover = stats.failover;
  facts($('#failover'), failover
    ? [
        ['Publishing to', failover.mode],
        ['Consecutive failures', String(failover.consecutiveFailures)],
        ['Locally degraded', String(failover.locallyDegraded)],
      ]
    : [['Transport', 'this RMS runs with a transport of its own']]);
  const degrade = stats.degrade;
  $('#degrade-form').hidden = !degrade;
  facts($('#degrade'), degrade
    ? [
        ['Effective', degrade.effective === 'degraded' ? 'DEGRADED: traffic goes to Redis' : 'normal: RabbitMQ'],
        ['Mode', degrade.mode],
        ['Automation says degraded', String(degrade.degraded)],
        ['Reason', degrade.reason],
        ['Changed by', degrade.changedBy],
        ['Changed at', time(degrade.changedAt)],
        ['ZooKeeper connected', String(degrade.connected)],
      ]
    : [['Degrade switch', 'none']]);
  $('#degrade').classList.toggle('degraded', degrade?.effective === 'degraded');
}

/** The search form's filters, as API query parameters. */
function searchParameters() {
  const form = new FormData($('#search-form'));
  const query = new URLSearchParams();
  for (const [name, value] of form) {
    if (typeof value !== 'string' || value.trim() === '') continue;
    query.set(name, name === 'from' || name === 'to' ? new Date(value).toISOString() : value.trim());
  }
  return query;
}

/** Puts the filters of the address (#/messages?topic=...) into the form. */
function loadSearch(query) {
  const form = $('#search-form');
  for (const element of form.elements) {
    if (!element.name) continue;
    const value = query.get(element.name) ?? '';
    if ((element.name === 'from' || element.name === 'to') && value) {
      const date = new Date(value);
      element.value = Number.isNaN(date.getTime()) ? '' : new Date(date.getTime() - date.getTimezoneOffset() * 60_000).toISOString().slice(0, 19);
    } else {
      element.value = value;
    }
  }
}

let nextCursor = null;

async function renderMessages(query, append = false) {
  const parameters = new URLSearchParams(query);
  parameters.set('limit', '50');
  if (append && nextCursor) parameters.set('cursor', nextCursor);
  const page = await api('GET', `/v1/messages?${parameters}`);
  nextCursor = page.nextCursor;
  const table = $('#results');
  const previous = append ? (table.dataset.rows ? JSON.parse(table.dataset.rows) : []) : [];
  const rows = [...previous, ...page.messages];
  table.dataset.rows = JSON.stringify(rows);
  fillTable(
    table,
    [
      { title: 'Created', value: (m) => time(m.createdAt) },
      { title: 'Message', value: messageLink },
      { title: 'messageId', value: (m) => m.messageId, class: 'mono' },
      { title: 'Producer', value: (m) => m.producer },
      { title: 'Topic', value: (m) => m.topic },
      { title: 'Status', value: (m) => statusBadge(m.status, m.deadReason) },
      { title: 'Deliveries', value: (m) => m.deliveryAttempts, class: 'num' },
      { title: 'Last error', value: (m) => m.lastError, class: 'error-text' },
    ],
    rows,
    (m) => ({ 'data-id': m.id, 'data-status': m.status }),
  );
  $('#more').hidden = !nextCursor;
}

const EVENT_TEXT = {
  prepared: 'prepared',
  confirmed: 'confirmed',
  cancelled: 'cancelled',
  'check-back': 'check-back',
  delivery: 'delivery round',
  'consumer-failure': 'consumer failed',
  heartbeat: 'heartbeat',
  acked: 'acked',
  dead: 'DEAD',
  resent: 'resent',
};

async function renderMessage(id) {
  const [message, history] = await Promise.all([api('GET', `/v1/messages/${encodeURIComponent(id)}`), api('GET', `/v1/messages/${encodeURIComponent(id)}/history`)]);
  const title = $('#message-title');
  title.replaceChildren(el('span', `Message ${message.id} `, { class: 'mono' }), statusBadge(message.status, message.deadReason));
  facts($('#message-facts'), [
    ['messageId (producer key)', message.messageId],
    ['Producer', message.producer],
    ['Topic', message.topic],
    ['Created', time(message.createdAt)],
    ['Confirmed', time(message.confirmedAt)],
    ['Completed', time(message.completedAt)],
    ['Cancelled', time(message.cancelledAt)],
    ['Check-backs', String(message.checkAttempts)],
    ['Delivery rounds', String(message.deliveryAttempts)],
    ['Next attempt', time(message.nextAttemptAt)],
    ['Last transport', message.lastTransport],
    ['Last error', message.lastError],
  ]);
  $('#payload').textContent = JSON.stringify(message.payload, null, 2);
  $('#headers').textContent = JSON.stringify(message.headers, null, 2);
  const resend = $('#resend');
  resend.hidden = !(message.status === 'DEAD' && message.deadReason === 'DELIVERY_EXHAUSTED');
  resend.dataset.id = message.id;
  fillTable(
    $('#history'),
    [
      { title: 'Time', value: (e) => preciseTime(e.at), class: 'nowrap' },
      { title: 'Event', value: (e) => el('span', EVENT_TEXT[e.type] ?? e.type, { class: `event ${e.type}` }) },
      { title: 'By', value: actorText },
      { title: 'Attempt', value: (e) => e.attempt, class: 'num' },
      { title: 'Transport', value: (e) => e.transport },
      { title: 'Outcome', value: (e) => e.outcome },
      { title: 'Took', value: (e) => (e.durationMs === null ? null : `${e.durationMs} ms`), class: 'num nowrap' },
      { title: 'Reason', value: (e) => e.reason, class: 'error-text' },
      { title: 'Next due', value: (e) => (e.nextAttemptAt ? preciseTime(e.nextAttemptAt) : null), class: 'nowrap' },
    ],
    history.events,
    (e) => ({ 'data-type': e.type }),
  );
  return message;
}

// ---- routing -----------------------------------------------------------------------------

let refreshTimer;

async function route() {
  clearTimeout(refreshTimer);
  if (!token()) {
    show('login');
    return;
  }
  const hash = location.hash.replace(/^#/, '') || '/overview';
  const [path, search = ''] = hash.split('?');
  try {
    if (path === '/overview') {
      show('overview');
      await renderOverview();
      refreshTimer = setTimeout(route, REFRESH_MS);
    } else if (path === '/messages') {
      show('messages');
      const query = new URLSearchParams(search);
      loadSearch(query);
      $('#bulk-confirm').hidden = true;
      await renderMessages(query);
    } else if (path.startsWith('/message/')) {
      show('message');
      const message = await renderMessage(decodeURIComponent(path.slice('/message/'.length)));
      if (message.status === 'PENDING' || message.status === 'SENDING') refreshTimer = setTimeout(route, MESSAGE_REFRESH_MS);
    } else {
      location.hash = '#/overview';
    }
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return;
    notify(error instanceof ApiError ? `${error.code}: ${error.message}` : `RMS could not be reached: ${error.message}`, 'error');
  }
}

function signOut(reason) {
  sessionStorage.removeItem(TOKEN_KEY);
  show('login');
  if (reason) notify(`Signed out: ${reason}`, 'error');
}

// ---- actions -----------------------------------------------------------------------------

async function act(action) {
  clearNotice();
  try {
    await action();
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 401)) notify(error instanceof ApiError ? `${error.code}: ${error.message}` : String(error), 'error');
  }
}

function wire() {
  $('#login-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const input = $('#token');
    sessionStorage.setItem(TOKEN_KEY, input.value.trim());
    input.value = '';
    clearNotice();
    act(async () => {
      await api('GET', '/v1/stats');
      if (location.hash === '' || location.hash === '#/overview') await route();
      else location.hash = '#/overview';
    });
  });
  $('#logout').addEventListener('click', () => signOut());

  $('#search-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const query = searchParameters().toString();
    const target = `#/messages${query ? `?${query}` : ''}`;
    if (location.hash === target) route();
    else location.hash = target;
  });
  $('#more').addEventListener('click', () => act(() => renderMessages(searchParameters(), true)));

  $('#bulk-resend').addEventListener('click', () =>
    act(async () => {
      const filter = Object.fromEntries([...searchParameters()].filter(([name]) => name !== 'status'));
      const dry = await api('POST', '/v1/resends', { filter, dryRun: true });
      $('#bulk-text').textContent = `${dry.matched} DEAD message(s) match; ${dry.resendable} can be resent (the others were never confirmed).`;
      $('#bulk-go').hidden = dry.resendable === 0;
      $('#bulk-confirm').hidden = false;
      $('#bulk-go').dataset.filter = JSON.stringify(filter);
    }),
  );
  $('#bulk-cancel').addEventListener('click', () => ($('#bulk-confirm').hidden = true));
  $('#bulk-go').addEventListener('click', () =>
    act(async () => {
      const result = await api('POST', '/v1/resends', { filter: JSON.parse($('#bulk-go').dataset.filter), dryRun: false });
      $('#bulk-confirm').hidden = true;
      notify(`Resent ${result.resent.length} message(s).`);
      await renderMessages(searchParameters());
    }),
  );

  $('#resend').addEventListener('click', () =>
    act(async () => {
      const id = $('#resend').dataset.id;
      await api('POST', `/v1/messages/${encodeURIComponent(id)}/resend`);
      notify('Resent: a new delivery round has started.');
      await route();
    }),
  );

  $('#degrade-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const mode = event.submitter?.value;
    const reason = $('#degrade-reason').value.trim();
    act(async () => {
      const state = await api('PUT', '/v1/degrade', { mode, reason });
      $('#degrade-reason').value = '';
      notify(`Degrade switch set to ${state.mode}.`);
      await renderOverview();
    });
  });

  window.addEventListener('hashchange', route);
}

wire();
route();
