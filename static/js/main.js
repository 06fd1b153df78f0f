// The page's entry point: every lab root on the page gets its own store and components.
// Today there is one root, fed live by the server this page came from.

import { liveStore } from "./feed.js";
import { LabPage } from "./page.js";
import { Comparison } from "./compare.js";

for (const root of document.querySelectorAll("[data-lab]")) {
  const store = liveStore(window.io);
  new LabPage(root, store).start();
  new Comparison(root, store, store.right).start();
}
