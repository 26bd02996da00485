// rapport console: plain JavaScript, no library. Every call goes through the public API
// with the signed-in token, which lives in this module's memory only (never in storage or
// cookies). Pages are chosen by the URL fragment (#/alerts, #/patient, ...).

const session = { token: null, scopes: [], patient: null, user: null, alert: null, instrument: null };
const $ = (selector) => document.querySelector(selector);

/** An element with attributes and children (strings become text, never HTML). */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === false || v === null || v === undefined) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

class ApiError extends Error {
  constructor(status, problem) {
    super(problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

/** Shows an API problem in words: its title, detail and each field pointer. */
function showError(err) {
  const box = $('#error');
  box.replaceChildren();
  if (!err) { box.hidden = true; return; }
  const p = err.problem || {};
  box.append(h('strong', {}, p.title || err.message));
  if (p.detail && p.detail !== p.title) box.append(h('p', {}, p.detail));
  const fields = p.errors || [];
  if (fields.length) {
    box.append(h('ul', {}, fields.map((f) => h('li', {}, `${f.pointer || '(body)'}: ${f.detail}`))));
  }
  box.hidden = false;
  box.focus();
}

async function api(path, { method = 'GET', body, raw = false } = {}) {
  const headers = { Authorization: `Bearer ${session.token}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (!res.ok) {
    let problem = {};
    try { problem = await res.json(); } catch { problem = { title: `HTTP ${res.status}` }; }
    if (problem.error) problem = { title: problem.error, detail: problem.error_description };
    throw new ApiError(res.status, problem);
  }
  if (raw) return res;
  return res.status === 204 ? null : res.json();
}

const has = (scope) => session.scopes.includes(scope);
const table = (headers, rows) =>
  h('div', { class: 'table-wrap' }, h('table', {}, h('thead', {}, h('tr', {}, headers.map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, rows)));
const when = (iso) => (iso ? iso.replace('T', ' ').replace(/\.\d+/, '').replace('Z', ' UTC') : '');
const num = (v) => (v === null || v === undefined ? '–' : Number.isInteger(v) ? String(v) : Number(v).toFixed(2));

function field(id, label, attrs = {}) {
  return h('div', {}, h('label', { for: id }, label), h('input', { id, name: id, ...attrs }));
}

// --- pages -----------------------------------------------------------------------------

// What an alert says, in words: which flag, item and answer; the drop; the cut-off.
function alertDetail(a) {
  const d = a.detail || {};
  switch (a.kind) {
    case 'item_flag':
      return `Safety item: item ${d.item} answered ${num(d.answer)} (${d.flag})`;
    case 'rupture':
      return `Rupture: total fell from ${num(d.from)} to ${num(d.to)} (drop ${num(d.drop)}, rule ${d.rule})`;
    case 'below_cutoff': {
      const side = d.comparator === 'lt' || d.comparator === 'le' ? 'below' : 'above';
      return `Total ${num(d.total)}, ${side} the cut-off of ${num(d.cutoff)}`;
    }
    case 'deterioration':
      return `Reliable deterioration: ${num(d.baseline)} → ${num(d.latest)} (change ${num(d.change)}, by ${d.rule})`;
    case 'not_on_track':
      return `Not on track: ${num(d.total)} at point ${d.t} of the course, beyond the bound ${num(d.bound)} (expected ${num(d.expected)})`;
    default:
      return a.kind;
  }
}

// Every open alert (the API pages, newest first), safety items first.
async function openAlerts() {
  const all = [];
  let cursor = null;
  do {
    const page = await api(`/v1/alerts?status=open&limit=500${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    all.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor);
  return [...all.filter((a) => a.kind === 'item_flag'), ...all.filter((a) => a.kind !== 'item_flag')];
}

async function alertsPage(page) {
  page.append(h('h2', {}, 'Open alerts'));
  const alerts = await openAlerts();
  if (!alerts.length) {
    page.append(h('p', { class: 'status' }, 'No open alerts.'));
    return;
  }
  const flagged = alerts.filter((a) => a.kind === 'item_flag').length;
  page.append(h('p', { class: 'status', id: 'alert-count' },
    `${alerts.length} open alert${alerts.length === 1 ? '' : 's'}` + (flagged ? `, ${flagged} on a safety item (listed first)` : '') + '.'));
  const rows = alerts.map((a) => {
    const note = h('textarea', { id: `note-${a.id}`, rows: 2, maxlength: 1000 });
    const form = h('form', { class: 'inline', 'data-alert': a.id, onsubmit: async (e) => {
      e.preventDefault();
      await run(async () => {
        await api(`/v1/alerts/${a.id}/acknowledge`, { method: 'POST', body: note.value ? { note: note.value } : {} });
        route();
      });
    } },
    h('div', {}, h('label', { for: `note-${a.id}` }, 'Note'), note),
    h('button', { type: 'submit', disabled: !has('responses:read') }, 'Acknowledge'));
    return h('tr', { 'data-alert': a.id, class: a.kind === 'item_flag' ? 'safety' : '' },
      h('td', {}, a.kind),
      h('td', { class: 'detail' }, alertDetail(a)),
      h('td', {}, h('a', { href: `#/patient/${encodeURIComponent(a.patient)}/${encodeURIComponent(a.instrument)}` }, a.patient)),
      h('td', {}, a.instrument),
      h('td', {}, when(a.created_at)),
      h('td', {}, form));
  });
  page.append(table(['Kind', 'What', 'Patient', 'Instrument', 'Raised', 'Acknowledge'], rows));
}

// The organisation's patients for an instrument ("my patients" with a clinician), paged.
async function patientsPage(page, instrument = 'wai-sr', clinician = '', cursor = '') {
  page.append(h('h2', {}, 'Patients'));
  page.append(h('form', { class: 'inline', onsubmit: (e) => {
    e.preventDefault();
    location.hash = `#/patients/${encodeURIComponent($('#patients-instrument').value)}/${encodeURIComponent($('#patients-clinician').value)}`;
  } },
  field('patients-instrument', 'Instrument', { value: instrument, required: true }),
  field('patients-clinician', 'Clinician (my patients)', { value: clinician }),
  h('button', { type: 'submit' }, 'List')));
  const q = [`instrument=${encodeURIComponent(instrument)}`];
  if (clinician) q.push(`clinician=${encodeURIComponent(clinician)}`);
  if (cursor) q.push(`cursor=${encodeURIComponent(cursor)}`);
  const list = await api(`/v1/patients?${q.join('&')}`);
  if (!list.items.length) {
    page.append(h('p', { class: 'status' }, 'No patients with a response to this instrument.'));
    return;
  }
  page.append(table(['Patient', 'Latest', 'Total', 'Band', 'Open alerts'], list.items.map((p) => h('tr', { class: 'patient' },
    h('td', {}, h('a', { href: `#/patient/${encodeURIComponent(p.patient)}/${encodeURIComponent(instrument)}` }, p.patient)),
    h('td', {}, when(p.last_administered_at)), h('td', {}, num(p.latest_total)), h('td', {}, p.latest_band ?? '–'),
    h('td', {}, p.open_alerts)))));
  if (list.next_cursor) {
    page.append(h('p', {}, h('a', { id: 'patients-next',
      href: `#/patients/${encodeURIComponent(instrument)}/${encodeURIComponent(clinician)}/${encodeURIComponent(list.next_cursor)}` }, 'Next page')));
  }
}

async function patientPage(page, patient = '', instrument = 'wai-sr') {
  page.append(h('h2', {}, 'Patient'));
  const form = h('form', { class: 'inline', onsubmit: (e) => {
    e.preventDefault();
    location.hash = `#/patient/${encodeURIComponent($('#patient-ref').value)}/${encodeURIComponent($('#patient-instrument').value)}`;
  } },
  field('patient-ref', 'Patient reference', { value: patient, required: true }),
  field('patient-instrument', 'Instrument', { value: instrument, required: true }),
  h('button', { type: 'submit' }, 'Show'));
  page.append(form);
  if (!patient) {
    page.append(h('p', {}, h('a', { href: `#/patients/${encodeURIComponent(instrument)}/` }, 'Choose from the patient list')));
    return;
  }
  const q = `instrument=${encodeURIComponent(instrument)}`;
  const base = `/v1/patients/${encodeURIComponent(patient)}`;
  const [trend, svg] = await Promise.all([api(`${base}/trends?${q}`), api(`${base}/trends.svg?${q}`, { raw: true })]);
  const text = await svg.text();
  const title = new DOMParser().parseFromString(text, 'image/svg+xml').querySelector('title')?.textContent || 'Trend chart';
  // The chart is drawn as an image (no script in an <img>), from a blob of the API's SVG.
  const url = URL.createObjectURL(new Blob([text], { type: 'image/svg+xml' }));
  page.append(h('figure', {}, h('img', { id: 'trend-chart', class: 'chart', src: url, alt: title, width: 720, height: 360 }),
    h('figcaption', {}, title)));
  const s = trend.summary;
  page.append(h('h3', {}, 'Summary'), h('dl', { class: 'facts' },
    h('dt', {}, 'Points'), h('dd', {}, s.n),
    h('dt', {}, 'Baseline → latest'), h('dd', {}, `${num(s.baseline)} → ${num(s.latest)}`),
    h('dt', {}, 'Reliable change'), h('dd', {}, `${s.reliable_change || '–'} (RCI ${num(s.rci)})`),
    h('dt', {}, 'Below cut-off'), h('dd', {}, s.below_cutoff),
    h('dt', {}, 'On track'), h('dd', { id: 'on-track' }, s.on_track === null || s.on_track === undefined ? '– (no expectation)' : s.on_track ? 'yes' : 'no')));
  page.append(h('h3', {}, 'Ruptures'));
  page.append(s.ruptures.length
    ? h('ul', { id: 'ruptures' }, s.ruptures.map((r) => h('li', { class: r.repaired ? 'repaired' : 'rupture' },
      `${num(r.from)} → ${num(r.to)} (drop ${num(r.drop)}, ${r.rule})${r.repaired ? ', repaired' : ', not repaired'}`)))
    : h('p', { class: 'status' }, 'None.'));
  if (trend.unscored.length) {
    page.append(h('h3', {}, 'Not scored'), table(['Administered', 'Why', 'Flags'],
      trend.unscored.map((u) => h('tr', { class: 'unscored' }, h('td', {}, when(u.administered_at)), h('td', {}, u.reason),
        h('td', {}, u.flags.join(', ') || '–')))));
  }
  page.append(h('h3', {}, 'Points'), table(['Administered', 'Session', 'Clinician', 'Total', 'Expected (bound)', 'Flags'],
    trend.points.map((p) => h('tr', { class: p.expected && !p.expected.on_track ? 'point off-track' : 'point' },
      h('td', {}, when(p.administered_at)), h('td', {}, p.session ?? '–'), h('td', {}, p.clinician ?? '–'), h('td', {}, num(p.total)),
      h('td', {}, p.expected ? `${num(p.expected.expected)} (${num(p.expected.bound)})${p.expected.on_track ? '' : ', not on track'}` : '–'),
      h('td', {}, p.flags.join(', '))))));
}

async function cliniciansPage(page, instrument = 'wai-sr') {
  page.append(h('h2', {}, 'Clinicians'));
  page.append(h('form', { class: 'inline', onsubmit: (e) => {
    e.preventDefault();
    location.hash = `#/clinicians/${encodeURIComponent($('#clinicians-instrument').value)}`;
  } }, field('clinicians-instrument', 'Instrument', { value: instrument, required: true }), h('button', { type: 'submit' }, 'Show')));
  const list = await api(`/v1/clinicians?instrument=${encodeURIComponent(instrument)}&min_patients=1`);
  page.append(table(['Clinician', 'Patients', 'Responses', 'Mean', 'Below cut-off', 'Ruptures', 'Repaired'],
    list.items.map((c) => h('tr', {}, h('td', {}, c.clinician), h('td', {}, c.patients), h('td', {}, c.responses),
      h('td', {}, num(c.mean)), h('td', {}, `${Math.round(c.share_below_cutoff * 100)}%`), h('td', {}, c.ruptures),
      h('td', {}, c.share_repaired === null ? '–' : `${Math.round(c.share_repaired * 100)}%`)))));
}

async function allianceOutcomePage(page, alliance = 'wai-sr', outcome = 'phq-9', at = '3') {
  page.append(h('h2', {}, 'Alliance–outcome'));
  page.append(h('form', { class: 'inline', onsubmit: (e) => {
    e.preventDefault();
    location.hash = `#/alliance-outcome/${['ao-alliance', 'ao-outcome', 'ao-session'].map((id) => encodeURIComponent($(`#${id}`).value)).join('/')}`;
  } },
  field('ao-alliance', 'Alliance instrument', { value: alliance, required: true }),
  field('ao-outcome', 'Outcome instrument', { value: outcome, required: true }),
  field('ao-session', 'Alliance at session', { value: at, inputmode: 'numeric', required: true }),
  h('button', { type: 'submit' }, 'Analyse')));
  const result = await api(`/v1/alliance-outcome?alliance=${encodeURIComponent(alliance)}&outcome=${encodeURIComponent(outcome)}&at_session=${encodeURIComponent(at)}`);
  const facts = Object.entries(result).filter(([, v]) => typeof v !== 'object' || v === null);
  page.append(h('dl', { class: 'facts' }, facts.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v === null ? '–' : typeof v === 'number' ? num(v) : v)])));
  page.append(h('details', {}, h('summary', {}, 'Every figure'), h('pre', {}, JSON.stringify(result, null, 2))));
}

async function instrumentsPage(page, key, version) {
  page.append(h('h2', {}, 'Instruments'));
  if (key) {
    const v = await api(`/v1/instruments/${encodeURIComponent(key)}/versions/${encodeURIComponent(version)}`);
    page.append(h('h3', {}, `${v.title} (${v.key}, version ${v.version}, ${v.status})`));
    if (v.status === 'draft' && has('instruments:write')) {
      page.append(h('button', { type: 'button', onclick: () => run(async () => {
        await api(`/v1/instruments/${encodeURIComponent(key)}/versions/${version}/publish`, { method: 'POST', body: {} });
        route();
      }) }, 'Publish this draft'));
    }
    if (v.status === 'published' && has('instruments:write') && v.owner !== 'builtin') {
      page.append(h('button', { type: 'button', class: 'secondary', onclick: () => run(async () => {
        await api(`/v1/instruments/${encodeURIComponent(key)}/versions/${version}/retire`, { method: 'POST', body: {} });
        route();
      }) }, 'Retire this version'));
    }
    page.append(h('pre', {}, JSON.stringify(v, null, 2)));
    return;
  }
  const list = await api('/v1/instruments');
  page.append(table(['Key', 'Title', 'Version', 'Status', 'Owner'], list.items.map((v) => h('tr', {},
    h('td', {}, v.key), h('td', {}, v.title),
    h('td', {}, h('a', { href: `#/instruments/${encodeURIComponent(v.key)}/${v.version}` }, `version ${v.version}`)),
    h('td', {}, v.status), h('td', {}, v.owner)))));
}

async function webhooksPage(page) {
  page.append(h('h2', {}, 'Webhooks'));
  const list = await api('/v1/webhooks');
  page.append(table(['URL', 'Events', 'Status', 'Created'], list.items.map((w) => h('tr', {}, h('td', {}, w.url),
    h('td', {}, w.events.join(', ')), h('td', {}, w.status), h('td', {}, when(w.created_at))))));
}

async function auditPage(page) {
  page.append(h('h2', {}, 'Audit log'));
  const list = await api('/v1/audit-events?limit=100');
  page.append(table(['When', 'Actor', 'Action', 'Resource'], list.items.map((e) => h('tr', {}, h('td', {}, when(e.occurred_at)),
    h('td', {}, e.actor), h('td', {}, e.action), h('td', {}, `${e.resource_type}${e.resource_id ? ` ${e.resource_id}` : ''}`)))));
}

// Opened from the EHR (SMART App Launch): the launched patient only, with the user's name,
// the patient's open alerts (acknowledge), chart and points.
async function launchedPage(page) {
  const patient = session.patient;
  page.append(h('h2', {}, `Patient ${patient}`));
  page.append(h('p', { id: 'launch-user', class: 'status' }, `Opened from the EHR by ${session.user}.`));
  const [alerts, responses] = await Promise.all([
    api('/v1/alerts?status=open&limit=500'),
    api('/v1/responses?limit=500'),
  ]);
  if (!alerts.items.length && !responses.items.length) {
    page.append(h('p', { id: 'launch-nothing', class: 'status' }, 'rapport holds nothing for this patient yet.'));
    return;
  }
  page.append(h('h3', {}, 'Open alerts'));
  if (!alerts.items.length) {
    page.append(h('p', { class: 'status' }, 'No open alerts.'));
  } else {
    const ordered = [...alerts.items.filter((a) => a.kind === 'item_flag'), ...alerts.items.filter((a) => a.kind !== 'item_flag')];
    page.append(table(['Kind', 'What', 'Instrument', 'Raised', 'Acknowledge'], ordered.map((a) => {
      const note = h('textarea', { id: `note-${a.id}`, rows: 2, maxlength: 1000 });
      const form = h('form', { class: 'inline', 'data-alert': a.id, onsubmit: async (e) => {
        e.preventDefault();
        await run(async () => {
          await api(`/v1/alerts/${a.id}/acknowledge`, { method: 'POST', body: note.value ? { note: note.value } : {} });
          session.alert = null;
          route();
        });
      } },
      h('div', {}, h('label', { for: `note-${a.id}` }, 'Note'), note),
      h('button', { type: 'submit' }, 'Acknowledge'));
      const focused = a.id === session.alert;
      return h('tr', { 'data-alert': a.id, id: focused ? 'focused-alert' : null,
        class: [a.kind === 'item_flag' ? 'safety' : '', focused ? 'focused' : ''].join(' ').trim() || null },
      h('td', {}, a.kind), h('td', { class: 'detail' }, alertDetail(a)), h('td', {}, a.instrument),
      h('td', {}, when(a.created_at)), h('td', {}, form));
    })));
  }
  const instruments = [...new Set(responses.items.map((r) => r.instrument))];
  const focused = alerts.items.find((a) => a.id === session.alert);
  const instrument = focused?.instrument || session.instrument || responses.items[responses.items.length - 1]?.instrument;
  if (instrument) {
    const chart = h('section', { id: 'launch-chart' });
    page.append(chart);
    await patientPage(chart, patient, instrument);
    if (instruments.length > 1) {
      page.append(h('p', {}, `Also answered: ${instruments.filter((i) => i !== instrument).join(', ')}.`));
    }
  }
  document.getElementById('focused-alert')?.scrollIntoView({ block: 'nearest' });
}

const pages = {
  alerts: alertsPage,
  patients: patientsPage,
  patient: patientPage,
  clinicians: cliniciansPage,
  'alliance-outcome': allianceOutcomePage,
  instruments: instrumentsPage,
  webhooks: webhooksPage,
  audit: auditPage,
  launched: launchedPage,
};

async function run(action) {
  showError(null);
  try { await action(); } catch (err) { showError(err); }
}

async function route() {
  if (!session.token) return;
  const [name = 'alerts', ...args] = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  // A launched session has its patient's page (and the chart of another instrument) only.
  const render = session.patient ? (name === 'patient' ? pages.patient : launchedPage) : pages[name] || alertsPage;
  for (const a of document.querySelectorAll('#nav a')) {
    a.toggleAttribute('aria-current', a.getAttribute('href') === `#/${name}`);
    if (a.getAttribute('href') === `#/${name}`) a.setAttribute('aria-current', 'page');
  }
  const page = $('#page');
  page.replaceChildren();
  page.hidden = false;
  await run(() => render(page, ...args));
}

async function signIn(e) {
  e.preventDefault();
  showError(null);
  const form = new URLSearchParams({ grant_type: 'client_credentials', client_id: $('#client-id').value, client_secret: $('#client-secret').value });
  const res = await fetch('/v1/oauth/token', { method: 'POST', body: form });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) {
    showError(new ApiError(res.status, { title: 'Sign-in failed', detail: body.error_description || body.error }));
    return;
  }
  session.token = body.access_token;
  session.scopes = (body.scope || '').split(' ');
  $('#client-secret').value = '';
  $('#sign-in').hidden = true;
  $('#nav').hidden = false;
  for (const a of document.querySelectorAll('#nav [data-admin]')) a.hidden = !has('org:admin');
  if (!location.hash) location.hash = '#/alerts';
  else route();
  $('#main').focus();
}

function signOut() {
  session.token = null;
  session.scopes = [];
  $('#page').replaceChildren();
  $('#page').hidden = true;
  $('#nav').hidden = true;
  $('#sign-in').hidden = false;
}

// The EHR launch lands on /console/launch/{connection}/#/launch/{code}: the one-time code is
// exchanged for a token bound to the launched patient (kept in memory only, like any token).
async function startLaunch(code) {
  history.replaceState(null, '', `${location.pathname}#/launched`);
  $('#sign-in').hidden = true;
  const res = await fetch('/v1/launch/session', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ code }) });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) {
    showError(new ApiError(res.status, { title: 'The launch from the EHR could not be finished',
      detail: `${body.detail || body.title || `HTTP ${res.status}`}. Open rapport from the EHR again.` }));
    return;
  }
  Object.assign(session, { token: body.access_token, scopes: [body.scope], patient: body.patient, user: body.user,
    alert: body.alert, instrument: body.instrument });
  $('#sign-out').hidden = true;
  route();
  $('#main').focus();
}

const launchCode = location.pathname.startsWith('/console/launch/') && location.hash.match(/^#\/launch\/([^/]+)$/);
if (launchCode) startLaunch(decodeURIComponent(launchCode[1]));

$('#sign-in-form').addEventListener('submit', signIn);
$('#sign-out').addEventListener('click', signOut);
window.addEventListener('hashchange', route);
