"""Recordings of a run: what a lab's stream said, kept in a file that plays anywhere.

The format (the contract, declared here and in lab.recording.format) is gzip-compressed
NDJSON, one JSON object per line:

    {"format": "lb-lab recording", "version": 1, "made": {...}, "duration_s": 5.02, ...}
    {"t": 0.0, "name": "state", "data": {<a full state>}}
    {"t": 0.051, "name": "batch", "data": {<a batch>}}
    ...                                   every message of the stream, in order
    {"end": {"messages": 101, "omitted": 0}}

- The header says what made it: when (`made.at`, UTC), how (`made.by`: `lb-lab record`
  or the page's Record button, with the command line or the lab's settings), the lab's
  version and build, how long it runs, the sides it holds, and the lesson and section
  that were open.
- Messages keep the stream's own names: `state`, `batch`, and whatever else the lab
  publishes (a comparison's sides), recorded without knowing them; `t` is seconds since
  the first `state`, which always comes first.
- Counters are exact, as in the stream: a recording only leaves out events (sampled
  past a budget of new requests per second, with `omitted` counting them).
- The `end` line proves the file is whole: a truncated recording has none.
- A recording past MAX_BYTES is refused when it is made, with the reason.

`lb-lab record` makes one from a running lab, the page's Record button makes one in the
lab service, and `lb-lab export` turns one into a static folder that plays it.
"""
