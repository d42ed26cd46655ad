/*
 * CSRF token and JSON fetch helper.
 *
 * Contract: <meta name="csrf-token" content="..."> in the page <head>.
 * Exposes:
 *   window.trainyard.csrfToken()          -> the token string ("" when the meta tag is absent)
 *   window.trainyard.fetchJSON(url, opts) -> Promise of the parsed JSON body (null for 204 / empty)
 *     Sends X-CSRFToken and Accept: application/json (same-origin credentials). A plain object
 *     given as opts.body is sent as JSON; FormData / strings are sent as they are.
 *     On a non-2xx answer it throws an Error whose message is body.error.message (falling back to
 *     the HTTP status text); the error carries .status, .code (body.error.code) and .details.
 */
(function () {
  "use strict";

  var trainyard = (window.trainyard = window.trainyard || {});

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") || "" : "";
  }

  function isPlainObject(value) {
    return Object.prototype.toString.call(value) === "[object Object]";
  }

  /* Turn a failed response's JSON body into an Error with the server's safe message. */
  function errorFromBody(status, statusText, body) {
    var info = body && body.error ? body.error : {};
    var message = typeof info === "string" ? info : info.message;
    var error = new Error(message || statusText || "Request failed (HTTP " + status + ")");
    error.status = status;
    error.code = info.code;
    error.details = info.details;
    return error;
  }

  async function fetchJSON(url, options) {
    var opts = Object.assign({ credentials: "same-origin" }, options || {});
    var headers = new Headers(opts.headers || {});
    headers.set("Accept", "application/json");
    headers.set("X-CSRFToken", csrfToken());
    if (isPlainObject(opts.body)) {
      opts.body = JSON.stringify(opts.body);
      headers.set("Content-Type", "application/json");
    }
    opts.headers = headers;

    var response = await fetch(url, opts);
    var text = await response.text();
    var body = null;
    if (text) {
      try {
        body = JSON.parse(text);
      } catch (parseError) {
        body = null;
      }
    }
    if (!response.ok) {
      throw errorFromBody(response.status, response.statusText, body);
    }
    return body;
  }

  trainyard.csrfToken = csrfToken;
  trainyard.fetchJSON = fetchJSON;
  trainyard.errorFromBody = errorFromBody;
})();
