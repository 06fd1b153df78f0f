// The lesson panel of one lab: the course list with progress, one lesson's text and its
// directives (directives.js). Built on the lab's root element and fed by its store.
//
// Lesson HTML comes from the server already safe (markdown with raw HTML off); every
// directive is built from JSON with text nodes only. Progress lives in this browser.

import { Directives } from "./directives.js";
import { loadProgress, lessonProgress, markProgress } from "./progress.js";

const RECHECK_MS = 2000; // boxes already checked look again this often while shown
const TITLE = "Load Balancing Lab";

async function fetchJson(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" } });
  if (!response.ok) throw new Error(`${url} answered ${response.status}`);
  return response.json();
}

export class LessonPanel {
  constructor(root, store, { history, onToggle }) {
    this.root = root;
    this.store = store;
    this.history = history;
    this.onToggle = onToggle;
    this.part = (name) => root.querySelector(`[data-part="${name}"]`);
    this.lessons = [];
    this.current = null;
    this.directives = null;
    this.started = new Promise((resolve) => (this.markStarted = resolve)); // list loaded, URL's lesson open
    this.wire();
    setInterval(() => {
      if (!this.part("lesson-panel").hidden && this.directives) this.directives.recheck();
    }, RECHECK_MS);
  }

  get open() {
    return !this.part("lesson-panel").hidden;
  }

  // -- the course list ---------------------------------------------------------------------

  renderIndex() {
    const progress = loadProgress();
    this.part("lesson-index").replaceChildren(...this.lessons.map((lesson, i) => {
      const link = document.createElement("a");
      link.href = `/lessons/${encodeURIComponent(lesson.slug)}`;
      link.dataset.slug = lesson.slug;
      link.title = lesson.summary;
      const state = progress[lesson.slug];
      const span = (className, textContent) => Object.assign(document.createElement("span"), { className, textContent });
      const mark = span("lesson-mark", state?.done ? "✓" : state?.visited ? "•" : "");
      mark.title = state?.done ? "done" : state?.visited ? "opened" : "";
      link.append(span("lesson-number", String(i + 1)), span("lesson-name", lesson.title), mark);
      if (this.current?.slug === lesson.slug) link.setAttribute("aria-current", "page");
      const item = document.createElement("li");
      item.append(link);
      return item;
    }));
    const done = this.lessons.filter((l) => progress[l.slug]?.done).length;
    this.part("lesson-progress").textContent = this.lessons.length ? `${done} of ${this.lessons.length} done` : "";
  }

  setIndexOpen(open) {
    this.part("lesson-index").hidden = !open;
    this.part("lesson-index-toggle").setAttribute("aria-expanded", String(open));
  }

  setPanelOpen(open, { focus = false } = {}) {
    this.part("lesson-panel").hidden = !open;
    this.root.classList.toggle("with-lesson", open);
    this.part("lessons-toggle").setAttribute("aria-expanded", String(open));
    document.title = open && this.current ? `${this.current.title} · ${TITLE}` : TITLE;
    this.onToggle();
    // The lesson's text is the next thing the keyboard reaches: close, All lessons, the text.
    if (open && focus) this.part("lesson-close").focus();
  }

  // -- one lesson --------------------------------------------------------------------------

  /** Show a lesson and (unless the lab already has it) apply its settings. */
  async openLesson(slug, { push = true, apply = true, focus = false } = {}) {
    let lesson;
    try {
      lesson = await fetchJson(`/api/lessons/${encodeURIComponent(slug)}`);
    } catch {
      this.setPanelOpen(true, { focus });
      this.setIndexOpen(true);
      this.part("lesson-progress").textContent = `No lesson "${slug}" here`;
      return;
    }
    this.current = lesson;
    // The query (?presenter=1) stays with the page from lesson to lesson.
    if (push && location.pathname !== `/lessons/${slug}`) history.pushState({ slug }, "", `/lessons/${slug}${location.search}`);
    this.setPanelOpen(true, { focus });
    this.setIndexOpen(false);
    this.renderLesson(lesson);
    this.mark(slug, () => ({ visited: true }));
    this.part("lesson").scrollTop = 0;
    // A viewer reads; only the presenter (or the one user) changes the lab.
    if (apply && this.store.role !== "viewer") await this.applyLesson(slug, "open_lesson");
  }

  async applyLesson(slug, action) {
    const status = this.part("lesson-applied");
    status.textContent = "Switching the lab to this lesson's settings…";
    // Until the lab is the lesson's, its buttons wait: a request sent now would meet the
    // old settings, or be lost as the traffic restarts, and the lesson would not add up.
    const body = this.part("lesson-body");
    body.inert = true;
    body.setAttribute("aria-busy", "true");
    let answer;
    try {
      answer = await this.store.command({ action, slug });
    } finally {
      body.inert = false;
      body.removeAttribute("aria-busy");
    }
    status.textContent = answer.ok ? "The lab now has this lesson's settings. Change anything you like; Reset lesson puts them back." : "";
  }

  renderLesson(lesson) {
    const position = this.lessons.findIndex((l) => l.slug === lesson.slug);
    this.part("lesson").hidden = false;
    this.part("lesson-kicker").textContent = position >= 0 ? `Lesson ${position + 1} of ${this.lessons.length}` : "Lesson";
    this.part("lesson-heading").textContent = lesson.title;
    this.part("lesson-summary").textContent = lesson.summary;
    const body = this.part("lesson-body");
    body.innerHTML = lesson.html; // safe: rendered by the server with raw HTML off
    if (this.directives) this.directives.dispose();
    this.renderedInClass = Boolean(this.store.you && this.store.you.classroom);
    this.directives = new Directives(lesson, {
      store: this.store,
      used: (index) => this.mark(lesson.slug, (entry) => ({ used: entry.used.includes(index) ? entry.used : [...entry.used, index] })),
      step: (label) => this.history.step(label),
    });
    for (const holder of body.querySelectorAll("[data-directive]")) {
      const index = Number(holder.dataset.directive);
      const directive = lesson.directives[index];
      if (directive) holder.replaceChildren(...this.directives.build(index, directive));
    }
    this.renderFoot();
    this.renderSnippets(this.store.state);
  }

  mark(slug, change) {
    markProgress(slug, change, this.current);
    this.renderIndex();
    this.renderFoot();
  }

  renderFoot() {
    const lesson = this.current;
    this.part("lesson-foot").hidden = !lesson;
    for (const [name, target] of [["lesson-prev", lesson?.previous], ["lesson-next", lesson?.next]]) {
      const button = this.part(name);
      button.disabled = !target;
      button.title = target ? target.title : "";
    }
    this.part("lesson-reset").disabled = !lesson;
    const done = Boolean(lesson && lessonProgress(lesson.slug).done);
    const button = this.part("lesson-done");
    button.disabled = !lesson;
    button.setAttribute("aria-pressed", String(done));
    button.textContent = done ? "Done ✓" : "Mark done";
  }

  renderSnippets(state) {
    if (!state || !state.config_snippets) return;
    this.part("config-nginx").textContent = state.config_snippets.nginx;
    this.part("config-haproxy").textContent = state.config_snippets.haproxy;
  }

  /** How many of the lesson's headings are above `line` px from the top of its view. */
  section(line) {
    const top = this.part("lesson").getBoundingClientRect().top + line;
    return this.headings().filter((h) => h.getBoundingClientRect().top <= top).length;
  }

  /** Scroll the lesson so that section `n` (0: the top) starts at the top of its view. */
  showSection(n) {
    const lesson = this.part("lesson");
    const heading = this.headings()[n - 1];
    if (!heading) {
      lesson.scrollTop = 0;
      return;
    }
    lesson.scrollTop += heading.getBoundingClientRect().top - lesson.getBoundingClientRect().top - 8;
  }

  headings() {
    return [...this.part("lesson-body").querySelectorAll("h2, h3")];
  }

  /** Leave the lesson: the lab goes back to its plain start (three backends, no pools). */
  leave() {
    this.current = null;
    this.directives = null;
    this.part("lesson").hidden = true;
    this.part("lesson-foot").hidden = true;
    if (location.pathname !== "/") history.pushState({}, "", `/${location.search}`);
    this.setPanelOpen(false);
    this.renderIndex();
  }

  // -- wiring ------------------------------------------------------------------------------

  wire() {
    const on = (name, kind, handler) => this.part(name).addEventListener(kind, handler);
    on("lessons-toggle", "click", () => {
      const open = !this.open;
      this.setPanelOpen(open, { focus: open });
      if (open && !this.current) this.setIndexOpen(true);
    });
    on("lesson-close", "click", () => this.close());
    on("lesson-index-toggle", "click", () => this.setIndexOpen(this.part("lesson-index").hidden));
    on("lesson-prev", "click", () => this.current?.previous && this.openLesson(this.current.previous.slug));
    on("lesson-next", "click", () => this.current?.next && this.openLesson(this.current.next.slug));
    on("lesson-reset", "click", () => {
      if (!this.current) return;
      this.renderLesson(this.current); // fresh buttons and questions too
      this.applyLesson(this.current.slug, "reset_lesson");
    });
    on("lesson-done", "click", () => this.current && this.mark(this.current.slug, (entry) => ({ done: !entry.done })));
    // Escape closes the panel from anywhere in it (a select or a dialog keeps its own Escape).
    on("lesson-panel", "keydown", (event) => {
      if (event.key === "Escape" && !event.defaultPrevented) {
        event.preventDefault();
        this.close();
      }
    });
    // Links to other lessons open in place; every other link behaves as usual.
    on("lesson-panel", "click", (event) => {
      const link = event.target.closest("a[href^='/lessons/']");
      if (!link || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
      event.preventDefault();
      this.openLesson(decodeURIComponent(link.getAttribute("href").slice("/lessons/".length)));
    });
    window.addEventListener("popstate", () => {
      const slug = this.slugFromPath();
      if (slug) this.openLesson(slug, { push: false });
      else this.setPanelOpen(false);
    });
    this.store.on("state", ({ state }) => this.renderSnippets(state));
    // A class question looks different once the page knows it is in a classroom.
    this.store.on("you", (you) => {
      if (this.current && Boolean(you.classroom) !== this.renderedInClass) this.renderLesson(this.current);
    });
    this.wireTabs();
  }

  close() {
    this.setPanelOpen(false);
    this.part("lessons-toggle").focus();
  }

  wireTabs() {
    const tabs = [this.part("tab-nginx"), this.part("tab-haproxy")];
    const choose = (tab) => {
      for (const other of tabs) {
        const chosen = other === tab;
        other.setAttribute("aria-selected", String(chosen));
        other.tabIndex = chosen ? 0 : -1;
        this.part(other.dataset.part.replace("tab-", "config-")).hidden = !chosen;
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

  slugFromPath() {
    const match = /^\/lessons\/([^/]+)$/.exec(location.pathname);
    return match ? decodeURIComponent(match[1]) : this.root.dataset.lesson || "";
  }

  async start() {
    try {
      this.lessons = (await fetchJson("/api/lessons")).lessons;
    } catch {
      this.lessons = [];
    }
    this.renderIndex();
    this.part("lessons-toggle").hidden = this.lessons.length === 0;
    const slug = this.slugFromPath();
    if (!slug) {
      this.markStarted();
      return;
    }
    const state = this.store.state || (await new Promise((resolve) => {
      const off = this.store.on("state", ({ state: first }) => {
        off();
        resolve(first);
      });
    }));
    // A reload keeps the lab as the learner left it; a new lesson sets it up.
    const applied = state.lesson && state.lesson.slug === slug;
    await this.store.known();
    await this.openLesson(slug, { push: false, apply: !applied });
    if (applied) this.part("lesson-applied").textContent = "The lab is as you left it. Reset lesson puts this lesson's settings back.";
    this.markStarted();
  }
}
