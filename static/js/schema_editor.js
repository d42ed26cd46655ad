/*
 * Project schema editor.
 *
 * Contract (inside <form id="project-form">):
 *   <input type="hidden" name="schema_json">                       filled on submit
 *   <input name="filename_pattern">                                normal field; filled on infer
 *   <table id="schema-columns"><thead>...5 columns: Name | Type | Target | Ignore | (actions)...
 *     </thead><tbody></tbody></table>                              tbody rendered here
 *   <button type="button" data-add-column>Add column</button>
 *   <input type="file" id="schema-sample" data-infer-url="/api/v1/...">   (optional)
 *   <div data-infer-error hidden></div>                            (optional)
 *   <script type="application/json" id="schema-initial">{"filename_pattern": "...",
 *     "columns": [{"name": "age", "type": "integer"}], "target": "age", "ignored": []}</script>
 * (#schema-sample, [data-infer-error] and #schema-initial may also sit outside the form.)
 *
 * Each row: name text input, type <select> (integer, float, category, boolean, date; an unknown
 * type from the data is kept as an extra option), radio name="target-choice", "ignore" checkbox,
 * up / down / remove buttons. Choosing a sample file POSTs it (FormData field "sample", header
 * X-CSRFToken, Accept: application/json) to data-infer-url and expects {"schema": {...}} (also
 * accepted: {"data": {"schema": {...}}}); the table and the pattern are re-rendered from it.
 * On submit schema_json gets {filename_pattern, columns: [{name, type}], target, ignored};
 * rows with an empty name are dropped; other keys of the initial schema and of each column are
 * kept as they were. Values are set with .value / .textContent only.
 */
(function () {
  "use strict";

  var TYPES = ["integer", "float", "category", "boolean", "date"];

  var form = document.getElementById("project-form");
  var table = document.getElementById("schema-columns");
  if (!form || !table) return;
  var tbody = table.tBodies[0] || table.appendChild(document.createElement("tbody"));
  var hidden = form.querySelector('input[name="schema_json"]');
  var patternInput = form.querySelector('input[name="filename_pattern"]');
  var baseSchema = {}; // keys of the schema this editor does not show are carried through

  function readInitial() {
    var script = document.getElementById("schema-initial");
    if (!script) return {};
    try {
      var data = JSON.parse(script.textContent || "{}");
      return data && typeof data === "object" ? data : {};
    } catch (error) {
      showInferError("The saved schema could not be read: " + error.message);
      return {};
    }
  }

  function showInferError(message) {
    document.querySelectorAll("[data-infer-error]").forEach(function (box) {
      box.textContent = message;
      box.hidden = !message;
    });
  }

  function button(label, title, action) {
    var el = document.createElement("button");
    el.type = "button";
    el.className = "btn btn-sm btn-outline-secondary";
    el.textContent = label;
    el.title = title;
    el.setAttribute("aria-label", title);
    el.dataset.action = action;
    return el;
  }

  function cell(child) {
    var td = document.createElement("td");
    if (child) td.appendChild(child);
    return td;
  }

  function makeRow(column, isTarget, isIgnored) {
    var row = document.createElement("tr");
    row.className = "schema-column";
    row._column = column; // original column object: its other keys survive a save

    var name = document.createElement("input");
    name.type = "text";
    name.className = "form-control form-control-sm";
    name.dataset.role = "name";
    name.setAttribute("aria-label", "Column name");
    name.value = column.name || "";

    var type = document.createElement("select");
    type.className = "form-select form-select-sm";
    type.dataset.role = "type";
    type.setAttribute("aria-label", "Column type");
    var types = TYPES.slice();
    if (column.type && types.indexOf(column.type) === -1) types.push(column.type);
    types.forEach(function (value) {
      var option = document.createElement("option");
      option.value = value;
      option.textContent = value;
      type.appendChild(option);
    });
    type.value = column.type || "float";

    var target = document.createElement("input");
    target.type = "radio";
    target.name = "target-choice";
    target.className = "form-check-input";
    target.dataset.role = "target";
    target.setAttribute("aria-label", "Target column");
    target.checked = Boolean(isTarget);

    var ignore = document.createElement("input");
    ignore.type = "checkbox";
    ignore.className = "form-check-input";
    ignore.dataset.role = "ignore";
    ignore.setAttribute("aria-label", "Ignore this column");
    ignore.checked = Boolean(isIgnored);
    row.classList.toggle("schema-ignored", ignore.checked);

    var actions = document.createElement("div");
    actions.className = "btn-group";
    actions.appendChild(button("\u2191", "Move up", "up"));
    actions.appendChild(button("\u2193", "Move down", "down"));
    var remove = button("\u2715", "Remove column", "remove");
    remove.classList.replace("btn-outline-secondary", "btn-outline-danger");
    actions.appendChild(remove);

    row.appendChild(cell(name));
    row.appendChild(cell(type));
    row.appendChild(cell(target));
    row.appendChild(cell(ignore));
    var last = cell(actions);
    last.className = "schema-order";
    row.appendChild(last);
    return row;
  }

  function refreshButtons() {
    var rows = tbody.querySelectorAll("tr.schema-column");
    rows.forEach(function (row, index) {
      row.querySelector('[data-action="up"]').disabled = index === 0;
      row.querySelector('[data-action="down"]').disabled = index === rows.length - 1;
    });
    var empty = tbody.querySelector("tr.schema-empty");
    if (!rows.length && !empty) {
      empty = document.createElement("tr");
      empty.className = "schema-empty";
      var td = document.createElement("td");
      td.colSpan = 5;
      td.className = "text-muted text-center";
      td.textContent = "No columns yet: add them, or infer them from a sample file.";
      empty.appendChild(td);
      tbody.appendChild(empty);
    } else if (rows.length && empty) {
      empty.remove();
    }
  }

  function render(schema) {
    schema = schema && typeof schema === "object" ? schema : {};
    baseSchema = Object.assign({}, schema);
    var ignored = Array.isArray(schema.ignored) ? schema.ignored : [];
    tbody.replaceChildren();
    (Array.isArray(schema.columns) ? schema.columns : []).forEach(function (column) {
      var col = column && typeof column === "object" ? column : { name: String(column) };
      tbody.appendChild(
        makeRow(col, col.name && col.name === schema.target, ignored.indexOf(col.name) !== -1)
      );
    });
    if (patternInput && typeof schema.filename_pattern === "string" && schema.filename_pattern) {
      patternInput.value = schema.filename_pattern;
    }
    refreshButtons();
  }

  function serialise() {
    var schema = Object.assign({}, baseSchema);
    var columns = [];
    var ignored = [];
    var target = null;
    tbody.querySelectorAll("tr.schema-column").forEach(function (row) {
      var name = row.querySelector('[data-role="name"]').value.trim();
      if (!name) return;
      var column = Object.assign({}, row._column || {}, {
        name: name,
        type: row.querySelector('[data-role="type"]').value,
      });
      columns.push(column);
      if (row.querySelector('[data-role="target"]').checked) target = name;
      if (row.querySelector('[data-role="ignore"]').checked) ignored.push(name);
    });
    schema.filename_pattern = patternInput ? patternInput.value.trim() : schema.filename_pattern || "";
    schema.columns = columns;
    schema.target = target;
    schema.ignored = ignored;
    return schema;
  }

  tbody.addEventListener("click", function (event) {
    var control = event.target.closest("button[data-action]");
    if (!control) return;
    var row = control.closest("tr");
    var action = control.dataset.action;
    if (action === "up" && row.previousElementSibling) {
      tbody.insertBefore(row, row.previousElementSibling);
    } else if (action === "down" && row.nextElementSibling) {
      tbody.insertBefore(row.nextElementSibling, row);
    } else if (action === "remove") {
      row.remove();
    }
    refreshButtons();
  });

  tbody.addEventListener("change", function (event) {
    if (event.target.dataset.role === "ignore") {
      event.target.closest("tr").classList.toggle("schema-ignored", event.target.checked);
    }
  });

  document.querySelectorAll("[data-add-column]").forEach(function (addButton) {
    addButton.addEventListener("click", function (event) {
      event.preventDefault();
      var row = makeRow({ name: "", type: "float" }, false, false);
      tbody.appendChild(row);
      refreshButtons();
      row.querySelector('[data-role="name"]').focus();
    });
  });

  function csrfToken() {
    var token = window.trainyard && window.trainyard.csrfToken ? window.trainyard.csrfToken() : "";
    if (token) return token;
    var field = form.querySelector('input[name="csrf_token"]');
    return field ? field.value : "";
  }

  function chooseTarget(name) {
    tbody.querySelectorAll("tr").forEach(function (row) {
      var nameInput = row.querySelector('[data-role="name"]');
      var radio = row.querySelector('[data-role="target"]');
      if (nameInput && radio) radio.checked = nameInput.value === name;
    });
  }

  function showProposals(proposals) {
    var box = document.getElementById("schema-target-proposals");
    if (!box) return;
    var list = box.querySelector("[data-proposals]");
    list.replaceChildren();
    (Array.isArray(proposals) ? proposals : []).forEach(function (proposal) {
      var item = document.createElement("li");
      var use = button("Use " + proposal.column, "Make " + proposal.column + " the target", "use-target");
      use.addEventListener("click", function () {
        chooseTarget(proposal.column);
      });
      var why = document.createElement("span");
      why.className = "text-muted ms-2";
      why.textContent = proposal.problem_type + ": " + (proposal.reasons || []).join("; ");
      item.appendChild(use);
      item.appendChild(why);
      list.appendChild(item);
    });
    box.hidden = !list.children.length;
  }

  async function inferFrom(input) {
    var chosen = input.files ? Array.prototype.slice.call(input.files) : [];
    if (!chosen.length) return;
    var data = new FormData();
    chosen.forEach(function (file) {
      data.append("sample", file, file.name);
    });
    showInferError("");
    input.disabled = true;
    try {
      var response = await fetch(input.dataset.inferUrl, {
        method: "POST",
        body: data,
        credentials: "same-origin",
        headers: { "X-CSRFToken": csrfToken(), Accept: "application/json" },
      });
      var body = null;
      try {
        body = await response.json();
      } catch (parseError) {
        body = null;
      }
      if (!response.ok) {
        var error = body && body.error ? body.error : {};
        throw new Error(error.message || "Could not infer the schema (HTTP " + response.status + ").");
      }
      var schema = body && (body.schema || (body.data && body.data.schema));
      if (!schema) throw new Error("The server answered without a schema.");
      render(Object.assign({}, baseSchema, schema));
      showProposals(body.target_proposals);
    } catch (error) {
      showInferError(error.message);
    } finally {
      input.disabled = false;
      input.value = ""; // choosing the same file again infers again
    }
  }

  var sample = document.getElementById("schema-sample");
  if (sample && sample.dataset.inferUrl) {
    sample.addEventListener("change", function () {
      inferFrom(sample);
    });
  }

  form.addEventListener("submit", function () {
    if (hidden) hidden.value = JSON.stringify(serialise());
  });

  render(readInitial());
})();
