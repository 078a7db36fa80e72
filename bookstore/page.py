"""The storefront page: the ranked book list, buy buttons and the shopper's balance.

Every URL in it is relative (``api/books``, never ``/api/books``) and resolved against the page's
own directory, so the page works at ``/`` and equally behind a path prefix such as
jupyter-server-proxy's ``/proxy/8080/``. Text from the API is inserted with ``textContent`` only.
The page lives in a Python string so it ships inside the package without package-data rules.
"""

__all__ = ["STOREFRONT_PAGE"]

STOREFRONT_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Cloud Native Bookstore</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 52rem; padding: 0 1rem; color: #222; }
  header { display: flex; justify-content: space-between; align-items: baseline; flex-wrap: wrap; gap: 1rem; }
  table { border-collapse: collapse; width: 100%; margin-top: 1rem; }
  th, td { text-align: left; padding: .4rem .6rem; border-bottom: 1px solid #ddd; }
  td.number, th.number { text-align: right; font-variant-numeric: tabular-nums; }
  #message { min-height: 1.5rem; margin-top: 1rem; }
  #message.error { color: #b00020; }
  .muted { color: #666; font-size: .9rem; }
  input[type=number] { width: 4rem; }
</style>
</head>
<body>
<header>
  <h1>Cloud Native Bookstore</h1>
  <span class="muted">served by <span id="service">?</span> <span id="version">?</span>,
    ranking <span id="ranking">?</span></span>
</header>
<form id="login">
  <label>Shopper <input id="user" name="user" required maxlength="64"></label>
  <button type="submit">Sign in / open account</button>
  <span id="balance" class="muted"></span>
</form>
<table>
  <thead><tr><th>#</th><th>Title</th><th class="number">Price</th><th class="number">Stock</th>
    <th class="number">Sold</th><th class="number">Owned</th><th>Buy</th></tr></thead>
  <tbody id="books"></tbody>
</table>
<div id="message" role="status"></div>
<script>
"use strict";
// Resolve API paths against the page's directory so a proxy prefix (/proxy/8080/) is kept.
const base = new URL(location.pathname.endsWith("/") ? location.pathname : location.pathname + "/", location.href);
const api = (path) => new URL(path, base);
const yuan = (fen) => "¥" + (fen / 100).toLocaleString("en-US", {minimumFractionDigits: 2});
let shopper = localStorage.getItem("bookstore-user") || "";
let owned = {};

function show(text, isError) {
  const message = document.getElementById("message");
  message.textContent = text;
  message.className = isError ? "error" : "";
}

async function call(path, options) {
  const response = await fetch(api(path), options);
  const body = await response.json().catch(() => ({}));
  document.getElementById("service").textContent = response.headers.get("x-bookstore-service") || "?";
  document.getElementById("version").textContent = response.headers.get("x-bookstore-version") || "?";
  if (!response.ok) {
    const error = new Error(refusal(body) || body.message || ("HTTP " + response.status));
    error.code = body.error;
    throw error;
  }
  return body;
}

// The API counts money in fen; a person reads yuan.
function refusal(body) {
  if (body.error === "insufficient_balance" && Number.isInteger(body.balance) && Number.isInteger(body.amount)) {
    return body.user + " has " + yuan(body.balance) + ", but this costs " + yuan(body.amount) + ".";
  }
  return null;
}

function cell(row, text, className) {
  const td = row.insertCell();
  td.textContent = text;
  if (className) { td.className = className; }
  return td;
}

async function loadBooks() {
  const list = await call("api/books");
  const ranking = list.ranking;
  document.getElementById("ranking").textContent = ranking ? ranking.module + "@" + ranking.version : "none";
  const tbody = document.getElementById("books");
  tbody.replaceChildren();
  list.books.forEach((book, index) => {
    const row = tbody.insertRow();
    cell(row, String(index + 1));
    cell(row, book.title);
    cell(row, yuan(book.price), "number");
    cell(row, String(book.stock), "number");
    cell(row, String(book.sold), "number");
    cell(row, String(owned[book.id] || 0), "number");
    const buy = row.insertCell();
    const count = document.createElement("input");
    count.type = "number"; count.min = "1"; count.value = "1"; count.setAttribute("aria-label", "count");
    const button = document.createElement("button");
    button.textContent = "Buy"; button.dataset.book = book.id;
    button.addEventListener("click", () => purchase(book, Number(count.value)));
    buy.append(count, " ", button);
  });
}

async function loadUser() {
  if (!shopper) { document.getElementById("balance").textContent = ""; owned = {}; return; }
  const user = await call("api/users/" + encodeURIComponent(shopper));
  owned = Object.fromEntries(user.books.map((book) => [book.id, book.count]));
  document.getElementById("balance").textContent = user.name + ": balance " + yuan(user.balance);
}

async function refresh() {
  try { await loadUser(); await loadBooks(); } catch (error) { show(error.message, true); }
}

async function purchase(book, count) {
  if (!shopper) { show("Sign in first.", true); return; }
  try {
    const order = await call("api/purchase", {method: "POST", headers: {"content-type": "application/json"},
      body: JSON.stringify({user: shopper, book: book.id, count: count})});
    show("Bought " + order.count + " × " + book.title + " for " + yuan(order.amount) + ".", false);
  } catch (error) { show(error.message, true); }
  await refresh();
}

document.getElementById("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  shopper = document.getElementById("user").value.trim();
  localStorage.setItem("bookstore-user", shopper);
  try {
    await call("api/users", {method: "POST", headers: {"content-type": "application/json"},
      body: JSON.stringify({name: shopper})});
    show("Welcome, " + shopper + "!", false);
  } catch (error) {
    const known = error.code === "user_exists";
    show(known ? "Welcome back, " + shopper + "." : error.message, !known);
  }
  await refresh();
});

document.getElementById("user").value = shopper;
refresh();
</script>
</body>
</html>
"""
