/* gateway client: sign in through the gateway's popup and follow the status channel.
 *   gateway.signIn('entra')            -> Promise<{provider, user}> (rejects with the OAuth error);
 *                                         opens the Teams dialog (microsoftTeams SDK present), the
 *                                         Office dialog (Office.js present), else a popup
 *   gateway.on('auth_success', fn)     -> listen on the shared channel (init, auth_success, auth_failure, auth_expired)
 *   gateway.session()                  -> Promise<session JSON of /_gateway/session>
 *   gateway.events(function (ev) {})   -> {close()}; a channel of its own; ev = {event, data}
 *   gateway.signOut(['provider'])      -> Promise
 *   gateway.redeem(outcome)            -> Promise<outcome>; attaches a popup's sign-in ({handoff}) to this page's session
 *   gateway.useTokenSource(fn)         -> fn() returns (a Promise of) an Entra access token for the add-in's API
 *                                         (single sign-on: MSAL NAA acquireTokenSilent, Office.auth.getAccessToken, Teams getAuthToken)
 *   gateway.fetch(url, init)           -> fetch with `Authorization: Bearer <token>` when a token source is set; on
 *                                         401 consent_required (or no token) it signs in with the popup and retries once
 * A popup that does not share this page's cookies (Office on the web, Office desktop dialogs)
 * hands its result back as a single-use code; loading this script installs the listener that
 * redeems it (POST /_gateway/handoff with this page's cookie), so pages that open the popup
 * themselves and follow the channel with socket.io keep working. No dependencies. Tokens never
 * reach this script: only names and sign-in state do. */
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

  // Redemptions run one at a time: each rotates the session cookie, and the next must carry
  // the value the previous one set. A code is redeemed once, whoever reports it.
  var queue = Promise.resolve();
  var redemptions = {};
  function redeem(outcome) {
    if (!outcome || outcome.status !== 'success' || !outcome.handoff) { return Promise.resolve(outcome); }
    var code = outcome.handoff;
    if (!redemptions[code]) {
      redemptions[code] = queue = queue.catch(function () {}).then(function () {
        return fetch(base + '/_gateway/handoff', {
          method: 'POST', credentials: 'include',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ code: code })
        });
      }).then(function (r) {
        if (r.status === 204) { return outcome; }
        return r.json().catch(function () { return {}; }).then(function (body) {
          var err = new Error(body.message || ('handoff refused: ' + r.status));
          err.code = body.error || 'handoff_refused';
          throw err;
        });
      });
    }
    return redemptions[code];
  }

  // Sign-ins in progress, by provider, waiting for their popup's outcome.
  var waiters = [];
  function settle(provider, err, value) {
    waiters = waiters.filter(function (w) {
      if (w.provider !== provider) { return true; }
      w.finish(err, value);
      return false;
    });
  }

  function report(outcome) {
    if (!outcome || !outcome.provider) { return Promise.resolve(); }
    if (outcome.status !== 'success') {
      var failed = new Error(outcome.error || 'sign-in failed');
      failed.code = outcome.error;
      settle(outcome.provider, failed);
      return Promise.resolve();
    }
    return redeem(outcome).then(function () {
      settle(outcome.provider, null, { provider: outcome.provider, user: null });
    }, function (err) { settle(outcome.provider, err); });
  }

  function parseOutcome(text) {
    try { var o = typeof text === 'string' ? JSON.parse(text) : text; return o && o.type === 'gateway:auth' ? o : null; }
    catch (e) { return null; }
  }

  // The popup's postMessage: only from the gateway's own origin (the completion page sends it
  // nowhere else).
  global.addEventListener('message', function (e) {
    if (e.origin !== base) { return; }
    var outcome = parseOutcome(e.data);
    if (outcome) { report(outcome); }
  });

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
      dialog.addEventHandler(global.Office.EventType.DialogMessageReceived, function (arg) {
        dialog.close();
        var outcome = parseOutcome(arg && arg.message);
        if (outcome) { report(outcome); }
      });
    });
    return true;
  }

  function teamsDialog(url) {
    var teams = global.microsoftTeams;
    if (!teams || !teams.authentication || !teams.authentication.authenticate) { return false; }
    teams.authentication.authenticate({ url: url + '?opener=teams', width: 520, height: 680 }).then(function (result) {
      var outcome = parseOutcome(result);
      if (outcome) { report(outcome); }
    }, function (reason) {
      var match = waiters.filter(function (w) { return url.indexOf('/connect/' + w.provider + '/') >= 0; })[0];
      if (match) { report({ provider: match.provider, status: 'failure', error: String(reason && reason.message || reason) }); }
    });
    return true;
  }

  function signIn(provider, options) {
    options = options || {};
    var hasOffice = !!(global.Office && global.Office.context && global.Office.context.ui);
    var hasTeams = !!(global.microsoftTeams && global.microsoftTeams.authentication);
    var useDialog = options.dialog !== false && (hasOffice || hasTeams);
    // Open the popup synchronously, inside the click, so blockers let it through.
    var popup = useDialog ? null : global.open('', 'gateway-signin', 'width=520,height=680');
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
            if (hit) { signedIn({ provider: provider, user: hit.displayName }); }
          } else if (ev.event === 'auth_failure' && ev.data && ev.data.providerName === provider) {
            var err = new Error(ev.data.description || ev.data.error);
            err.code = ev.data.error;
            finish(err);
          }
        }, s.ticket);
        // The channel can tell of the sign-in before this page holds the rotated session cookie:
        // the server announces it once its answer (the completion page, or the handoff's 204) is
        // written, but the event travels on another connection and can arrive before the browser
        // has applied that answer's cookie. A request sent at once would carry the old value, which
        // no longer counts. So the event waits for the redemptions in flight, and for the popup's
        // own outcome while the popup is open (its page runs after its cookie is set), at most 3 s.
        function signedIn(value) {
          queue.catch(function () {}).then(function () {
            if (!popup || popup.closed) { finish(null, value); return; }
            var waited = 0;
            var timer = setInterval(function () {
              waited += 100;
              if (done || popup.closed || waited >= 3000) { clearInterval(timer); finish(null, value); }
            }, 100);
          });
        }
        function finish(err, value) {
          if (done) { return; }
          done = true;
          if (!options.keepChannel) { channel.close(); }
          if (err) { reject(err); } else { resolve(value); }
        }
        waiters.push({ provider: provider, finish: finish });
        var url = base + p.connect_url;
        if (useDialog && hasTeams && teamsDialog(url)) { return; }
        if (useDialog && officeDialog(url)) { return; }
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

  var tokenSource = null;
  function useTokenSource(fn) { tokenSource = typeof fn === 'function' ? fn : null; }

  function withBearer(init, token) {
    var headers = new Headers((init && init.headers) || {});
    if (token) { headers.set('authorization', 'Bearer ' + token); }
    var copy = {};
    for (var k in init) { if (Object.prototype.hasOwnProperty.call(init, k)) { copy[k] = init[k]; } }
    copy.headers = headers;
    copy.credentials = copy.credentials || 'include';
    return copy;
  }

  // The provider that a consent_required answer names, for the popup fallback.
  function fallbackProvider(body) {
    var names = body && body.providers ? Object.keys(body.providers) : [];
    return names.length ? names[0] : null;
  }

  function gatewayFetch(url, init) {
    init = init || {};
    var token = tokenSource ? Promise.resolve().then(tokenSource).catch(function () { return null; }) : Promise.resolve(null);
    return token.then(function (t) {
      return fetch(url, withBearer(init, t)).then(function (r) {
        if (r.status !== 401) { return r; }
        return r.clone().json().catch(function () { return {}; }).then(function (body) {
          var provider = (body.error === 'consent_required' || body.error === 'authentication_required') && fallbackProvider(body);
          if (!provider) { return r; }
          // The popup's sign-in (session cookie) serves the retry; the bearer is left out, since
          // it is what could not be used.
          return signIn(provider).then(function () { return fetch(url, withBearer(init, null)); });
        });
      });
    });
  }

  global.gateway = {
    signIn: signIn, signOut: signOut, session: session, events: events, on: on, redeem: redeem,
    useTokenSource: useTokenSource, fetch: gatewayFetch
  };
})(window);
