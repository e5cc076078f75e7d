/* gateway client: sign in through the gateway's popup and follow the status channel.
 *   gateway.signIn('entra')            -> Promise<{provider, user}> (rejects with the OAuth error);
 *                                         opens the Office dialog when Office.js is present, else a popup
 *   gateway.on('auth_success', fn)     -> listen on the shared channel (init, auth_success, auth_failure, auth_expired)
 *   gateway.session()                  -> Promise<session JSON of /_gateway/session>
 *   gateway.events(function (ev) {})   -> {close()}; a channel of its own; ev = {event, data}
 *   gateway.signOut(['provider'])      -> Promise
 * No dependencies. Tokens never reach this script: only names and sign-in state do. */
(function (global) {
  'use strict';
  var script = document.currentScript;
  var base = script && script.src ? new URL(script.src).origin : global.location.origin;

  function session() {
    return fetch(base + '/_gateway/session', { credentials: 'include' }).then(function (r) {
      if (!r.ok) { throw new Error('session request failed: ' + r.status); }
      return r.json();
    });
  }

  function events(onEvent, ticket) {
    var url = base.replace(/^http/, 'ws') + '/_gateway/events' + (ticket ? '?ticket=' + encodeURIComponent(ticket) : '');
    var closed = false;
    var source = null;
    var ws = null;
    function deliver(text) {
      try { onEvent(JSON.parse(text)); } catch (e) { /* ignore malformed */ }
    }
    function sse() {
      if (closed || !global.EventSource) { return; }
      var u = base + '/_gateway/events' + (ticket ? '?ticket=' + encodeURIComponent(ticket) : '');
      source = new EventSource(u, { withCredentials: true });
      source.onmessage = function (m) { deliver(m.data); };
    }
    try {
      ws = new WebSocket(url);
      var opened = false;
      ws.onopen = function () { opened = true; };
      ws.onmessage = function (m) { deliver(m.data); };
      ws.onclose = function () { if (!opened && !closed) { sse(); } };
    } catch (e) {
      sse();
    }
    return { close: function () { closed = true; if (ws) { ws.close(); } if (source) { source.close(); } } };
  }

  var listeners = {};
  var shared = null;
  function on(name, fn) {
    (listeners[name] = listeners[name] || []).push(fn);
    if (!shared) {
      shared = session().then(function (s) {
        return events(function (ev) {
          (listeners[ev.event] || []).forEach(function (f) { try { f(ev.data); } catch (e) { /* listener error */ } });
        }, s.ticket);
      });
    }
  }

  function officeDialog(url) {
    var ui = global.Office && global.Office.context && global.Office.context.ui;
    if (!ui || !ui.displayDialogAsync) { return false; }
    ui.displayDialogAsync(url + '?opener=office', { height: 60, width: 30 }, function (result) {
      var dialog = result && result.value;
      if (!dialog || !dialog.addEventHandler) { return; }
      dialog.addEventHandler(global.Office.EventType.DialogMessageReceived, function () { dialog.close(); });
    });
    return true;
  }

  function signIn(provider, options) {
    options = options || {};
    var useOffice = options.dialog !== false && !!(global.Office && global.Office.context && global.Office.context.ui);
    // Open the popup synchronously, inside the click, so blockers let it through.
    var popup = useOffice ? null : global.open('', 'gateway-signin', 'width=520,height=680');
    return session().then(function (s) {
      var p = s.providers[provider];
      if (!p) {
        if (popup) { popup.close(); }
        throw new Error('unknown provider ' + provider);
      }
      return new Promise(function (resolve, reject) {
        var done = false;
        var channel = events(function (ev) {
          if (ev.event === 'auth_success') {
            var hit = (ev.data || []).filter(function (x) { return x.providerName === provider; })[0];
            if (hit) { finish(null, { provider: provider, user: hit.displayName }); }
          } else if (ev.event === 'auth_failure' && ev.data && ev.data.providerName === provider) {
            var err = new Error(ev.data.description || ev.data.error);
            err.code = ev.data.error;
            finish(err);
          }
        }, s.ticket);
        function onMessage(e) {
          if (e.origin !== base || !e.data || e.data.type !== 'gateway:auth' || e.data.provider !== provider) { return; }
          if (e.data.status === 'success') { finish(null, { provider: provider, user: null }); }
          else { var err = new Error(e.data.error); err.code = e.data.error; finish(err); }
        }
        function finish(err, value) {
          if (done) { return; }
          done = true;
          global.removeEventListener('message', onMessage);
          if (!options.keepChannel) { channel.close(); }
          if (err) { reject(err); } else { resolve(value); }
        }
        global.addEventListener('message', onMessage);
        var url = base + p.connect_url;
        if (useOffice && officeDialog(url)) { return; }
        if (popup) { popup.location.href = url; } else { global.location.href = url; }
      });
    });
  }

  function signOut(providers) {
    var list = providers && providers.length ? providers : [null];
    return Promise.all(list.map(function (p) {
      return fetch(base + '/connect/logout' + (p ? '?provider=' + encodeURIComponent(p) : ''),
        { method: 'POST', credentials: 'include' });
    }));
  }

  global.gateway = { signIn: signIn, signOut: signOut, session: session, events: events, on: on };
})(window);
