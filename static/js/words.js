// Saying the lab's refusals as a person would: what could not be done, then why, without
// the command's internal names ("set_mode: rules: ...", "pools[1].backends: ...").

const WHAT = {
  set_algorithm: (d) => `Could not switch to ${d.algorithm}`,
  set_hash_key: (d) => `Could not hash on ${JSON.stringify(d.hash_key)}`,
  set_mode: (d) => `Could not switch to ${{ tcp: "Layer 4 (TCP)", udp: "Layer 4 (UDP)" }[d.mode] || "Layer 7 (HTTP)"}`,
  add_backend: () => "Could not add a backend",
  remove_backend: (d) => `Could not remove ${d.name}`,
  kill_backend: (d) => `Could not kill ${d.name}`,
  restart_backend: (d) => `Could not restart ${d.name}`,
  set_weight: (d) => `Could not give ${d.name} weight ${d.weight}`,
  set_latency: (d) => `Could not change ${d.name}'s latency`,
  set_error_rate: (d) => `Could not change ${d.name}'s errors`,
  set_healthy: (d) => `Could not change ${d.name}'s health`,
  drain_backend: (d) => `Could not ${d.draining ? "drain" : "undrain"} ${d.name}`,
  set_max_concurrency: (d) => `Could not limit ${d.name}`,
  set_traffic: () => "Could not change the traffic",
  send: () => "Could not send",
  pause: () => "Could not pause the traffic",
  resume: () => "Could not resume the traffic",
  reset: () => "Could not reset the counters",
  configure: () => "Could not change the balancer's settings",
  open_lesson: (d) => `Could not open the lesson ${JSON.stringify(d.slug)}`,
  reset_lesson: () => "Could not reset the lesson",
  default_lab: () => "Could not go back to the default lab",
};

// A config path the balancer names ("pools[1].backends", "rules", "health.interval_ms"),
// said in words.
const PATH = /^((?:[a-z_]+(?:\[\d+\])?)(?:\.[a-z_]+(?:\[\d+\])?)*): /;
const PLACES = { rules: "routing rules", pools: "pools", backends: "backends", sticky: "sticky sessions", health: "health checks" };

function place(path) {
  const parts = path.split(".").map((part) => {
    const [, name, index] = /^([a-z_]+)(?:\[(\d+)\])?$/.exec(part) || [null, part, null];
    const word = PLACES[name] || name.replaceAll("_", " ");
    return index == null ? word : `${word} (number ${Number(index) + 1})`;
  });
  return parts.join(", ");
}

/** "Could not remove b4: the pool (number 2) still lists it", from an action and its error. */
export function sayRefusal(data, error) {
  const what = (WHAT[data.action] || (() => `Could not ${String(data.action).replaceAll("_", " ")}`))(data);
  let why = String(error || "refused");
  const prefix = `${data.action}: `;
  if (why.startsWith(prefix)) why = why.slice(prefix.length);
  const path = PATH.exec(why);
  if (path && !/^the /.test(path[1])) why = `${place(path[1])}: ${why.slice(path[0].length)}`;
  return `${what}: ${why}`;
}

/** What each layer routes, as the balancer box says it. */
export const MODE_WORDS = {
  http: "Layer 7 · HTTP requests",
  tcp: "Layer 4 · TCP connections",
  udp: "Layer 4 · UDP flows",
};
