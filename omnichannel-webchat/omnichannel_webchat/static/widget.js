/*
 * Omnichannel webchat widget: the visitor's side of the website chat channel.
 *
 * A classic script (not a module), no build step, no dependencies. A site embeds it with
 *   <script src="https://chat.example.com/api/channels/webchat/widget.js" async></script>
 * and may set data-lang, data-user-id + data-user-hash, data-name, data-email, data-title,
 * data-color, data-position ("right" | "left"), data-open ("true"), data-transport
 * ("websocket" | "poll") and, for browser tests only, data-test-hooks ("true").
 *
 * The protocol it speaks is docs/channels/webchat.md. In short: POST session gives a visitor
 * token (kept in localStorage, never in a URL); the WebSocket "socket" (token in its first
 * frame, "hello") or the long-polling fallback "poll" brings frames; every (re)connect says
 * where the widget stands (the last event cursor and the last message it shows), so nothing
 * goes missing across drops. Visitor messages wait in a persisted outbox until acknowledged.
 *
 * Everything lives in a closed shadow root on one host element; the only global is
 * window.OmnichannelWebchat { open(), close(), toggle() }. All text coming from the server is
 * rendered with text nodes (never innerHTML).
 */
(() => {
  'use strict';

  if (window.OmnichannelWebchat) return; // the script was included twice

  // ---------------------------------------------------------------------------------------
  // 1. Where the script comes from, and the embedding page's options
  // ---------------------------------------------------------------------------------------

  const SCRIPT_PATH = '/api/channels/webchat/widget.js';
  const script =
    document.currentScript ||
    Array.from(document.querySelectorAll('script[src]')).find((s) => {
      try {
        return new URL(s.src, location.href).pathname.endsWith(SCRIPT_PATH);
      } catch (e) {
        return false;
      }
    });
  if (!script) {
    console.error('[webchat] cannot find its own <script> tag');
    return;
  }

  /** A data-* attribute of the script tag, trimmed; null when absent or empty. */
  const attr = (name) => {
    const value = script.getAttribute('data-' + name);
    return value == null || !value.trim() ? null : value.trim();
  };

  /** "en" or "es": data-lang, else the page's language, else the browser's; default en. */
  function pickLang() {
    for (const candidate of [attr('lang'), document.documentElement.lang, navigator.language]) {
      const primary = (candidate || '').toLowerCase().split(/[-_]/)[0];
      if (primary === 'en' || primary === 'es') return primary;
    }
    return 'en';
  }

  const opts = {
    userId: attr('user-id'),
    userHash: attr('user-hash'),
    name: attr('name'),
    email: attr('email'),
    title: attr('title'),
    color: attr('color'),
    left: attr('position') === 'left',
    open: attr('open') === 'true',
    forcePoll: attr('transport') === 'poll',
    testHooks: attr('test-hooks') === 'true',
  };
  const LANG = pickLang();

  const srcUrl = new URL(script.src, location.href);
  /** The prefix P of every route, e.g. https://chat.example.com/api/channels/webchat */
  const BASE = srcUrl.origin + srcUrl.pathname.replace(/\/widget\.js$/, '');
  const WS_URL = BASE.replace(/^http/, 'ws') + '/socket';
  /** Where polling visitors POST a message: "message", not "messages" (the core serves
   * /api/channels/{name}/messages for every channel, to agents). */
  const SEND_PATH = '/message';
  /** localStorage key: one record per chat server the page talks to. */
  const STORE_KEY = 'omnichannel-webchat:' + srcUrl.origin;

  // ---------------------------------------------------------------------------------------
  // 2. Texts
  // ---------------------------------------------------------------------------------------

  const TEXTS = {
    en: {
      title: 'Chat with us',
      placeholderGreeting: 'Hi! How can we help you today?',
      open: 'Open chat',
      openUnread: 'Open chat, {n} unread',
      close: 'Close chat',
      messages: 'Messages',
      label: 'Type your message',
      placeholder: 'Type your message…',
      send: 'Send',
      attach: 'Attach a file',
      you: 'You:',
      agent: 'Agent:',
      sending: 'Sending…',
      sent: 'Sent',
      seen: 'Seen',
      failed: 'Not sent',
      retry: 'Retry',
      typing: 'Agent is typing…',
      connecting: 'Connecting…',
      reconnecting: 'Reconnecting…',
      offline: 'Offline — messages will be sent when you are back online',
      unavailable: 'The chat is not available right now.',
      resolved: 'This conversation was resolved. Write a message to open it again.',
      tooLong: 'Your message is too long ({n} characters at most).',
      sendFailed: 'Your message could not be sent.',
      fileTooBig: 'This file is too large ({max} at most).',
      fileType: 'This type of file cannot be sent.',
      uploadFailed: 'The file could not be sent.',
      downloadFailed: 'The file could not be downloaded.',
      download: 'Download',
      file: 'File',
      prechatIntro: 'Please tell us who you are before we start.',
      name: 'Name',
      email: 'Email',
      requiredNote: '* required',
      start: 'Start chat',
      skip: 'Skip',
      sessionFailed: 'Could not start the chat. Please try again.',
    },
    es: {
      title: 'Chatea con nosotros',
      placeholderGreeting: '¡Hola! ¿En qué podemos ayudarte?',
      open: 'Abrir chat',
      openUnread: 'Abrir chat, {n} sin leer',
      close: 'Cerrar chat',
      messages: 'Mensajes',
      label: 'Escribe tu mensaje',
      placeholder: 'Escribe tu mensaje…',
      send: 'Enviar',
      attach: 'Adjuntar un archivo',
      you: 'Tú:',
      agent: 'Agente:',
      sending: 'Enviando…',
      sent: 'Enviado',
      seen: 'Visto',
      failed: 'No enviado',
      retry: 'Reintentar',
      typing: 'El agente está escribiendo…',
      connecting: 'Conectando…',
      reconnecting: 'Reconectando…',
      offline: 'Sin conexión — los mensajes se enviarán cuando vuelvas a estar en línea',
      unavailable: 'El chat no está disponible en este momento.',
      resolved: 'Esta conversación se resolvió. Escribe un mensaje para abrirla de nuevo.',
      tooLong: 'Tu mensaje es demasiado largo (máximo {n} caracteres).',
      sendFailed: 'No se pudo enviar tu mensaje.',
      fileTooBig: 'El archivo es demasiado grande (máximo {max}).',
      fileType: 'Este tipo de archivo no se puede enviar.',
      uploadFailed: 'No se pudo enviar el archivo.',
      downloadFailed: 'No se pudo descargar el archivo.',
      download: 'Descargar',
      file: 'Archivo',
      prechatIntro: 'Cuéntanos quién eres antes de empezar.',
      name: 'Nombre',
      email: 'Correo electrónico',
      requiredNote: '* obligatorio',
      start: 'Empezar chat',
      skip: 'Omitir',
      sessionFailed: 'No se pudo iniciar el chat. Inténtalo de nuevo.',
    },
  };

  /** The text `key` in the widget's language, with {placeholders} filled in. */
  const t = (key, vars) =>
    TEXTS[LANG][key].replace(/\{(\w+)\}/g, (_, name) => String(vars && vars[name]));

  // ---------------------------------------------------------------------------------------
  // 3. Small helpers
  // ---------------------------------------------------------------------------------------

  /** An element with attributes (on* are listeners) and children (strings become text). */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value == null || value === false) continue;
      if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
      else el.setAttribute(key, value === true ? '' : value);
    }
    for (const child of children) if (child != null) el.append(child);
    return el;
  }

  /** A 24×24 SVG icon of one path (static, decorative). */
  function icon(path) {
    const NS = 'http://www.w3.org/2000/svg';
    const svg = document.createElementNS(NS, 'svg');
    svg.setAttribute('viewBox', '0 0 24 24');
    svg.setAttribute('aria-hidden', 'true');
    svg.setAttribute('focusable', 'false');
    const p = document.createElementNS(NS, 'path');
    p.setAttribute('d', path);
    svg.append(p);
    return svg;
  }
  const ICONS = {
    chat: 'M20 2H4a2 2 0 0 0-2 2v18l4-4h14a2 2 0 0 0 2-2V4a2 2 0 0 0-2-2z',
    close:
      'M19 6.41 17.59 5 12 10.59 6.41 5 5 6.41 10.59 12 5 17.59 6.41 19 12 13.41 ' +
      '17.59 19 19 17.59 13.41 12z',
    send: 'M2.01 21 23 12 2.01 3 2 10l15 2-15 2z',
    attach:
      'M16.5 6v11.5a4 4 0 0 1-8 0V5a2.5 2.5 0 0 1 5 0v10.5a1 1 0 0 1-2 0V6H10v9.5a2.5 2.5 ' +
      '0 0 0 5 0V5a4 4 0 0 0-8 0v12.5a5.5 5.5 0 0 0 11 0V6z',
  };

  /** A client_id ([A-Za-z0-9_-]{8,64}); randomUUID needs a secure context, so a fallback. */
  function newClientId() {
    if (crypto.randomUUID) return crypto.randomUUID();
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  }

  /** ISO times may have microseconds, which not every Date.parse takes: keep milliseconds. */
  const parseTime = (iso) => Date.parse(String(iso || '').replace(/(\.\d{3})\d+/, '$1'));

  /** A sortable number for an ISO time: microseconds (so two messages in one ms still sort). */
  function timeKey(iso) {
    const ms = parseTime(iso);
    if (isNaN(ms)) return 0;
    const fraction = (/\.(\d+)/.exec(iso) || [0, ''])[1];
    return ms * 1000 + Number((fraction.slice(3) + '000').slice(0, 3));
  }

  /** Messages order by time, then id. */
  const compareMessages = (a, b) => a.key - b.key || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

  function formatTime(iso) {
    const date = new Date(parseTime(iso));
    if (isNaN(date)) return '';
    const hm = { hour: '2-digit', minute: '2-digit' };
    return date.toDateString() === new Date().toDateString()
      ? date.toLocaleTimeString(LANG, hm)
      : date.toLocaleString(LANG, { month: 'short', day: 'numeric', ...hm });
  }

  function formatSize(bytes) {
    if (bytes == null || isNaN(bytes)) return '';
    if (bytes < 1024) return bytes + ' B';
    if (bytes < 1024 * 1024) return (bytes / 1024).toFixed(bytes < 10240 ? 1 : 0) + ' KB';
    return (bytes / 1024 / 1024).toFixed(1) + ' MB';
  }

  /** Seconds (or an HTTP date) of a 429's Retry-After, in ms; 5 s when missing. */
  function retryAfter(res) {
    const value = res.headers.get('Retry-After');
    const seconds = Number(value);
    if (value && !isNaN(seconds)) return Math.min(seconds, 300) * 1000;
    const date = Date.parse(value || '');
    return isNaN(date) ? 5000 : Math.max(0, Math.min(date - Date.now(), 300000));
  }

  /** The "message" of an error answer ({"error", "message"}), or null. */
  async function errorMessage(res) {
    try {
      const body = await res.json();
      return body && typeof body.message === 'string' ? body.message : null;
    } catch (e) {
      return null;
    }
  }

  /**
   * Text with its http(s) URLs as links. Only http: and https: become links (a URL that does
   * not parse stays text); everything is put in as text nodes.
   */
  const URL_RE = /\bhttps?:\/\/[^\s<>"'`]+/gi;
  function linkify(text) {
    const fragment = document.createDocumentFragment();
    let last = 0;
    for (const match of text.matchAll(URL_RE)) {
      // Trailing punctuation usually ends the sentence, not the URL.
      const url = match[0].replace(/[.,;:!?)\]}]+$/, '');
      let href = null;
      try {
        const parsed = new URL(url);
        if (parsed.protocol === 'http:' || parsed.protocol === 'https:') href = parsed.href;
      } catch (e) {
        /* not a URL: stays text */
      }
      fragment.append(text.slice(last, match.index));
      fragment.append(
        href ? h('a', { href, target: '_blank', rel: 'noopener noreferrer nofollow' }, url) : url
      );
      last = match.index + url.length;
    }
    fragment.append(text.slice(last));
    return fragment;
  }

  /** Only these are shown inline; SVG is never (a blob: URL of it would run script here). */
  const INLINE_IMAGE = /^image\/(png|jpe?g|gif|webp|avif|bmp)$/i;

  /** Whether `file` matches the server's upload_types ("image/png", "image/*"; ".pdf" too). */
  function typeAllowed(file, types) {
    const type = (file.type || 'application/octet-stream').toLowerCase();
    const name = file.name.toLowerCase();
    return types.some((pattern) => {
      const p = String(pattern).toLowerCase().trim();
      if (p.startsWith('.')) return name.endsWith(p);
      if (p.endsWith('/*')) return type.startsWith(p.slice(0, -1));
      return type === p;
    });
  }

  /** Capped exponential backoff with full jitter: 500 ms doubling up to 15 s; reset on ready. */
  const backoff = {
    attempt: 0,
    next() {
      const cap = Math.min(15000, 500 * 2 ** this.attempt);
      this.attempt = Math.min(this.attempt + 1, 10);
      return Math.random() * cap;
    },
    reset() {
      this.attempt = 0;
    },
  };

  // ---------------------------------------------------------------------------------------
  // 4. State, and its copy in localStorage
  // ---------------------------------------------------------------------------------------

  const MAX_MESSAGES = 500; // kept in memory
  const CACHED_MESSAGES = 100; // kept in localStorage (so a reload shows the recent history)

  const S = {
    token: null,
    tokenAt: 0, // when this tab got the token: between tabs, the newest wins
    expiresAt: null,
    sessionFailures: 0, // session requests in a row that never reached the server
    visitor: null, // {id, verified, name, email}
    conversation: null, // {id, status} | null
    settings: {},
    sessionOk: false, // POST session answered on this page
    identityRejected: false, // data-user-hash was refused: go on anonymous
    cursor: null, // the last event cursor (hello's / poll's "after")
    messages: new Map(), // id → message
    order: [], // the messages, sorted
    outbox: [], // visitor texts not acknowledged yet: {client_id, text, at, state, error}
    uploads: [], // files being sent (in memory only): {client_id, file, at, state, error}
    acked: new Set(), // client_ids known stored (so another tab's copy is not resent)
    seenUpTo: null, // ISO time up to which an agent has read the visitor's messages
    readKey: null, // {key, id} of the last agent message the visitor has been shown
    readSent: null, // the id last sent in a "read"
    prechatSkipped: false,
    open: false,
    typingSentAt: 0,
    scrollToEnd: false,
  };

  const store = {
    read() {
      try {
        const raw = localStorage.getItem(STORE_KEY);
        const record = raw ? JSON.parse(raw) : null;
        return record && record.v === 1 ? record : null;
      } catch (e) {
        return null; // storage blocked or corrupt
      }
    },
    write(record) {
      try {
        localStorage.setItem(STORE_KEY, JSON.stringify(record));
        return true;
      } catch (e) {
        return false; // quota or blocked
      }
    },
  };

  /** A message as the server sends it, checked and with its sort key; null if unusable. */
  function normalize(m) {
    if (!m || typeof m.id !== 'string' || (m.from !== 'visitor' && m.from !== 'agent')) return null;
    return {
      id: m.id,
      from: m.from,
      text: typeof m.text === 'string' ? m.text : null,
      at: m.at,
      client_id: typeof m.client_id === 'string' ? m.client_id : null,
      status: m.status || null,
      media: Array.isArray(m.media) ? m.media.filter((x) => x && typeof x === 'object') : [],
      key: timeKey(m.at),
    };
  }

  /** Puts what an earlier page (or another tab) kept back into S. */
  function loadStored() {
    const record = store.read();
    if (!record) return;
    // A token kept for a verified visitor is not used by anyone else on this browser (another
    // user_id, or the same page after logout); an anonymous one may become verified (the
    // server decides).
    if (record.user_id && record.user_id !== opts.userId) return;
    S.token = record.token || null;
    S.tokenAt = record.token_at || 0;
    S.expiresAt = record.expires_at || null;
    S.visitor = record.visitor || null;
    S.prechatSkipped = !!record.prechat_skipped;
    S.cursor = typeof record.cursor === 'string' ? record.cursor : null;
    S.seenUpTo = record.seen || null;
    S.readKey = record.read_key || null;
    S.readSent = record.read_sent || null;
    for (const raw of record.messages || []) addMessage(raw);
    for (const o of record.outbox || []) {
      if (o && typeof o.client_id === 'string' && typeof o.text === 'string') {
        S.outbox.push({ client_id: o.client_id, text: o.text, at: o.at, state: 'sending' });
      }
    }
  }

  let persistQueued = false;
  /** Writes S to localStorage soon (once per burst of changes). */
  function persist() {
    if (persistQueued) return;
    persistQueued = true;
    queueMicrotask(writeRecord);
  }

  function writeRecord() {
    persistQueued = false;
    const visitorId = S.visitor && S.visitor.id;
    const known = new Set(S.outbox.map((o) => o.client_id));
    const outbox = S.outbox
      .filter((o) => o.state === 'sending') // a refused one is not resent after a reload
      .map((o) => ({ client_id: o.client_id, text: o.text, at: o.at }));
    const previous = store.read();
    if (previous && visitorId && previous.visitor && previous.visitor.id === visitorId) {
      // Another tab of the same visitor: keep its unacknowledged messages, and its token if
      // newer (a rotated token replaces ours).
      for (const o of previous.outbox || []) {
        if (!known.has(o.client_id) && !S.acked.has(o.client_id)) outbox.push(o);
      }
      if (previous.token && (previous.token_at || 0) > S.tokenAt) {
        S.token = previous.token;
        S.tokenAt = previous.token_at;
        S.expiresAt = previous.expires_at;
      }
    }
    const record = {
      v: 1,
      token: S.token,
      token_at: S.tokenAt,
      expires_at: S.expiresAt,
      visitor: S.visitor,
      user_id: S.visitor && S.visitor.verified ? opts.userId : null,
      prechat_skipped: S.prechatSkipped,
      // The cursor and the cached messages go together: "since" is the last of them.
      cursor: S.cursor,
      messages: S.order.slice(-CACHED_MESSAGES).map(({ key, ...m }) => m),
      seen: S.seenUpTo,
      read_key: S.readKey,
      read_sent: S.readSent,
      outbox,
    };
    if (!store.write(record)) {
      record.messages = [];
      record.cursor = null;
      store.write(record);
    }
  }

  /** Forgets what belongs to the previous visitor (a new one started); the outbox stays. */
  function resetVisitorData() {
    S.messages.clear();
    S.order = [];
    S.cursor = null;
    S.seenUpTo = null;
    S.readKey = null;
    S.readSent = null;
    S.prechatSkipped = false;
    S.conversation = null;
  }

  function setToken(token, expiresAt) {
    if (typeof token !== 'string' || !token) return;
    S.token = token;
    S.tokenAt = Date.now();
    S.expiresAt = expiresAt || null;
    persist();
  }

  function setCursor(cursor) {
    if (typeof cursor === 'string' && cursor) {
      S.cursor = cursor;
      persist();
    }
  }

  /** The id of the last message shown ("since"), or null. */
  const lastMessageId = () => (S.order.length ? S.order[S.order.length - 1].id : null);

  /**
   * Adds (or updates) a message; true when it is new. A visitor message with a client_id
   * acknowledges the outbox entry of that id (its bubble becomes the message's).
   */
  function addMessage(raw) {
    const m = normalize(raw);
    if (!m) return false;
    if (m.client_id) acknowledge(m.client_id, m.id);
    const old = S.messages.get(m.id);
    S.messages.set(m.id, m);
    if (old) {
      S.order[S.order.indexOf(old)] = m;
      if (old.key !== m.key) S.order.sort(compareMessages);
      return false;
    }
    // Usually the newest: insert from the end.
    let i = S.order.length;
    while (i > 0 && compareMessages(S.order[i - 1], m) > 0) i--;
    S.order.splice(i, 0, m);
    if (S.order.length > MAX_MESSAGES) {
      for (const gone of S.order.splice(0, S.order.length - MAX_MESSAGES)) {
        S.messages.delete(gone.id);
      }
    }
    return true;
  }

  /** The outbox entry (or upload) `clientId` is stored as message `messageId`. */
  function acknowledge(clientId, messageId) {
    S.acked.add(clientId);
    const before = S.outbox.length + S.uploads.length;
    S.outbox = S.outbox.filter((o) => o.client_id !== clientId);
    S.uploads = S.uploads.filter((u) => u.client_id !== clientId);
    if (S.outbox.length + S.uploads.length !== before) {
      // Keep the bubble (no flicker, no second announcement): it now shows the message.
      const node = nodes.get('c:' + clientId);
      if (node && messageId && !nodes.has('m:' + messageId)) nodes.set('m:' + messageId, node);
      nodes.delete('c:' + clientId);
      // Writing reopens a resolved conversation (the server may not say so in a frame).
      if (S.conversation && S.conversation.status === 'resolved') {
        S.conversation = { ...S.conversation, status: 'open' };
      }
      persist();
    }
  }

  // ---------------------------------------------------------------------------------------
  // 5. The DOM: host, shadow root, styles, panel
  // ---------------------------------------------------------------------------------------

  const STYLE = `
    .owc {
      --owc-color: #2563eb; --owc-on-color: #fff; --owc-focus: #1d4ed8;
      font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif;
      color: #1f2430; -webkit-font-smoothing: antialiased;
    }
    *, *::before, *::after { box-sizing: border-box; }
    [hidden] { display: none !important; }
    button, textarea, input { font: inherit; color: inherit; }
    button { cursor: pointer; }
    :focus-visible { outline: 2px solid var(--owc-focus); outline-offset: 2px; }
    .sr {
      position: absolute; width: 1px; height: 1px; margin: -1px; padding: 0; border: 0;
      overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap;
    }
    svg { width: 22px; height: 22px; fill: currentColor; display: block; }

    /* The launcher, bottom right (or left) */
    .launcher {
      position: fixed; bottom: 20px; right: 20px; z-index: 2147483000;
      width: 56px; height: 56px; border: 0; border-radius: 50%;
      display: grid; place-items: center;
      background: var(--owc-color); color: var(--owc-on-color);
      box-shadow: 0 4px 14px rgba(0, 0, 0, .22); transition: transform .15s ease;
    }
    .launcher:hover { transform: scale(1.06); }
    .launcher svg { width: 28px; height: 28px; }
    .launcher:focus-visible { outline: 3px solid var(--owc-color); outline-offset: 3px; }
    .left .launcher { right: auto; left: 20px; }
    .badge {
      position: absolute; top: -4px; right: -4px; min-width: 20px; height: 20px;
      padding: 0 6px; border-radius: 10px; background: #d92d20; color: #fff;
      font-size: 12px; font-weight: 700; line-height: 20px; text-align: center;
      box-shadow: 0 0 0 2px #fff;
    }

    /* The panel: 360×560 above the launcher; the whole screen on a phone */
    .panel {
      position: fixed; bottom: 88px; right: 20px; z-index: 2147483001;
      width: 360px; height: 560px; max-height: calc(100vh - 108px);
      display: flex; flex-direction: column; overflow: hidden;
      background: #fff; border-radius: 16px; box-shadow: 0 12px 40px rgba(0, 0, 0, .25);
      animation: owc-in .18s ease-out;
    }
    .left .panel { right: auto; left: 20px; }
    @keyframes owc-in { from { opacity: 0; transform: translateY(12px); } }
    @media (max-width: 479.98px) {
      .panel, .left .panel {
        inset: 0; width: auto; height: auto; max-height: none; border-radius: 0;
      }
    }
    @media (prefers-reduced-motion: reduce) {
      *, *::before, *::after { animation: none !important; transition: none !important; }
    }

    header {
      display: flex; align-items: center; gap: 8px; padding: 12px 10px 12px 16px;
      background: var(--owc-color); color: var(--owc-on-color);
    }
    h2 {
      flex: 1; margin: 0; font-size: 16px; font-weight: 600;
      overflow: hidden; text-overflow: ellipsis; white-space: nowrap;
    }
    .icon-btn {
      width: 38px; height: 38px; flex: none; border: 0; border-radius: 10px;
      display: grid; place-items: center; background: transparent;
    }
    header .icon-btn:hover { background: rgba(255, 255, 255, .16); }
    header :focus-visible { outline-color: currentColor; }

    .conn, .note, .error { margin: 0; padding: 6px 14px; font-size: 12.5px; }
    .conn { background: #fff4e5; color: #7a4100; text-align: center; }
    .note { background: #eef2f6; color: #3d4757; text-align: center; }
    .error { background: #fef3f2; color: #b42318; }
    .conn:empty, .error:empty { display: none; }

    /* Messages: the visitor's on the right, the agents' on the left */
    .log {
      flex: 1; overflow-y: auto; overscroll-behavior: contain; padding: 14px 12px;
      display: flex; flex-direction: column; gap: 8px; background: #f5f6f8;
    }
    .empty { align-self: center; margin: auto 0; color: #6b7585; text-align: center; }
    .msg { display: flex; flex-direction: column; max-width: 82%; }
    .msg.visitor { align-self: flex-end; align-items: flex-end; }
    .msg.agent { align-self: flex-start; align-items: flex-start; }
    .bubble {
      padding: 8px 12px; border-radius: 16px; white-space: pre-wrap; overflow-wrap: anywhere;
    }
    .visitor .bubble {
      background: var(--owc-color); color: var(--owc-on-color); border-bottom-right-radius: 4px;
    }
    .agent .bubble { background: #fff; border: 1px solid #e2e5ea; border-bottom-left-radius: 4px; }
    .bubble a { color: inherit; text-decoration: underline; }
    .msg[data-status="sending"] .bubble { opacity: .75; }
    .msg[data-status="failed"] .bubble { opacity: .6; }
    .meta {
      display: flex; gap: 6px; align-items: center; margin-top: 3px;
      font-size: 11.5px; color: #6b7585;
    }
    .meta .failed { color: #b42318; }
    .link-btn {
      border: 0; padding: 0; background: none; font-size: inherit;
      color: var(--owc-focus); text-decoration: underline;
    }
    .media { display: flex; flex-direction: column; gap: 6px; margin-top: 4px; }
    .media:first-child { margin-top: 0; }
    .media img {
      display: block; max-width: 100%; max-height: 240px; border-radius: 10px;
      background: rgba(0, 0, 0, .06);
    }
    .file { display: flex; align-items: center; gap: 8px; flex-wrap: wrap; }
    .file-name { font-weight: 600; overflow-wrap: anywhere; }
    .file-size { opacity: .8; font-size: 12px; }
    .dl {
      border: 1px solid currentColor; border-radius: 8px; padding: 2px 10px;
      background: transparent; font-size: 12.5px;
    }
    .typing {
      padding: 0 14px; font-size: 12.5px; font-style: italic; color: #6b7585;
      background: #f5f6f8;
    }
    .typing:not(:empty) { padding: 2px 14px 6px; }

    /* The composer */
    .composer {
      display: flex; align-items: flex-end; gap: 4px; padding: 8px;
      border-top: 1px solid #e2e5ea; background: #fff;
    }
    textarea {
      flex: 1; min-height: 40px; max-height: 132px; resize: none; padding: 9px 12px;
      border: 1px solid #cdd2da; border-radius: 12px; background: #fff; line-height: 1.4;
    }
    textarea:focus-visible { outline-offset: 0; border-color: var(--owc-focus); }
    .composer .icon-btn { color: #4b5565; }
    .composer .icon-btn:hover { background: #f0f2f5; }
    .composer .send { background: var(--owc-color); color: var(--owc-on-color); }
    .composer .send:hover { background: var(--owc-color); filter: brightness(1.08); }

    /* The pre-chat form */
    .prechat {
      flex: 1; overflow-y: auto; padding: 18px 16px;
      display: flex; flex-direction: column; gap: 6px;
    }
    .prechat p { margin: 0 0 8px; }
    .prechat label { font-weight: 600; font-size: 13px; margin-top: 6px; }
    .prechat input { padding: 9px 12px; border: 1px solid #cdd2da; border-radius: 10px; }
    .prechat .hint { font-size: 12px; color: #6b7585; }
    .actions { display: flex; gap: 8px; margin-top: 14px; }
    .primary, .secondary { flex: 1; padding: 10px 12px; border-radius: 10px; font-weight: 600; }
    .primary { border: 0; background: var(--owc-color); color: var(--owc-on-color); }
    .secondary { border: 1px solid #cdd2da; background: #fff; }
  `;

  // The host: reset (inline !important beats the page's rules) so the page cannot restyle it.
  const host = document.createElement('div');
  host.id = 'omnichannel-webchat';
  host.setAttribute('data-state', 'connecting');
  host.style.cssText = 'all: initial !important;';
  // Test mode opens the root so Playwright's locators can pierce it; it is exposed then too.
  const shadow = host.attachShadow({ mode: opts.testHooks ? 'open' : 'closed' });

  const PANEL_ID = 'owc-panel';
  const els = {};
  els.title = h('h2', { 'data-part': 'title' });
  els.close = h(
    'button',
    { type: 'button', class: 'icon-btn', 'aria-label': t('close'), 'data-part': 'close' },
    icon(ICONS.close)
  );
  els.conn = h('p', { class: 'conn', 'aria-live': 'polite', 'data-part': 'connection' });
  els.resolved = h('p', { class: 'note', 'data-part': 'resolved', hidden: true }, t('resolved'));
  els.log = h('div', {
    class: 'log',
    role: 'log',
    'aria-live': 'polite',
    'aria-label': t('messages'),
    tabindex: '0', // scrollable: reachable by keyboard
    'data-part': 'log',
  });
  els.typing = h('div', { class: 'typing', role: 'status', 'data-part': 'typing' });
  els.error = h('p', { class: 'error', role: 'alert', 'data-part': 'error' });
  els.textarea = h('textarea', {
    rows: '1',
    'aria-label': t('label'),
    placeholder: t('placeholder'),
    'data-part': 'textarea',
  });
  els.file = h('input', { type: 'file', hidden: true, tabindex: '-1', 'data-part': 'file-input' });
  els.attach = h(
    'button',
    { type: 'button', class: 'icon-btn', 'aria-label': t('attach'), 'data-part': 'attach' },
    icon(ICONS.attach)
  );
  els.send = h(
    'button',
    { type: 'submit', class: 'icon-btn send', 'aria-label': t('send'), 'data-part': 'send' },
    icon(ICONS.send)
  );
  els.composer = h(
    'form',
    { class: 'composer', 'data-part': 'composer' },
    els.attach,
    els.file,
    els.textarea,
    els.send
  );
  els.prechat = buildPrechat();
  els.panel = h(
    'div',
    { class: 'panel', id: PANEL_ID, role: 'dialog', hidden: true, 'data-part': 'panel' },
    h('header', null, els.title, els.close),
    els.conn,
    els.prechat,
    els.log,
    els.typing,
    els.resolved,
    els.error,
    els.composer
  );
  els.badge = h('span', {
    class: 'badge',
    'aria-hidden': 'true',
    'data-part': 'badge',
    hidden: true,
  });
  els.launcher = h(
    'button',
    {
      type: 'button',
      class: 'launcher',
      'aria-label': t('open'),
      'aria-expanded': 'false',
      'aria-controls': PANEL_ID,
      'data-part': 'launcher',
    },
    icon(ICONS.chat),
    els.badge
  );
  els.root = h('div', { class: 'owc' + (opts.left ? ' left' : '') }, els.panel, els.launcher);
  // A constructed stylesheet is not an inline <style>: pages whose Content-Security-Policy
  // forbids inline styles still style the widget. Older browsers get the <style>.
  if (shadow.adoptedStyleSheets && CSSStyleSheet.prototype.replaceSync) {
    const sheet = new CSSStyleSheet();
    sheet.replaceSync(STYLE);
    shadow.adoptedStyleSheets = [sheet];
  } else {
    shadow.append(h('style', null, STYLE));
  }
  shadow.append(els.root);

  function buildPrechat() {
    const field = (name, label, type, autocomplete) => {
      const id = 'owc-' + name;
      const marker = h('span', { 'aria-hidden': 'true', 'data-part': 'required-mark' }, ' *');
      const input = h('input', { id, name, type, autocomplete, 'data-part': 'prechat-' + name });
      return [h('label', { for: id }, label, marker), input, marker];
    };
    const [nameLabel, name, nameMark] = field('name', t('name'), 'text', 'name');
    const [emailLabel, email, emailMark] = field('email', t('email'), 'email', 'email');
    const hint = h('p', { class: 'hint', 'data-part': 'prechat-hint' }, t('requiredNote'));
    const skip = h(
      'button',
      { type: 'button', class: 'secondary', 'data-part': 'prechat-skip', onclick: skipPrechat },
      t('skip')
    );
    const submit = h(
      'button',
      { type: 'submit', class: 'primary', 'data-part': 'prechat-submit' },
      t('start')
    );
    const form = h(
      'form',
      { class: 'prechat', 'data-part': 'prechat', hidden: true, onsubmit: submitPrechat },
      h('p', { 'data-part': 'prechat-intro' }, t('prechatIntro')),
      nameLabel,
      name,
      emailLabel,
      email,
      hint,
      h('div', { class: 'actions' }, submit, skip)
    );
    Object.assign(els, { name, email, nameMark, emailMark, hint, skip, prechatSubmit: submit });
    return form;
  }

  /** Title, colour, greeting and limits: data-* over the server's settings over defaults. */
  function applySettings() {
    const s = S.settings;
    const title = opts.title || s.title || t('title');
    els.title.textContent = title;
    els.panel.setAttribute('aria-label', title);
    const color = [opts.color, s.color].find((c) => c && CSS.supports('color', c));
    if (color) {
      els.root.style.setProperty('--owc-color', color);
      els.root.style.setProperty('--owc-on-color', readableOn(color));
    }
    const types = Array.isArray(s.upload_types) ? s.upload_types : [];
    if (types.length) els.file.setAttribute('accept', types.join(','));
    els.attach.hidden = s.upload_max_bytes === 0;
  }

  /** White or near-black text on `color` (a #rrggbb; other CSS colours get white). */
  function readableOn(color) {
    const m = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(color);
    if (!m) return '#fff';
    const [r, g, b] = m.slice(1).map((x) => {
      const c = parseInt(x, 16) / 255;
      return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.45 ? '#111827' : '#fff';
  }

  // ---------------------------------------------------------------------------------------
  // 6. Rendering (keyed: a bubble is built once, so the live log announces it once)
  // ---------------------------------------------------------------------------------------

  const nodes = new Map(); // key → element of the log
  let renderQueued = false;

  /** Something shown changed: render and persist, once per burst. */
  function changed() {
    persist();
    if (renderQueued) return;
    renderQueued = true;
    queueMicrotask(render);
  }

  const greetingText = () =>
    typeof S.settings.greeting === 'string' && S.settings.greeting.trim()
      ? S.settings.greeting
      : null;

  function needsPrechat() {
    const mode = S.settings.prechat;
    return (
      (mode === 'optional' || mode === 'required') &&
      S.sessionOk &&
      !(S.visitor && S.visitor.name) &&
      !S.conversation &&
      !S.prechatSkipped &&
      !S.order.length &&
      !S.outbox.length
    );
  }

  function render() {
    renderQueued = false;
    const log = els.log;
    const stick = S.scrollToEnd || log.scrollHeight - log.scrollTop - log.clientHeight < 48;
    S.scrollToEnd = false;

    // Pre-chat form, or the conversation.
    const prechat = needsPrechat();
    let refocus = false;
    if (prechat && els.prechat.hidden) {
      setupPrechat();
      refocus = shadow.activeElement === els.textarea; // it is about to be hidden
    }
    els.prechat.hidden = !prechat;
    log.hidden = els.composer.hidden = els.typing.hidden = prechat;
    els.resolved.hidden = prechat || !(S.conversation && S.conversation.status === 'resolved');
    if (refocus) els.name.focus();

    // What the log shows, in order: greeting, messages, then the ones on their way.
    const items = [];
    const greeting = greetingText();
    if (greeting) items.push({ key: 'greeting', from: 'agent', text: greeting, greeting: true });
    for (const m of S.order)
      items.push({
        key: 'm:' + m.id,
        from: m.from,
        text: m.text,
        media: m.media,
        at: m.at,
        msg: m,
      });
    for (const o of S.outbox)
      items.push({ key: 'c:' + o.client_id, from: 'visitor', text: o.text, at: o.at, pending: o });
    for (const u of S.uploads) {
      const media = [{ filename: u.file.name, size: u.file.size, content_type: u.file.type }];
      items.push({
        key: 'c:' + u.client_id,
        from: 'visitor',
        text: null,
        media,
        at: u.at,
        pending: u,
      });
    }
    if (!items.length) items.push({ key: 'empty', empty: true });

    const lastVisitor = [...S.order].reverse().find((m) => m.from === 'visitor');
    const seenKey = S.seenUpTo ? timeKey(S.seenUpTo) : -1;
    const wanted = new Set();
    let previous = null;
    for (const item of items) {
      wanted.add(item.key);
      let node = nodes.get(item.key);
      if (!node) {
        node = item.empty
          ? h('p', { class: 'empty', 'data-part': 'placeholder' }, t('placeholderGreeting'))
          : h('div', { class: 'msg' });
        nodes.set(item.key, node);
      }
      if (!item.empty) {
        let status = null;
        if (item.pending)
          status = item.pending.state; // sending | failed
        else if (item.msg && item.from === 'visitor')
          status = item.msg.key <= seenKey ? 'seen' : 'sent';
        updateBubble(node, item, status, item.msg && item.msg === lastVisitor);
      }
      const expected = previous ? previous.nextSibling : log.firstChild;
      if (node !== expected) log.insertBefore(node, expected);
      previous = node;
    }
    for (const [key, node] of nodes) {
      if (!wanted.has(key)) {
        node.remove();
        nodes.delete(key);
      }
    }
    if (stick) log.scrollTop = log.scrollHeight;

    markRead();
    updateBadge();
  }

  /** Fills one bubble; rebuilds its content only when that changed. */
  function updateBubble(node, item, status, isLastVisitor) {
    const m = item.msg;
    node.className = 'msg ' + item.from;
    node.setAttribute('data-part', item.greeting ? 'greeting' : 'message');
    setAttr(node, 'data-from', item.greeting ? null : item.from);
    setAttr(node, 'data-id', m ? m.id : null);
    setAttr(node, 'data-client-id', m ? m.client_id : item.pending ? item.pending.client_id : null);
    setAttr(node, 'data-at', m ? m.at : null);
    setAttr(node, 'data-status', status);

    const media = item.media || [];
    const contentSig = JSON.stringify([
      item.text,
      media.map((x) => [x.index, x.filename, x.size, x.content_type]),
      !!m && media.length > 0, // a stored message's media can be downloaded
    ]);
    if (node._content !== contentSig) {
      node._content = contentSig;
      const bubble = h(
        'div',
        { class: 'bubble' },
        h('span', { class: 'sr' }, item.from === 'visitor' ? t('you') + ' ' : t('agent') + ' ')
      );
      if (item.text) bubble.append(h('span', { 'data-part': 'text' }, linkify(item.text)));
      for (const x of media) bubble.append(mediaNode(m, x));
      const old = node.querySelector('.bubble');
      if (old) old.replaceWith(bubble);
      else node.prepend(bubble);
    }

    // Time, and under the visitor's own: Sending… / Not sent (Retry) / Sent / Seen.
    const label =
      status === 'sending'
        ? t('sending')
        : status === 'failed'
          ? t('failed')
          : isLastVisitor
            ? t(status)
            : null;
    const metaSig = JSON.stringify([
      item.at && formatTime(item.at),
      label,
      item.pending && item.pending.error,
    ]);
    if (node._meta !== metaSig) {
      node._meta = metaSig;
      const meta = h('div', { class: 'meta' });
      if (item.at) meta.append(h('time', { datetime: item.at }, formatTime(item.at)));
      if (label) {
        meta.append(
          h('span', { class: status === 'failed' ? 'failed' : null, 'data-part': 'status' }, label)
        );
      }
      if (status === 'failed') {
        const pending = item.pending;
        meta.append(
          h(
            'button',
            {
              type: 'button',
              class: 'link-btn',
              'data-part': 'retry',
              onclick: () => retry(pending),
            },
            t('retry')
          )
        );
      }
      const old = node.querySelector('.meta');
      if (old) old.replaceWith(meta);
      else if (!item.greeting) node.append(meta);
    }
  }

  function setAttr(el, name, value) {
    if (value == null) el.removeAttribute(name);
    else if (el.getAttribute(name) !== value) el.setAttribute(name, value);
  }

  /** A file of a message: name, size, Download; an inline picture for common image types. */
  function mediaNode(message, media) {
    const box = h('div', { class: 'media', 'data-part': 'media' });
    const name = media.filename || t('file');
    if (message && INLINE_IMAGE.test(media.content_type || '')) {
      const img = h('img', { alt: name, 'data-part': 'image' });
      box.append(img);
      mediaBlob(message.id, media.index)
        .then((blob) => {
          img.src = objectUrl(message.id + '/' + media.index, blob);
          img.addEventListener(
            'load',
            () => {
              const log = els.log;
              if (log.scrollHeight - log.scrollTop - log.clientHeight < img.height + 64)
                log.scrollTop = log.scrollHeight;
            },
            { once: true }
          );
        })
        .catch(() => img.remove());
    }
    const file = h('div', { class: 'file' }, h('span', { class: 'file-name' }, name));
    if (media.size != null) file.append(h('span', { class: 'file-size' }, formatSize(media.size)));
    if (message) {
      file.append(
        h(
          'button',
          {
            type: 'button',
            class: 'dl',
            'aria-label': t('download') + ' ' + name,
            'data-part': 'download',
            onclick: () => download(message.id, media.index, name),
          },
          t('download')
        )
      );
    }
    box.append(file);
    return box;
  }

  const blobs = new Map(); // "id/index" → Promise<Blob>
  const urls = new Map(); // "id/index" → object URL of an inline image

  /** The bytes of a message's file (GET P/media/{id}/{index} with the token). */
  function mediaBlob(id, index) {
    const key = id + '/' + index;
    if (!blobs.has(key)) {
      const promise = request(
        'GET',
        '/media/' + encodeURIComponent(id) + '/' + encodeURIComponent(index)
      ).then((res) => {
        if (!res.ok) throw new Error('media ' + res.status);
        return res.blob();
      });
      promise.catch(() => blobs.delete(key)); // try again next time
      blobs.set(key, promise);
    }
    return blobs.get(key);
  }

  function objectUrl(key, blob) {
    if (!urls.has(key)) urls.set(key, URL.createObjectURL(blob));
    return urls.get(key);
  }

  /** Saves a file. Always as a download of opaque bytes: a blob: URL has this page's origin,
   * so opening an HTML or SVG file from it would run its script on the business's site. */
  async function download(id, index, filename) {
    try {
      const blob = await mediaBlob(id, index);
      const url = URL.createObjectURL(new Blob([blob], { type: 'application/octet-stream' }));
      const a = h('a', { href: url, download: filename, hidden: true });
      shadow.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
    } catch (e) {
      showError(t('downloadFailed'));
    }
  }

  let errorTimer = 0;
  function showError(text) {
    els.error.textContent = text || '';
    clearTimeout(errorTimer);
    if (text) errorTimer = setTimeout(() => (els.error.textContent = ''), 8000);
  }

  /** Unread = agent messages after the last one the visitor was shown. */
  function unreadCount() {
    const mark = S.readKey;
    return S.order.filter((m) => m.from === 'agent' && (!mark || compareMessages(m, mark) > 0))
      .length;
  }

  function updateBadge() {
    const n = unreadCount();
    els.badge.hidden = n === 0;
    els.badge.textContent = n > 99 ? '99+' : String(n);
    els.launcher.setAttribute('aria-label', n ? t('openUnread', { n }) : t('open'));
  }

  const visible = () => document.visibilityState === 'visible';
  const lastAgentMessage = () => [...S.order].reverse().find((m) => m.from === 'agent');

  /** With the panel open on a visible page, the visitor sees every agent message: they are
   * read (badge back to 0), and the server is told once per new last message. */
  function markRead() {
    if (!S.open || !visible()) return;
    const last = lastAgentMessage();
    if (!last) return;
    if (!S.readKey || compareMessages(last, S.readKey) > 0) {
      S.readKey = { key: last.key, id: last.id };
      persist();
    }
    if (
      S.readSent !== last.id &&
      sendSignal({ type: 'read', up_to: last.id }, '/read', { up_to: last.id })
    ) {
      S.readSent = last.id;
      persist();
    }
  }

  /** The agent is typing: show it until `until` (at most 30 s; our clock may differ). */
  let typingTimer = 0;
  function showTyping(until) {
    let ms = parseTime(until) - Date.now();
    if (!(ms > 0)) ms = 6000;
    ms = Math.min(ms, 30000);
    els.typing.textContent = t('typing');
    clearTimeout(typingTimer);
    typingTimer = setTimeout(hideTyping, ms);
  }
  function hideTyping() {
    clearTimeout(typingTimer);
    els.typing.textContent = '';
  }

  // ---------------------------------------------------------------------------------------
  // 7. Opening and closing; the composer; the pre-chat form
  // ---------------------------------------------------------------------------------------

  function openPanel(moveFocus = true) {
    S.open = true;
    els.panel.hidden = false;
    els.launcher.setAttribute('aria-expanded', 'true');
    S.scrollToEnd = true;
    render();
    if (moveFocus) (needsPrechat() ? els.name : els.textarea).focus();
  }

  function closePanel(returnFocus) {
    const focusInside = !!shadow.activeElement && shadow.activeElement !== els.launcher;
    S.open = false;
    els.panel.hidden = true;
    els.launcher.setAttribute('aria-expanded', 'false');
    if (returnFocus || focusInside) els.launcher.focus();
  }

  const toggle = () => (S.open ? closePanel(true) : openPanel());

  els.launcher.addEventListener('click', toggle);
  els.close.addEventListener('click', () => closePanel(true));
  els.root.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && S.open) {
      e.preventDefault();
      e.stopPropagation();
      closePanel(true);
    }
  });

  function autosize() {
    const ta = els.textarea;
    ta.style.height = 'auto';
    ta.style.height = Math.min(ta.scrollHeight + 2, 132) + 'px';
  }

  els.textarea.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
      e.preventDefault();
      submitText();
    }
  });
  els.textarea.addEventListener('input', () => {
    autosize();
    // "typing" at most once per 3 s, and only while there is something typed.
    if (els.textarea.value.trim() && Date.now() - S.typingSentAt >= 3000) {
      if (sendSignal({ type: 'typing' }, '/typing', null)) S.typingSentAt = Date.now();
    }
  });
  els.composer.addEventListener('submit', (e) => {
    e.preventDefault();
    submitText();
  });
  els.attach.addEventListener('click', () => els.file.click());
  els.file.addEventListener('change', () => {
    const file = els.file.files && els.file.files[0];
    els.file.value = '';
    if (file) sendFile(file);
  });

  /** The visitor sends what they typed: into the outbox (persisted), then out. */
  function submitText() {
    const text = els.textarea.value.replace(/^\s+|\s+$/g, '');
    if (!text) return;
    const max = S.settings.text_max_chars;
    if (max && Array.from(text).length > max) {
      showError(t('tooLong', { n: max }));
      return;
    }
    els.textarea.value = '';
    autosize();
    showError('');
    const item = { client_id: newClientId(), text, at: new Date().toISOString(), state: 'sending' };
    S.outbox.push(item);
    S.scrollToEnd = true;
    changed();
    writeRecord(); // now: the page may be closed right after
    transmit(item);
  }

  function retry(item) {
    item.state = 'sending';
    item.error = null;
    changed();
    if (item.file) sendUpload(item);
    else transmit(item);
  }

  function failItem(item, message) {
    item.state = 'failed';
    item.error = message || null;
    showError(message || (item.file ? t('uploadFailed') : t('sendFailed')));
    changed();
  }

  /** A file: checked against the server's limits here, then POST P/files. */
  function sendFile(file) {
    const s = S.settings;
    if (s.upload_max_bytes && file.size > s.upload_max_bytes) {
      showError(t('fileTooBig', { max: formatSize(s.upload_max_bytes) }));
      return;
    }
    if (
      Array.isArray(s.upload_types) &&
      s.upload_types.length &&
      !typeAllowed(file, s.upload_types)
    ) {
      showError(t('fileType'));
      return;
    }
    showError('');
    const upload = {
      client_id: newClientId(),
      file,
      at: new Date().toISOString(),
      state: 'sending',
    };
    S.uploads.push(upload);
    S.scrollToEnd = true;
    changed();
    sendUpload(upload);
  }

  async function sendUpload(upload) {
    // the name in a header, not the URL: proxies log URLs
    const query = '?client_id=' + encodeURIComponent(upload.client_id);
    const headers = { 'X-Filename': encodeURIComponent(upload.file.name) };
    try {
      const res = await request('POST', '/files' + query, upload.file, { headers });
      if (res.ok) {
        const body = await res.json();
        if (body && body.message) receiveMessage(body.message);
        else acknowledge(upload.client_id, '');
        changed();
        return;
      }
      if (res.status === 401) renewSession();
      const message = res.status === 413 || res.status === 415 ? await errorMessage(res) : null;
      failItem(
        upload,
        message ||
          (res.status === 413
            ? t('fileTooBig', { max: formatSize(S.settings.upload_max_bytes) })
            : res.status === 415
              ? t('fileType')
              : t('uploadFailed'))
      );
    } catch (e) {
      failItem(upload, t('uploadFailed'));
    }
  }

  function setupPrechat() {
    const required = S.settings.prechat === 'required';
    for (const [input, mark] of [
      [els.name, els.nameMark],
      [els.email, els.emailMark],
    ]) {
      input.required = required;
      mark.hidden = !required;
    }
    if (required) els.name.setAttribute('pattern', '.*\\S.*'); // not only spaces
    els.hint.hidden = !required;
    els.skip.hidden = required;
    if (!els.name.value && S.visitor && S.visitor.name) els.name.value = S.visitor.name;
    if (!els.email.value) els.email.value = (S.visitor && S.visitor.email) || opts.email || '';
    if (!els.name.value && opts.name) els.name.value = opts.name;
  }

  async function submitPrechat(e) {
    e.preventDefault();
    const name = els.name.value.trim();
    const email = els.email.value.trim();
    if (!name && !email && S.settings.prechat !== 'required') return skipPrechat();
    els.prechatSubmit.disabled = true;
    try {
      const body = sessionBody();
      if (name) body.name = name;
      if (email) body.email = email;
      const res = await request('POST', '/session', body, { auth: false });
      if (!res.ok) throw new Error('session ' + res.status);
      const answer = await res.json();
      adoptSession(answer);
      // An open socket is the visitor of its hello's token, without the name and email: say
      // hello again with the new token, so what they write next fills in the contact.
      if (T.mode === 'ws' && T.ws) {
        closeSocket();
        connect();
      }
      if (S.visitor && !S.visitor.name && name) S.visitor = { ...S.visitor, name };
      S.prechatSkipped = true; // answered: not asked again
      changed();
      render();
      els.textarea.focus();
    } catch (err) {
      showError(t('sessionFailed'));
    } finally {
      els.prechatSubmit.disabled = false;
    }
  }

  function skipPrechat() {
    S.prechatSkipped = true;
    changed();
    render();
    els.textarea.focus();
  }

  // ---------------------------------------------------------------------------------------
  // 8. HTTP, the session
  // ---------------------------------------------------------------------------------------

  /** fetch P+path: JSON bodies as JSON, a Blob as is; the token as a Bearer (never in a URL). */
  function request(method, path, body, options = {}) {
    const headers = { ...(options.headers || {}) };
    if (options.auth !== false && S.token) headers.Authorization = 'Bearer ' + S.token;
    let payload;
    if (body instanceof Blob) {
      headers['Content-Type'] = body.type || 'application/octet-stream';
      payload = body;
    } else if (body != null) {
      headers['Content-Type'] = 'application/json';
      payload = JSON.stringify(body);
    }
    return fetch(BASE + path, {
      method,
      headers,
      body: payload,
      signal: options.signal,
      mode: 'cors',
      credentials: 'omit',
      cache: 'no-store',
    });
  }

  /** POST session's body: who the visitor is, as far as this page knows. */
  function sessionBody() {
    const body = {};
    if (S.token) body.token = S.token;
    if (opts.userId && opts.userHash && !S.identityRejected) {
      body.user_id = opts.userId;
      body.user_hash = opts.userHash;
    }
    if (opts.name) body.name = opts.name;
    if (opts.email) body.email = opts.email;
    return body;
  }

  /** The answer of POST session: token (maybe rotated), visitor, conversation, settings. */
  function adoptSession(answer) {
    const previousId = S.visitor && S.visitor.id;
    setToken(answer.token, answer.expires_at);
    if (previousId && answer.visitor && answer.visitor.id !== previousId) resetVisitorData();
    S.visitor = answer.visitor || S.visitor;
    S.conversation = answer.conversation || null;
    S.settings = answer.settings || {};
    S.sessionOk = true;
    applySettings();
    changed();
  }

  let sessionPromise = null;
  /** POST session once at a time; true when it worked (else a retry is scheduled). */
  function ensureSession() {
    if (!sessionPromise) sessionPromise = startSession().finally(() => (sessionPromise = null));
    return sessionPromise;
  }

  async function startSession() {
    const body = sessionBody();
    let res;
    try {
      res = await request('POST', '/session', body, { auth: false });
    } catch (e) {
      // A page whose origin is not allowed sees only a network error (the refusal has no
      // CORS headers, so the browser hides it): say what to check, once.
      if (navigator.onLine && ++S.sessionFailures === 3) {
        console.error(
          '[webchat] cannot reach the chat server at ' +
            srcUrl.origin +
            ': is it up, and is this page\'s origin (' +
            location.origin +
            ') in its WEBCHAT_ALLOWED_ORIGINS? (localhost and 127.0.0.1 are different origins)'
        );
      }
      scheduleReconnect();
      return false;
    }
    S.sessionFailures = 0;
    if (res.status === 403 && body.user_id) {
      const answer = await res.json().catch(() => ({}));
      console.warn(
        '[webchat] the visitor could not be verified (data-user-id / data-user-hash):',
        answer.message || res.status
      );
      if (answer.identity_required) {
        stop(t('unavailable'));
        return false;
      }
      S.identityRejected = true; // go on as an anonymous visitor, without the verified token
      if (S.visitor && S.visitor.verified) S.token = null;
      return startSession();
    }
    if (res.status === 429) {
      scheduleReconnect(retryAfter(res));
      return false;
    }
    if (res.status === 403) {
      console.error('[webchat] the chat refused this page:', await errorMessage(res));
      stop(t('unavailable'));
      return false;
    }
    if (res.status >= 400 && res.status < 500) S.token = null; // start afresh next time
    const answer = res.ok ? await res.json().catch(() => null) : null;
    if (!answer || !answer.token) {
      scheduleReconnect();
      return false;
    }
    adoptSession(answer);
    if (S.settings.identity_required && !(S.visitor && S.visitor.verified)) {
      console.error(
        '[webchat] this chat is for verified visitors only (data-user-id / data-user-hash)'
      );
      stop(t('unavailable'));
      return false;
    }
    return true;
  }

  /** The token was refused (4401 / 401): a new session, then reconnect. Another tab may
   * already have one (then it is used); otherwise POST session without a token. */
  function renewSession() {
    const bad = S.token;
    const record = store.read();
    S.token = record && record.token && record.token !== bad ? record.token : null;
    S.sessionOk = false;
    scheduleReconnect();
  }

  // ---------------------------------------------------------------------------------------
  // 9. The connection: WebSocket, or long polling
  // ---------------------------------------------------------------------------------------

  const T = {
    mode: opts.forcePoll ? 'poll' : 'ws',
    ws: null, // the current socket
    wsReady: false, // it has said "ready"
    wsFails: 0, // socket opens in a row that never reached "ready"
    pollGen: 0, // the running poll loop's number (a new loop stops the old one)
    pollAbort: null,
    pollOnline: false, // the last poll worked
    everOnline: false,
    stopped: false,
    stopText: '',
    retryTimer: 0,
    pingTimer: 0,
    pongTimer: 0,
  };

  /** The host's data-state, and the status line. */
  function updateState() {
    let state;
    if (T.stopped) state = 'offline';
    else if (T.mode === 'ws' && T.wsReady) state = 'online';
    else if (T.mode === 'poll' && T.pollOnline) state = 'polling';
    else if (!navigator.onLine) state = 'offline';
    else state = 'connecting';
    if (host.getAttribute('data-state') !== state) host.setAttribute('data-state', state);
    const text = T.stopped
      ? T.stopText
      : state === 'offline'
        ? t('offline')
        : state === 'connecting'
          ? T.everOnline
            ? t('reconnecting')
            : t('connecting')
          : '';
    if (els.conn.textContent !== text) els.conn.textContent = text;
  }

  /** (Re)connects now: a session first if this page has none, then the transport. */
  function connect() {
    clearTimeout(T.retryTimer);
    T.retryTimer = 0;
    if (T.stopped) return;
    if (!navigator.onLine) return updateState(); // the "online" event calls again
    if (!S.sessionOk) {
      updateState();
      ensureSession().then((ok) => ok && connect());
      return;
    }
    if (T.mode === 'poll') startPolling();
    else openSocket();
  }

  /** Connects again after `delay` ms (default: the backoff's next). */
  function scheduleReconnect(delay) {
    updateState();
    if (T.stopped) return;
    clearTimeout(T.retryTimer);
    if (!navigator.onLine) return; // waits for "online"
    T.retryTimer = setTimeout(connect, delay == null ? backoff.next() : delay);
  }

  /** Gives up for this page (origin not allowed, verified visitors only). */
  function stop(text) {
    T.stopped = true;
    T.stopText = text;
    clearTimeout(T.retryTimer);
    closeSocket();
    T.pollGen++;
    if (T.pollAbort) T.pollAbort.abort();
    updateState();
  }

  function wsSend(frame) {
    try {
      T.ws.send(JSON.stringify(frame));
      return true;
    } catch (e) {
      return false;
    }
  }

  function openSocket() {
    closeSocket();
    updateState();
    let sock;
    try {
      sock = new WebSocket(WS_URL);
    } catch (e) {
      return socketClosed(0);
    }
    T.ws = sock;
    // No "ready" within 15 s: a dead or stuck connection.
    const readyTimer = setTimeout(() => T.ws === sock && !T.wsReady && dropSocket(), 15000);
    sock.onopen = () => {
      if (T.ws === sock)
        wsSend({ type: 'hello', token: S.token, after: S.cursor, since: lastMessageId() });
    };
    sock.onmessage = (e) => {
      if (T.ws !== sock) return;
      let frame;
      try {
        frame = JSON.parse(e.data);
      } catch (err) {
        return;
      }
      alive();
      handleFrame(frame);
    };
    sock.onclose = (e) => {
      clearTimeout(readyTimer);
      if (T.ws === sock) socketClosed(e.code);
    };
    sock.onerror = () => {}; // a close event follows
  }

  /** Forgets the current socket (its events are ignored from now on) and closes it. */
  function closeSocket() {
    const sock = T.ws;
    T.ws = null;
    T.wsReady = false;
    stopPing();
    if (sock) {
      try {
        sock.close(4000, 'reconnecting');
      } catch (e) {
        /* already closed */
      }
    }
  }

  /** The socket looks dead: drop it and reconnect at once (not waiting for its close). */
  function dropSocket() {
    if (!T.ws) return;
    const wasReady = T.wsReady;
    closeSocket();
    socketClosed(1006, wasReady);
  }

  function socketClosed(code, wasReady = T.wsReady) {
    T.ws = null;
    T.wsReady = false;
    stopPing();
    if (code === 4401) return renewSession(); // bad or expired token: new session
    if (code === 3403) {
      console.error(
        '[webchat] this site is not allowed to use the chat (WEBCHAT_ALLOWED_ORIGINS of ' +
          srcUrl.origin +
          ')'
      );
      return stop(t('unavailable'));
    }
    if (code === 3429 || code === 4429) {
      // too many sockets or handshakes: wait longer; not a sign that WebSockets are blocked
      return scheduleReconnect(5000 + backoff.next());
    }
    if (!wasReady && ++T.wsFails >= 3 && T.mode === 'ws') {
      // Three opens in a row never got to "ready": WebSockets do not get through here.
      console.warn('[webchat] the WebSocket does not connect: long polling instead');
      T.mode = 'poll';
      return scheduleReconnect(0);
    }
    scheduleReconnect();
  }

  // App-level ping: browsers do not expose protocol pings, so a dead socket would look open.
  function startPing() {
    stopPing();
    T.pingTimer = setInterval(() => ping(10000), 25000);
  }
  function stopPing() {
    clearInterval(T.pingTimer);
    clearTimeout(T.pongTimer);
    T.pingTimer = T.pongTimer = 0;
  }
  /** Pings; no frame at all within `timeout` ms → reconnect. */
  function ping(timeout) {
    if (!T.wsReady || T.pongTimer) return;
    wsSend({ type: 'ping' });
    T.pongTimer = setTimeout(() => {
      T.pongTimer = 0;
      dropSocket();
    }, timeout);
  }
  /** Any frame shows the socket is alive. */
  function alive() {
    clearTimeout(T.pongTimer);
    T.pongTimer = 0;
  }

  function startPolling() {
    T.pollGen++;
    pollLoop(T.pollGen);
  }

  /** POST P/poll again and again: frames as on the socket. A failure ends the loop; the
   * reconnect (with backoff) starts a new one. */
  async function pollLoop(gen) {
    let wait = 0; // the first poll answers at once (replay / history), then long polls
    while (gen === T.pollGen && !T.stopped) {
      const abort = new AbortController();
      T.pollAbort = abort;
      const timer = setTimeout(() => abort.abort(), (wait + 15) * 1000);
      let res = null;
      let answer = null;
      try {
        res = await request(
          'POST',
          '/poll',
          { after: S.cursor, since: lastMessageId(), wait },
          { signal: abort.signal }
        );
        if (res.ok) answer = await res.json();
      } catch (e) {
        /* network error, timeout or abort */
      } finally {
        clearTimeout(timer);
      }
      if (gen !== T.pollGen) return; // a newer loop took over
      if (!answer) {
        T.pollOnline = false;
        if (res && res.status === 401) return renewSession();
        return scheduleReconnect(res && res.status === 429 ? retryAfter(res) : undefined);
      }
      if (!T.pollOnline) {
        T.pollOnline = T.everOnline = true;
        backoff.reset();
        updateState();
        flushOutbox();
      }
      for (const frame of answer.frames || []) handleFrame(frame);
      setCursor(answer.cursor);
      markRead();
      wait = 25;
    }
  }

  /** Polls again now (after a wake-up or a network change): the current poll may be dead. */
  function restartPolling() {
    if (T.pollAbort) T.pollAbort.abort();
    backoff.reset();
    connect();
  }

  /** Whether frames can go out now. */
  const connected = () => (T.mode === 'ws' ? T.wsReady : T.pollOnline);

  /** typing / read: over the socket, or POST in polling mode; false when not connected. */
  function sendSignal(frame, path, body) {
    if (!connected()) return false;
    if (T.mode === 'ws') return wsSend(frame);
    request('POST', path, body).then(
      (res) => {
        if (!res.ok && frame.type === 'read') S.readSent = null;
      },
      () => {
        if (frame.type === 'read') S.readSent = null;
      }
    );
    return true;
  }

  /** Sends every outbox message again (same client_id: the server stores each once). */
  function flushOutbox() {
    for (const item of S.outbox) if (item.state === 'sending') transmit(item);
  }

  let flushTimer = 0;
  function flushLater(ms) {
    clearTimeout(flushTimer);
    flushTimer = setTimeout(flushOutbox, ms);
  }

  function transmit(item) {
    if (!connected()) return; // sent on (re)connect
    if (T.mode === 'ws') wsSend({ type: 'message', client_id: item.client_id, text: item.text });
    else postMessage(item);
  }

  async function postMessage(item) {
    if (item.inflight) return;
    item.inflight = true;
    try {
      const res = await request('POST', SEND_PATH, { client_id: item.client_id, text: item.text });
      if (res.ok) {
        const answer = await res.json();
        if (answer && answer.message) receiveMessage(answer.message);
        else acknowledge(item.client_id, '');
        changed();
      } else if (res.status === 401) renewSession();
      else if (res.status === 429) flushLater(retryAfter(res));
      else if (res.status >= 400 && res.status < 500) failItem(item, await errorMessage(res));
      else flushLater(3000 + backoff.next()); // server error: keep it, try again
    } catch (e) {
      flushLater(3000 + backoff.next()); // network: kept; the next poll's outcome decides
    } finally {
      item.inflight = false;
    }
  }

  /** A message from the stream, an ack, or POST messages' answer. */
  function receiveMessage(raw) {
    const isNew = addMessage(raw);
    if (isNew && raw.from === 'agent') hideTyping();
    changed();
  }

  /** One server frame (the socket's or poll's): handled the same either way. */
  function handleFrame(frame) {
    if (!frame || typeof frame !== 'object') return;
    if (typeof frame.cursor === 'string') setCursor(frame.cursor);
    switch (frame.type) {
      case 'ready':
        if (T.mode === 'ws' && T.ws) {
          T.wsReady = true;
          T.wsFails = 0;
          startPing();
        }
        T.everOnline = true;
        backoff.reset();
        if (frame.visitor) S.visitor = { ...S.visitor, ...frame.visitor };
        if ('conversation' in frame) S.conversation = frame.conversation || null;
        updateState();
        changed();
        flushOutbox();
        markRead();
        break;
      case 'message':
        receiveMessage(frame.message || {});
        break;
      case 'ack':
        if (frame.message) receiveMessage(frame.message);
        if (typeof frame.client_id === 'string')
          acknowledge(frame.client_id, frame.message ? frame.message.id : '');
        changed();
        break;
      case 'conversation':
        S.conversation = frame.conversation || null;
        changed();
        break;
      case 'typing':
        if (frame.typing === false) hideTyping();
        else showTyping(frame.until);
        break;
      case 'seen':
        if (frame.up_to && (!S.seenUpTo || timeKey(frame.up_to) > timeKey(S.seenUpTo))) {
          S.seenUpTo = frame.up_to;
          changed();
        }
        break;
      case 'token':
        setToken(frame.token, frame.expires_at);
        break;
      case 'error': {
        const item = frame.client_id && S.outbox.find((o) => o.client_id === frame.client_id);
        if (!item) console.warn('[webchat]', frame.error, frame.message);
        else if (frame.error === 'too_many_requests') {
          // Rate limited: the same message again in a while (unless stored meanwhile).
          setTimeout(() => S.outbox.includes(item) && transmit(item), 5000);
        } else failItem(item, frame.message);
        break;
      }
      default: // pong, or a frame type this version does not know
    }
  }

  // ---------------------------------------------------------------------------------------
  // 10. Page events that call for a check or a reconnect
  // ---------------------------------------------------------------------------------------

  /** Back from the background or a sleep: is the connection still alive? */
  function checkConnection() {
    if (T.stopped || !navigator.onLine) return updateState();
    if (T.mode === 'poll') return restartPolling();
    if (T.wsReady) return ping(5000); // no frame within 5 s: reconnect
    if (!T.ws) {
      backoff.reset();
      connect(); // waiting to retry: retry now
    }
  }

  window.addEventListener('online', () => {
    backoff.reset();
    checkConnection();
  });
  window.addEventListener('offline', () => {
    updateState();
    if (T.wsReady) ping(5000);
    else if (T.pollAbort) T.pollAbort.abort();
  });
  document.addEventListener('visibilitychange', () => {
    if (!visible()) return;
    checkConnection();
    render(); // marks read, updates the badge
  });
  window.addEventListener('pageshow', (e) => {
    if (e.persisted) checkConnection(); // restored from the back/forward cache
  });
  window.addEventListener('pagehide', () => {
    if (persistQueued) writeRecord();
  });
  // Another tab of the same visitor got a newer token.
  window.addEventListener('storage', (e) => {
    if (e.key !== STORE_KEY || !e.newValue) return;
    try {
      const record = JSON.parse(e.newValue);
      if (
        record &&
        record.token &&
        S.visitor &&
        record.visitor &&
        record.visitor.id === S.visitor.id &&
        (record.token_at || 0) > S.tokenAt
      ) {
        S.token = record.token;
        S.tokenAt = record.token_at;
        S.expiresAt = record.expires_at;
      }
    } catch (err) {
      /* not ours to fix */
    }
  });

  // ---------------------------------------------------------------------------------------
  // 11. Start
  // ---------------------------------------------------------------------------------------

  const api = { open: () => openPanel(), close: () => closePanel(false), toggle };
  if (opts.testHooks) api._shadow = shadow;
  window.OmnichannelWebchat = Object.freeze(api);

  function start() {
    document.body.append(host);
    loadStored();
    applySettings();
    render();
    updateState();
    if (opts.open) openPanel(false); // not stealing focus from the page at load
    connect();
  }

  if (document.body) start();
  else document.addEventListener('DOMContentLoaded', start, { once: true });
})();
