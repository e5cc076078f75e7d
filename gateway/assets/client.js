/* gateway client: sign in through the gateway's popup and follow the status channel.
 *   gateway.signIn('entra')            -> Promise<{provider, user}> (rejects with the OAuth error)
 *   gateway.session()                  -> Promise<session JSON of /_gateway/session>
 *   gateway.events(function (ev) {})   -> {close()}; ev = {event, data} (init, auth_success, auth_failure, auth_expired)
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

  function signIn(provider, options) {
    options = options || {};
    // Open the popup synchronously, inside the click, so blockers let it through.
    var popup = global.open('', 'gateway-signin', 'width=520,height=680');
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

  global.gateway = { signIn: signIn, signOut: signOut, session: session, events: events };
})(window);
