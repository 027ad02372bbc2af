// The health commission's wall screen: signs in, fetches the day's figures, draws them, and
// fetches again every data-refresh-seconds. Tokens live in sessionStorage (this tab only).
"use strict";

(function () {
  const body = document.body;
  const api = body.dataset.api;
  const params = new URLSearchParams(window.location.search);
  // ?refresh=N (seconds, at least 2) overrides the page's default for a given screen.
  const refreshSeconds = Math.max(2, Number(params.get("refresh") || body.dataset.refreshSeconds || 60));
  const store = window.sessionStorage;
  const charts = {};
  const $ = (id) => document.getElementById(id);

  function show(signedIn) {
    $("signin").hidden = signedIn;
    $("board").hidden = !signedIn;
    $("sign-out").hidden = !signedIn;
  }

  function status(text) {
    $("status").textContent = text;
  }

  async function post(url, payload) {
    return fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(payload),
    });
  }

  function keep(tokens) {
    store.setItem("access", tokens.access_token);
    store.setItem("refresh", tokens.refresh_token);
  }

  async function refreshTokens() {
    const refresh = store.getItem("refresh");
    if (!refresh) return false;
    const response = await post(body.dataset.refreshUrl, { refresh_token: refresh });
    if (!response.ok) return false;
    keep(await response.json());
    return true;
  }

  async function fetchFigures() {
    const day = params.get("date");
    const url = day ? `${api}?date=${encodeURIComponent(day)}` : api;
    const get = () => fetch(url, { headers: { Authorization: `Bearer ${store.getItem("access")}` } });
    let response = await get();
    if (response.status === 401 && (await refreshTokens())) response = await get();
    return response;
  }

  function percent(ratio) {
    return ratio === null || ratio === undefined ? "—" : `${(ratio * 100).toFixed(1)}%`;
  }

  function moneyFormat(currency) {
    return new Intl.NumberFormat(undefined, { style: "currency", currency });
  }

  function major(amount, format) {
    return amount / 10 ** format.resolvedOptions().maximumFractionDigits;
  }

  function draw(data) {
    const money = moneyFormat(data.currency);
    $("day").textContent = data.date;
    $("updated").textContent = "updated " + new Intl.DateTimeFormat(undefined, {
      timeStyle: "medium", timeZone: data.timezone,
    }).format(new Date(data.as_of));
    $("pay-later-patients").textContent = data.pay_later_patients;
    $("usage-ratio").textContent = percent(data.usage_ratio);
    $("usage-detail").textContent = `${data.pay_later_visits} of ${data.visits} visits`;
    $("settled-ratio").textContent = percent(data.settled_in_window_ratio);
    $("settled-detail").textContent = `${data.settled_in_window} of ${data.bills_due} bills due`;
    $("overdue-count").textContent = data.overdue_count;
    $("overdue-amount").textContent = money.format(major(data.overdue_amount, money));
    drawSeries(data.series);
    drawHospitals(data.hospitals);
    fillTable(data.hospitals, money);
  }

  function chart(id, config) {
    if (charts[id]) {
      charts[id].data = config.data;
      charts[id].update("none");
      return;
    }
    Chart.defaults.color = "#9fb3c8";
    Chart.defaults.borderColor = "#2b3a55";
    Chart.defaults.font.size = 14;
    config.options = Object.assign({ animation: false, responsive: true, maintainAspectRatio: false }, config.options);
    charts[id] = new Chart($(id), config);
  }

  function drawSeries(series) {
    chart("series-chart", {
      type: "bar",
      data: {
        labels: series.map((day) => day.date.slice(5)),
        datasets: [
          { type: "bar", label: "Pay-later patients", data: series.map((d) => d.pay_later_patients), backgroundColor: "#4cc9f0", yAxisID: "patients", order: 2 },
          { type: "line", label: "Usage ratio %", data: series.map((d) => d.usage_ratio === null ? null : d.usage_ratio * 100), borderColor: "#80ed99", backgroundColor: "#80ed99", yAxisID: "ratio", spanGaps: true, pointRadius: 4, order: 1 },
          { type: "line", label: "Settled in window %", data: series.map((d) => d.settled_in_window_ratio === null ? null : d.settled_in_window_ratio * 100), borderColor: "#ffb703", backgroundColor: "#ffb703", yAxisID: "ratio", spanGaps: true, pointRadius: 4, order: 1 },
        ],
      },
      options: {
        scales: {
          patients: { position: "left", beginAtZero: true, ticks: { precision: 0 } },
          ratio: { position: "right", min: 0, max: 100, grid: { drawOnChartArea: false } },
        },
      },
    });
  }

  function drawHospitals(hospitals) {
    chart("hospital-chart", {
      type: "bar",
      data: {
        labels: hospitals.map((h) => h.name),
        datasets: [
          { label: "Visits", data: hospitals.map((h) => h.visits), backgroundColor: "#415a77" },
          { label: "Pay-later visits", data: hospitals.map((h) => h.pay_later_visits), backgroundColor: "#4cc9f0" },
          { label: "Overdue bills", data: hospitals.map((h) => h.overdue_count), backgroundColor: "#ffb703" },
        ],
      },
      options: { indexAxis: "y", scales: { x: { beginAtZero: true, ticks: { precision: 0 } } } },
    });
  }

  function fillTable(hospitals, money) {
    const rows = hospitals.map((h) => {
      const row = document.createElement("tr");
      const cells = [
        h.name, h.visits, h.pay_later_visits, percent(h.usage_ratio), h.bills_due,
        percent(h.settled_in_window_ratio),
        `${h.overdue_count} · ${money.format(major(h.overdue_amount, money))}`,
      ];
      for (const value of cells) {
        const cell = document.createElement("td");
        cell.textContent = value;
        row.appendChild(cell);
      }
      return row;
    });
    $("hospitals").querySelector("tbody").replaceChildren(...rows);
  }

  async function load() {
    if (!store.getItem("access")) {
      show(false);
      return;
    }
    try {
      const response = await fetchFigures();
      if (response.status === 401 || response.status === 403) {
        store.clear();
        show(false);
        $("signin-error").textContent = response.status === 403
          ? "This account may not see the dashboard." : "Please sign in again.";
        return;
      }
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      draw(await response.json());
      show(true);
      status("");
    } catch (error) {
      status(`Could not refresh (${error.message}); trying again in ${refreshSeconds} s.`);
    }
  }

  $("signin-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = new FormData(event.target);
    const response = await post(body.dataset.login, { email: form.get("email"), password: form.get("password") });
    if (!response.ok) {
      $("signin-error").textContent = "Email or password is wrong.";
      return;
    }
    keep(await response.json());
    $("signin-error").textContent = "";
    event.target.reset();
    await load();
  });

  $("sign-out").addEventListener("click", () => {
    store.clear();
    show(false);
  });

  load();
  window.setInterval(load, refreshSeconds * 1000);
})();
