// The Record button: asks the lab to record itself for some seconds (the `record` command;
// in classroom mode only the presenter may), shows the countdown, then offers the file.
// Every page of the lab hears the `recording` messages, so every page offers it.

const TICK_MS = 250;

export class RecordButton {
  constructor(root, store) {
    const part = (name) => root.querySelector(`[data-part="${name}"]`);
    this.button = part("record");
    this.seconds = part("record-seconds");
    this.status = part("record-status");
    this.timer = null;
    this.button.addEventListener("click", () => this.record());
    store.on("recording", (news) => this.show(news));
    this.store = store;
  }

  async record() {
    const seconds = Number(this.seconds.value);
    this.button.disabled = true;
    const answer = await this.store.command({ action: "record", seconds });
    if (!answer.ok) this.button.disabled = false; // the page's message says why
  }

  show(news) {
    clearInterval(this.timer);
    this.status.replaceChildren();
    this.status.hidden = false;
    if (news.status === "recording") {
      this.button.disabled = true;
      const until = performance.now() + news.seconds * 1000;
      const tick = () => {
        const left = Math.max(0, Math.ceil((until - performance.now()) / 1000));
        this.status.textContent = `● recording, ${left} s left`;
      };
      tick();
      this.timer = setInterval(tick, TICK_MS);
      return;
    }
    this.button.disabled = false;
    if (news.status === "ready") {
      const link = document.createElement("a");
      link.href = `/recordings/${encodeURIComponent(news.file)}`;
      link.download = news.file;
      link.textContent = `Download ${news.file}`;
      link.title = `${news.seconds.toFixed(1)} s, ${(news.bytes / 1e6).toFixed(2)} MB: lb-lab export ${news.file} --out DIR makes a page that plays it`;
      this.status.append(link);
    } else {
      this.status.textContent = `Not recorded: ${news.error}`;
    }
  }
}
