// The task pane: Sign in buttons, a status line fed by the gateway's channel, and an API call.
(function () {
  'use strict';
  var status = document.getElementById('status');
  function show(text) { status.textContent = text; }
  gateway.session().then(function (s) {
    var box = document.getElementById('providers');
    Object.keys(s.providers).forEach(function (name) {
      var b = document.createElement('button');
      b.id = 'sign-in-' + name;
      b.textContent = 'Sign in with ' + s.providers[name].display_name;
      b.onclick = function () {
        show('Signing in with ' + name + '…');
        gateway.signIn(name).catch(function (e) { show('Sign-in failed: ' + (e.code || e.message)); });
      };
      box.appendChild(b);
    });
    gateway.events(function (ev) {
      if (ev.event === 'init') { show('Not signed in'); }
      if (ev.event === 'auth_success') {
        show('Signed in as ' + ev.data.map(function (p) { return p.displayName + ' (' + p.providerName + ')'; }).join(', '));
      }
      if (ev.event === 'auth_failure') { show('Sign-in failed: ' + ev.data.error); }
      if (ev.event === 'auth_expired') { show('Session expired: sign in again'); }
    }, s.ticket);
  });
  document.getElementById('call-api').onclick = function () {
    fetch('/api/whoami', { credentials: 'include' }).then(function (r) {
      return r.json().then(function (body) { return { status: r.status, body: body }; });
    }).then(function (r) {
      document.getElementById('api-result').textContent = r.status + ' ' + JSON.stringify(r.body, null, 2);
    });
  };
  document.getElementById('sign-out').onclick = function () { gateway.signOut(); };
})();
