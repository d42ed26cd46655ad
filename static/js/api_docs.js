// The API reference page: reads /api/v1/openapi.json and lists the operations by tag, with
// their parameters, request bodies and answers. Built with DOM calls only (no innerHTML).
(function () {
  "use strict";

  const root = document.getElementById("api-docs");
  if (!root) return;
  let spec = null;

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "class") node.className = value;
      else node.setAttribute(key, value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function refName(ref) {
    return ref.split("/").pop();
  }

  function resolve(schema) {
    if (schema && schema.$ref) return spec.components.schemas[refName(schema.$ref)] || {};
    return schema || {};
  }

  // A one-line name for a schema: "Project", "array of User", "string | null", "enum: a, b".
  function typeLabel(schema) {
    if (!schema) return "any";
    if (schema.$ref) return refName(schema.$ref);
    if (schema.enum) return "one of: " + schema.enum.map((v) => JSON.stringify(v)).join(", ");
    for (const key of ["anyOf", "oneOf"]) {
      if (schema[key]) return schema[key].map(typeLabel).join(" | ");
    }
    if (schema.allOf) return schema.allOf.map(typeLabel).join(" + ");
    if (schema.type === "array") return "array of " + typeLabel(schema.items);
    let label = Array.isArray(schema.type) ? schema.type.join(" | ") : (schema.type || "any");
    if (schema.format) label += " (" + schema.format + ")";
    if (schema.type === "object" && schema.additionalProperties &&
        typeof schema.additionalProperties === "object") {
      label = "map of " + typeLabel(schema.additionalProperties);
    }
    const bounds = [];
    for (const key of ["minimum", "maximum", "minLength", "maxLength", "default"]) {
      if (schema[key] !== undefined) bounds.push(key + " " + JSON.stringify(schema[key]));
    }
    return bounds.length ? label + ", " + bounds.join(", ") : label;
  }

  // The fields of an object schema as a table; referenced schemas are linked, not expanded.
  function schemaView(schema, expand = true) {
    const target = resolve(schema);
    const wrapper = el("div", { class: "api-schema" });
    if (schema && schema.$ref) {
      wrapper.append(el("a", { href: "#schema-" + refName(schema.$ref) }, refName(schema.$ref)));
      if (!expand) return wrapper;
    } else {
      wrapper.append(el("code", {}, typeLabel(schema)));
    }
    const parts = target.allOf ? target.allOf.map(resolve) : [target];
    const rows = [];
    for (const part of parts) {
      const required = new Set(part.required || []);
      for (const [name, field] of Object.entries(part.properties || {})) {
        rows.push(el("tr", {},
          el("td", {}, el("code", {}, name), required.has(name) ? " *" : ""),
          el("td", {}, fieldType(field)),
          el("td", {}, field.description || "")));
      }
    }
    if (target.description) wrapper.append(el("p", { class: "small mb-1" }, target.description));
    if (rows.length) {
      wrapper.append(el("table", { class: "table table-sm api-fields" },
        el("thead", {}, el("tr", {}, el("th", {}, "field"), el("th", {}, "type"),
          el("th", {}, ""))),
        el("tbody", {}, rows)));
    }
    return wrapper;
  }

  function fieldType(field) {
    if (field.$ref) return el("a", { href: "#schema-" + refName(field.$ref) }, refName(field.$ref));
    if (field.type === "array" && field.items && field.items.$ref) {
      return el("span", {}, "array of ",
        el("a", { href: "#schema-" + refName(field.items.$ref) }, refName(field.items.$ref)));
    }
    return el("code", {}, typeLabel(field));
  }

  // Request bodies and successful answers show their fields; errors only link the schema.
  function contentView(content, expand = true) {
    return Object.entries(content || {}).map(([mediaType, media]) =>
      el("div", { class: "mb-2" }, el("span", { class: "badge text-bg-light border me-2" }, mediaType),
        media.schema ? schemaView(media.schema, expand) : ""));
  }

  function securityLabel(operation) {
    const security = operation.security !== undefined ? operation.security : (spec.security || []);
    if (!security.length) return el("span", { class: "badge text-bg-success" }, "public");
    const names = security.map((alternative) => Object.keys(alternative).join(" + "));
    return el("span", { class: "badge text-bg-secondary" }, "auth: " + names.join(" or "));
  }

  function operationView(path, method, operation) {
    const id = "op-" + (operation.operationId || method + path);
    const body = el("div", { class: "card-body" });
    if (operation.description) {
      body.append(el("p", { class: "api-description" }, operation.description));
    }
    if (operation.parameters && operation.parameters.length) {
      body.append(el("h4", { class: "h6" }, "Parameters"),
        el("table", { class: "table table-sm" },
          el("thead", {}, el("tr", {}, el("th", {}, "name"), el("th", {}, "in"),
            el("th", {}, "type"), el("th", {}, ""))),
          el("tbody", {}, operation.parameters.map((p) => el("tr", {},
            el("td", {}, el("code", {}, p.name), p.required ? " *" : ""),
            el("td", {}, p.in),
            el("td", {}, el("code", {}, typeLabel(p.schema))),
            el("td", {}, p.description || ""))))));
    }
    if (operation.requestBody) {
      body.append(el("h4", { class: "h6" }, "Request body"),
        ...contentView(operation.requestBody.content));
    }
    const answers = Object.entries(operation.responses || {}).map(([status, answer]) =>
      el("tr", {},
        el("td", {}, el("span", { class: "api-status api-status-" + status[0] }, status)),
        el("td", {}, answer.description || "",
          contentView(answer.content, status.startsWith("2")))));
    body.append(el("h4", { class: "h6" }, "Answers"),
      el("table", { class: "table table-sm" }, el("tbody", {}, answers)));
    return el("section", { class: "card mb-3 api-operation", id: id },
      el("div", { class: "card-header d-flex flex-wrap gap-2 align-items-center" },
        el("span", { class: "api-method api-method-" + method }, method.toUpperCase()),
        el("code", { class: "api-path" }, path),
        el("span", { class: "flex-grow-1" }, operation.summary || ""),
        securityLabel(operation)),
      body);
  }

  function render() {
    document.getElementById("api-title").textContent = spec.info.title;
    document.getElementById("api-description").textContent = spec.info.description || "";
    if (spec.servers && spec.servers.length) {
      document.getElementById("api-base").textContent = spec.servers[0].url;
    }
    const byTag = new Map((spec.tags || []).map((tag) => [tag.name, { tag, operations: [] }]));
    for (const [path, item] of Object.entries(spec.paths)) {
      for (const [method, operation] of Object.entries(item)) {
        const name = (operation.tags || ["Other"])[0];
        if (!byTag.has(name)) byTag.set(name, { tag: { name }, operations: [] });
        byTag.get(name).operations.push(operationView(path, method, operation));
      }
    }
    const sections = document.getElementById("api-sections");
    const toc = document.getElementById("api-toc");
    sections.replaceChildren();
    for (const { tag, operations } of byTag.values()) {
      if (!operations.length) continue;
      const anchor = "tag-" + tag.name.toLowerCase().replace(/[^a-z0-9]+/g, "-");
      toc.append(el("li", { class: "nav-item" },
        el("a", { class: "nav-link py-1", href: "#" + anchor }, tag.name)));
      sections.append(el("h2", { class: "h4 mt-4", id: anchor }, tag.name),
        tag.description ? el("p", { class: "text-body-secondary" }, tag.description) : "",
        ...operations);
    }
    toc.append(el("li", { class: "nav-item" },
      el("a", { class: "nav-link py-1", href: "#schemas" }, "Schemas")));
    sections.append(el("h2", { class: "h4 mt-4", id: "schemas" }, "Schemas"),
      ...Object.entries(spec.components.schemas).map(([name, schema]) =>
        el("section", { class: "card mb-3", id: "schema-" + name },
          el("div", { class: "card-header" }, el("strong", {}, name)),
          el("div", { class: "card-body" }, schemaView(schema)))));
    if (location.hash) {
      const target = document.getElementById(location.hash.slice(1));
      if (target) target.scrollIntoView();
    }
  }

  fetch(root.dataset.specUrl, { headers: { Accept: "application/json" } })
    .then((response) => {
      if (!response.ok) throw new Error("HTTP " + response.status);
      return response.json();
    })
    .then((document_) => {
      spec = document_;
      render();
    })
    .catch((error) => {
      document.getElementById("api-loading").textContent =
        "The API description could not be loaded (" + error.message + ").";
    });
})();
