// The page's entry point: every lab root on the page gets its own store and components.
// Today there is one root, fed live by the server this page came from.

import { liveStore } from "./feed.js";
import { LabPage } from "./page.js";

for (const root of document.querySelectorAll("[data-lab]")) {
  new LabPage(root, liveStore(window.io)).start();
}
