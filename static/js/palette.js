// Colours: the Okabe-Ito palette, which colour-blind viewers can tell apart.
// Colour is never the only signal: every dot and card also carries the backend's number.

export const OKABE_ITO = Object.freeze({
  orange: "#E69F00",
  skyBlue: "#56B4E9",
  bluishGreen: "#009E73",
  yellow: "#F0E442",
  blue: "#0072B2",
  vermillion: "#D55E00",
  reddishPurple: "#CC79A7",
  black: "#000000",
});

// Vermillion comes last: it reads as "error", which failed requests already own.
const ORDER = ["orange", "skyBlue", "bluishGreen", "blue", "reddishPurple", "yellow", "vermillion"];

export const INK = "#111111";
export const FAILED_INK = "#A31A00";

/** The number in a backend's name ("b12" -> 12), or 0. */
export function backendNumber(name) {
  const match = /^b(\d+)$/.exec(name || "");
  return match ? Number(match[1]) : 0;
}

/** The short label drawn on a dot: "2" for b2, else the first letters of the name. */
export function backendLabel(name) {
  const number = backendNumber(name);
  return number ? String(number) : (name || "?").slice(0, 2);
}

/** A backend's colour, stable for its name. */
export function backendColour(name) {
  let index = backendNumber(name) - 1;
  if (index < 0) {
    index = [...(name || "")].reduce((sum, c) => sum + c.charCodeAt(0), 0);
  }
  return OKABE_ITO[ORDER[index % ORDER.length]];
}

/** Black or white, whichever reads better on `hex`. */
export function inkOn(hex) {
  const [r, g, b] = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16) / 255);
  const lin = (c) => (c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4);
  const luminance = 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
  return luminance > 0.2 ? "#000000" : "#FFFFFF";
}
