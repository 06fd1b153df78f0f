// Run history: each time the algorithm, the mode or the lesson changes, or the counters are
// zeroed, or a lesson's button starts a new step, the run that just ended becomes a row.
//
// Requests, share per backend, failures and retries are differences of the lab's exact
// counters between the run's start and its end. p50/p95/p99 are worked out from the
// response times of the requests the page was sent (all of them under light traffic, an
// even sample under heavy traffic; the row says how many).

const ENDS_A_RUN = new Set(["set_algorithm", "set_mode", "set_hash_key", "reset", "open_lesson", "reset_lesson", "default_lab"]);
const MAX_ROWS = 50;
const MAX_SAMPLES = 20000;

export class RunHistory {
  constructor(root, store) {
    const part = (name) => root.querySelector(`[data-part="${name}"]`);
    this.store = store;
    this.table = part("runs");
    this.rows = [];
    this.run = null; // {start, algorithm, mode, lesson, label, ms: []}
    this.pending = null; // the counters when a run-ending command was sent
    this.label = "";
    store.on("command", (data) => {
      if (ENDS_A_RUN.has(data.action)) this.pending = this.store.counters;
    });
    store.on("answer", ({ data, answer }) => {
      if (!ENDS_A_RUN.has(data.action) || !this.pending) return;
      if (answer.ok) this.endRun(this.pending, data.action === "reset" || data.action.endsWith("lesson") || data.action === "default_lab");
      this.pending = null;
    });
    store.on("state", ({ state, before }) => this.onState(state, before));
    store.on("batch", (batch) => this.take(batch.events));
    part("runs-csv").addEventListener("click", () => this.download());
    part("runs-clear").addEventListener("click", () => {
      this.rows = [];
      this.render();
    });
    this.table.addEventListener("change", (event) => {
      const box = event.target.closest("input[data-run]");
      if (!box) return;
      const row = this.rows.find((r) => r.n === Number(box.dataset.run));
      if (row) row.compare = box.checked;
      this.render();
    });
    this.render();
  }

  /** A lesson's step (its button) begins: what came before is a run of its own. */
  step(label) {
    this.endRun(this.store.counters, false);
    this.label = label;
  }

  onState(state, before) {
    const changed = before && (before.algorithm !== state.algorithm || before.mode !== state.mode || (before.lesson && before.lesson.slug) !== (state.lesson && state.lesson.slug));
    if (changed && !this.pending) this.endRun(this.store.counters, false); // changed elsewhere
    if (!this.run) this.begin(state);
    else if (!this.pending) Object.assign(this.run, this.describe(state)); // else: this run ends
  }

  describe(state) {
    return { algorithm: state.algorithm, mode: state.mode, lesson: state.lesson ? state.lesson.title : "" };
  }

  begin(state) {
    // What was counted before this page opened is no run of ours: start from what is there.
    this.run = { start: this.store.counters, ms: [], label: this.label, ...this.describe(state) };
  }

  take(events) {
    const run = this.run;
    if (!run) return;
    if (!run.start && this.store.counters) run.start = this.store.counters;
    for (const event of events) {
      // A tunnel's (101) time is how long it stayed open, not how long its backend took.
      if (event.type === "done" && typeof event.ms === "number" && event.status !== 101 && run.ms.length < MAX_SAMPLES) run.ms.push(event.ms);
    }
  }

  /** Close the current run at `end` (counters); the next one starts from zero after a reset. */
  endRun(end, zeroed) {
    const run = this.run;
    const state = this.store.state;
    if (run && end) {
      const row = this.row(run, run.start || zeroCounters(end), end);
      if (row.requests > 0) {
        this.rows.push(row);
        if (this.rows.length > MAX_ROWS) this.rows.shift();
        this.render();
      }
    }
    this.run = state ? { start: end ? (zeroed ? zeroCounters(end) : end) : null, ms: [], label: this.label, ...this.describe(state) } : null;
  }

  row(run, start, end) {
    const share = {};
    let requests = 0;
    for (const [name, numbers] of Object.entries(end.backends)) {
      const before = (start.backends[name] && start.backends[name].total) || 0;
      const delta = Math.max(0, numbers.total - before);
      if (delta) share[name] = delta;
      requests += delta;
    }
    const failed = (c) => (c.traffic ? c.traffic.failed + (c.traffic.status["5xx"] || 0) : c.failures);
    const retries = (c) => (c.errors && c.errors.retry) || 0;
    const ordered = run.ms.slice().sort((a, b) => a - b);
    const pick = (f) => (ordered.length ? ordered[Math.max(Math.ceil(f * ordered.length) - 1, 0)] : null);
    return {
      n: (this.rows.length ? this.rows[this.rows.length - 1].n : 0) + 1,
      algorithm: run.algorithm,
      mode: run.mode,
      lesson: run.lesson,
      label: run.label,
      requests,
      share,
      p50: pick(0.5),
      p95: pick(0.95),
      p99: pick(0.99),
      sampled: ordered.length,
      failures: Math.max(0, failed(end) - failed(start)),
      retries: Math.max(0, retries(end) - retries(start)),
      compare: false,
    };
  }

  render() {
    const comparing = this.rows.some((r) => r.compare);
    const head = ["", "#", "algorithm", "requests", "share per backend", "p50", "p95", "p99", "failed", "retries"];
    const thead = document.createElement("thead");
    thead.append(tr(head.map((h) => cell("th", h))));
    const tbody = document.createElement("tbody");
    if (!this.rows.length) {
      const empty = cell("td", "No runs yet: change the algorithm (or the mode) and the traffic so far becomes a row.");
      empty.colSpan = head.length;
      tbody.append(tr([empty]));
    }
    for (const row of this.rows) {
      const box = Object.assign(document.createElement("input"), { type: "checkbox", checked: row.compare });
      box.dataset.run = String(row.n);
      box.setAttribute("aria-label", `Compare run ${row.n}`);
      const pick = cell("td", "");
      pick.append(box);
      const line = tr([pick, cell("td", String(row.n)), cell("td", row.mode === "tcp" ? `${row.algorithm} (L4)` : row.mode === "udp" ? `${row.algorithm} (UDP)` : row.algorithm), cell("td", String(row.requests)), cell("td", shareText(row)), cell("td", ms(row.p50)), cell("td", ms(row.p95)), cell("td", ms(row.p99)), cell("td", String(row.failures)), cell("td", String(row.retries))]);
      line.dataset.run = String(row.n);
      line.title = `${row.lesson ? `${row.lesson}${row.label ? ` · ${row.label}` : ""}; ` : ""}percentiles of ${row.sampled} response times`;
      line.classList.toggle("compared", row.compare);
      line.hidden = comparing && !row.compare && this.rows.filter((r) => r.compare).length >= 2;
      tbody.append(line);
    }
    this.table.replaceChildren(thead, tbody);
  }

  csv() {
    const names = [...new Set(this.rows.flatMap((r) => Object.keys(r.share)))].sort((a, b) => a.localeCompare(b, "en", { numeric: true }));
    const head = ["run", "lesson", "step", "algorithm", "mode", "requests", ...names, "p50_ms", "p95_ms", "p99_ms", "failed", "retries"];
    const lines = [head, ...this.rows.map((r) => [r.n, r.lesson, r.label, r.algorithm, r.mode, r.requests, ...names.map((n) => r.share[n] || 0), r.p50 ?? "", r.p95 ?? "", r.p99 ?? "", r.failures, r.retries])];
    return lines.map((line) => line.map(csvField).join(",")).join("\r\n") + "\r\n";
  }

  download() {
    const link = document.createElement("a");
    link.download = "lb-lab-runs.csv";
    link.href = URL.createObjectURL(new Blob([this.csv()], { type: "text/csv" }));
    link.click();
    setTimeout(() => URL.revokeObjectURL(link.href), 1000);
  }
}

function zeroCounters(like) {
  const backends = Object.fromEntries(Object.keys(like.backends).map((n) => [n, { total: 0 }]));
  return { backends, failures: 0, errors: {}, traffic: like.traffic ? { failed: 0, status: {} } : null };
}

function shareText(row) {
  return Object.entries(row.share)
    .map(([name, n]) => `${name} ${Math.round((100 * n) / row.requests)}% (${n})`)
    .join(" · ");
}

function ms(value) {
  return value == null ? "–" : `${+value.toFixed(1)} ms`;
}

function csvField(value) {
  const text = String(value);
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

function cell(kind, text) {
  return Object.assign(document.createElement(kind), { textContent: text });
}

function tr(cells) {
  const row = document.createElement("tr");
  row.append(...cells);
  return row;
}
