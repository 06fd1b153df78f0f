// The lesson panel: the course list with progress, one lesson's text and its directives.
//
// Lesson HTML comes from the server already safe (markdown with raw HTML off); every
// directive is built here from JSON with text nodes only. Buttons send the same
// `command`s as the rest of the page (window.lab.command). Progress lives in this
// browser's localStorage. Shapes: see lab/web/app.py.

const STORE = "lb-lab.lessons.v1";
const QUIET_TIMEOUT_MS = 20000;
const PREDICT_TIMEOUT_MS = 10000;
const $ = (id) => document.getElementById(id);

const lab = window.lab;
const course = { lessons: [], current: null, opening: null };

// -- progress (this browser only) --------------------------------------------------------

function loadProgress() {
  try {
    const data = JSON.parse(localStorage.getItem(STORE) || "{}");
    return data && typeof data === "object" ? data : {};
  } catch {
    return {};
  }
}

function saveProgress(progress) {
  try {
    localStorage.setItem(STORE, JSON.stringify(progress));
  } catch {
    // Private windows may refuse storage; progress is a convenience, not a must.
  }
}

function lessonProgress(slug) {
  const progress = loadProgress();
  const entry = progress[slug] || { visited: false, done: false, used: [] };
  return { progress, entry };
}

function markProgress(slug, change) {
  const { progress, entry } = lessonProgress(slug);
  const next = { ...entry, ...change(entry) };
  const lesson = course.current;
  if (lesson && lesson.slug === slug && !next.done) {
    const interactive = lesson.directives.map((d, i) => (d.kind === "expect" ? -1 : i)).filter((i) => i >= 0);
    if (interactive.length && interactive.every((i) => next.used.includes(i))) next.done = true;
  }
  progress[slug] = next;
  saveProgress(progress);
  renderIndex();
  renderFoot();
}

function useDirective(slug, index) {
  markProgress(slug, (entry) => ({ used: entry.used.includes(index) ? entry.used : [...entry.used, index] }));
}

// -- the course list ---------------------------------------------------------------------

function renderIndex() {
  const list = $("lesson-index");
  const progress = loadProgress();
  list.replaceChildren(...course.lessons.map((lesson, i) => {
    const item = document.createElement("li");
    const link = document.createElement("a");
    link.href = `/lessons/${encodeURIComponent(lesson.slug)}`;
    link.dataset.slug = lesson.slug;
    link.title = lesson.summary;
    const state = progress[lesson.slug];
    const mark = state?.done ? "✓" : state?.visited ? "•" : "";
    link.append(
      Object.assign(document.createElement("span"), { className: "lesson-number", textContent: String(i + 1) }),
      Object.assign(document.createElement("span"), { className: "lesson-name", textContent: lesson.title }),
      Object.assign(document.createElement("span"), {
        className: "lesson-mark",
        textContent: mark,
        title: state?.done ? "done" : state?.visited ? "opened" : "",
      }),
    );
    if (course.current?.slug === lesson.slug) link.setAttribute("aria-current", "page");
    item.append(link);
    return item;
  }));
  const done = course.lessons.filter((l) => progress[l.slug]?.done).length;
  $("lesson-progress").textContent = course.lessons.length ? `${done} of ${course.lessons.length} done` : "";
}

function setIndexOpen(open) {
  $("lesson-index").hidden = !open;
  $("lesson-index-toggle").setAttribute("aria-expanded", String(open));
}

function setPanelOpen(open) {
  $("lesson-panel").hidden = !open;
  document.body.classList.toggle("with-lesson", open);
  $("lessons-toggle").setAttribute("aria-expanded", String(open));
  window.dispatchEvent(new Event("resize")); // the scene measures itself again
}

// -- one lesson --------------------------------------------------------------------------

async function fetchJson(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" } });
  if (!response.ok) throw new Error(`${url} answered ${response.status}`);
  return response.json();
}

/** Show a lesson and (unless the lab already has it) apply its settings. */
async function openLesson(slug, { push = true, apply = true } = {}) {
  let lesson;
  try {
    lesson = await fetchJson(`/api/lessons/${encodeURIComponent(slug)}`);
  } catch {
    setPanelOpen(true);
    setIndexOpen(true);
    $("lesson-progress").textContent = `No lesson "${slug}" here`;
    return;
  }
  course.current = lesson;
  if (push && location.pathname !== `/lessons/${slug}`) history.pushState({ slug }, "", `/lessons/${slug}`);
  document.title = `${lesson.title} · Load Balancing Lab`;
  setPanelOpen(true);
  setIndexOpen(false);
  renderLesson(lesson);
  markProgress(slug, () => ({ visited: true }));
  $("lesson-panel").scrollTop = 0;
  if (apply) await applyLesson(slug, "open_lesson");
}

async function applyLesson(slug, action) {
  const status = $("lesson-applied");
  status.textContent = "Switching the lab to this lesson's settings…";
  course.opening = slug;
  const answer = await lab.command({ action, slug });
  course.opening = null;
  status.textContent = answer.ok ? "The lab now has this lesson's settings. Change anything you like; Reset lesson puts them back." : "";
}

function renderLesson(lesson) {
  const position = course.lessons.findIndex((l) => l.slug === lesson.slug);
  $("lesson").hidden = false;
  $("lesson-kicker").textContent = position >= 0 ? `Lesson ${position + 1} of ${course.lessons.length}` : "Lesson";
  $("lesson-heading").textContent = lesson.title;
  $("lesson-summary").textContent = lesson.summary;
  const body = $("lesson-body");
  body.innerHTML = lesson.html; // safe: rendered by the server with raw HTML off
  for (const holder of body.querySelectorAll("[data-directive]")) {
    const index = Number(holder.dataset.directive);
    const directive = lesson.directives[index];
    if (directive) holder.replaceChildren(...buildDirective(lesson.slug, index, directive));
  }
  renderFoot();
  renderSnippets(lab.view.state);
}

function renderFoot() {
  const lesson = course.current;
  $("lesson-foot").hidden = !lesson;
  for (const [id, target] of [["lesson-prev", lesson?.previous], ["lesson-next", lesson?.next]]) {
    const button = $(id);
    button.disabled = !target;
    button.title = target ? target.title : "";
  }
  $("lesson-reset").disabled = !lesson;
  const done = Boolean(lesson && lessonProgress(lesson.slug).entry.done);
  $("lesson-done").disabled = !lesson;
  $("lesson-done").setAttribute("aria-pressed", String(done));
  $("lesson-done").textContent = done ? "Done ✓" : "Mark done";
}

function renderSnippets(state) {
  if (!state || !state.config_snippets) return;
  $("config-nginx").textContent = state.config_snippets.nginx;
  $("config-haproxy").textContent = state.config_snippets.haproxy;
}

// -- directives --------------------------------------------------------------------------

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function buildDirective(slug, index, directive) {
  if (directive.kind === "do") return buildDo(slug, index, directive);
  if (directive.kind === "predict") return buildPredict(slug, index, directive);
  return buildExpect(directive);
}

function buildDo(slug, index, directive) {
  const button = element("button", "primary", directive.label);
  button.type = "button";
  const status = element("span", "directive-status");
  status.setAttribute("role", "status");
  button.addEventListener("click", async () => {
    button.disabled = true;
    status.textContent = "running…";
    const ok = await runSteps(directive.run, directive.repeat, (turn) => {
      status.textContent = `running… ${turn} of ${directive.repeat}`;
    });
    button.disabled = false;
    status.textContent = ok ? "done ✓" : "refused (see the message at the top)";
    if (ok) useDirective(slug, index);
  });
  return [button, status];
}

/** Run the steps `repeat` times; between turns wait until every answer is in. */
async function runSteps(steps, repeat = 1, onTurn = () => {}) {
  const sends = steps.filter((s) => s.action === "send").reduce((sum, s) => sum + s.count, 0);
  const resets = steps.some((s) => s.action === "reset" || s.action === "reset_lesson");
  for (let turn = 1; turn <= repeat; turn += 1) {
    if (repeat > 1) onTurn(turn);
    const before = resets ? 0 : lab.view.counters?.traffic?.sent ?? 0;
    for (const step of steps) {
      const answer = await lab.command(step);
      if (!answer.ok) return false;
    }
    if (turn < repeat && !(await quiet(before + sends))) return false;
  }
  return true;
}

/** Resolve true once the counters say `sent` requests went out and none is in flight. */
function quiet(sent) {
  const deadline = Date.now() + QUIET_TIMEOUT_MS;
  return new Promise((resolve) => {
    const look = () => {
      const counters = lab.view.counters || {};
      const traffic = counters.traffic;
      const layer4 = lab.view.state?.mode === "tcp";
      if (traffic && traffic.sent >= sent && traffic.in_flight === 0 && (layer4 || counters.active === 0)) resolve(true);
      else if (Date.now() > deadline) resolve(false);
      else setTimeout(look, 50);
    };
    look();
  });
}

function buildPredict(slug, index, directive) {
  const question = element("p", "predict-question", directive.question);
  const choices = element("div", "predict-choices");
  choices.setAttribute("role", "group");
  choices.setAttribute("aria-label", directive.question);
  const result = element("p", "predict-result");
  result.setAttribute("role", "status");
  const explain = element("p", "predict-explain", directive.explain || "");
  explain.hidden = true;
  const buttons = directive.choices.map((choice) => {
    const button = element("button", "", choice);
    button.type = "button";
    button.dataset.choice = choice;
    button.addEventListener("click", () => ask(choice));
    return button;
  });
  choices.append(...buttons);

  async function ask(choice) {
    for (const button of buttons) {
      button.disabled = true;
      button.classList.toggle("chosen", button.dataset.choice === choice);
    }
    result.dataset.verdict = "";
    result.textContent = `You said ${choice}. Sending the request…`;
    if (lab.view.state && lab.view.state.traffic.available && !lab.view.state.traffic.paused) {
      await lab.command({ action: "pause" }); // the next request must be this one
    }
    const decision = nextRoute();
    const ok = await runSteps(directive.run);
    const route = ok ? await decision.promise : (decision.cancel(), null);
    for (const button of buttons) {
      button.disabled = false;
      button.classList.toggle("actual", Boolean(route) && button.dataset.choice === route.backend);
    }
    if (!route) {
      result.textContent = "No decision came back; is the lab still running?";
      return;
    }
    const right = route.backend === choice;
    result.dataset.verdict = right ? "right" : "wrong";
    result.textContent = `${right ? "✓ Right" : "✗ Not this time"}: the balancer chose ${route.backend}, because ${route.reason}.`;
    explain.hidden = !directive.explain;
    useDirective(slug, index);
  }

  return [question, choices, result, explain];
}

/** The next route event to arrive, as {promise, cancel}. */
function nextRoute() {
  let done;
  let timer;
  const promise = new Promise((resolve) => {
    done = (route) => {
      lab.socket.off("batch", look);
      clearTimeout(timer);
      resolve(route);
    };
    timer = setTimeout(() => done(null), PREDICT_TIMEOUT_MS);
  });
  function look(batch) {
    const route = batch.events.find((e) => e.type === "route");
    if (route) done(route);
  }
  lab.socket.on("batch", look);
  return { promise, cancel: () => done(null) };
}

function buildExpect(directive) {
  const label = element("p", "expect-label", "What you should see");
  const say = element("p", "expect-say", directive.say);
  const details = element("details", "expect-checks");
  details.append(element("summary", "", "How the test suite checks this"));
  const list = element("ul");
  if (directive.routes) list.append(element("li", "", `the decisions went to ${directive.routes.join(", ")}, in that order`));
  for (const check of directive.check) {
    const item = element("li");
    item.append(element("code", "", check));
    list.append(item);
  }
  details.append(list);
  return [label, say, details];
}

// -- wiring ------------------------------------------------------------------------------

function wire() {
  $("lessons-toggle").addEventListener("click", () => {
    const open = $("lesson-panel").hidden;
    setPanelOpen(open);
    if (open && !course.current) setIndexOpen(true);
  });
  $("lesson-close").addEventListener("click", () => setPanelOpen(false));
  $("lesson-index-toggle").addEventListener("click", () => setIndexOpen($("lesson-index").hidden));
  $("lesson-prev").addEventListener("click", () => course.current?.previous && openLesson(course.current.previous.slug));
  $("lesson-next").addEventListener("click", () => course.current?.next && openLesson(course.current.next.slug));
  $("lesson-reset").addEventListener("click", () => {
    if (!course.current) return;
    const slug = course.current.slug;
    renderLesson(course.current); // fresh buttons and questions too
    applyLesson(slug, "reset_lesson");
  });
  $("lesson-done").addEventListener("click", () => {
    if (course.current) markProgress(course.current.slug, (entry) => ({ done: !entry.done }));
  });
  // Links to other lessons open in place; every other link behaves as usual.
  $("lesson-panel").addEventListener("click", (event) => {
    const link = event.target.closest("a[href^='/lessons/']");
    if (!link || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
    event.preventDefault();
    openLesson(decodeURIComponent(link.getAttribute("href").slice("/lessons/".length)));
  });
  window.addEventListener("popstate", () => {
    const slug = slugFromPath();
    if (slug) openLesson(slug, { push: false });
    else setPanelOpen(false);
  });
  lab.socket.on("state", renderSnippets);
  const tabs = [$("tab-nginx"), $("tab-haproxy")];
  const choose = (tab) => {
    for (const other of tabs) {
      const chosen = other === tab;
      other.setAttribute("aria-selected", String(chosen));
      other.tabIndex = chosen ? 0 : -1;
      $(other.getAttribute("aria-controls")).hidden = !chosen;
    }
  };
  for (const tab of tabs) {
    tab.addEventListener("click", () => choose(tab));
    tab.addEventListener("keydown", (event) => {
      if (event.key !== "ArrowLeft" && event.key !== "ArrowRight") return;
      const next = tabs[(tabs.indexOf(tab) + 1) % tabs.length];
      choose(next);
      next.focus();
    });
  }
}

function slugFromPath() {
  const match = /^\/lessons\/([^/]+)$/.exec(location.pathname);
  return match ? decodeURIComponent(match[1]) : document.body.dataset.lesson || "";
}

/** The first `state` from the server (to know which lesson the lab has now). */
function firstState() {
  if (lab.view.state) return Promise.resolve(lab.view.state);
  return new Promise((resolve) => lab.socket.once("state", resolve));
}

async function start() {
  wire();
  try {
    course.lessons = (await fetchJson("/api/lessons")).lessons;
  } catch {
    course.lessons = [];
  }
  renderIndex();
  $("lessons-toggle").hidden = course.lessons.length === 0;
  const slug = slugFromPath();
  if (!slug) return;
  const state = await firstState();
  // A reload keeps the lab as the learner left it; a new lesson sets it up.
  const applied = state.lesson && state.lesson.slug === slug;
  await openLesson(slug, { push: false, apply: !applied });
  if (applied) $("lesson-applied").textContent = "The lab is as you left it. Reset lesson puts this lesson's settings back.";
}

start();
