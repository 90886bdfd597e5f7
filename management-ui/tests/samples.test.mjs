// node --test management-ui/tests/ (run by .ci/run)
import assert from "node:assert/strict";
import { test } from "node:test";
import { points, samplesQuery } from "../js/samples.js";

// As the API sends them: newest first, counters cumulative.
const samples = [
  { sample: 30, timestamp: 20_000 },
  { sample: 10, timestamp: 15_000 },
  { sample: 0, timestamp: 10_000 },
];

test("lengths are drawn as they are, oldest first, in seconds", () => {
  assert.deepEqual(points(samples, false), [
    [10, 15, 20],
    [0, 10, 30],
  ]);
});

test("counters become rates between neighbours", () => {
  assert.deepEqual(points(samples, true), [
    [15, 20],
    [2, 4],
  ]);
});

test("a counter that went back (a restart) is no negative rate", () => {
  const reset = [
    { sample: 5, timestamp: 20_000 },
    { sample: 50, timestamp: 15_000 },
  ];
  assert.deepEqual(points(reset, true), [[20], [0]]);
});

test("no samples, no points", () => {
  assert.deepEqual(points(undefined, true), [[], []]);
  assert.deepEqual(points([], false), [[], []]);
});

test("the query asks for ten minutes every five seconds", () => {
  assert.deepEqual(samplesQuery(), {
    lengths_age: 600,
    lengths_incr: 5,
    msg_rates_age: 600,
    msg_rates_incr: 5,
  });
});
