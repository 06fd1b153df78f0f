// The player of an exported recording (lb-lab export): the lab's own page and components,
// fed by a recording instead of a live lab (feed.js's `deliver`, as the live feed does),
// with play, pause, seek, speed and step. It says plainly that this is a recording of a real
// run, and when and how it was made. A bad recording gets one clear message and no lab.

import { LabPage } from "./page.js";
import { Comparison } from "./compare.js";
import { Store } from "./store.js";
import { deliver } from "./feed.js";
import { readRecording } from "./recording.js";
import { Replay } from "./replay.js";

const SPEEDS = [0.25, 0.5, 1, 2, 4];
const NOT_LIVE = { ok: false, error: "this is a recording of a real run: it plays what the lab did and cannot be changed" };

const BAR = `
  <div class="player-banner" data-part="player-banner">
    <p><strong>Recording of a real run</strong> <span data-part="player-made"></span></p>
    <details><summary>How it was made</summary><p data-part="player-how"></p></details>
  </div>
  <div class="player-controls" role="group" aria-label="Playback">
    <button type="button" data-part="player-play" class="primary">Play</button>
    <button type="button" data-part="player-back" aria-label="Step back">◂ Step</button>
    <button type="button" data-part="player-step" aria-label="Step forward">Step ▸</button>
    <input type="range" data-part="player-seek" min="0" step="any" value="0" aria-label="Position in the recording">
    <output data-part="player-time">0.0 s</output>
    <label>Speed <select data-part="player-speed"></select></label>
  </div>`;

/** [the banner's one line, the details of how]: when, with what, how long; then exactly how. */
function describeMade(header) {
  const made = header.made || {};
  const when = made.at ? made.at.replace("T", " ").replace("Z", " UTC") : "at an unknown time";
  const line = [`made ${when} with ${made.by || "lb-lab"}`, `${Number(header.duration_s || 0).toFixed(1)} s`];
  if (header.lesson) line.push(`lesson: ${header.lesson.title}${header.section ? `, ${header.section}` : ""}`);
  if ((header.sides || []).length > 1) line.push(`sides: ${header.sides.join(", ")}`);
  const settings = Object.entries(made.settings || {}).map(([key, value]) => `${key} ${value}`).join(", ");
  const how = [
    made.command && made.command !== "record" ? `command: ${made.command}` : "",
    `lb-lab ${made.lab_version || "?"}, balancer ${made.build || "build unknown"}`,
    settings ? `lab settings: ${settings}` : "",
    `format version ${header.version}`,
  ];
  return [line.join(" · "), how.filter(Boolean).join("; ")];
}

class Player {
  constructor(bar, recording, page, store, comparison) {
    this.part = (name) => bar.querySelector(`[data-part="${name}"]`);
    this.page = page;
    this.speed = 1;
    this.playing = false;
    this.last = null;
    this.replay = new Replay(
      recording.messages,
      (name, data) => deliver(store, name, data),
      () => {
        store.clear();
        store.right.clear();
        page.log.clear();
        page.scene.clear();
        comparison.right.scene.clear();
      },
    );
    const [line, how] = describeMade(recording.header);
    this.part("player-made").textContent = line;
    this.part("player-how").textContent = how;
    const seek = this.part("player-seek");
    seek.max = String(this.replay.duration);
    seek.addEventListener("input", () => this.seek(Number(seek.value)));
    this.part("player-play").addEventListener("click", () => (this.playing ? this.pause() : this.play()));
    this.part("player-step").addEventListener("click", () => {
      this.pause();
      this.replay.step();
      this.show();
    });
    this.part("player-back").addEventListener("click", () => {
      this.pause();
      this.replay.stepBack();
      this.show();
    });
    const speed = this.part("player-speed");
    for (const value of SPEEDS) speed.append(new Option(`${value}×`, String(value), value === 1, value === 1));
    speed.addEventListener("change", () => this.setSpeed(Number(speed.value)));
    this.replay.seek(0);
    this.show();
  }

  play() {
    if (this.replay.ended) this.replay.seek(0);
    if (!performance.getEntriesByName("lb-lab-playing").length) performance.mark("lb-lab-playing");
    this.playing = true;
    this.last = null;
    this.show();
    const tick = (now) => {
      if (!this.playing) return;
      const dt = this.last === null ? 0 : Math.min(now - this.last, 250);
      this.last = now;
      this.replay.advanceTo(this.replay.position + (dt / 1000) * this.speed);
      if (this.replay.ended) this.pause();
      this.show();
      if (this.playing) requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  }

  pause() {
    this.playing = false;
    this.show();
  }

  seek(t) {
    this.replay.seek(t);
    this.show();
  }

  setSpeed(speed) {
    this.speed = speed;
    this.page.scene.speed = speed; // the dots keep pace with the run
  }

  show() {
    const { position, duration } = this.replay;
    const seek = this.part("player-seek");
    if (document.activeElement !== seek) seek.value = String(position);
    this.part("player-time").textContent = `${position.toFixed(1)} / ${duration.toFixed(1)} s`;
    const play = this.part("player-play");
    play.textContent = this.playing ? "Pause" : "Play";
    play.setAttribute("aria-pressed", String(this.playing));
    document.body.dataset.player = this.playing ? "playing" : this.replay.ended ? "ended" : "paused";
  }
}

async function main() {
  const root = document.querySelector("[data-lab]");
  const bar = document.createElement("section");
  bar.className = "player";
  bar.setAttribute("aria-label", "Recording");
  bar.innerHTML = BAR;
  const error = document.createElement("p");
  error.className = "player-error";
  error.setAttribute("role", "alert");
  error.hidden = true;
  document.body.prepend(bar, error);
  let recording;
  try {
    recording = await readRecording(window.LB_LAB_RECORDING);
  } catch (problem) {
    bar.hidden = true;
    error.textContent = `This recording cannot be played: ${problem.message}.`;
    error.hidden = false;
    document.body.dataset.player = "error";
    return;
  }
  const store = new Store(async () => NOT_LIVE);
  store.right = new Store(async () => NOT_LIVE); // a recorded comparison's right side
  const page = new LabPage(root, store);
  const comparison = new Comparison(root, store, store.right);
  store.setConnection("recording");
  const player = new Player(bar, recording, page, store, comparison);
  root.lab.player = player;
  root.lab.recording = recording;
  document.body.classList.add("replay-ready");
  page.start({ lessons: false });
  comparison.start();
  player.play();
}

main();
