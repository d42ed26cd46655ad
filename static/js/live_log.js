/*
 * Live execution log and status over Socket.IO (needs /static/vendor/socket.io/socket.io.min.js
 * loaded before this file).
 *
 * Contract:
 *   <div id="live-log" data-project-id="P" data-execution-id="E or empty" data-after-seq="N"
 *        [data-reload-on-finish]>
 *     ...server-rendered rows (optional), same markup as below, ideally with data-execution-id and
 *     data-seq; a .log-empty placeholder (optional, removed when the first live line arrives)
 *   </div>
 *   <span data-live-state></span>              connection badge: connecting / live / reconnecting /
 *                                              offline (text + Bootstrap bg-* class)
 *   <div data-live-error hidden></div>         join_error message (textContent), shown on error
 *   <span data-execution-field="status|stage|progress|error|duration" data-execution-id="E or empty">
 *   <div class="progress"><div class="progress-bar" data-execution-progress data-execution-id="..."></div></div>
 *
 * An empty data-execution-id means "the followed execution": the one in #live-log's
 * data-execution-id, or, when that is empty too, the latest execution of the project the socket
 * has heard about. A status element with class "status-badge" also gets the class status-<status>.
 * "progress" fields show "N%"; "duration" fields show e.g. "42.0 s", "3 min 05 s", "1 h 02 min".
 *
 * Join: on every connect (the first and each reconnect) it emits
 *   "join" {project_id, execution_id (null when following), after_seq}
 * where after_seq is the last seq up to which every line of the followed execution is rendered
 * (0 when following a project whose followed execution has finished: the next one starts
 * afresh), so the server sends only the lines missed. Each seq is rendered once, in seq order:
 * a live line that overtakes the replay of earlier ones comes first, and the replayed lines
 * take their places before it. Following a project (empty data-execution-id), the server applies
 * after_seq to the project's ACTIVE execution, so the page should render that execution's lines
 * (data-after-seq = its last seq) or none (data-after-seq = 0). data-after-seq belongs to the
 * execution named by the last server-rendered .log-line[data-execution-id] when there is one,
 * otherwise to the first execution whose lines arrive.
 *
 * Each "log" line becomes
 *   <div class="log-line level-INFO" data-execution-id data-seq>
 *     <span class="log-time" title="full ISO time">HH:MM:SS</span><span class="log-level">INFO</span>
 *     <span class="log-stage">stage</span><span class="log-message">message</span></div>
 * (textContent only). The view follows new lines unless the user has scrolled up.
 * When the followed execution reaches a final status and #live-log has data-reload-on-finish,
 * the page reloads 1.5 s later.
 */
(function () {
  "use strict";

  var FINAL_STATUSES = ["succeeded", "failed", "cancelled", "interrupted"];
  var STATE_CLASSES = {
    connecting: "bg-secondary",
    live: "bg-success",
    reconnecting: "bg-warning",
    offline: "bg-danger",
  };

  var logBox = document.getElementById("live-log");
  if (!logBox) return;
  if (typeof window.io !== "function") {
    setState("offline");
    showError("Live updates are unavailable (the Socket.IO client did not load).");
    return;
  }

  var projectId = logBox.dataset.projectId || "";
  var fixedExecutionId = logBox.dataset.executionId || "";
  var followedId = fixedExecutionId || null;
  var initialAfterSeq = parseInt(logBox.dataset.afterSeq || "0", 10) || 0;
  var lastSeq = Object.create(null); // execution id -> every seq up to this one is rendered
  var ahead = Object.create(null); // execution id -> {seq: true} rendered beyond lastSeq
  var maxSeq = Object.create(null); // execution id -> the highest seq rendered
  var pendingAfterSeq = null; // following, execution not known yet
  var finished = Object.create(null); // execution id -> true once its status is final
  var reloadScheduled = false;

  if (!followedId) {
    // Following the project: server-rendered rows may say whose lines they are.
    var rendered = logBox.querySelectorAll(".log-line[data-execution-id]");
    if (rendered.length) followedId = rendered[rendered.length - 1].dataset.executionId || null;
  }
  if (followedId) {
    lastSeq[followedId] = initialAfterSeq;
  } else {
    pendingAfterSeq = initialAfterSeq;
  }

  function setState(state) {
    document.querySelectorAll("[data-live-state]").forEach(function (badge) {
      Object.keys(STATE_CLASSES).forEach(function (key) {
        badge.classList.remove(STATE_CLASSES[key]);
      });
      badge.classList.add("badge", STATE_CLASSES[state]);
      badge.textContent = state;
      badge.setAttribute("data-live-state", state);
    });
  }

  function showError(message) {
    document.querySelectorAll("[data-live-error]").forEach(function (box) {
      box.textContent = message;
      box.hidden = !message;
    });
  }

  /* The after_seq to send with "join". Following a project, the server applies it to the
     project's active execution: once the followed one has finished, the next is a new one, so 0. */
  function joinAfterSeq() {
    if (!followedId) return pendingAfterSeq === null ? 0 : pendingAfterSeq;
    if (!fixedExecutionId && finished[followedId]) return 0;
    return lastSeq[followedId] || 0;
  }

  function formatTime(value) {
    if (value === null || value === undefined) return "";
    var text = String(value);
    // ISO-8601 from the server ("2025-01-31T12:34:56.789+00:00"): show the clock time.
    var match = /^\d{4}-\d{2}-\d{2}[T ](\d{2}:\d{2}:\d{2})/.exec(text);
    return match ? match[1] : text;
  }

  function formatDuration(seconds) {
    if (seconds === null || seconds === undefined || seconds === "") return "";
    var value = Number(seconds);
    if (!isFinite(value)) return "";
    if (value < 60) return value.toFixed(1) + " s";
    var whole = Math.round(value);
    var pad = function (n) {
      return (n < 10 ? "0" : "") + n;
    };
    if (whole < 3600) return Math.floor(whole / 60) + " min " + pad(whole % 60) + " s";
    return Math.floor(whole / 3600) + " h " + pad(Math.floor((whole % 3600) / 60)) + " min";
  }

  function span(className, text) {
    var el = document.createElement("span");
    el.className = className;
    el.textContent = text === null || text === undefined ? "" : String(text);
    return el;
  }

  function isNearBottom() {
    return logBox.scrollHeight - logBox.scrollTop - logBox.clientHeight < 24;
  }

  function appendLine(line) {
    var level = String(line.level || "INFO").toUpperCase().replace(/[^A-Z]/g, "") || "INFO";
    var row = document.createElement("div");
    row.className = "log-line level-" + level;
    row.dataset.executionId = line.execution_id;
    row.dataset.seq = String(line.seq);
    var time = span("log-time", formatTime(line.time));
    if (line.time) time.title = String(line.time);
    row.appendChild(time);
    row.appendChild(span("log-level", level));
    row.appendChild(span("log-stage", line.stage));
    row.appendChild(span("log-message", line.message));

    var follow = isNearBottom();
    logBox.querySelectorAll(".log-empty").forEach(function (placeholder) {
      placeholder.remove();
    });
    var seq = Number(line.seq);
    var executionId = String(line.execution_id);
    var later = null;
    if (seq < (maxSeq[executionId] || 0)) {
      // a line the replay brings after a live one overtook it: in its place, by seq
      logBox.querySelectorAll(".log-line").forEach(function (el) {
        if (!later && el.dataset.executionId === executionId && Number(el.dataset.seq) > seq) {
          later = el;
        }
      });
    }
    if (later) logBox.insertBefore(row, later); else logBox.appendChild(row);
    maxSeq[executionId] = Math.max(maxSeq[executionId] || 0, seq);
    if (follow) logBox.scrollTop = logBox.scrollHeight;
  }

  function onLog(line) {
    if (!line || String(line.project_id) !== projectId) return;
    var executionId = String(line.execution_id);
    if (fixedExecutionId && executionId !== fixedExecutionId) return;
    var seq = Number(line.seq);
    if (!(executionId in lastSeq)) {
      lastSeq[executionId] = pendingAfterSeq === null ? 0 : pendingAfterSeq;
      pendingAfterSeq = null;
    }
    if (!fixedExecutionId) followedId = executionId;
    // A live line can overtake the replay of the lines missed before it (the socket joins the
    // room, then the server replays): render every seq once, in seq order, and rejoin after
    // the last seq below which nothing is missing.
    var early = ahead[executionId] || (ahead[executionId] = Object.create(null));
    if (seq <= lastSeq[executionId] || early[seq]) return; // already rendered
    early[seq] = true;
    while (early[lastSeq[executionId] + 1]) {
      delete early[lastSeq[executionId] + 1];
      lastSeq[executionId] += 1;
    }
    appendLine(line);
  }

  function matches(el, executionId) {
    var wanted = el.getAttribute("data-execution-id") || "";
    return wanted ? wanted === executionId : executionId === followedId;
  }

  function fieldText(field, execution) {
    switch (field) {
      case "status":
        return execution.status || "";
      case "stage":
        return execution.stage || "";
      case "progress":
        return execution.progress === null || execution.progress === undefined
          ? ""
          : Math.round(Number(execution.progress)) + "%";
      case "error":
        return execution.error || "";
      case "duration":
        return formatDuration(execution.duration_seconds);
      default:
        return null;
    }
  }

  function updateFields(execution) {
    document.querySelectorAll("[data-execution-field]").forEach(function (el) {
      if (!matches(el, execution.id)) return;
      var field = el.getAttribute("data-execution-field");
      var text = fieldText(field, execution);
      if (text === null) return;
      el.textContent = text;
      if (field === "status" && el.classList.contains("status-badge")) {
        Array.prototype.slice.call(el.classList).forEach(function (cls) {
          if (cls.indexOf("status-") === 0 && cls !== "status-badge") el.classList.remove(cls);
        });
        el.classList.add("status-" + execution.status);
      }
      if (field === "error") el.hidden = !text;
    });
    document.querySelectorAll("[data-execution-progress]").forEach(function (bar) {
      if (!matches(bar, execution.id)) return;
      var value = Math.max(0, Math.min(100, Math.round(Number(execution.progress) || 0)));
      bar.style.width = value + "%";
      bar.textContent = value + "%";
      bar.setAttribute("aria-valuenow", String(value));
      var final = FINAL_STATUSES.indexOf(execution.status) !== -1;
      bar.classList.toggle("progress-bar-animated", !final);
      bar.classList.toggle("progress-bar-striped", !final);
      bar.classList.toggle("bg-danger", execution.status === "failed");
      bar.classList.toggle("bg-success", execution.status === "succeeded");
    });
  }

  function onExecution(execution) {
    if (!execution || String(execution.project_id) !== projectId) return;
    var executionId = String(execution.id);
    execution.id = executionId;
    if (fixedExecutionId && executionId !== fixedExecutionId) {
      updateFields(execution); // elements bound to that other execution by id still update
      return;
    }
    if (!fixedExecutionId && executionId !== followedId) {
      // Following the project: a new execution takes over (its lines all start fresh).
      followedId = executionId;
      if (!(executionId in lastSeq)) {
        lastSeq[executionId] = pendingAfterSeq === null ? 0 : pendingAfterSeq;
        pendingAfterSeq = null;
      }
    }
    updateFields(execution);
    var final = FINAL_STATUSES.indexOf(execution.status) !== -1;
    if (final) finished[executionId] = true;
    if (final && logBox.hasAttribute("data-reload-on-finish") && !reloadScheduled) {
      reloadScheduled = true;
      window.setTimeout(function () {
        window.location.reload();
      }, 1500);
    }
  }

  setState("connecting");
  var socket = window.io({ transports: ["websocket", "polling"] });

  function join() {
    socket.emit("join", {
      project_id: projectId,
      execution_id: fixedExecutionId || null,
      after_seq: joinAfterSeq(),
    });
  }

  socket.on("connect", function () {
    setState("live");
    showError("");
    join();
  });
  // The server took this socket out of the room after an access change: join again (the
  // server checks again, and answers join_error if access ended).
  socket.on("access_changed", join);
  socket.on("disconnect", function (reason) {
    setState(socket.active ? "reconnecting" : "offline");
    if (reason === "io server disconnect") {
      showError("The live log stopped: your session or access ended. Reload the page.");
    }
  });
  socket.on("connect_error", function () {
    setState(socket.active ? "reconnecting" : "offline");
  });
  socket.io.on("reconnect_attempt", function () {
    setState("reconnecting");
  });
  socket.io.on("reconnect_failed", function () {
    setState("offline");
  });
  socket.on("log", onLog);
  socket.on("execution", onExecution);
  socket.on("join_error", function (payload) {
    showError((payload && payload.message) || "Could not follow this project's log.");
  });
})();
