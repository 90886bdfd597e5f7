// The API's sample lists (`<stat>_details.samples`, newest first) as chart points. No DOM
// here: node's test runner checks it (management-ui/tests/).

/** The query that asks for the last `minutes` of samples, one every 5 s. */
export function samplesQuery(minutes = 10) {
  const age = minutes * 60;
  return { lengths_age: age, lengths_incr: 5, msg_rates_age: age, msg_rates_incr: 5 };
}

/** Samples (newest first) → [times in s, values], oldest first; rates between neighbours. */
export function points(samples, asRate) {
  const s = [...(samples ?? [])].reverse();
  if (!asRate) return [s.map((p) => p.timestamp / 1000), s.map((p) => p.sample)];
  const times = [];
  const values = [];
  for (let i = 1; i < s.length; i++) {
    const dt = (s[i].timestamp - s[i - 1].timestamp) / 1000;
    if (dt <= 0) continue;
    times.push(s[i].timestamp / 1000);
    values.push(Math.max(0, (s[i].sample - s[i - 1].sample) / dt));
  }
  return [times, values];
}
