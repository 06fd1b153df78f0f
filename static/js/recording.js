// Reading a recording in the browser (the format: lab/recording/__init__.py): base64 of the
// gzip-compressed NDJSON, decompressed with the browser's own DecompressionStream and checked
// whole before anything is drawn, with the same checks and words as `lb-lab export`.

export const FORMAT = "lb-lab recording";
export const VERSION = 1;

export class RecordingError extends Error {}

function bytesOf(base64) {
  if (typeof base64 !== "string" || !base64) {
    throw new RecordingError("there is no recording here: recording.js is missing or empty");
  }
  let binary;
  try {
    binary = atob(base64);
  } catch {
    throw new RecordingError("the recording is corrupt: recording.js does not hold base64");
  }
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i += 1) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

async function decompress(bytes) {
  if (bytes[0] !== 0x1f || bytes[1] !== 0x8b) {
    throw new RecordingError("not a recording: it is not gzip-compressed (a .lbrec file is)");
  }
  try {
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
    return await new Response(stream).text();
  } catch (error) {
    throw new RecordingError(`the recording is truncated or corrupt: it cannot be decompressed (${error.message})`);
  }
}

/** The recording's header, messages ({t, name, data}) and end; RecordingError says what is wrong. */
export async function readRecording(base64) {
  const text = await decompress(bytesOf(base64));
  const lines = text.split("\n");
  if (lines.at(-1) === "") lines.pop();
  let rows;
  try {
    rows = lines.map((line) => JSON.parse(line));
  } catch (error) {
    throw new RecordingError(`the recording is corrupt: a line is not JSON (${error.message})`);
  }
  const header = rows[0];
  if (!header || header.format !== FORMAT) {
    throw new RecordingError(`not a recording: its first line is not a "${FORMAT}" header`);
  }
  if (!Number.isInteger(header.version) || header.version < 1) {
    throw new RecordingError(`the recording's version is not a number: ${JSON.stringify(header.version)}`);
  }
  if (header.version > VERSION) {
    throw new RecordingError(`the recording was made by a newer lb-lab (format version ${header.version}; this player plays up to version ${VERSION}): export it again with that lb-lab`);
  }
  const end = rows.length > 1 ? rows.at(-1).end : null;
  if (!end || typeof end !== "object") throw new RecordingError("the recording is truncated: it has no end line");
  const messages = rows.slice(1, -1);
  if (end.messages !== messages.length) {
    throw new RecordingError(`the recording is corrupt: its end line counts ${end.messages} messages, it holds ${messages.length}`);
  }
  messages.forEach((message, index) => {
    if (!message || typeof message.t !== "number" || typeof message.name !== "string" || !("data" in message)) {
      throw new RecordingError(`the recording is corrupt: line ${index + 2} is not a message`);
    }
  });
  if (!messages.length || messages[0].name !== "state") {
    throw new RecordingError("the recording is corrupt: it does not start with a state");
  }
  return { header, messages, end };
}
