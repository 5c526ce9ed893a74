// Dashboard of the e-commerce platform. Plain JavaScript, no build step, no framework.
// Every request goes to the nginx that served this page: /health and /release/* are
// answered by nginx itself, /api/* is proxied to PostgREST. API data is written with
// textContent only, never innerHTML.
"use strict";

(function () {
  const REFRESH_MS = 5000;
  const TOKEN_KEY = "ecommerce.token";
  const EMAIL_KEY = "ecommerce.email";
  const LOW_STOCK = 5;
  // Lists are read a page at a time: the API answers at most apiMaxRows rows (at least 25)
  // and nginx refuses offsets from 10000 on. One row more than a page is asked for, to know
  // whether there is a next page.
  const PAGE = 20;
  const MAX_OFFSET = 9999;

  const state = {
    token: sessionStorage.getItem(TOKEN_KEY) || "",
    email: sessionStorage.getItem(EMAIL_KEY) || "",
    products: [],
    productsOffset: 0,
    ordersOffset: 0,
  };

  const $ = (id) => document.getElementById(id);

  // request performs one HTTP call and never throws: the result says what happened.
  // PostgREST errors are JSON {code, message, details, hint}; message is what users see.
  async function request(path, options) {
    const opts = options || {};
    const headers = Object.assign({ Accept: "application/json" }, opts.headers || {});
    if (opts.auth && state.token) {
      headers.Authorization = "Bearer " + state.token;
    }
    const init = { method: opts.method || "GET", headers: headers, cache: "no-store" };
    if (opts.body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(opts.body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (err) {
      return { ok: false, status: 0, data: null, message: "network error: " + err.message };
    }
    const text = await response.text();
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch (err) {
        data = text;
      }
    }
    let message = "";
    if (!response.ok) {
      message = data && typeof data === "object" && data.message
        ? String(data.message)
        : "HTTP " + response.status;
    }
    return { ok: response.ok, status: response.status, data: data, message: message };
  }

  // null (a figure withheld from anonymous visitors) shows as a dash, never as 0.
  function money(value) {
    if (value === null || value === undefined) return "–";
    const n = Number(value);
    return Number.isFinite(n) ? "$" + n.toFixed(2) : "–";
  }

  function count(value) {
    if (value === null || value === undefined) return "–";
    const n = Number(value);
    return Number.isFinite(n) ? String(n) : "–";
  }

  function when(value) {
    const d = new Date(value);
    return Number.isNaN(d.getTime()) ? String(value || "") : d.toLocaleString();
  }

  function cell(text, className, field) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    if (field) td.dataset.field = field;
    return td;
  }

  function showText(el, text, kind) {
    el.textContent = text;
    el.hidden = !text;
    if (kind) el.className = "message " + kind;
  }

  function setStatus(tier, up, detail) {
    const el = $("health-" + tier);
    el.textContent = up ? "up" : "down";
    el.className = "status " + (up ? "status-up" : "status-down");
    el.dataset.state = up ? "up" : "down";
    $("health-" + tier + "-detail").textContent = detail;
  }

  function describe(res) {
    return res.status === 0 ? "unreachable" : "HTTP " + res.status;
  }

  // ---- release -------------------------------------------------------------------------
  async function loadVersion() {
    // The pod's own labels, as plain text (see nginx.conf: location /release/).
    const [colorRes, versionRes] = await Promise.all([request("/release/color"), request("/release/version")]);
    const colorEl = $("color");
    if (colorRes.ok && colorRes.data !== null) {
      const color = String(colorRes.data).trim();
      colorEl.textContent = color;
      colorEl.className = "badge " + (color === "blue" || color === "green" ? "badge-" + color : "badge-unknown");
      $("version").textContent = versionRes.ok && versionRes.data !== null ? String(versionRes.data).trim() : "?";
    } else {
      colorEl.textContent = "unknown";
      colorEl.className = "badge badge-unknown";
    }
  }

  // ---- stats -----------------------------------------------------------------------------
  // PostgREST returns a view as an array; this Accept header asks for the single row.
  // Orders, revenue and items sold are the signed-in customer's own (null for a visitor); the
  // shop's figures are nobody's to see here (issue 27, finding 8), so users is not shown.
  async function loadStats() {
    const res = await request("/api/stats", {
      auth: true,
      headers: { Accept: "application/vnd.pgrst.object+json" },
    });
    const err = $("stats-error");
    if (!res.ok) {
      showText(err, "Statistics unavailable: " + res.message);
      return res;
    }
    const s = Array.isArray(res.data) ? res.data[0] || {} : res.data || {};
    $("stat-products").textContent = count(s.products);
    $("stat-orders").textContent = count(s.orders);
    $("stat-revenue").textContent = money(s.revenue);
    $("stat-items-sold").textContent = count(s.items_sold);
    $("stat-low-stock").textContent = count(s.low_stock_products);
    showText(err, "");
    return res;
  }

  // ---- paging ----------------------------------------------------------------------------
  // pagePath is path with one page's limit and offset (path has a query already).
  function pagePath(path, offset) {
    return path + "&limit=" + (PAGE + 1) + "&offset=" + offset;
  }

  // showPager sets a list's page label and buttons; rows is what the API answered (up to
  // PAGE + 1), and returns the rows to show.
  function showPager(name, offset, rows) {
    const more = rows.length > PAGE && offset + PAGE <= MAX_OFFSET;
    const shown = rows.slice(0, PAGE);
    $(name + "-prev").disabled = offset === 0;
    $(name + "-next").disabled = !more;
    $(name + "-page").textContent = shown.length === 0 ? "" : (offset + 1) + "–" + (offset + shown.length);
    return shown;
  }

  function turnPage(name, delta) {
    const key = name + "Offset";
    state[key] = Math.min(MAX_OFFSET, Math.max(0, state[key] + delta * PAGE));
    refresh();
  }

  // ---- products --------------------------------------------------------------------------
  async function loadProducts() {
    const res = await request(pagePath("/api/products?order=id", state.productsOffset));
    const err = $("products-error");
    if (!res.ok || !Array.isArray(res.data)) {
      showText(err, "Products unavailable: " + (res.message || "unexpected answer"));
      return res;
    }
    if (res.data.length === 0 && state.productsOffset > 0) {
      // The list got shorter than this page's start: back to the first page.
      state.productsOffset = 0;
      return loadProducts();
    }
    showText(err, "");
    state.products = showPager("products", state.productsOffset, res.data);
    renderProducts();
    renderProductChoices();
    return res;
  }

  function renderProducts() {
    const body = $("products-body");
    const rows = state.products.map((p) => {
      const tr = document.createElement("tr");
      tr.dataset.productId = String(p.id);
      tr.setAttribute("data-testid", "product-row");
      tr.appendChild(cell(String(p.id), "num", "id"));
      tr.appendChild(cell(String(p.name || ""), "", "name"));
      tr.appendChild(cell(String(p.description || ""), "muted", "description"));
      tr.appendChild(cell(money(p.price), "num", "price"));
      const stock = Number(p.stock);
      tr.appendChild(cell(count(p.stock), "num" + (stock <= LOW_STOCK ? " low" : ""), "stock"));
      return tr;
    });
    if (rows.length === 0) {
      const tr = document.createElement("tr");
      const td = cell("No products yet.", "muted");
      td.colSpan = 5;
      tr.appendChild(td);
      rows.push(tr);
    }
    body.replaceChildren(...rows);
  }

  function renderProductChoices() {
    const select = $("order-product");
    const selected = select.value;
    const options = state.products.map((p) => {
      const opt = document.createElement("option");
      opt.value = String(p.id);
      const stock = Number(p.stock);
      opt.textContent = String(p.name) + " — " + money(p.price) +
        (stock > 0 ? " (" + stock + " in stock)" : " (out of stock)");
      return opt;
    });
    select.replaceChildren(...options);
    if (selected && state.products.some((p) => String(p.id) === selected)) {
      select.value = selected;
    }
  }

  // ---- health ----------------------------------------------------------------------------
  // frontend: nginx's own /health. backend: its Envoy answers /health from PostgREST's
  // /ready, which is 200 only while the database is reachable; a successful /api/stats
  // also proves both the API and the database.
  async function loadHealth(statsPromise) {
    const [front, back, stats] = await Promise.all([
      request("/health"),
      request("/api/health"),
      statsPromise,
    ]);
    setStatus("frontend", front.ok, describe(front));
    const backendUp = back.ok || stats.ok;
    setStatus("backend", backendUp, back.ok ? describe(back) : describe(back) + (stats.ok ? ", API answering" : ""));
    const dbUp = back.ok || stats.ok;
    setStatus("database", dbUp, dbUp ? "ready" : "not ready (" + describe(back) + ")");
  }

  // ---- orders ----------------------------------------------------------------------------
  async function loadOrders() {
    if (!state.token) return null;
    const res = await request(pagePath("/api/orders?order=id.desc", state.ordersOffset), { auth: true });
    const err = $("orders-error");
    if (res.status === 401) {
      signOut("Your session has expired, please sign in again.");
      return res;
    }
    if (!res.ok || !Array.isArray(res.data)) {
      showText(err, "Orders unavailable: " + (res.message || "unexpected answer"));
      return res;
    }
    if (res.data.length === 0 && state.ordersOffset > 0) {
      state.ordersOffset = 0;
      return loadOrders();
    }
    showText(err, "");
    renderOrders(showPager("orders", state.ordersOffset, res.data));
    return res;
  }

  function renderOrders(orders) {
    const rows = orders.map((o) => {
      const tr = document.createElement("tr");
      tr.setAttribute("data-testid", "order-row");
      tr.dataset.orderId = String(o.id);
      tr.appendChild(cell(String(o.id), "num", "id"));
      tr.appendChild(cell(String(o.status || ""), "", "status"));
      tr.appendChild(cell(when(o.created_at), "muted", "created_at"));
      const items = Array.isArray(o.items) ? o.items : [];
      const summary = items
        .map((i) => i.quantity + " × " + (i.name || "product " + i.product_id) + " @ " + money(i.unit_price))
        .join(", ");
      tr.appendChild(cell(summary, "", "items"));
      tr.appendChild(cell(money(o.total), "num", "total"));
      return tr;
    });
    if (rows.length === 0) {
      const tr = document.createElement("tr");
      const td = cell("No orders yet.", "muted");
      td.colSpan = 5;
      tr.appendChild(td);
      rows.push(tr);
    }
    $("orders-body").replaceChildren(...rows);
  }

  // ---- session ---------------------------------------------------------------------------
  function renderSession() {
    const signedIn = Boolean(state.token);
    $("login-form").hidden = signedIn;
    $("session").hidden = !signedIn;
    $("order-card").hidden = !signedIn;
    $("orders-card").hidden = !signedIn;
    $("session-email").textContent = state.email;
    if (!signedIn) {
      $("orders-body").replaceChildren();
      showText($("order-message"), "");
    }
  }

  function signOut(reason) {
    state.token = "";
    state.ordersOffset = 0;
    state.email = "";
    sessionStorage.removeItem(TOKEN_KEY);
    sessionStorage.removeItem(EMAIL_KEY);
    renderSession();
    showText($("login-error"), reason || "");
  }

  function tokenFrom(data) {
    if (typeof data === "string") return data;
    if (Array.isArray(data)) return tokenFrom(data[0]);
    if (data && typeof data === "object" && typeof data.token === "string") return data.token;
    return "";
  }

  async function onLogin(event) {
    event.preventDefault();
    const email = $("login-email").value.trim();
    const password = $("login-password").value;
    const button = $("login-submit");
    button.disabled = true;
    showText($("login-error"), "");
    const res = await request("/api/rpc/login", {
      method: "POST",
      body: { email: email, password: password },
    });
    button.disabled = false;
    const token = res.ok ? tokenFrom(res.data) : "";
    if (!token) {
      showText($("login-error"), res.message || "sign in failed: no token in the answer");
      return;
    }
    state.token = token;
    state.email = email;
    sessionStorage.setItem(TOKEN_KEY, token);
    sessionStorage.setItem(EMAIL_KEY, email);
    $("login-password").value = "";
    renderSession();
    await Promise.all([loadOrders(), loadStats()]);
  }

  async function onOrder(event) {
    event.preventDefault();
    const productId = Number($("order-product").value);
    const quantity = Number($("order-quantity").value);
    const message = $("order-message");
    if (!Number.isInteger(productId) || !Number.isInteger(quantity) || quantity < 1) {
      showText(message, "Choose a product and a quantity of at least 1.", "error");
      return;
    }
    const button = $("order-submit");
    button.disabled = true;
    const res = await request("/api/rpc/place_order", {
      method: "POST",
      auth: true,
      body: { items: [{ product_id: productId, quantity: quantity }] },
    });
    button.disabled = false;
    if (res.status === 401) {
      signOut("Your session has expired, please sign in again.");
      return;
    }
    if (!res.ok) {
      showText(message, "Order failed: " + res.message, "error");
      return;
    }
    const order = Array.isArray(res.data) ? res.data[0] || {} : res.data || {};
    showText(message, "Order #" + order.id + " placed, total " + money(order.total) + ".", "success");
    await refresh();
  }

  // ---- refresh loop ------------------------------------------------------------------------
  // One refresh at a time; a refresh asked for while one runs (say, right after an order)
  // runs again when it ends, so the page never shows data older than the last action.
  let running = null;
  let again = false;

  async function refreshOnce() {
    const stats = loadStats();
    await Promise.all([loadVersion(), loadProducts(), loadHealth(stats), loadOrders()]);
    $("last-refresh").textContent = new Date().toLocaleTimeString();
  }

  function refresh() {
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      try {
        do {
          again = false;
          await refreshOnce();
        } while (again);
      } finally {
        running = null;
      }
    })();
    return running;
  }

  function start() {
    $("login-form").addEventListener("submit", onLogin);
    $("order-form").addEventListener("submit", onOrder);
    $("logout").addEventListener("click", () => signOut(""));
    $("products-prev").addEventListener("click", () => turnPage("products", -1));
    $("products-next").addEventListener("click", () => turnPage("products", 1));
    $("orders-prev").addEventListener("click", () => turnPage("orders", -1));
    $("orders-next").addEventListener("click", () => turnPage("orders", 1));
    renderSession();
    refresh();
    setInterval(refresh, REFRESH_MS);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
