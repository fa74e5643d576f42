// The dashboard's few actions: each calls the existing JSON API with the session and CSRF token,
// shows what happens, then reloads the page so the server-rendered tables show the result.
(function () {
  "use strict";

  function csrfToken() {
    var input = document.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  function errorText(body, status) {
    if (body && body.error && body.error.message) return body.error.message;
    return "The server answered " + status + ".";
  }

  function callApi(method, url, payload) {
    var options = { method: method, credentials: "same-origin", headers: { "X-CSRFToken": csrfToken(), "Accept": "application/json" } };
    if (payload !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(payload);
    }
    return fetch(url, options).then(function (response) {
      return response.json().catch(function () { return null; }).then(function (body) {
        if (!response.ok) throw new Error(errorText(body, response.status));
        return body && body.data !== undefined ? body.data : body;
      });
    });
  }

  // Margins: "Sync now" with progress (elapsed seconds while Stripe is read), then the result.
  var syncButton = document.getElementById("sync-now");
  if (syncButton) {
    syncButton.addEventListener("click", function () {
      var status = document.getElementById("sync-status");
      var started = Date.now();
      syncButton.disabled = true;
      status.innerHTML = '<progress aria-label="Syncing"></progress> <span>Syncing with Stripe… 0 s</span>';
      var timer = setInterval(function () {
        var span = status.querySelector("span");
        if (span) span.textContent = "Syncing with Stripe… " + Math.round((Date.now() - started) / 1000) + " s";
      }, 500);
      callApi("POST", syncButton.dataset.url).then(function (result) {
        clearInterval(timer);
        status.textContent = "Synced: " + result.customersProcessed + " customers, " + result.invoicesFetched +
          " invoices read, " + result.autoMatchesCreated + " new matches in " + result.durationMs + " ms. Reloading…";
        setTimeout(function () { window.location.reload(); }, 800);
      }).catch(function (error) {
        clearInterval(timer);
        syncButton.disabled = false;
        status.textContent = "Sync failed: " + error.message;
        status.classList.add("warn");
      });
    });
  }

  // Mappings: approve / reject / delete buttons and the map-by-hand form.
  function report(message) {
    var box = document.getElementById("action-status");
    if (box) { box.textContent = message; box.hidden = false; }
  }

  document.querySelectorAll("button[data-action]").forEach(function (button) {
    button.addEventListener("click", function () {
      button.disabled = true;
      callApi(button.dataset.method || "POST", button.dataset.action).then(function () {
        window.location.reload();
      }).catch(function (error) {
        button.disabled = false;
        report(error.message);
      });
    });
  });

  var mapForm = document.getElementById("map-by-hand");
  if (mapForm) {
    mapForm.addEventListener("submit", function (event) {
      event.preventDefault();
      var submit = mapForm.querySelector("button[type=submit]");
      submit.disabled = true;
      callApi("POST", mapForm.dataset.url, {
        stripeCustomerId: mapForm.elements.stripeCustomerId.value,
        tagValue: mapForm.elements.tagValue.value,
        matchType: "manual"
      }).then(function () {
        window.location.reload();
      }).catch(function (error) {
        submit.disabled = false;
        report(error.message);
      });
    });
  }
})();
