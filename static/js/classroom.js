// The classroom on one lab's page: following the presenter, the viewer count and the QR code.
// Built on the lab's root element and fed by its store; the classroom itself is lab state
// (lab/web/room.py), the same for every page on every web front.
//
// - A viewer follows the presenter by default: their lesson, its section, the lesson panel
//   and the presenter view. Scrolling or moving in the lessons by hand stops following (read
//   ahead); the Follow button comes back. Animation speed stays the viewer's own.
// - A presenter's page reports where the presenter is (set_position) when they move, and
//   follows the room too, so a second presenter tab stays in step with the first.
// - The presenter's page shows how many viewers watch, and the viewers' URL as a QR code.
// - The one user of a lab that is no classroom sees none of this.

const REPORT_EVERY_MS = 300;
const READING_LINE_PX = 48; // a heading above this line, from the lesson's top, has been reached
const OWN_SCROLL_MS = 400; // scroll events this soon after following's own scroll are not the user's
const BY_HAND_MS = 1000; // a viewer's scroll this soon after their own wheel, touch or key is theirs
const OWN_MOVE_MS = 1500; // a presenter's own move wins over class positions sent before it

export class Classroom {
  constructor(root, store, { lessons, page }) {
    this.root = root;
    this.store = store;
    this.lessons = lessons;
    this.page = page;
    this.part = (name) => root.querySelector(`[data-part="${name}"]`);
    this.following = true;
    this.applied = null; // the room's position this page went to last (JSON)
    this.going = Promise.resolve();
    this.ownScrollUntil = 0;
    this.userScrolled = false;
    this.reporting = false; // a presenter's page reports its moves once it is in step
    this.ownMoveAt = -Infinity; // when this presenter last moved by hand
    this.deferred = null; // a look at the room's position, once an own move has settled
    this.handAt = -Infinity; // when a viewer last touched the lesson (wheel, finger, key)
    this.synced = false; // this page has taken the room's position once (or chose its own)
    store.on("you", (you) => this.renderRole(you));
    store.on("classroom", ({ classroom, before }) => this.onClassroom(classroom, before));
    this.wire();
  }

  get role() {
    return this.store.role;
  }

  get inClass() {
    return Boolean(this.store.you && this.store.you.classroom);
  }

  renderRole(you) {
    const viewer = you.role === "viewer";
    const presenter = you.role === "presenter";
    this.root.classList.toggle("viewer", viewer);
    this.root.classList.toggle("class-presenter", presenter);
    this.part("follow").hidden = !(viewer && you.classroom);
    this.part("viewers").hidden = !presenter;
    this.part("qr-toggle").hidden = !presenter;
    if (presenter && you.qr_svg) {
      this.part("qr-image").src = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(you.qr_svg)}`;
      this.part("qr-url").textContent = you.viewer_url;
    }
    this.renderFollow();
    if (this.store.classroom) this.onClassroom(this.store.classroom, null);
  }

  // -- following ---------------------------------------------------------------------------

  onClassroom(classroom, before) {
    const count = this.part("viewers");
    const viewers = classroom.viewers;
    count.textContent = `${viewers} ${viewers === 1 ? "viewer" : "viewers"}`;
    count.dataset.count = String(viewers);
    if (!this.inClass) return;
    const question = classroom.round && classroom.round.status === "open";
    this.part("follow").dataset.question = String(Boolean(question && !this.following));
    const where = JSON.stringify(classroom.position);
    if (!this.synced) {
      // A presenter who opened a lesson's address moves the class there; any other page
      // (a viewer, a second presenter tab) goes where the class is.
      const own = this.role === "presenter" && this.root.dataset.lesson;
      this.synced = true;
      if (own) this.lessons.started.then(() => (this.reporting = true));
      else this.goTo(classroom.position).then(() => (this.reporting = true));
      return;
    }
    // A presenter who just moved by hand is not sent back by a position the room sent
    // before it heard of the move (with a viewer count, say): the move is reported at once,
    // and the room's latest position is looked at again when the moment has passed (a
    // second presenter tab may have moved the class meanwhile).
    const wait = this.role === "presenter" ? this.ownMoveAt + OWN_MOVE_MS - performance.now() : 0;
    if (wait > 0) {
      clearTimeout(this.deferred);
      this.deferred = setTimeout(() => this.followRoom(), wait);
      return;
    }
    const moved = !before || JSON.stringify(before.position) !== where || this.applied === null;
    if (moved && this.following && where !== this.applied) this.goTo(classroom.position);
  }

  /** Go where the room's latest position is, if this page follows and is not there. */
  followRoom() {
    const room = this.store.classroom;
    if (room && this.following && JSON.stringify(room.position) !== this.applied) this.goTo(room.position);
  }

  /** Go where the presenter is (one move at a time, in order). */
  goTo(position) {
    const where = JSON.stringify(position);
    this.going = this.going.then(async () => {
      await this.lessons.started;
      this.applied = where;
      this.ownScrollUntil = performance.now() + OWN_SCROLL_MS;
      if (this.root.classList.contains("presenter") !== position.presenter_view) this.page.setPresenter(position.presenter_view);
      const lessons = this.lessons;
      if (position.lesson && (!lessons.current || lessons.current.slug !== position.lesson)) {
        await lessons.openLesson(position.lesson, { apply: false });
      }
      if (lessons.open !== position.panel) lessons.setPanelOpen(position.panel);
      if (position.panel && position.lesson) {
        this.ownScrollUntil = performance.now() + OWN_SCROLL_MS;
        lessons.showSection(position.section);
      }
      this.root.dataset.followed = where; // for the tests: the position this page shows
    });
    return this.going;
  }

  setFollowing(on) {
    this.following = on;
    this.renderFollow();
    if (on && this.store.classroom) {
      this.applied = null;
      this.goTo(this.store.classroom.position);
    }
  }

  renderFollow() {
    const button = this.part("follow");
    button.setAttribute("aria-pressed", String(this.following));
    button.textContent = this.following ? "Following the presenter" : "Follow the presenter";
    button.title = this.following ? "press to read ahead on your own" : "go back to where the presenter is";
    if (this.following) button.dataset.question = "false";
  }

  /** The viewer moved on their own (scrolled, opened another lesson): they read ahead now. */
  ownMove() {
    if (this.role === "viewer" && this.inClass && this.following) this.setFollowing(false);
    if (this.role === "presenter") {
      this.ownMoveAt = performance.now();
      setTimeout(() => this.report(), 0); // after the click's own handler has made the move
    }
  }

  // -- the presenter's position ------------------------------------------------------------

  position() {
    const lessons = this.lessons;
    return {
      lesson: lessons.current ? lessons.current.slug : "",
      section: lessons.open && lessons.current ? lessons.section(READING_LINE_PX) : 0,
      panel: lessons.open,
      presenter_view: this.root.classList.contains("presenter"),
    };
  }

  /** Tell the room where this presenter is, when they moved (not when they followed). */
  report() {
    const room = this.store.classroom;
    if (this.role !== "presenter" || !room || !this.reporting) return;
    const here = this.position();
    const there = room.position;
    const moved = here.lesson !== there.lesson || here.panel !== there.panel || here.presenter_view !== there.presenter_view;
    const scrolled = this.userScrolled && here.section !== there.section;
    this.userScrolled = false;
    if (!moved && !scrolled) return;
    const command = { action: "set_position", section: here.section, panel: here.panel, presenter_view: here.presenter_view };
    if (here.lesson) command.lesson = here.lesson;
    this.applied = JSON.stringify(here);
    this.store.command(command);
  }

  wire() {
    this.part("follow").addEventListener("click", () => this.setFollowing(!this.following));
    const qr = this.part("qr-panel");
    this.part("qr-toggle").addEventListener("click", () => {
      qr.hidden = !qr.hidden;
      this.part("qr-toggle").setAttribute("aria-expanded", String(!qr.hidden));
    });
    this.part("qr-close").addEventListener("click", () => {
      qr.hidden = true;
      this.part("qr-toggle").setAttribute("aria-expanded", "false");
    });
    const lesson = this.part("lesson");
    // A viewer reads ahead by scrolling with a wheel, a finger, the keys or the scroll bar. A
    // scroll with none of those is this page following the presenter, however late its
    // events come on a busy machine: it must not stop the following.
    for (const kind of ["wheel", "touchmove", "keydown", "pointerdown"]) {
      lesson.addEventListener(kind, () => (this.handAt = performance.now()), { passive: true });
    }
    lesson.addEventListener("scroll", () => {
      if (performance.now() < this.ownScrollUntil) return;
      this.userScrolled = true;
      if (this.role === "viewer" && performance.now() - this.handAt > BY_HAND_MS) return;
      this.ownMove();
    }, { passive: true });
    // Moving in the lessons by hand: another lesson, the list, the panel, the presenter view.
    for (const name of ["lesson-nav", "lesson-foot", "lesson-index", "lessons-toggle", "presenter-toggle"]) {
      this.part(name).addEventListener("click", () => this.ownMove());
    }
    setInterval(() => this.report(), REPORT_EVERY_MS);
  }
}
