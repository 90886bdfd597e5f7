// node --test management-ui/tests/ (run by .ci/run)
import assert from "node:assert/strict";
import { test } from "node:test";
import { bytes, count, duration, perSecond } from "../js/format.js";

const n = (x) => new Intl.NumberFormat().format(x);

test("counts have thousands separators and missing ones are 0", () => {
  assert.equal(count(1234567), n(1234567));
  assert.equal(count(undefined), "0");
});

test("rates keep one decimal", () => {
  assert.equal(perSecond(2.25), `${n(2.3)}/s`);
  assert.equal(perSecond(null), "0/s");
});

test("sizes climb binary units", () => {
  assert.equal(bytes(512), "512 B");
  assert.equal(bytes(1536), `${n(1.5)} KiB`);
  assert.equal(bytes(3 * 1024 ** 3), "3 GiB");
});

test("durations show their two largest units", () => {
  assert.equal(duration(12_000), "12s");
  assert.equal(duration(250_000), "4m 10s");
  assert.equal(duration((5 * 3600 + 2 * 60) * 1000), "5h 2m");
  assert.equal(duration((3 * 86400 + 4 * 3600) * 1000), "3d 4h");
});
