// A lesson's `predict` in a classroom: one question for the whole class (lab/web/room.py).
//
// The presenter asks the class, watches the answers arrive as bars ("b1: 4"), and reveals:
// the lab sends the request and everyone sees the real decision and its reason; or, for a
// question about a number, the lab runs its experiment, its claims judge the choices (on the
// server: lab/web/lesson_checks.py), and everyone sees the measurement and the answer. A viewer
// answers on their own device (once: a change of mind moves their one vote) and, at the
// reveal, sees their answer marked right or wrong. Built with text nodes only.

const VIEWER_KEY = "lb-lab.viewer.v1";
const ANSWERS_KEY = "lb-lab.class-answers.v1"; // this browser's own answers (its one vote), to show after a reload
const ANSWERS_KEPT = 50;

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/** This browser's anonymous viewer id: random, kept so a reload is the same viewer. */
export function viewerId() {
  let id = null;
  try {
    id = localStorage.getItem(VIEWER_KEY);
  } catch {
    // Storage refused (a private window): an id for this page's life is enough.
  }
  if (!id || !/^[A-Za-z0-9_-]{8,64}$/.test(id)) {
    const bytes = crypto.getRandomValues(new Uint8Array(12));
    id = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    try {
      localStorage.setItem(VIEWER_KEY, id);
    } catch {
      // as above
    }
  }
  return id;
}

function loadAnswers() {
  try {
    const kept = JSON.parse(localStorage.getItem(ANSWERS_KEY) || "{}");
    return kept && typeof kept === "object" ? kept : {};
  } catch {
    return {};
  }
}

function keepAnswer(key, option) {
  const kept = loadAnswers();
  delete kept[key];
  kept[key] = option;
  const keys = Object.keys(kept);
  for (const old of keys.slice(0, Math.max(0, keys.length - ANSWERS_KEPT))) delete kept[old];
  try {
    localStorage.setItem(ANSWERS_KEY, JSON.stringify(kept));
  } catch {
    // Storage refused: the answer still counts; only a reload forgets which it was.
  }
}

/**
 * What the lab found, in words: the balancer's decision and its reason, or, for a question
 * judged by claims (lab/lessons/directives.py), the measurement and the answer it bears out.
 */
export function outcomeText(directive, outcome) {
  if (!directive.judged) return `the balancer chose ${outcome.answer}, because ${outcome.reason}`;
  if (!outcome.answer) return `the lab measured ${outcome.reason}`;
  return `the lab measured ${outcome.reason}, so the answer is “${outcome.answer}”`;
}

export class ClassQuestion {
  /** `slug` and `index` say which block this is; `store` is the lab's; `done()` marks it used. */
  constructor({ slug, index, directive, store, done }) {
    this.slug = slug;
    this.index = index;
    this.directive = directive;
    this.store = store;
    this.done = done;
    this.presenter = store.role === "presenter";
    this.build();
    this.off = store.on("classroom", ({ classroom }) => this.render(classroom));
    this.render(store.classroom);
  }

  build() {
    const d = this.directive;
    this.question = element("p", "predict-question", d.question);
    this.choices = element("div", "predict-choices");
    this.choices.setAttribute("role", "group");
    this.choices.setAttribute("aria-label", d.question);
    this.buttons = d.choices.map((choice) => {
      const button = element("button", "", choice);
      button.type = "button";
      button.dataset.choice = choice;
      button.addEventListener("click", () => this.answer(choice));
      return button;
    });
    this.choices.append(...this.buttons);
    this.bars = element("ul", "class-tally");
    this.bars.setAttribute("aria-label", "the class's answers");
    this.actions = element("div", "class-actions");
    this.ask = this.action("Ask the class", () => this.command({ action: "ask_class", slug: this.slug, index: this.index }));
    this.reveal = this.action("Reveal", () => this.command({ action: "reveal" }));
    this.close = this.action("Close question", () => this.command({ action: "end_question" }));
    this.ask.classList.add("primary");
    this.actions.append(this.ask, this.reveal, this.close);
    this.result = element("p", "predict-result");
    this.result.setAttribute("role", "status");
    this.explain = element("p", "predict-explain", d.explain || "");
    this.explain.hidden = true;
  }

  action(label, run) {
    const button = element("button", "", label);
    button.type = "button";
    button.dataset.classAction = label;
    button.addEventListener("click", run);
    return button;
  }

  nodes() {
    const shown = this.presenter ? [this.actions, this.bars] : [this.choices];
    return [this.question, ...shown, this.result, this.explain];
  }

  dispose() {
    this.off();
  }

  async command(data) {
    const answer = await this.store.command(data);
    if (!answer.ok) this.result.textContent = answer.error;
  }

  /** The class's round, if it is this block's. */
  round(classroom) {
    const round = classroom && classroom.round;
    return round && round.slug === this.slug && round.index === this.index ? round : null;
  }

  async answer(choice) {
    const round = this.round(this.store.classroom);
    if (!round || round.status !== "open") return;
    const reply = await this.store.ask("answer", { round: round.id, option: choice, viewer: viewerId() });
    if (!reply.ok) {
      this.result.textContent = `Not counted: ${reply.error}`;
      return;
    }
    keepAnswer(this.key(round), choice);
    this.render(this.store.classroom);
  }

  render(classroom) {
    const round = this.round(classroom);
    const open = Boolean(round && round.status === "open");
    const outcome = round && round.outcome;
    if (this.presenter) this.renderPresenter(round, open);
    else this.renderViewer(round, open);
    this.explain.hidden = !(outcome && this.directive.explain);
    if (outcome && !this.marked) {
      this.marked = true;
      this.done();
    }
  }

  renderPresenter(round, open) {
    this.ask.disabled = open;
    this.reveal.disabled = !open;
    this.close.disabled = !round;
    this.bars.hidden = !round;
    if (!round) {
      this.result.dataset.verdict = "";
      this.result.textContent = "Ask the class: every viewer answers on their own device.";
      return;
    }
    const most = Math.max(1, ...Object.values(round.tally));
    this.bars.replaceChildren(...round.options.map((option) => {
      const count = round.tally[option] || 0;
      const item = element("li", "class-bar");
      item.dataset.option = option;
      item.dataset.count = String(count);
      if (round.outcome && round.outcome.answer === option) item.classList.add("actual");
      const bar = element("span", "class-bar-fill");
      bar.style.width = `${(100 * count) / most}%`;
      item.append(element("span", "class-bar-label", `${option}: ${count}`), bar);
      return item;
    }));
    if (this.shown !== round.id) {
      this.shown = round.id; // a new question: its bars come into view (and the class's)
      requestAnimationFrame(() => this.result.scrollIntoView({ block: "nearest" }));
    }
    const answers = `${round.answers} ${round.answers === 1 ? "answer" : "answers"}`;
    this.result.dataset.verdict = "";
    const said = round.outcome ? outcomeText(this.directive, round.outcome) : "";
    this.result.textContent = round.outcome
      ? `${said[0].toUpperCase()}${said.slice(1)}. (${answers})`
      : `${answers} so far. Reveal ${this.directive.judged ? "runs the experiment" : "sends the request"}.`;
  }

  /** A round's key in this browser's memory (round numbers start again with a new lab). */
  key(round) {
    return `${this.slug}#${this.index}#${round.id}#${round.question}`;
  }

  renderViewer(round, open) {
    const mine = round ? loadAnswers()[this.key(round)] : undefined;
    const outcome = round && round.outcome;
    for (const button of this.buttons) {
      button.disabled = !open;
      button.classList.toggle("chosen", button.dataset.choice === mine);
      button.classList.toggle("actual", Boolean(outcome) && button.dataset.choice === outcome.answer);
    }
    const result = this.result;
    result.dataset.verdict = "";
    if (!round) {
      result.textContent = "The presenter will ask the class this one.";
    } else if (open) {
      result.textContent = mine ? `Your answer: ${mine}. You can change it until the reveal.` : "Your answer? Tap one.";
    } else if (!mine) {
      const said = outcomeText(this.directive, outcome);
      result.textContent = `${said[0].toUpperCase()}${said.slice(1)}.`;
    } else {
      const right = mine === outcome.answer;
      result.dataset.verdict = right ? "right" : "wrong";
      result.textContent = `${right ? "✓ Right" : "✗ Not this time"}: you said ${mine}; ${outcomeText(this.directive, outcome)}.`;
    }
  }
}
