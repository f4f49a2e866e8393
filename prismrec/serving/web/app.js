// PrismRec web page: plain DOM code against the JSON API (no build step).
// Text from the server is only ever set with textContent, never parsed as HTML.
"use strict";

const $ = (id) => document.getElementById(id);

function showError(text) {
  const box = $("message");
  box.textContent = text;
  box.hidden = !text;
}

async function api(path, options = {}) {
  const response = await fetch(path, options);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new Error(body.detail || `${response.status} ${response.statusText}`);
  }
  return body;
}

function card(item, meta) {
  const element = document.createElement("div");
  element.className = "card";
  element.dataset.itemId = item.item_id;
  if (item.image_url) {
    const image = document.createElement("img");
    image.src = item.image_url;
    image.alt = item.title;
    element.appendChild(image);
  } else {
    const placeholder = document.createElement("div");
    placeholder.className = "poster";
    placeholder.textContent = (item.title || item.item_id).slice(0, 1).toUpperCase();
    element.appendChild(placeholder);
  }
  const title = document.createElement("div");
  title.className = "title";
  title.textContent = item.title;
  element.appendChild(title);
  const small = document.createElement("div");
  small.className = "meta";
  small.textContent = meta || item.item_id;
  element.appendChild(small);
  return element;
}

function fill(container, elements) {
  container.replaceChildren(...elements);
}

async function withImages(items) {
  // recommendation rows carry ids and titles; fetch each item's public view for its poster
  return Promise.all(items.map(async (row) => ({ ...(await api(`/items/${encodeURIComponent(row.item_id)}`)), ...row })));
}

async function showUser(userId) {
  showError("");
  const k = $("user-k").value || 10;
  const id = encodeURIComponent(userId);
  const [recs, user] = await Promise.all([api(`/users/${id}/recommendations?k=${k}`), api(`/users/${id}`)]);
  const ranked = await withImages(recs.items);
  fill($("recs"), ranked.map((item) => card(item, `#${item.rank} · ${item.score.toFixed(3)}`)));
  fill($("history"), user.history.map((item) => card(item)));
}

async function search(query) {
  showError("");
  const found = await api(`/items?q=${encodeURIComponent(query)}&limit=24`);
  fill($("search-results"), found.items.map((item) => card(item)));
  if (!found.items.length) showError(`no item title contains "${query}"`);
}

async function addItem() {
  showError("");
  const form = new FormData();
  form.append("item_id", $("add-id").value.trim());
  form.append("title", $("add-title").value.trim());
  const genres = $("add-genres").value.trim();
  form.append("fields", JSON.stringify(genres ? { genres } : {}));
  const file = $("add-image").files[0];
  if (file) form.append("image", file);
  const headers = $("add-key").value ? { "X-API-Key": $("add-key").value } : {};
  const result = await api("/items", { method: "POST", body: form, headers });
  fill($("add-result"), [card(result.item, "new item")]);
  const audience = result.audience;
  $("reach-summary").textContent =
    `${audience.item_id} is now in the top ${audience.k} of ${audience.count} user(s)` +
    (result.missing_content.length ? ` (no content for: ${result.missing_content.join(", ")})` : "");
  fill($("reach"), audience.users.map((user) => {
    const chip = document.createElement("button");
    chip.className = "user-chip";
    chip.type = "button";
    chip.textContent = `${user.user_id} (#${user.rank})`;
    chip.addEventListener("click", () => {
      $("user-input").value = user.user_id;
      showUser(user.user_id).catch((error) => showError(error.message));
    });
    return chip;
  }));
}

function on(formId, handler) {
  $(formId).addEventListener("submit", (event) => {
    event.preventDefault();
    handler().catch((error) => showError(error.message));
  });
}

async function start() {
  const health = await api("/health");
  $("status").textContent = `${health.model} · ${health.n_users} users · ${health.n_items} items · ` +
    `${health.index} index` + (health.accepts_new_items ? " · accepts new items" : " · ID-only model");
  const users = await api("/users?limit=1000");
  fill($("user-list"), users.users.map((id) => Object.assign(document.createElement("option"), { value: id })));
  document.body.dataset.ready = "true";
}

on("user-form", () => showUser($("user-input").value.trim()));
on("search-form", () => search($("search-input").value.trim()));
on("add-form", addItem);
start().catch((error) => showError(`cannot reach the API: ${error.message}`));
