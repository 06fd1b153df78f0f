// Lesson progress, in this browser's localStorage: which lessons were opened, which are
// done, and which of a lesson's buttons and questions were used.

const STORE = "lb-lab.lessons.v1";

export function loadProgress() {
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

export function lessonProgress(slug) {
  const progress = loadProgress();
  return progress[slug] || { visited: false, done: false, used: [] };
}

/** Change one lesson's entry; a lesson whose every button and question was used is done. */
export function markProgress(slug, change, lesson = null) {
  const progress = loadProgress();
  const entry = progress[slug] || { visited: false, done: false, used: [] };
  const next = { ...entry, ...change(entry) };
  if (lesson && lesson.slug === slug && !next.done) {
    const interactive = lesson.directives.map((d, i) => (d.kind === "expect" ? -1 : i)).filter((i) => i >= 0);
    if (interactive.length && interactive.every((i) => next.used.includes(i))) next.done = true;
  }
  progress[slug] = next;
  saveProgress(progress);
  return next;
}
