// Renders /openapi.json as a browsable reference: operations by tag, parameters, bodies, responses
// and the schemas they use. Written for this service: no framework, no network but this origin.
"use strict";

const KEY = "ledger-api-token";

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (name === "class") node.className = value; else node.setAttribute(name, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function refName(ref) { return ref.split("/").pop(); }

function typeOf(schema, doc) {
  if (!schema || Object.keys(schema).length === 0) return "any";
  if (schema.$ref) return refName(schema.$ref);
  if (schema.anyOf) return schema.anyOf.map((s) => typeOf(s, doc)).join(" | ");
  if (schema.enum) return schema.enum.map((v) => JSON.stringify(v)).join(" | ");
  if (schema.type === "array") return typeOf(schema.items, doc) + "[]";
  if (schema.type === "object" && schema.additionalProperties && typeof schema.additionalProperties === "object") {
    return "{string: " + typeOf(schema.additionalProperties, doc) + "}";
  }
  let text = schema.type || "any";
  if (schema.format) text += " (" + schema.format + ")";
  const bounds = [];
  if (schema.minimum !== undefined) bounds.push("≥ " + schema.minimum);
  if (schema.maximum !== undefined) bounds.push("≤ " + schema.maximum);
  if (schema.minLength !== undefined) bounds.push("length ≥ " + schema.minLength);
  if (schema.maxLength !== undefined) bounds.push("length ≤ " + schema.maxLength);
  if (schema.pattern) bounds.push("pattern " + schema.pattern);
  return bounds.length ? text + ", " + bounds.join(", ") : text;
}

// One level of a schema: an object's properties with their types; referenced schemas link to
// their own entry in the Schemas section.
function renderSchema(schema, doc) {
  let target = schema;
  const box = el("div", { class: "schema" });
  if (schema && schema.$ref) {
    const name = refName(schema.$ref);
    box.append(el("a", { href: "#schema-" + name }, name));
    target = doc.components.schemas[name];
  } else {
    box.append(typeOf(schema, doc));
  }
  if (target && target.properties) {
    const required = new Set(target.required || []);
    box.append(el("ul", {}, Object.entries(target.properties).map(([name, prop]) =>
      el("li", {}, el("span", {}, name), required.has(name) ? "" : "?", ": ",
        prop.$ref ? el("a", { href: "#schema-" + refName(prop.$ref) }, refName(prop.$ref)) : typeOf(prop, doc)))));
  }
  return box;
}

function renderOperation(method, path, op, doc) {
  const id = "op-" + op.operationId;
  const section = el("section", { class: "op", id },
    el("h2", {}, el("span", { class: "method " + method }, method.toUpperCase()),
      el("span", { class: "path" + ((op.security || []).length ? " lock" : "") }, path)),
    el("p", {}, op.summary || ""), op.description ? el("p", { class: "muted" }, op.description) : null);
  if ((op.parameters || []).length) {
    section.append(el("h3", {}, "Parameters"), el("table", {},
      el("tr", {}, el("th", {}, "name"), el("th", {}, "in"), el("th", {}, "type"), el("th", {}, "")),
      op.parameters.map((p) => el("tr", {}, el("td", {}, el("code", {}, p.name), p.required ? " *" : ""),
        el("td", {}, p.in), el("td", {}, typeOf(p.schema, doc)), el("td", {}, p.description || "")))));
  }
  if (op.requestBody) {
    section.append(el("h3", {}, "Body" + (op.requestBody.required ? "" : " (optional)")));
    for (const [media, content] of Object.entries(op.requestBody.content)) {
      section.append(el("div", {}, el("code", {}, media)), renderSchema(content.schema, doc));
    }
  }
  section.append(el("h3", {}, "Responses"));
  const table = el("table", {});
  for (const [status, response] of Object.entries(op.responses)) {
    const cells = Object.entries(response.content || {}).map(([media, content]) =>
      el("div", {}, el("code", {}, media), renderSchema(content.schema, doc)));
    table.append(el("tr", {}, el("td", {}, el("strong", {}, status)), el("td", {}, response.description, cells)));
  }
  section.append(table);
  return section;
}

function render(doc) {
  const main = document.getElementById("reference");
  const toc = document.getElementById("toc");
  main.replaceChildren();
  toc.replaceChildren();
  const byTag = new Map((doc.tags || []).map((t) => [t.name, []]));
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      const tag = (op.tags || ["other"])[0];
      if (!byTag.has(tag)) byTag.set(tag, []);
      byTag.get(tag).push([method, path, op]);
    }
  }
  for (const [tag, ops] of byTag) {
    if (!ops.length) continue;
    toc.append(el("h3", {}, tag));
    main.append(el("h2", { id: "tag-" + tag }, tag));
    for (const [method, path, op] of ops) {
      toc.append(el("a", { href: "#op-" + op.operationId }, method.toUpperCase() + " " + path));
      main.append(renderOperation(method, path, op, doc));
    }
  }
  toc.append(el("h3", {}, "schemas"));
  main.append(el("h2", { id: "schemas" }, "Schemas"));
  for (const [name, schema] of Object.entries(doc.components.schemas)) {
    toc.append(el("a", { href: "#schema-" + name }, name));
    main.append(el("section", { class: "op", id: "schema-" + name }, el("h3", {}, name),
      schema.description ? el("p", { class: "muted" }, schema.description) : null,
      renderSchema({ $ref: "#/components/schemas/" + name }, doc)));
  }
}

async function load() {
  const status = document.getElementById("status");
  const token = sessionStorage.getItem(KEY) || "";
  status.textContent = "loading…";
  const response = await fetch("/openapi.json", {
    headers: token ? { Authorization: "Bearer " + token } : {}, credentials: "omit",
  });
  if (!response.ok) {
    status.textContent = response.status === 401 ? "a valid token is needed to read the document"
      : "could not load the document (HTTP " + response.status + ")";
    return;
  }
  const doc = await response.json();
  status.textContent = doc.info.title + " " + doc.info.version + ", OpenAPI " + doc.openapi;
  render(doc);
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("auth").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY, document.getElementById("token").value.trim());
    load();
  });
  load();
});
