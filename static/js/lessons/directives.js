// A lesson's directives, built from JSON with text nodes only: `do` buttons, `predict`
// questions and `expect` boxes checked live against the lab.
//
// An `expect` box asks the server to work its checks out (the `check` event, answered by
// lab/web/lesson_checks.py with the CI lesson runner's own measurements), so the page and
// the test suite can never disagree about what a claim means.

import { ClassQuestion, outcomeText } from "./class_question.js";

const QUIET_TIMEOUT_MS = 20000;
const PREDICT_TIMEOUT_MS = 10000;

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/**
 * Builds the directives of one lesson. `lab` gives what they need: the store, `used(index)`
 * (a button or question was used), `step(label)` (a new run begins) and `checked()` (the
 * `expect` boxes that follow a finished button should look again).
 */
export class Directives {
  constructor(lesson, lab) {
    this.lesson = lesson;
    this.lab = lab;
    this.store = lab.store;
    this.expects = new Map(); // index -> {check(), shown}
    this.questions = []; // class questions (a classroom), which listen to the store
  }

  /** Stop listening to the store (the lesson is rendered anew or left). */
  dispose() {
    for (const question of this.questions) question.dispose();
    this.questions = [];
  }

  build(index, directive) {
    if (directive.kind === "do") return this.buildDo(index, directive);
    if (directive.kind === "predict") return this.buildPredict(index, directive);
    return this.buildExpect(index, directive);
  }

  buildDo(index, directive) {
    const button = element("button", "primary", directive.label);
    button.type = "button";
    const status = element("span", "directive-status");
    status.setAttribute("role", "status");
    button.addEventListener("click", async () => {
      button.disabled = true;
      status.textContent = "running…";
      this.lab.step(directive.label);
      let ok = await this.runSteps(directive.run, directive.repeat, (turn) => {
        status.textContent = `running… ${turn} of ${directive.repeat}`;
      });
      if (ok && directive.refused === undefined) {
        status.textContent = "waiting for the answers…";
        ok = await this.answered();
        if (!ok) status.textContent = "sent; some answers have not come back yet";
      }
      button.disabled = false;
      if (directive.refused !== undefined) status.textContent = ok ? "done ✓" : "refused, as the lesson says";
      else if (ok) status.textContent = "done ✓";
      else if (!status.textContent.startsWith("sent")) status.textContent = "refused (see the message at the top)";
      if (ok || directive.refused !== undefined) this.lab.used(index);
      this.checkAfter(index);
    });
    return [button, status];
  }

  /** Check the `expect` boxes between this directive and the next button. */
  checkAfter(index) {
    const directives = this.lesson.directives;
    for (let i = index + 1; i < directives.length && directives[i].kind !== "do"; i += 1) {
      const box = this.expects.get(i);
      if (box) box.check();
    }
  }

  /** Run the steps `repeat` times; between turns wait until every answer is in. */
  async runSteps(steps, repeat = 1, onTurn = () => {}) {
    const sends = steps.filter((s) => s.action === "send").reduce((sum, s) => sum + s.count, 0);
    const resets = steps.some((s) => ["reset", "reset_lesson", "compare"].includes(s.action));
    for (let turn = 1; turn <= repeat; turn += 1) {
      if (repeat > 1) onTurn(turn);
      const before = resets ? 0 : this.store.counters?.traffic?.sent ?? 0;
      for (const step of steps) {
        const answer = await this.store.command(step);
        if (!answer.ok) return false;
      }
      this.target = { before, sends };
      if (turn < repeat && !(await this.answered())) return false;
    }
    return true;
  }

  /** Resolve true once the requests sent are all answered (false after a while). */
  answered() {
    const store = this.store;
    const { before, sends } = this.target || { before: 0, sends: 0 };
    const quiet = () => {
      const counters = store.counters || {};
      const traffic = counters.traffic;
      if (!traffic) return true;
      // `before` may have been read just before a reset reached this page (a lesson just
      // opened): a count below it means the counters started again, so only `sends` count.
      const target = (traffic.sent < before ? 0 : before) + sends;
      const layer4 = store.state && store.state.mode === "tcp";
      const running = store.state && store.state.traffic.available && !store.state.traffic.paused;
      // Background traffic never stops: then the step's own requests being sent is enough.
      return traffic.sent >= target && (running || (traffic.in_flight === 0 && (layer4 || counters.active === 0)));
    };
    if (quiet()) return Promise.resolve(true);
    return store.next("counters", quiet, QUIET_TIMEOUT_MS).then(Boolean);
  }

  buildPredict(index, directive) {
    if (this.store.you && this.store.you.classroom) {
      const done = () => {
        this.lab.used(index);
        this.checkAfter(index);
      };
      const question = new ClassQuestion({ slug: this.lesson.slug, index, directive, store: this.store, done });
      this.questions.push(question);
      return question.nodes();
    }
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
    const ask = async (choice) => {
      for (const button of buttons) {
        button.disabled = true;
        button.classList.toggle("chosen", button.dataset.choice === choice);
      }
      result.dataset.verdict = "";
      result.textContent = `You said ${choice}. ${directive.judged ? "Running the experiment…" : "Sending the request…"}`;
      const outcome = await this.askLab(index, directive);
      for (const button of buttons) {
        button.disabled = false;
        button.classList.toggle("actual", Boolean(outcome) && button.dataset.choice === outcome.answer);
      }
      if (!outcome) {
        result.textContent = directive.judged
          ? "No measurement came back; is the lab still running?"
          : "No decision came back; is the lab still running?";
        return;
      }
      const right = outcome.answer === choice;
      result.dataset.verdict = right ? "right" : "wrong";
      result.textContent = `${right ? "✓ Right" : "✗ Not this time"}: ${outcomeText(directive, outcome)}.`;
      explain.hidden = !directive.explain;
      this.lab.used(index);
      this.checkAfter(index);
    };

    return [question, choices, result, explain];
  }

  /**
   * Put a question to the lab as a class question of one (lab/web/room.py), so that the
   * traffic holds while it is open as lab state every page sees, and runs again after it
   * if it ran before: ask, reveal (the lab sends the request, or runs the experiment and
   * judges it), close. Resolve with the outcome ({answer, reason}) or null.
   */
  async askLab(index, directive) {
    const store = this.store;
    // A judged question runs a whole experiment before its reveal answers (up to wait_s).
    const revealMs = directive.judged ? PREDICT_TIMEOUT_MS + 1000 * directive.wait_s * (directive.repeat + 1) : PREDICT_TIMEOUT_MS;
    const slug = this.lesson.slug;
    const ours = (classroom) => {
      const round = classroom && classroom.round;
      return round && round.slug === slug && round.index === index ? round : null;
    };
    const opened = store.next("classroom", ({ classroom }) => {
      const round = ours(classroom);
      return round && round.status === "open" ? round : null;
    }, PREDICT_TIMEOUT_MS);
    if (!(await store.command({ action: "ask_class", slug, index })).ok) return null;
    const now = ours(store.classroom);
    const round = now && now.status === "open" ? now : await opened;
    if (!round) return null;
    const revealed = store.next("classroom", ({ classroom }) => {
      const seen = ours(classroom);
      return seen && seen.id === round.id && seen.outcome ? seen.outcome : null;
    }, revealMs);
    const shown = await store.command({ action: "reveal" });
    // A long experiment may outlast the command's acknowledgement; its outcome still comes.
    const late = !shown.ok && directive.judged && /did not answer/.test(shown.error || "");
    const outcome = shown.ok || late ? await revealed : null;
    await store.command({ action: "end_question" });
    return outcome;
  }

  buildExpect(index, directive) {
    const label = element("p", "expect-label", "What you should see");
    const say = element("p", "expect-say", directive.say);
    const verdict = element("div", "expect-verdict");
    verdict.setAttribute("role", "status");
    verdict.dataset.verdict = "unchecked";
    const button = element("button", "small", "Check now");
    button.type = "button";
    const head = element("p", "expect-result", "Not checked yet: do the step above, then look.");
    const list = element("ul", "expect-lines");
    verdict.append(head, list);
    const box = { shown: false, busy: false };
    box.check = async () => {
      if (box.busy || !this.store.ask) return;
      box.busy = true;
      const answer = await this.store.ask("check", { slug: this.lesson.slug, index });
      box.busy = false;
      box.shown = true;
      this.showVerdict(verdict, head, list, answer);
    };
    button.addEventListener("click", () => box.check());
    this.expects.set(index, box);
    return [label, say, verdict, button];
  }

  showVerdict(verdict, head, list, answer) {
    if (!answer.ok) {
      verdict.dataset.verdict = "unknown";
      head.textContent = `Could not check: ${answer.error}`;
      list.replaceChildren();
      return;
    }
    verdict.dataset.verdict = answer.holds ? "holds" : "fails";
    head.textContent = answer.holds ? "✓ The lab shows this now" : "✗ The lab does not show this now";
    list.replaceChildren(...answer.checks.map((check) => {
      const values = Object.entries(check.values).map(([name, value]) => `${name} = ${value == null ? "none" : +Number(value).toFixed(3)}`);
      const item = element("li", check.holds ? "holds" : "fails");
      item.append(element("span", "mark", check.holds ? "✓ " : "✗ "), element("code", "", check.text));
      if (values.length) item.append(element("span", "values", ` (${values.join(", ")})`));
      if (check.error) item.append(element("span", "values", `: ${check.error}`));
      return item;
    }));
  }

  /** Look again at every box already checked (the lab may have moved on). */
  recheck() {
    for (const box of this.expects.values()) if (box.shown) box.check();
  }
}
